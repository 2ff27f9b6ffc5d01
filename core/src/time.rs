//! Time as the core knows it: only what each call passes in. No module
//! reads a clock; the gateway stamps every input with a [`Time`] and hands
//! it down.

use std::time::Instant;

/// The caller's notion of time: monotonic for timers, Unix seconds for
/// certificate validity and expiry of what is persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    /// Monotonic now.
    pub now: Instant,
    /// Wall-clock now, seconds since the Unix epoch.
    pub unix: u64,
}
