//! The vocabulary every layer shares and nothing below it: the results model (`results.json`),
//! error classes, the histogram and its codec, and the threshold expressions. It imports only
//! [`units`](crate::units), so the engine, the analyses and the reports can all read it without
//! reading each other.

pub mod capacity;
pub mod class;
pub mod codec;
pub mod hist;
pub mod names;
pub mod result;
pub mod segment;
pub mod threshold;

pub use class::ErrorClass;
pub use hist::{Hist, new_hist};
pub use names::{FlowKind, ModelKind, SelfCheckName};
pub use result::*;
pub use segment::{GateSpec, Gates, MAX_SEGMENTS, Segment, SegmentFlow, SegmentSummary};
