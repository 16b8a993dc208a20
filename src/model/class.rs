//! The classification of failed requests: a small `Copy` enum counted per metric key, so a failure
//! costs an array increment, not a formatted string.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// Why a request (or the step around it) failed. Results files carry it as its [`name`]; it is
/// ordered, hashed and compared as that name, so a map keyed by classes lists them as results
/// files always did and can be looked up by the name (`errors.get("timeout")`).
///
/// [`name`]: ErrorClass::name
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// The server closed a WebSocket the journey still used, or broke its framing (the close
    /// code and reason are in the message).
    WsClosed,
}

impl ErrorClass {
    /// Number of classes (the length of per-class counter arrays).
    pub const COUNT: usize = 15;

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
        ErrorClass::WsClosed,
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
            ErrorClass::WsClosed => "ws_closed",
        }
    }
}

impl Ord for ErrorClass {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for ErrorClass {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for ErrorClass {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl Borrow<str> for ErrorClass {
    fn borrow(&self) -> &str {
        self.name()
    }
}

impl PartialEq<&str> for ErrorClass {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
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
    fn json_names_are_the_results_names() {
        for c in ErrorClass::ALL {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
    }

    #[test]
    fn names_are_unique() {
        // Equality is by variant but order, hash and `Borrow<str>` are by name: they agree only
        // while no two classes share a name.
        let names: std::collections::BTreeSet<&str> =
            ErrorClass::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), ErrorClass::COUNT);
    }

    #[test]
    fn indices_match_the_all_table() {
        for (i, c) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
