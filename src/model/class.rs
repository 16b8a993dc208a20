//! The classification of failed requests: a small `Copy` enum counted per metric key, so a failure
//! costs an array increment, not a formatted string.

use std::fmt;

/// Why a request (or the step around it) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The server refused the TCP connection.
    ConnectRefused,
    /// Any other connection failure (DNS, unreachable, no route).
    Connect,
    /// The connection was reset or closed mid-exchange.
    Reset,
    /// No complete response within the step's timeout.
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// The server broke HTTP (malformed response, bad framing).
    Protocol,
    /// The response body exceeded `max_body_bytes`.
    BodyTooLarge,
    /// The status was 400 or above and the step did not list it as expected.
    Status,
    /// A check on the response failed (or an extraction found nothing).
    Check,
    /// A template variable was unset, or a rendered value was not a valid header/URI.
    Template,
    /// A script step or hook failed.
    Script,
    /// A feeder ran out of rows.
    Feed,
    /// The generator's own machine ran out of something (ephemeral ports, file descriptors,
    /// socket buffers) before the request left it: not the target's fault.
    Generator,
    /// stampede itself failed (a panic inside an iteration: a bug to report). The iteration is
    /// counted as failed and its virtual user goes on.
    Internal,
}

impl ErrorClass {
    /// Number of classes (the length of per-class counter arrays).
    pub const COUNT: usize = 14;

    /// Every class, in counter order.
    pub const ALL: [ErrorClass; ErrorClass::COUNT] = [
        ErrorClass::ConnectRefused,
        ErrorClass::Connect,
        ErrorClass::Reset,
        ErrorClass::Timeout,
        ErrorClass::Tls,
        ErrorClass::Protocol,
        ErrorClass::BodyTooLarge,
        ErrorClass::Status,
        ErrorClass::Check,
        ErrorClass::Template,
        ErrorClass::Script,
        ErrorClass::Feed,
        ErrorClass::Generator,
        ErrorClass::Internal,
    ];

    /// Position in counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable machine name used in results files.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::ConnectRefused => "connect_refused",
            ErrorClass::Connect => "connect",
            ErrorClass::Reset => "reset",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Tls => "tls",
            ErrorClass::Protocol => "protocol",
            ErrorClass::BodyTooLarge => "body_too_large",
            ErrorClass::Status => "status",
            ErrorClass::Check => "check",
            ErrorClass::Template => "template",
            ErrorClass::Script => "script",
            ErrorClass::Feed => "feed",
            ErrorClass::Generator => "generator",
            ErrorClass::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_the_all_table() {
        for (i, c) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
