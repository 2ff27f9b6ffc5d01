//! The operator's view of a local user's contacts, and their removal
//! (`xfed contact list|remove`, Lync's revoking a contact from the
//! server side): what the admin socket asks of the SIP side.

use super::*;
use crate::admin::{Reply, Request as AdminRequest};

impl Endpoint {
    /// Answers an operator's request.
    pub fn admin(&mut self, request: &AdminRequest, t: &mut Turn<'_>) -> Reply {
        match request {
            AdminRequest::ContactList { user } => Reply::ok(self.contact_lines(user.as_str())),
            AdminRequest::ContactRemove { user, remote } => self.remove_contact(user, remote, t),
            // The gateway answers it before the SIP side is asked.
            AdminRequest::Status | AdminRequest::Reload => {
                Reply::error("status and reload are answered by the host and the gateway")
            }
        }
    }

    /// One line per relation: `watcher REMOTE approved|pending` (they may
    /// see the user), `watching REMOTE authorized|asked dialogs=N` (the
    /// user's devices watch them), `contacted REMOTE at=UNIX` (the user
    /// wrote to them).
    fn contact_lines(&self, user: &str) -> Vec<String> {
        let watchers = self.watchers.of_user(user).into_iter().map(|(w, ok)| {
            let state = if ok { "approved" } else { "pending" };
            format!("watcher {w} {state}")
        });
        let watching = self.watching.of_user(user).into_iter().map(|(c, w)| {
            let state = if w.authorized { "authorized" } else { "asked" };
            format!("watching {c} {state} dialogs={}", w.subs().len())
        });
        let contacted = self
            .access
            .of_user(user)
            .into_iter()
            .map(|(r, at)| format!("contacted {r} at={at}"));
        watchers.chain(watching).chain(contacted).collect()
    }

    /// Removes everything between `user` and `remote`, as removing a
    /// roster item does (RFC 6121 section 2.5.2): the remote's
    /// authorization goes and they hear `unsubscribed` (after
    /// `unavailable` if they saw the user available); the user's dialogs
    /// watching them end with `terminated;reason=rejected` and they hear
    /// `unsubscribe`; the remembered contact is forgotten, so a
    /// `public-unverified` partner's user needs a new invitation.
    fn remove_contact(&mut self, user: &Jid, remote: &Jid, t: &mut Turn<'_>) -> Reply {
        let mut removed = Vec::new();
        if self.drop_authorization(remote, user, t) {
            removed.push("authorization");
        }
        let dialogs = self
            .watching
            .get(user.as_str(), remote.as_str())
            .map(|w| w.subs().to_vec());
        if let Some(subs) = dialogs {
            for s in subs {
                self.subs.terminate(s, sip::Reason::Rejected, None, t.now);
            }
            self.drain_subs(t);
            self.send_type(user, remote, "unsubscribe");
            removed.push("subscription");
        }
        if let Some(change) = self.access.forget(user.as_str(), remote.as_str()) {
            self.persist(vec![change]);
            removed.push("contact");
        }
        if removed.is_empty() {
            return Reply::error(format!("{user} has no contact {remote}"));
        }
        let what = removed.join(", ");
        self.event(Event::ContactRemoved {
            local_user: user.to_string(),
            remote: remote.to_string(),
            what: what.clone(),
        });
        Reply::ok(vec![format!("removed {what}")])
    }
}
