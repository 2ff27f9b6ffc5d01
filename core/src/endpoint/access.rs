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

/// The access decisions of the gateway role.
#[derive(Debug)]
pub struct Access {
    rules: Vec<AccessRule>,
    partner_types: HashMap<String, PartnerType>,
    /// (local user, remote bare JID) → last time the local user wrote.
    contacted: HashMap<(String, String), u64>,
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

    /// Loads what the store remembers.
    pub fn restore(&mut self, contacts: Vec<Contacted>) {
        for c in contacts {
            self.contacted
                .insert((c.local_user, c.remote_jid), c.last_at);
        }
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
    pub fn may_reach(&self, remote: &str, local_user: &str) -> bool {
        let domain = remote.rsplit_once('@').map_or(remote, |(_, d)| d);
        match self.partner_type(domain) {
            PartnerType::Federated | PartnerType::PublicVerified => true,
            PartnerType::PublicUnverified => self
                .contacted
                .contains_key(&(local_user.to_owned(), remote.to_owned())),
        }
    }

    /// Notes that `local_user` wrote to `remote`; returns the store change
    /// when one is due.
    pub fn remember(&mut self, local_user: &str, remote: &str, now_unix: u64) -> Option<Persist> {
        let key = (local_user.to_owned(), remote.to_owned());
        let last = self.contacted.get(&key).copied();
        if last.is_some_and(|t| now_unix.saturating_sub(t) < REMEMBER_REFRESH_SECS) {
            return None;
        }
        self.contacted.insert(key, now_unix);
        Some(Persist::RememberContact {
            local_user: local_user.to_owned(),
            remote_jid: remote.to_owned(),
            at_unix: now_unix,
        })
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
    use super::glob;

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
