//! WebSocket steps as planned: the upgrade request, then what the step does on the socket.

use std::time::Duration;

use http::HeaderValue;
use regex::Regex;

use super::plan::{Check, Extract, Request, StepId};
use super::template::Template;

/// A WebSocket step. Its connection is the user's for the rest of the iteration: a later `ws`
/// step to the same URL uses it without a new handshake; the iteration's end closes it.
#[derive(Debug)]
pub struct WsStep {
    /// The upgrade request (method `WS` in reports; its id is the handshake's metric key).
    pub open: Request,
    /// `Sec-WebSocket-Protocol`, when subprotocols are offered.
    pub subprotocols: Option<HeaderValue>,
    /// What it does on the connection, in order.
    pub actions: Vec<WsAction>,
}

/// One thing a WebSocket step does.
#[derive(Debug)]
pub enum WsAction {
    /// Send a text message.
    Send(Template),
    /// Wait for a matching message.
    Expect(Box<WsExpect>),
    /// Listen this long.
    Hold(Duration),
    /// Close with this code.
    Close(u16),
}

/// An `expect`: its own metric key, timed from the last `send` before it.
#[derive(Debug)]
pub struct WsExpect {
    /// Its metric key.
    pub id: StepId,
    /// Equalities on the message as JSON (`Check::JsonEq`).
    pub json: Vec<Check>,
    /// A regex the message must match.
    pub regex: Option<Regex>,
    /// How long to wait.
    pub within: Duration,
    /// Values taken from the matching message.
    pub extract: Vec<Extract>,
}
