//! What a reload may change, and what it did change: the running
//! configuration against the one read again (SIGHUP, `xfed reload`, the
//! edit commands). Pure, so that the decision and the operator's summary
//! are tested without a process.
//!
//! Refused, because they are an instance's identity rather than its
//! policy: the local domains (every binding, contact and dialback key is
//! keyed by them), the store, the SIP mode, and the role with its
//! component link. Everything else applies:
//! partners, blocks, access rules, limits, accounts, certificates,
//! listeners.

use super::{Config, Partner};

/// The differences between two configurations, one line each, for the
/// log and the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// What changed, in the order of the file's sections.
    pub lines: Vec<String>,
    /// Whether any `[listen]` address changed (listeners to rebind).
    pub listeners: bool,
}

impl Changes {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Compares the running configuration with the new one; `Err` names what
/// a reload cannot change (the instance must restart for it).
pub fn changes(old: &Config, new: &Config) -> Result<Changes, String> {
    if old.gateway.domains != new.gateway.domains {
        return Err(format!(
            "gateway.domains cannot change on reload (running: {}; file: {}): restart xfed",
            old.gateway.domains.join(", "),
            new.gateway.domains.join(", ")
        ));
    }
    if old.store != new.store {
        return Err("store.url cannot change on reload: restart xfed".into());
    }
    if old.sip.mode != new.sip.mode {
        return Err("sip.mode cannot change on reload: restart xfed".into());
    }
    // The bindings made here carry it: they would all seem another
    // instance's.
    if old.sip.path != new.sip.path {
        return Err("sip.path cannot change on reload: restart xfed".into());
    }
    if old.gateway.role != new.gateway.role
        || old.component != new.component
        || old.internal != new.internal
    {
        return Err("gateway.role and [component] cannot change on reload: restart xfed".into());
    }
    let mut c = Changes::default();
    partners(&old.partners, &new.partners, &mut c.lines);
    if old.blocks != new.blocks {
        c.lines
            .push(format!("[[block]]: {} rule(s)", new.blocks.len()));
    }
    if old.access != new.access {
        c.lines
            .push(format!("[[access]]: {} rule(s)", new.access.len()));
    }
    let mut gateway = old.gateway.clone();
    gateway.domains.clone_from(&new.gateway.domains);
    if gateway != new.gateway {
        c.lines.push("[gateway] settings changed".into());
    }
    if old.tls != new.tls {
        c.lines.push("[tls] files changed".into());
    }
    if old.sip.accounts != new.sip.accounts {
        c.lines.push(format!(
            "[[sip.account]]: {} account(s)",
            new.sip.accounts.len()
        ));
    }
    let (mut sip_old, mut sip_new) = (old.sip.clone(), new.sip.clone());
    sip_old.accounts.clear();
    sip_new.accounts.clear();
    if sip_old != sip_new {
        c.lines.push("[sip] settings changed".into());
    }
    if old.listen != new.listen {
        c.listeners = true;
        c.lines.push("[listen] addresses changed".into());
    }
    Ok(c)
}

/// Partners added, removed or changed, by primary domain.
fn partners(old: &[Partner], new: &[Partner], lines: &mut Vec<String>) {
    let find = |list: &'_ [Partner], domain: &str| list.iter().position(|p| p.domain == domain);
    for p in new {
        match find(old, &p.domain).map(|i| &old[i]) {
            None => lines.push(format!("partner {} added", p.domain)),
            Some(o) if o != p => lines.push(format!("partner {} changed", p.domain)),
            Some(_) => {}
        }
    }
    for p in old {
        if find(new, &p.domain).is_none() {
            lines.push(format!("partner {} removed", p.domain));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[gateway]\ndomains = [\"example.com\"]\n[tls]\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n{extra}"
        );
        match super::super::parse(&text) {
            Ok(l) => l.config,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let c = config("[[partner]]\ndomain = \"a.example\"\n");
        assert_eq!(changes(&c, &c), Ok(Changes::default()));
    }

    #[test]
    fn partners_added_changed_and_removed_are_named() {
        let old =
            config("[[partner]]\ndomain = \"a.example\"\n[[partner]]\ndomain = \"b.example\"\n");
        let new = config(
            "[[partner]]\ndomain = \"a.example\"\ntype = \"federated\"\n[[partner]]\ndomain = \"c.example\"\n",
        );
        let c = changes(&old, &new).unwrap();
        assert_eq!(
            c.lines,
            [
                "partner a.example changed",
                "partner c.example added",
                "partner b.example removed"
            ]
        );
        assert!(!c.listeners);
    }

    #[test]
    fn identity_changes_are_refused_with_the_key() {
        let old = config("");
        let mut new = old.clone();
        new.gateway.domains = vec!["example.org".into()];
        assert!(changes(&old, &new).unwrap_err().contains("gateway.domains"));
        let new = config("[store]\nurl = \"sqlite://other.db\"\n");
        assert!(changes(&old, &new).unwrap_err().contains("store.url"));
    }

    #[test]
    fn limits_accounts_and_listeners_are_reported() {
        let old = config("");
        let new = {
            let mut c = old.clone();
            c.gateway.connection_limit = 7;
            c.listen.metrics = None;
            c
        };
        let c = changes(&old, &new).unwrap();
        assert_eq!(
            c.lines,
            ["[gateway] settings changed", "[listen] addresses changed"]
        );
        assert!(c.listeners);
    }
}
