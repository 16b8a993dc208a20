//! Settings that apply to the whole run (`defaults`): timeouts, HTTP version and client,
//! connection reuse, error policy, arrival batching, redirects and how connections reach targets.

use std::time::Duration;

/// Settings that apply to the whole run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Default per-request timeout.
    pub timeout: Duration,
    /// How long in-flight iterations may finish after the load ends.
    pub graceful_stop: Duration,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Which HTTP version to speak.
    pub http: HttpVersion,
    /// Keep connections across iterations.
    pub keep_alive: bool,
    /// What a failed request does to its iteration.
    pub on_error: OnError,
    /// Largest body read for extraction and checks.
    pub max_body_bytes: u64,
    /// Send W3C `traceparent`.
    pub traceparent: bool,
    /// Failed checks fail the run.
    pub checks_gate: bool,
    /// Open model: the most an arrival may start late so that close arrivals share a wake-up.
    pub arrival_slack: ArrivalSlack,
    /// Redirects a request follows unless its step says otherwise.
    pub redirects: u32,
    /// Host overrides, proxies and the client certificate.
    pub transport: super::transport::Transport,
    /// Which HTTP/1.1 client speaks to HTTP/1.1 origins.
    pub client: H1Client,
}

/// The HTTP/1.1 client (`defaults.client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum H1Client {
    /// stampede's own: one buffer per connection, no task or channel per request.
    #[default]
    Lean,
    /// hyper's, the reference the lean path is tested against.
    Hyper,
}

/// How late an open-model arrival may start so that arrivals close together share one wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalSlack {
    /// No batching up to [`ArrivalSlack::AUTO_BATCH_ABOVE`] arrivals per second (a wake-up per
    /// arrival costs little next to its request), and above it about eight arrivals per wake-up,
    /// never more than 500 µs late.
    Auto,
    /// This much, at any rate (`defaults.arrival_slack`).
    Fixed(Duration),
}

impl ArrivalSlack {
    /// Rates up to this are never batched by `Auto`.
    pub const AUTO_BATCH_ABOVE: f64 = 10_000.0;
    /// The most `Auto` batches.
    pub const AUTO_MAX: Duration = Duration::from_micros(500);

    /// The slack at `rate` arrivals per second.
    pub fn at_rate(self, rate: f64) -> Duration {
        match self {
            ArrivalSlack::Fixed(d) => d,
            ArrivalSlack::Auto if rate <= Self::AUTO_BATCH_ABOVE => Duration::ZERO,
            ArrivalSlack::Auto => Duration::from_secs_f64(8.0 / rate).min(Self::AUTO_MAX),
        }
    }
}

/// HTTP version policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/2 when TLS ALPN offers it, else HTTP/1.1.
    Auto,
    /// Always HTTP/1.1.
    Http1,
    /// Always HTTP/2 (prior knowledge on plain TCP).
    Http2,
}

/// What a failed request does to its iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop the iteration (later steps depend on earlier ones).
    Abort,
    /// Go on with the next step.
    Continue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_slack_batches_only_above_ten_thousand_a_second() {
        let auto = ArrivalSlack::Auto;
        assert_eq!(auto.at_rate(4_000.0), Duration::ZERO);
        assert_eq!(auto.at_rate(10_000.0), Duration::ZERO);
        assert_eq!(auto.at_rate(20_000.0), Duration::from_micros(400));
        assert_eq!(auto.at_rate(1_000.0 * 1_000.0), Duration::from_micros(8));
        assert_eq!(auto.at_rate(10_001.0), ArrivalSlack::AUTO_MAX);
        let fixed = ArrivalSlack::Fixed(Duration::from_micros(500));
        assert_eq!(fixed.at_rate(1.0), Duration::from_micros(500));
    }
}
