//! The small vocabularies results are keyed by — a flow's kind, its load model, a self-check —
//! as enums that serialize to the same lowercase names results files have always carried.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Names an enum writes in results files, and compares equal to as text (so code and tests can
/// still ask `kind == "live"`).
/// The first variant is the default (results structs derive `Default`).
macro_rules! named {
    ($(#[$doc:meta])* $name:ident {
        $(#[$fdoc:meta])* $first:ident = $ftext:literal,
        $($(#[$vdoc:meta])* $variant:ident = $text:literal,)*
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        pub enum $name {
            $(#[$fdoc])* #[default] #[serde(rename = $ftext)] $first,
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// The name results files carry.
            pub fn name(self) -> &'static str {
                match self {
                    $name::$first => $ftext,
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.name() == *other
            }
        }
    };
}

named! {
    /// Whether a flow is user-facing traffic or batch work beside it.
    FlowKind {
        /// User-facing traffic.
        Live = "live",
        /// Batch work competing with live traffic.
        Background = "background",
        /// The `setup` journey: once, before the load.
        Setup = "setup",
        /// The `teardown` journey: once, after the load.
        Teardown = "teardown",
    }
}

named! {
    /// A flow's load model.
    ModelKind {
        /// Arrivals on a rate curve, independent of how the target answers.
        Open = "open",
        /// Virtual users looping, each waiting for its last response.
        Closed = "closed",
    }
}

named! {
    /// A self-check of the generator (see `analysis::selfcheck`).
    SelfCheckName {
        /// Iterations started late with a user free to start them.
        ScheduleLag = "schedule_lag",
        /// An open flow's arrivals against a Poisson process.
        PoissonFit = "poisson_fit",
        /// stampede failed inside an iteration (a caught panic).
        Internal = "internal",
        /// The generator's runtime was busy nearly all the run.
        Saturation = "saturation",
        /// Local ports or descriptors ran out.
        ConnectionChurn = "connection_churn",
        /// A segment of a split run began after the shared start and missed arrivals.
        LateStart = "late_start",
        /// A check this version does not know (an older file's `dropped`, a newer file's new
        /// check): read, so the file still loads, and written back as `other`.
        #[serde(other)]
        Other = "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json_and_compare_as_text() {
        assert_eq!(
            serde_json::to_string(&FlowKind::Background).unwrap(),
            "\"background\""
        );
        let k: ModelKind = serde_json::from_str("\"closed\"").unwrap();
        assert_eq!(k, ModelKind::Closed);
        assert!(SelfCheckName::PoissonFit == "poisson_fit");
        assert!(serde_json::from_str::<FlowKind>("\"\"").is_err());
        // Results written before `dropped` stopped being a self-check still load.
        let old: SelfCheckName = serde_json::from_str("\"dropped\"").unwrap();
        assert_eq!(old, SelfCheckName::Other);
    }
}
