//! What local SIP users watch (registrar mode): per local user and XMPP
//! contact, the notification dialogs of the user's devices, whether the
//! contact authorized the user (`subscribed`), and the contact's latest
//! availability presence per resource, which every NOTIFY of those
//! dialogs reports as one PIDF document. Bounded by the dialogs
//! (`sip.max_subscriptions`): a pair lives while it has one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::capacity::release_sparse;
use crate::ids::ConnId;
use crate::sip::{SubId, TxId};
use crate::translate::presence::{
    presentity_from_xmpp, Availability, Presentity, ResourcePresence,
};
use crate::xml::Element;

/// Resources of one contact remembered at most (as many tuples as a PIDF
/// body from SIP may hold).
pub const MAX_RESOURCES: usize = 32;

/// A local user and an XMPP contact (bare JIDs), in one allocation
/// shared by the key of what the pair knows and each dialog of the pair
/// (100,000 dialogs are what a large gateway holds).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pair {
    /// The user, then the contact.
    text: Arc<str>,
    /// Where the user ends.
    split: u32,
}

impl Pair {
    /// `user` watching `contact`; parts longer than 4 GiB are cut (no
    /// JID is).
    pub fn new(user: &str, contact: &str) -> Pair {
        let mut text = String::with_capacity(user.len() + contact.len());
        text.push_str(user);
        let split = u32::try_from(text.len()).unwrap_or(u32::MAX);
        text.push_str(contact);
        Pair {
            text: Arc::from(text),
            split,
        }
    }

    fn split(&self) -> usize {
        usize::try_from(self.split).map_or(self.text.len(), |s| s.min(self.text.len()))
    }

    /// The local user.
    pub fn user(&self) -> &str {
        self.text.get(..self.split()).unwrap_or("")
    }

    /// The XMPP contact.
    pub fn contact(&self) -> &str {
        self.text.get(self.split()..).unwrap_or("")
    }
}

/// What is known of one contact watched by one local user.
#[derive(Debug, Default)]
pub struct Watched {
    /// The dialogs of the user's devices watching the contact (a boxed
    /// slice: usually one, and no spare capacity).
    subs: Box<[SubId]>,
    /// The contact said `subscribed`.
    pub authorized: bool,
    /// A `subscribe` went to the contact (not for a one-shot fetch): the
    /// contact hears `unavailable` when the last dialog ends.
    pub announced: bool,
    /// When the contact was last asked for its presence (`subscribe` or
    /// `probe`): asked again on a refresh after
    /// `gateway.subscription_refresh_interval`.
    pub asked_at: Option<Instant>,
    /// The latest availability per resource (`None` for the bare JID), in
    /// arrival order, as the translation reads it (a stanza's element
    /// tree took five times the room).
    resources: Box<[ResourcePresence]>,
}

impl Watched {
    /// The dialogs watching the contact.
    pub fn subs(&self) -> &[SubId] {
        &self.subs
    }

    /// Records an availability stanza (no type, or `unavailable`) of the
    /// contact: it replaces the resource's last one. An unavailable
    /// resource is forgotten while another is known; an unavailable bare
    /// JID, or the last resource, stays as the only one (the contact is
    /// offline). A stanza that is not availability is ignored.
    pub fn set_presence(&mut self, p: &Element) {
        let Ok((_, presentity)) = presentity_from_xmpp([p]) else {
            return;
        };
        let Some(new) = presentity.resources().first().cloned() else {
            return;
        };
        let available =
            |r: &ResourcePresence| matches!(r.availability(), Availability::Available { .. });
        let mut v = std::mem::take(&mut self.resources).into_vec();
        v.retain(|r| r.resource() != new.resource());
        if !available(&new) {
            let others = v.iter().any(available);
            if others && new.resource().is_some() {
                self.resources = v.into_boxed_slice();
                return;
            }
            v.clear();
        } else {
            v.retain(available);
        }
        if v.len() >= MAX_RESOURCES {
            v.remove(0);
        }
        v.push(new);
        self.resources = v.into_boxed_slice();
    }

    /// Whether any presence of the contact came.
    pub fn has_presence(&self) -> bool {
        !self.resources.is_empty()
    }

    /// The contact's current state, one entry per resource; `None` when
    /// nothing came yet.
    pub fn presentity(&self) -> Option<Presentity> {
        if self.resources.is_empty() {
            return None;
        }
        let mut p = Presentity::default();
        for r in self.resources.iter() {
            p.push(r.clone());
        }
        Some(p)
    }
}

/// One dialog: its pair, the connection its SUBSCRIBE came over, and
/// whether it is a one-shot fetch (`Expires: 0`), whose only NOTIFY
/// carries the contact's state rather than the closed one of an end.
#[derive(Debug)]
struct Dialog {
    pair: Pair,
    flow: Option<ConnId>,
    fetch: bool,
}

/// Every pair watched, by pair and by dialog, and the NOTIFYs in flight.
#[derive(Debug, Default)]
pub struct Watching {
    pairs: HashMap<Pair, Watched>,
    dialogs: HashMap<SubId, Dialog>,
    notifies: HashMap<TxId, SubId>,
}

impl Watching {
    /// Adds dialog `sub` of `user` watching `contact`, whose SUBSCRIBE
    /// came over `flow`; `announced` when a `subscribe` goes to the
    /// contact, else it is a fetch.
    pub fn add(
        &mut self,
        user: &str,
        contact: &str,
        sub: SubId,
        flow: Option<ConnId>,
        announced: bool,
    ) {
        let pair = Pair::new(user, contact);
        let w = self.pairs.entry(pair.clone()).or_default();
        let mut subs = std::mem::take(&mut w.subs).into_vec();
        subs.push(sub);
        w.subs = subs.into_boxed_slice();
        w.announced |= announced;
        let fetch = !announced;
        self.dialogs.insert(sub, Dialog { pair, flow, fetch });
    }

    /// What `user` knows of `contact`.
    pub fn get(&self, user: &str, contact: &str) -> Option<&Watched> {
        self.pairs.get(&Pair::new(user, contact))
    }

    /// The same, to change.
    pub fn get_mut(&mut self, user: &str, contact: &str) -> Option<&mut Watched> {
        self.pairs.get_mut(&Pair::new(user, contact))
    }

    /// The XMPP contacts `user` watches, with what is known of each, sorted.
    pub fn of_user(&self, user: &str) -> Vec<(&str, &Watched)> {
        let mut v: Vec<(&str, &Watched)> = self
            .pairs
            .iter()
            .filter(|(p, _)| p.user() == user)
            .map(|(p, w)| (p.contact(), w))
            .collect();
        v.sort_by_key(|(c, _)| *c);
        v
    }

    /// The pair of a dialog and the connection its SUBSCRIBE came over.
    pub fn dialog(&self, sub: SubId) -> Option<(&Pair, Option<ConnId>)> {
        self.dialogs.get(&sub).map(|d| (&d.pair, d.flow))
    }

    /// Whether a dialog is a one-shot fetch.
    pub fn is_fetch(&self, sub: SubId) -> bool {
        self.dialogs.get(&sub).is_some_and(|d| d.fetch)
    }

    /// What the pair of a dialog knows.
    pub fn of_dialog(&self, sub: SubId) -> Option<&Watched> {
        self.pairs.get(&self.dialogs.get(&sub)?.pair)
    }

    /// Forgets a dialog that ended: its pair, and what the pair knew when
    /// it was the last one.
    pub fn remove(&mut self, sub: SubId) -> Option<(Pair, Option<Watched>)> {
        let d = self.dialogs.remove(&sub)?;
        let w = self.pairs.get_mut(&d.pair)?;
        let mut subs = std::mem::take(&mut w.subs).into_vec();
        subs.retain(|s| *s != sub);
        w.subs = subs.into_boxed_slice();
        let last = if w.subs.is_empty() {
            self.pairs.remove(&d.pair)
        } else {
            None
        };
        release_sparse(&mut self.pairs);
        release_sparse(&mut self.dialogs);
        Some((d.pair, last))
    }

    /// A NOTIFY of `sub` went out as client transaction `tx`.
    pub fn notify_sent(&mut self, tx: TxId, sub: SubId) {
        self.notifies.insert(tx, sub);
    }

    /// The dialog a client transaction's NOTIFY belongs to, forgotten.
    pub fn notify_answered(&mut self, tx: TxId) -> Option<SubId> {
        let sub = self.notifies.remove(&tx);
        release_sparse(&mut self.notifies);
        sub
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_element;

    fn p(from: &str, ty: Option<&str>) -> Element {
        let ty = ty.map_or(String::new(), |t| format!(" type='{t}'"));
        parse_element(&format!(
            "<presence xmlns='jabber:server' from='{from}' to='a@x'{ty}><status>s</status><x xmlns='y'/></presence>"
        ))
        .expect("stanza")
    }

    /// Each resource remembered and whether it is available.
    fn resources(w: &Watched) -> Vec<(Option<String>, bool)> {
        w.presentity()
            .map(|p| {
                p.resources()
                    .iter()
                    .map(|r| {
                        let available = matches!(r.availability(), Availability::Available { .. });
                        (r.resource().map(str::to_owned), available)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn latest_per_resource() {
        let mut w = Watched::default();
        assert!(w.presentity().is_none());
        w.set_presence(&p("b@r/1", None));
        w.set_presence(&p("b@r/2", None));
        w.set_presence(&p("b@r/1", None));
        assert_eq!(resources(&w).len(), 2);
        let kept = w.presentity().expect("known");
        assert!(kept.resources().iter().all(|r| r.notes().len() == 1));
        w.set_presence(&p("b@r/1", Some("unavailable")));
        assert_eq!(resources(&w), [(Some("2".into()), true)]);
        w.set_presence(&p("b@r/2", Some("unavailable")));
        assert_eq!(resources(&w), [(Some("2".into()), false)]);
        w.set_presence(&p("b@r/3", None));
        assert_eq!(resources(&w), [(Some("3".into()), true)]);
        for i in 0..40 {
            w.set_presence(&p(&format!("b@r/{i}"), None));
        }
        assert_eq!(resources(&w).len(), MAX_RESOURCES);
        // Not availability: ignored.
        w.set_presence(&p("b@r/x", Some("subscribe")));
        assert_eq!(resources(&w).len(), MAX_RESOURCES);
    }

    #[test]
    fn pairs_pack_both_addresses() {
        let pair = Pair::new("alice@x.test", "bob@r.test");
        assert_eq!(
            (pair.user(), pair.contact()),
            ("alice@x.test", "bob@r.test")
        );
        assert_ne!(pair, Pair::new("alice@x.tes", "tbob@r.test"));
    }
}
