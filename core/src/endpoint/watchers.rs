//! Who may see a local user's presence: the presence authorizations of
//! remote XMPP users (RFC 8048's "presence authorization", RFC 6121's
//! subscription "from"), approved or pending, bounded and persisted.

use std::collections::HashMap;

use crate::capacity::release_sparse;
use crate::store::{Persist, StoredAuthorization};

/// Why an authorization could not be kept: a bound (`sip.max_watchers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The authorizations of every local user.
#[derive(Debug, Default)]
pub struct Watchers {
    /// `sip.max_watchers`: per local user (approved and pending), and
    /// pending per remote domain.
    max: usize,
    /// Local user → watcher's bare JID → approved.
    by_user: HashMap<String, HashMap<String, bool>>,
    /// Remote domain → pending authorizations asked from it.
    pending_per_domain: HashMap<String, usize>,
}

fn domain_of(jid: &str) -> String {
    jid.rsplit_once('@')
        .map_or(jid, |(_, d)| d)
        .to_ascii_lowercase()
}

fn record(user: &str, watcher: &str, approved: bool, since: u64) -> Persist {
    Persist::PutAuthorization(StoredAuthorization {
        local_user: user.to_owned(),
        remote_jid: watcher.to_owned(),
        approved,
        since,
    })
}

impl Watchers {
    /// None yet; at most `max` per user and pending per domain.
    pub fn new(max: usize) -> Watchers {
        Watchers {
            max,
            ..Watchers::default()
        }
    }

    /// A new bound (a reload); authorizations already beyond it stay.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Loads what the store kept; those beyond the bounds are deleted.
    pub fn restore(&mut self, stored: Vec<StoredAuthorization>) -> Vec<Persist> {
        let mut changes = Vec::new();
        for a in stored {
            let kept = if a.approved {
                self.approve(&a.local_user, &a.remote_jid, a.since)
                    .map(|_| ())
            } else {
                self.pend(&a.local_user, &a.remote_jid, a.since).map(|_| ())
            };
            if kept.is_err() {
                changes.push(Persist::DeleteAuthorization {
                    local_user: a.local_user,
                    remote_jid: a.remote_jid,
                });
            }
        }
        changes
    }

    /// `Some(true)` approved, `Some(false)` pending, `None` neither.
    pub fn state(&self, user: &str, watcher: &str) -> Option<bool> {
        self.by_user.get(user)?.get(watcher).copied()
    }

    /// `user`'s watchers and whether each is approved, sorted.
    pub fn of_user(&self, user: &str) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self
            .by_user
            .get(user)
            .into_iter()
            .flatten()
            .map(|(w, a)| (w.clone(), *a))
            .collect();
        v.sort();
        v
    }

    /// Authorizations held, approved and pending.
    pub fn len(&self) -> usize {
        self.by_user.values().map(HashMap::len).sum()
    }

    /// The approved watchers of `user`, sorted (so that what they are sent
    /// goes out in a stable order).
    pub fn approved(&self, user: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter(|(_, approved)| **approved)
            .map(|(w, _)| w.clone())
            .collect();
        v.sort();
        v
    }

    /// Every approved (local user, watcher) pair.
    pub fn all_approved(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .by_user
            .iter()
            .flat_map(|(u, ws)| {
                ws.iter()
                    .filter(|(_, approved)| **approved)
                    .map(move |(w, _)| (u.clone(), w.clone()))
            })
            .collect();
        v.sort();
        v
    }

    fn room_for_user(&self, user: &str) -> bool {
        self.by_user.get(user).map_or(0, HashMap::len) < self.max
    }

    /// Approves `watcher` for `user` (a pending one becomes approved);
    /// the record to persist, or [`Full`] when a new one is beyond the
    /// user's bound.
    pub fn approve(&mut self, user: &str, watcher: &str, now: u64) -> Result<Persist, Full> {
        match self.state(user, watcher) {
            Some(true) => {}
            Some(false) => self.unpend(watcher),
            None if self.room_for_user(user) => {}
            None => return Err(Full),
        }
        self.by_user
            .entry(user.to_owned())
            .or_default()
            .insert(watcher.to_owned(), true);
        Ok(record(user, watcher, true, now))
    }

    /// Records a pending request; [`Full`] beyond the user's bound or the
    /// watcher's domain's bound of pending ones. Pending or approved
    /// already: nothing to persist.
    pub fn pend(&mut self, user: &str, watcher: &str, now: u64) -> Result<Option<Persist>, Full> {
        if self.state(user, watcher).is_some() {
            return Ok(None);
        }
        let domain = domain_of(watcher);
        let pending = self.pending_per_domain.get(&domain).copied().unwrap_or(0);
        if !self.room_for_user(user) || pending >= self.max {
            return Err(Full);
        }
        self.pending_per_domain.insert(domain, pending + 1);
        self.by_user
            .entry(user.to_owned())
            .or_default()
            .insert(watcher.to_owned(), false);
        Ok(Some(record(user, watcher, false, now)))
    }

    fn unpend(&mut self, watcher: &str) {
        let domain = domain_of(watcher);
        if let Some(n) = self.pending_per_domain.get_mut(&domain) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_per_domain.remove(&domain);
                release_sparse(&mut self.pending_per_domain);
            }
        }
    }

    /// Takes what the shared store holds of `user`'s authorizations
    /// (another instance changed them): the store's rows replace what was
    /// known, as far as the bounds allow. No record: they are stored.
    pub fn merge_stored(&mut self, user: &str, rows: Vec<StoredAuthorization>) {
        for (watcher, _) in self.of_user(user) {
            self.remove(user, &watcher);
        }
        for a in rows.into_iter().filter(|a| a.local_user == user) {
            // Beyond a bound here, the instance that approved it serves it.
            let _ = if a.approved {
                self.approve(user, &a.remote_jid, a.since).map(|_| ())
            } else {
                self.pend(user, &a.remote_jid, a.since).map(|_| ())
            };
        }
    }

    /// [`Watchers::merge_stored`] for every user: `rows` is all the store
    /// holds.
    pub fn merge_all_stored(&mut self, rows: Vec<StoredAuthorization>) {
        let mut by_user: HashMap<String, Vec<StoredAuthorization>> = self
            .by_user
            .keys()
            .map(|u| (u.clone(), Vec::new()))
            .collect();
        for a in rows {
            by_user.entry(a.local_user.clone()).or_default().push(a);
        }
        for (user, rows) in by_user {
            self.merge_stored(&user, rows);
        }
    }

    /// Removes the authorization; whether it was approved, and the record.
    pub fn remove(&mut self, user: &str, watcher: &str) -> Option<(bool, Persist)> {
        let mine = self.by_user.get_mut(user)?;
        let approved = mine.remove(watcher)?;
        release_sparse(mine);
        if mine.is_empty() {
            self.by_user.remove(user);
            release_sparse(&mut self.by_user);
        }
        if !approved {
            self.unpend(watcher);
        }
        let change = Persist::DeleteAuthorization {
            local_user: user.to_owned(),
            remote_jid: watcher.to_owned(),
        };
        Some((approved, change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_per_user_and_pending_per_domain() {
        let mut w = Watchers::new(2);
        assert!(w.approve("a@x", "r1@f", 1).is_ok());
        assert!(w.pend("a@x", "r2@u", 1).unwrap().is_some());
        assert_eq!(w.pend("a@x", "r2@u", 2), Ok(None), "already pending");
        assert_eq!(w.approve("a@x", "r3@f", 1), Err(Full), "user bound");
        assert!(w.pend("b@x", "r3@u", 1).unwrap().is_some());
        assert_eq!(w.pend("c@x", "r4@u", 1), Err(Full), "domain bound");
        // Approving a pending one frees its domain's place.
        assert!(w.approve("a@x", "r2@u", 3).is_ok());
        assert!(w.pend("c@x", "r4@u", 1).is_ok());
        assert_eq!(w.approved("a@x"), ["r1@f", "r2@u"]);
        assert_eq!(w.remove("a@x", "r1@f").map(|(a, _)| a), Some(true));
        assert_eq!(w.remove("a@x", "r1@f"), None);
        assert_eq!(w.len(), 3);
        let mut again = Watchers::new(1);
        let dropped = again.restore(vec![
            StoredAuthorization {
                local_user: "a@x".into(),
                remote_jid: "r@f".into(),
                approved: true,
                since: 1,
            },
            StoredAuthorization {
                local_user: "a@x".into(),
                remote_jid: "s@f".into(),
                approved: false,
                since: 1,
            },
        ]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(again.state("a@x", "r@f"), Some(true));
    }

    #[test]
    fn the_shared_store_says_who_watches() {
        let row = |w: &str, approved| StoredAuthorization {
            local_user: "a@x".into(),
            remote_jid: w.into(),
            approved,
            since: 1,
        };
        let mut w = Watchers::new(2);
        assert!(w.approve("a@x", "r1@f", 1).is_ok());
        // Another instance approved r2 and revoked r1.
        w.merge_stored("a@x", vec![row("r2@f", true), row("p@u", false)]);
        assert_eq!(w.approved("a@x"), ["r2@f"]);
        assert_eq!(w.state("a@x", "p@u"), Some(false));
        // Beyond the bound here: kept by the instance that holds it.
        w.merge_stored(
            "a@x",
            vec![row("r2@f", true), row("r3@f", true), row("r4@f", true)],
        );
        assert_eq!(w.len(), 2);
        // The pending count of u went with p@u: u may ask again.
        assert!(w.pend("b@x", "q@u", 1).is_ok());
        w.merge_all_stored(Vec::new());
        assert_eq!(w.len(), 0);
    }
}
