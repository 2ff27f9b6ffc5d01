//! Dialogs to and from the store: what a restart keeps of a subscription
//! (its identifiers, strings, CSeqs, phase and expiry) and how it goes
//! on in the same dialog afterwards.

use std::time::{Duration, Instant};

use super::{later, secs, Entry, Packed, Phase, Refusal, Side, SubId, SubscriptionTable};
use super::{DialogId, EVENT, LOCAL, REMOTE, ROUTE, TARGET};
use crate::store::{SavedDialog, SavedSide};

/// The largest CSeq (RFC 3261 section 8.1.1.5: below 2^31).
const MAX_CSEQ: u32 = (1 << 31) - 1;

impl SubscriptionTable {
    /// The record of `sub` to persist, at `now` (`unix` in unix seconds).
    /// `None` when the dialog ended, or is a subscription of ours that no
    /// answer confirmed yet (made afresh after a restart instead).
    pub fn saved(&self, sub: SubId, now: Instant, unix: u64) -> Option<SavedDialog> {
        let e = self.entries.get(&sub)?;
        let side = match &e.side {
            Side::Notifier { .. } => SavedSide::Notifier,
            Side::Subscriber { interval, .. } => {
                if e.phase != Phase::Active || e.id.remote_tag().is_empty() {
                    return None;
                }
                SavedSide::Subscriber {
                    interval: *interval,
                }
            }
        };
        let left = e.expires_at.saturating_duration_since(now).as_secs();
        Some(SavedDialog {
            call_id: e.id.call_id().to_owned(),
            local_tag: e.id.local_tag().to_owned(),
            remote_tag: e.id.remote_tag().to_owned(),
            side,
            target: e.strings.part(TARGET).to_owned(),
            route: e.strings.part(ROUTE).to_owned(),
            local_uri: e.strings.part(LOCAL).to_owned(),
            remote_uri: e.strings.part(REMOTE).to_owned(),
            event: e.strings.part(EVENT).to_owned(),
            local_cseq: e.local_cseq,
            remote_cseq: e.remote_cseq,
            active: e.phase == Phase::Active,
            expires_at: unix.saturating_add(left),
            saved_at: unix,
        })
    }

    /// Takes back a dialog saved before a restart, at `now` (`unix` in
    /// unix seconds). Nothing is sent: a notifier dialog sends its next
    /// NOTIFY on the next change or refresh, a subscriber dialog refreshes
    /// at the same fraction of its remaining time as a fresh one would.
    ///
    /// Our CSeq goes on above any NOTIFY sent since the record was made
    /// (one per `min_notify_interval` at most, see [`SavedDialog`]).
    /// Refused when it expired (`Refusal::NO_DIALOG`), is held already
    /// (500), the table is full or the strings exceed its bound.
    pub fn restore(
        &mut self,
        saved: &SavedDialog,
        now: Instant,
        unix: u64,
    ) -> Result<SubId, Refusal> {
        let left = saved.expires_at.saturating_sub(unix);
        let left = u32::try_from(left).unwrap_or(u32::MAX);
        if left == 0 || saved.remote_tag.is_empty() {
            return Err(Refusal::NO_DIALOG);
        }
        let id = DialogId::new(&saved.call_id, &saved.local_tag, &saved.remote_tag);
        if self.find(&id).is_some() {
            return Err(Refusal::new(500, "Dialog Exists"));
        }
        if self.entries.len() >= self.config.max_subscriptions {
            return Err(Refusal::FULL);
        }
        let strings = Packed::new(
            [
                &saved.target,
                &saved.route,
                &saved.local_uri,
                &saved.remote_uri,
                &saved.event,
            ],
            self.config.max_dialog_bytes,
        )
        .ok_or(Refusal::TOO_LARGE)?;
        let (phase, side) = match saved.side {
            SavedSide::Notifier => (
                if saved.active {
                    Phase::Active
                } else {
                    Phase::Pending
                },
                Side::Notifier {
                    last_notify: None,
                    dirty: false,
                },
            ),
            SavedSide::Subscriber { interval } => (
                Phase::Active,
                Side::Subscriber {
                    interval,
                    refresh_at: Some(later(now, self.config.refresh_delay(left))),
                    timer_n: None,
                    asked: None,
                },
            ),
        };
        let window = self.config.min_notify_interval.max(Duration::from_secs(1));
        let unsaved = unix.saturating_sub(saved.saved_at) / window.as_secs() + 1;
        let local_cseq = u64::from(saved.local_cseq)
            .saturating_add(unsaved)
            .min(u64::from(MAX_CSEQ));
        let entry = Entry {
            id,
            strings,
            phase,
            local_cseq: u32::try_from(local_cseq).unwrap_or(MAX_CSEQ),
            remote_cseq: saved.remote_cseq,
            expires_at: later(now, secs(left)),
            scheduled: None,
            side,
        };
        Ok(self.insert(entry))
    }
}
