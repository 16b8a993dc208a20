//! The single integration-test binary: every test drives the real library or binary against real
//! servers on 127.0.0.1, bound to port 0.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod util;

mod architecture;
mod attack;
mod batch;
mod bodies;
mod capacity;
mod claims;
mod cli;
mod compare;
mod compose;
mod demo;
mod deploy;
mod docs;
mod ecosystem;
mod encoding;
mod gate;
mod hostile;
mod http;
mod interact;
mod journeys;
mod limits;
mod redirects;
mod report_html;
mod run_closed;
mod run_open;
mod scenario_errors;
mod secrets;
mod signals;
mod split;
mod steps;
mod transport;
mod trend;
mod websocket;
