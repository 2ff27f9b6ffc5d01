//! Operator's figures: counters, gauges and latency histograms fed from
//! the core's typed [`Event`](crate::Event)s and the gateway's table
//! sizes, never from log text, rendered as OpenMetrics text for
//! `[listen] metrics`, and the status page served beside them
//! ([`page`], with the [`rates`] it shows).
//!
//! Every label takes its values from a closed set (an enum's names, a
//! configuration key, a configured partner domain or `other`), so no peer
//! can grow the table; a histogram is a fixed array of buckets.

mod families;
pub mod http;
pub mod page;
pub mod rates;
mod record;
mod registry;

pub use families::{Family, Kind, BUCKETS, FAMILIES};
pub use registry::Registry;
