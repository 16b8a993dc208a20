//! The one way a failure is kept on the request path: counted where it belongs, its first example
//! per class and key kept, and that example masked against the secrets of the user it happened to
//! (or, for a user that was never made, against the plan's fixed secrets and the already masked
//! creation error). Every caller goes through [`fail`], so masking cannot drift between copies.

use super::{FlowCtx, VirtualUser};
use crate::model::ErrorClass;

/// Where a failure lands.
#[derive(Debug, Clone, Copy)]
pub enum Place {
    /// Outside any request (a script, a feeder, a user that could not be made, a caught panic):
    /// counted on the flow.
    Flow,
    /// A request step's metric key: the step's request sample already counts the failure, so
    /// only its example is kept here.
    Step(usize),
}

/// Counts a failure at `place` (see [`Place`]) and keeps its first example per class, masked
/// against `vu`'s secrets. `message` runs only for the first example.
pub fn fail(
    ctx: &FlowCtx,
    vu: Option<&VirtualUser>,
    place: Place,
    class: ErrorClass,
    message: impl FnOnce() -> String,
) {
    let key = match place {
        Place::Flow => {
            ctx.registry.flow_error(ctx.flow, class);
            ctx.flow_key()
        }
        Place::Step(key) => key,
    };
    let secrets = &ctx.plan.secrets;
    ctx.registry.example(key, class, || match vu {
        Some(vu) => vu.redact(secrets, message()),
        None => secrets.redact(std::iter::empty(), message()),
    });
}
