//! Lync's clocks on a stream: establishment, the partner's silence
//! (`KeepAliveInterval`), inactivity (`StreamInactivityTimeout`), our
//! keepalives, and the wait for the peer's closing tag.

use std::time::{Duration, Instant};

use crate::xmpp::{StreamCondition, StreamError};

use super::{Direction, Phase, Session, Settings, Time};

/// How often we send a keepalive space on an otherwise quiet stream to a
/// partner with `keepalive = true`: half of `keepalive_interval`, so that
/// one late or lost write still leaves the peer's silence timer (if it
/// applies Lync's rule with the same interval) unexpired.
pub fn keepalive_period(settings: &Settings) -> Duration {
    settings.keepalive_interval / 2
}

impl Session {
    /// When [`Session::handle_timeout`] must next be called.
    pub fn poll_timeout(&self, settings: &Settings) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        if let (Phase::Closing, Some(by)) = (self.phase, self.closing_by) {
            return Some(by);
        }
        let mut next = self.last_active + settings.inactivity_timeout;
        if !self.is_established() {
            next = next.min(self.established_by);
        }
        if let Some(by) = self.silence_deadline(settings) {
            next = next.min(by);
        }
        if self.keepalive && self.phase == Phase::Open {
            next = next.min(self.last_tx + keepalive_period(settings));
        }
        Some(next)
    }

    /// When the partner's silence ends this stream (Lync's
    /// `KeepAliveInterval`), if it can: only on inbound streams, the ones
    /// the partner sends on. An outbound stream without bidi carries
    /// nothing back after authentication (RFC 6120 streams are one-way),
    /// and real servers stay silent on it (Prosody writes a space only
    /// after 14 minutes without reading); a dead one is found by our own
    /// keepalive writes.
    pub(super) fn silence_deadline(&self, settings: &Settings) -> Option<Instant> {
        (self.dir == Direction::Inbound).then(|| self.last_rx + settings.keepalive_interval)
    }

    /// Time passed: establishment, silence and inactivity timeouts,
    /// keepalives.
    pub fn handle_timeout(&mut self, settings: &Settings, t: Time) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.is_established() && t.now >= self.established_by {
            self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::ConnectionTimeout,
                    "stream not established in time",
                ),
            );
            return;
        }
        if let (Phase::Closing, Some(by)) = (self.phase, self.closing_by) {
            if t.now >= by {
                self.finish("peer did not close its stream".into());
            }
            return;
        }
        if self
            .silence_deadline(settings)
            .is_some_and(|by| t.now >= by)
        {
            let secs = settings.keepalive_interval.as_secs();
            self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::ConnectionTimeout,
                    format!("nothing received for {secs} s (gateway.keepalive_interval)"),
                ),
            );
            return;
        }
        if t.now >= self.last_active + settings.inactivity_timeout {
            self.close_gracefully("inactivity timeout", t.now);
            return;
        }
        if self.keepalive
            && self.phase == Phase::Open
            && t.now >= self.last_tx + keepalive_period(settings)
        {
            // RFC 6120 section 4.6.1: a single space between stanzas.
            self.write_raw(b" ", t);
        }
    }
}
