//! Who may talk to whom: `[[access]]` rules (Lync's EnableXmppAccess) and
//! the partner-type rule that a `public-unverified` partner's user reaches
//! a local user only after that user contacted them first.

use std::collections::HashMap;

use crate::config::{AccessRule, Config, PartnerType};
use crate::store::{Contacted, Persist};

/// A remembered contact is written again only when the stored one is older
/// than this, so a conversation costs one store write per day, not one per
/// message.
const REMEMBER_REFRESH_SECS: u64 = 86_400;

/// A contact the local user has not written to for this long no longer
/// lets a `public-unverified` partner in (90 days), and is forgotten.
pub const CONTACT_LIFETIME_SECS: u64 = 90 * 86_400;

/// Contacts remembered per local user at most; beyond, the one written
/// to longest ago is forgotten.
pub const CONTACTS_PER_USER: usize = 1_000;

/// The access decisions of the gateway role.
#[derive(Debug)]
pub struct Access {
    rules: Vec<AccessRule>,
    partner_types: HashMap<String, PartnerType>,
    /// Local user → remote bare JID → last time the local user's message
    /// reached it.
    contacted: HashMap<String, HashMap<String, u64>>,
}

impl Access {
    /// The rules of `config`.
    pub fn new(config: &Config) -> Access {
        let mut partner_types = HashMap::new();
        for p in &config.partners {
            for d in p.domains() {
                partner_types.insert(d.to_ascii_lowercase(), p.partner_type);
            }
        }
        Access {
            rules: config.access.clone(),
            partner_types,
            contacted: HashMap::new(),
        }
    }

    /// Takes the rules and partner types of a reloaded `config`; the
    /// remembered contacts stay.
    pub fn reconfigure(&mut self, config: &Config) {
        let Access {
            rules,
            partner_types,
            ..
        } = Access::new(config);
        self.rules = rules;
        self.partner_types = partner_types;
    }

    /// Loads what the store remembers; returns the forgetting of what
    /// expired meanwhile or is over `CONTACTS_PER_USER`.
    pub fn restore(&mut self, contacts: Vec<Contacted>, now_unix: u64) -> Vec<Persist> {
        let mut changes = Vec::new();
        for c in contacts {
            if now_unix.saturating_sub(c.last_at) >= CONTACT_LIFETIME_SECS {
                changes.push(Persist::ForgetContact {
                    local_user: c.local_user,
                    remote_jid: c.remote_jid,
                });
                continue;
            }
            changes.extend(self.insert(c.local_user, c.remote_jid, c.last_at));
        }
        changes
    }

    /// Records a contact, evicting the user's oldest beyond the bound.
    fn insert(&mut self, local: String, remote: String, at: u64) -> Option<Persist> {
        let mine = self.contacted.entry(local.clone()).or_default();
        mine.insert(remote, at);
        if mine.len() <= CONTACTS_PER_USER {
            return None;
        }
        let oldest = mine
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(r, _)| r.clone())?;
        mine.remove(&oldest);
        Some(Persist::ForgetContact {
            local_user: local,
            remote_jid: oldest,
        })
    }

    /// Takes what the shared store remembers of `local_user`'s contacts
    /// (another instance wrote them): the store's rows replace what was
    /// known, those expired at `now_unix` left out, within the bound. No
    /// record: they are stored.
    pub fn merge_stored(&mut self, local_user: &str, rows: Vec<Contacted>, now_unix: u64) {
        self.contacted.remove(local_user);
        for c in rows.into_iter().filter(|c| c.local_user == local_user) {
            if now_unix.saturating_sub(c.last_at) < CONTACT_LIFETIME_SECS {
                // The bound's eviction is the writer's to store.
                let _ = self.insert(c.local_user, c.remote_jid, c.last_at);
            }
        }
    }

    /// [`Access::merge_stored`] for every user: `rows` is all the store
    /// remembers.
    pub fn merge_all_stored(&mut self, rows: Vec<Contacted>, now_unix: u64) {
        let mut by_user: HashMap<String, Vec<Contacted>> = self
            .contacted
            .keys()
            .map(|u| (u.clone(), Vec::new()))
            .collect();
        for c in rows {
            by_user.entry(c.local_user.clone()).or_default().push(c);
        }
        for (user, rows) in by_user {
            self.merge_stored(&user, rows, now_unix);
        }
    }

    /// The contacts `local_user` wrote to, with the last time, sorted.
    pub fn of_user(&self, local_user: &str) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .contacted
            .get(local_user)
            .into_iter()
            .flatten()
            .map(|(r, t)| (r.clone(), *t))
            .collect();
        v.sort();
        v
    }

    /// Forgets a contact (the operator removed it); the record to delete.
    pub fn forget(&mut self, local_user: &str, remote: &str) -> Option<Persist> {
        let mine = self.contacted.get_mut(local_user)?;
        mine.remove(remote)?;
        if mine.is_empty() {
            self.contacted.remove(local_user);
        }
        Some(Persist::ForgetContact {
            local_user: local_user.to_owned(),
            remote_jid: remote.to_owned(),
        })
    }

    /// Contacts remembered, over all users.
    pub fn contacts(&self) -> usize {
        self.contacted.values().map(HashMap::len).sum()
    }

    /// Whether local user `user@domain` may use XMPP. With no `[[access]]`
    /// rule at all everybody may (a gateway is deployed to be used); with
    /// rules, the first match decides and no match means no access.
    pub fn xmpp_allowed(&self, local_user: &str) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules
            .iter()
            .find(|r| r.users.iter().any(|g| glob(g, local_user)))
            .is_some_and(|r| r.xmpp)
    }

    /// The partner type of a remote domain: unknown domains admitted by
    /// open federation are `public-unverified`.
    pub fn partner_type(&self, domain: &str) -> PartnerType {
        self.partner_types
            .get(&domain.to_ascii_lowercase())
            .copied()
            .unwrap_or(PartnerType::PublicUnverified)
    }

    /// Whether `remote` (a bare JID) may message `local_user` without an
    /// invitation: always for `federated` and `public-verified` partners,
    /// only after the local user wrote to them for `public-unverified`.
    pub fn may_reach(&self, remote: &str, local_user: &str, now_unix: u64) -> bool {
        let domain = remote.rsplit_once('@').map_or(remote, |(_, d)| d);
        match self.partner_type(domain) {
            PartnerType::Federated | PartnerType::PublicVerified => true,
            PartnerType::PublicUnverified => self
                .contacted
                .get(local_user)
                .and_then(|m| m.get(remote))
                .is_some_and(|&t| now_unix.saturating_sub(t) < CONTACT_LIFETIME_SECS),
        }
    }

    /// Notes that a message of `local_user` reached `remote` (it was on an
    /// authenticated stream: recipients that do not exist on a domain that
    /// does not answer are never remembered); returns the store changes
    /// due.
    pub fn remember(&mut self, local_user: &str, remote: &str, now_unix: u64) -> Vec<Persist> {
        let last = self
            .contacted
            .get(local_user)
            .and_then(|m| m.get(remote))
            .copied();
        if last.is_some_and(|t| now_unix.saturating_sub(t) < REMEMBER_REFRESH_SECS) {
            return Vec::new();
        }
        let evicted = self.insert(local_user.to_owned(), remote.to_owned(), now_unix);
        let mut changes = vec![Persist::RememberContact {
            local_user: local_user.to_owned(),
            remote_jid: remote.to_owned(),
            at_unix: now_unix,
        }];
        changes.extend(evicted);
        changes
    }
}

/// `*` (any run) and `?` (one character), ASCII case-insensitive.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn unverified() -> Access {
        let config =
            crate::config::parse("[gateway]\ndomains = [\"x.test\"]\nfederation = \"open\"\n")
                .expect("config")
                .config;
        Access::new(&config)
    }

    #[test]
    fn the_shared_store_says_who_was_contacted() {
        let mut a = unverified();
        let row = |remote: &str, at| Contacted {
            local_user: "alice@x.test".into(),
            remote_jid: remote.into(),
            first_at: at,
            last_at: at,
        };
        assert!(!a.may_reach("bob@far.test", "alice@x.test", 100));
        // alice wrote to bob through another instance.
        a.merge_stored("alice@x.test", vec![row("bob@far.test", 50)], 100);
        assert!(a.may_reach("bob@far.test", "alice@x.test", 100));
        // Forgotten there (the operator removed him): forgotten here; an
        // expired row lets nobody in.
        a.merge_stored(
            "alice@x.test",
            vec![row("old@far.test", 1)],
            1 + CONTACT_LIFETIME_SECS,
        );
        assert!(!a.may_reach("bob@far.test", "alice@x.test", 100));
        assert_eq!(a.contacts(), 0);
        a.merge_all_stored(vec![row("bob@far.test", 50)], 100);
        assert!(a.may_reach("bob@far.test", "alice@x.test", 100));
        a.merge_all_stored(Vec::new(), 100);
        assert_eq!(a.contacts(), 0);
    }

    #[test]
    fn contacts_expire_and_are_bounded_per_user() {
        let mut a = unverified();
        assert!(!a.may_reach("bob@open.test", "alice@x.test", T0));
        assert_eq!(a.remember("alice@x.test", "bob@open.test", T0).len(), 1);
        assert!(a.may_reach("bob@open.test", "alice@x.test", T0 + 1));
        assert!(!a.may_reach("bob@open.test", "alice@x.test", T0 + CONTACT_LIFETIME_SECS));
        for i in 0..CONTACTS_PER_USER + 10 {
            a.remember(
                "alice@x.test",
                &format!("u{i}@open.test"),
                T0 + 1 + i as u64,
            );
        }
        assert_eq!(a.contacts(), CONTACTS_PER_USER);
        // The oldest went first.
        assert!(!a.may_reach("bob@open.test", "alice@x.test", T0 + 2_000));
        // Expired ones are forgotten at restore.
        let mut b = unverified();
        let stored = |remote: &str, at: u64| Contacted {
            local_user: "alice@x.test".into(),
            remote_jid: remote.into(),
            first_at: at,
            last_at: at,
        };
        let forgotten = b.restore(
            vec![
                stored("old@open.test", T0),
                stored("new@open.test", T0 + CONTACT_LIFETIME_SECS),
            ],
            T0 + CONTACT_LIFETIME_SECS + 1,
        );
        assert_eq!(forgotten.len(), 1);
        assert_eq!(b.contacts(), 1);
    }

    #[test]
    fn globs() {
        assert!(glob("*@example.com", "alice@Example.COM"));
        assert!(glob("a?ice@*", "alice@x"));
        assert!(!glob("*@example.com", "alice@example.org"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "ac"));
        assert!(glob("a*b*c", "aXbYbZc"));
    }
}
