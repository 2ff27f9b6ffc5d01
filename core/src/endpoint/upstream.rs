//! What proxy mode keeps of the presence subscriptions xfed holds at the
//! SIP domain's presence server for XMPP watchers of local users: per
//! (local user, watcher) pair with an approved authorization, its
//! subscriber dialog in the endpoint's
//! [`SubscriptionTable`](crate::sip::SubscriptionTable) (or when it will be
//! made again), whether the watcher was told `subscribed`, and the last
//! state a NOTIFY reported, which answers probes and tells which
//! resources went away.
//!
//! Bounded: `sip.max_subscriptions` pairs in all (each holds a dialog)
//! and `sip.max_watchers` per remote domain, so no one domain can take
//! every dialog.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::sip::{SubId, TxId};

/// A local user and an XMPP watcher (bare JIDs).
pub type Pair = (String, String);

/// What xfed knows of one pair beside its dialog: plain data, what a
/// store persists to carry a pair across a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relayed {
    /// The watcher was sent `subscribed` (at the presence server's first
    /// `active` NOTIFY, RFC 8048).
    pub told: bool,
    /// The last state an `active` NOTIFY reported, as the PIDF document
    /// xfed writes for it (one tuple per resource, notes with their
    /// languages; an empty presentity when the NOTIFY had no body).
    pub last: Option<Vec<u8>>,
}

/// One pair.
#[derive(Debug, Default)]
struct Entry {
    relayed: Relayed,
    /// Its dialog, while one runs.
    sub: Option<SubId>,
    /// When a new dialog is due, while none runs.
    retry_at: Option<Instant>,
}

/// Every pair, with its dialog, retry and the SUBSCRIBEs in flight.
#[derive(Debug, Default)]
pub struct Upstream {
    /// Pairs at most (`sip.max_subscriptions`).
    max: usize,
    /// Pairs per watcher domain at most (`sip.max_watchers`).
    max_per_domain: usize,
    pairs: HashMap<Pair, Entry>,
    per_domain: HashMap<String, usize>,
    by_sub: HashMap<SubId, Pair>,
    /// Our SUBSCRIBEs in flight, by client transaction.
    subscribes: HashMap<TxId, SubId>,
    retries: BTreeSet<(Instant, Pair)>,
}

fn domain_of(jid: &str) -> String {
    jid.rsplit_once('@')
        .map_or(jid, |(_, d)| d)
        .to_ascii_lowercase()
}

impl Upstream {
    /// No pairs; at most `max` in all and `max_per_domain` per watcher
    /// domain.
    pub fn new(max: usize, max_per_domain: usize) -> Upstream {
        Upstream {
            max,
            max_per_domain,
            ..Upstream::default()
        }
    }

    /// New bounds (a reload); pairs already beyond them stay.
    pub fn set_bounds(&mut self, max: usize, max_per_domain: usize) {
        self.max = max;
        self.max_per_domain = max_per_domain;
    }

    /// Pairs held.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the pair is held, or there is room for it.
    pub fn has_room(&self, user: &str, watcher: &str) -> bool {
        if self.pairs.contains_key(&pair(user, watcher)) {
            return true;
        }
        let domain = self
            .per_domain
            .get(&domain_of(watcher))
            .copied()
            .unwrap_or(0);
        self.pairs.len() < self.max && domain < self.max_per_domain
    }

    /// Holds the pair (with what a store kept of it); `false` beyond the
    /// bounds. Held already: nothing changes.
    pub fn add(&mut self, user: &str, watcher: &str, relayed: Relayed) -> bool {
        if !self.has_room(user, watcher) {
            return false;
        }
        let key = pair(user, watcher);
        if !self.pairs.contains_key(&key) {
            *self.per_domain.entry(domain_of(watcher)).or_default() += 1;
            self.pairs.insert(
                key,
                Entry {
                    relayed,
                    ..Entry::default()
                },
            );
        }
        true
    }

    /// Forgets the pair: what was known of it, and its dialog (the
    /// caller ends it).
    pub fn remove(&mut self, user: &str, watcher: &str) -> Option<(Relayed, Option<SubId>)> {
        let key = pair(user, watcher);
        let e = self.pairs.remove(&key)?;
        let domain = domain_of(watcher);
        if let Some(n) = self.per_domain.get_mut(&domain) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_domain.remove(&domain);
            }
        }
        if let Some(at) = e.retry_at {
            self.retries.remove(&(at, key));
        }
        if let Some(sub) = e.sub {
            self.by_sub.remove(&sub);
        }
        Some((e.relayed, e.sub))
    }

    /// What is known of the pair.
    pub fn get(&self, user: &str, watcher: &str) -> Option<&Relayed> {
        self.pairs.get(&pair(user, watcher)).map(|e| &e.relayed)
    }

    /// The same, to change.
    pub fn get_mut(&mut self, user: &str, watcher: &str) -> Option<&mut Relayed> {
        self.pairs
            .get_mut(&pair(user, watcher))
            .map(|e| &mut e.relayed)
    }

    /// The pair's dialog, while one runs.
    pub fn dialog_of(&self, user: &str, watcher: &str) -> Option<SubId> {
        self.pairs.get(&pair(user, watcher))?.sub
    }

    /// Whether the pair has neither a dialog nor a retry scheduled.
    pub fn idle(&self, user: &str, watcher: &str) -> bool {
        self.pairs
            .get(&pair(user, watcher))
            .is_some_and(|e| e.sub.is_none() && e.retry_at.is_none())
    }

    /// The pair a dialog serves.
    pub fn pair_of(&self, sub: SubId) -> Option<&Pair> {
        self.by_sub.get(&sub)
    }

    /// `sub` is the pair's dialog now (a retry is no longer due). Also how
    /// a dialog restored from a store is tied to its pair again.
    pub fn link(&mut self, user: &str, watcher: &str, sub: SubId) {
        let key = pair(user, watcher);
        let Some(e) = self.pairs.get_mut(&key) else {
            return;
        };
        if let Some(at) = e.retry_at.take() {
            self.retries.remove(&(at, key.clone()));
        }
        if let Some(old) = e.sub.replace(sub) {
            self.by_sub.remove(&old);
        }
        self.by_sub.insert(sub, key);
    }

    /// Dialog `sub` ended: its pair, which has no dialog now.
    pub fn unlink(&mut self, sub: SubId) -> Option<Pair> {
        let key = self.by_sub.remove(&sub)?;
        if let Some(e) = self.pairs.get_mut(&key) {
            e.sub = None;
        }
        Some(key)
    }

    /// A new dialog for the pair is due at `at`.
    pub fn schedule(&mut self, user: &str, watcher: &str, at: Instant) {
        let key = pair(user, watcher);
        let Some(e) = self.pairs.get_mut(&key) else {
            return;
        };
        if let Some(old) = e.retry_at.replace(at) {
            self.retries.remove(&(old, key.clone()));
        }
        self.retries.insert((at, key));
    }

    /// When the next retry is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.first().map(|(at, _)| *at)
    }

    /// The pairs whose retry is due by `now`, no longer scheduled.
    pub fn due(&mut self, now: Instant) -> Vec<Pair> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.retries.first() {
            if *at > now {
                break;
            }
            let Some((_, key)) = self.retries.pop_first() else {
                break;
            };
            if let Some(e) = self.pairs.get_mut(&key) {
                e.retry_at = None;
            }
            out.push(key);
        }
        out
    }

    /// A SUBSCRIBE of dialog `sub` went out as client transaction `tx`.
    pub fn subscribe_sent(&mut self, tx: TxId, sub: SubId) {
        self.subscribes.insert(tx, sub);
    }

    /// The dialog whose SUBSCRIBE was client transaction `tx`, forgotten.
    pub fn subscribe_answered(&mut self, tx: TxId) -> Option<SubId> {
        self.subscribes.remove(&tx)
    }
}

fn pair(user: &str, watcher: &str) -> Pair {
    (user.to_owned(), watcher.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounds_links_and_retries() {
        let mut u = Upstream::new(3, 2);
        assert!(u.add("a@x", "w1@r", Relayed::default()));
        assert!(u.add("b@x", "w2@r", Relayed::default()));
        assert!(!u.add("c@x", "w3@R", Relayed::default()), "per domain");
        assert!(u.add("a@x", "w1@r", Relayed::default()), "held already");
        assert!(u.add("a@x", "v@s", Relayed::default()));
        assert!(!u.add("a@x", "v@t", Relayed::default()), "in all");
        assert_eq!(u.len(), 3);

        let now = Instant::now();
        u.schedule("a@x", "w1@r", now + Duration::from_secs(5));
        assert!(!u.idle("a@x", "w1@r"));
        assert_eq!(u.next_retry(), Some(now + Duration::from_secs(5)));
        assert!(u.due(now).is_empty());
        assert_eq!(
            u.due(now + Duration::from_secs(5)),
            [("a@x".to_owned(), "w1@r".to_owned())]
        );
        assert!(u.idle("a@x", "w1@r"));
        assert_eq!(u.next_retry(), None);

        // A link cancels a retry; an unlink leaves the pair idle.
        u.schedule("b@x", "w2@r", now);
        let id = test_sub(7);
        u.link("b@x", "w2@r", id);
        assert_eq!(u.next_retry(), None);
        assert_eq!(u.pair_of(id).map(|p| p.0.as_str()), Some("b@x"));
        assert_eq!(u.unlink(id), Some(("b@x".into(), "w2@r".into())));
        assert!(u.idle("b@x", "w2@r"));

        let (_, sub) = u.remove("a@x", "w1@r").unwrap();
        assert_eq!(sub, None);
        assert!(u.add("c@x", "w3@r", Relayed::default()), "room again");
    }

    fn test_sub(n: u64) -> SubId {
        // SubIds only come from a table: make one that subscribes n times.
        let mut t = crate::sip::SubscriptionTable::new(crate::sip::SubscriptionConfig::new(64));
        let mut rng = crate::rng::Rng::new([0; 32]);
        let uri = crate::sip::Uri::parse("sip:a@x").unwrap();
        let ev = crate::sip::Event::new("presence").unwrap();
        let mut last = None;
        for _ in 0..n {
            last = t
                .subscribe(&uri, &uri, &ev, 60, &mut rng, Instant::now())
                .ok();
        }
        last.unwrap()
    }
}
