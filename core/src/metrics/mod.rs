//! Operator's figures: counters and gauges fed from the core's typed
//! [`Event`](crate::Event)s and the gateway's table sizes, never from log
//! text, rendered as OpenMetrics text for `[listen] metrics`.
//!
//! Every label takes its values from a closed set (an enum's names, a
//! configuration key, a configured partner domain or `other`), so no peer
//! can grow the table. No latency histograms: no event carries when its
//! message entered xfed.

mod families;
pub mod http;
mod record;
mod registry;

pub use families::{Family, Kind, FAMILIES};
pub use registry::Registry;
