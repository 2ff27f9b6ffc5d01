//! Wall-clock time for rustls, supplied by the caller.

use std::sync::atomic::{AtomicU64, Ordering};

use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;

/// The time rustls sees: whatever the runtime last [`set`](Self::set).
///
/// The core never reads the system clock, so the runtime passes the wall
/// time in (seconds since the Unix epoch) along with each event, and the
/// gateway stores it here. rustls uses it for session-ticket ages; the
/// certificate checks of [`check_peer`](super::check_peer) take their time
/// as an argument instead. One clock is shared (`Arc`) by every
/// configuration built from it, so one `set` moves them all.
#[derive(Debug)]
pub struct CallerClock {
    unix_secs: AtomicU64,
}

impl CallerClock {
    /// A clock reading `unix_secs` until told otherwise. There is no unset
    /// state: rustls fails a handshake outright when it cannot get a time.
    pub fn new(unix_secs: u64) -> Self {
        CallerClock {
            unix_secs: AtomicU64::new(unix_secs),
        }
    }

    /// Moves the clock to `unix_secs` (it may go backwards, as wall time can).
    pub fn set(&self, unix_secs: u64) {
        self.unix_secs.store(unix_secs, Ordering::Relaxed);
    }

    /// The time last set, in seconds since the Unix epoch.
    pub fn get(&self) -> u64 {
        self.unix_secs.load(Ordering::Relaxed)
    }
}

impl TimeProvider for CallerClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            self.get(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_sees_the_time_set() {
        let clock = CallerClock::new(1_000);
        assert_eq!(clock.current_time().map(|t| t.as_secs()), Some(1_000));
        clock.set(1_700_000_000);
        assert_eq!(clock.get(), 1_700_000_000);
        assert_eq!(
            clock.current_time().map(|t| t.as_secs()),
            Some(1_700_000_000)
        );
        clock.set(5);
        assert_eq!(clock.current_time().map(|t| t.as_secs()), Some(5));
    }
}
