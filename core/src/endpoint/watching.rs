//! What local SIP users watch (registrar mode): per local user and XMPP
//! contact, the notification dialogs of the user's devices, whether the
//! contact authorized the user (`subscribed`), and the contact's latest
//! availability presence per resource, which every NOTIFY of those
//! dialogs reports as one PIDF document. Bounded by the dialogs
//! (`sip.max_subscriptions`): a pair lives while it has one.

use std::collections::HashMap;
use std::time::Instant;

use crate::ids::ConnId;
use crate::sip::{SubId, TxId};
use crate::xml::Element;
use crate::xmpp::stanza;

/// Resources of one contact remembered at most (as many tuples as a PIDF
/// body from SIP may hold).
pub const MAX_RESOURCES: usize = 32;

/// A local user and an XMPP contact (bare JIDs).
pub type Pair = (String, String);

/// What is known of one contact watched by one local user.
#[derive(Debug, Default)]
pub struct Watched {
    /// The dialogs of the user's devices watching the contact.
    pub subs: Vec<SubId>,
    /// The contact said `subscribed`.
    pub authorized: bool,
    /// A `subscribe` went to the contact (not for a one-shot fetch): the
    /// contact hears `unavailable` when the last dialog ends.
    pub announced: bool,
    /// When the contact was last asked for its presence (`subscribe` or
    /// `probe`): asked again on a refresh after
    /// `gateway.subscription_refresh_interval`.
    pub asked_at: Option<Instant>,
    /// The latest availability stanza per resource (`""` for the bare
    /// JID), in arrival order.
    resources: Vec<(String, Element)>,
}

impl Watched {
    /// Records an availability stanza (no type, or `unavailable`) of the
    /// contact: it replaces the resource's last one. An unavailable
    /// resource is forgotten while another is known; an unavailable bare
    /// JID, or the last resource, stays as the only one (the contact is
    /// offline).
    pub fn set_presence(&mut self, p: &Element) {
        let resource = stanza::addressing(p)
            .and_then(|a| a.from.resource().map(str::to_owned))
            .unwrap_or_default();
        let unavailable = p.attr("type") == Some("unavailable");
        self.resources.retain(|(r, _)| *r != resource);
        if unavailable {
            let others = self
                .resources
                .iter()
                .any(|(_, e)| e.attr("type") != Some("unavailable"));
            if others && !resource.is_empty() {
                return;
            }
            self.resources.clear();
        } else {
            self.resources
                .retain(|(_, e)| e.attr("type") != Some("unavailable"));
        }
        if self.resources.len() >= MAX_RESOURCES {
            self.resources.remove(0);
        }
        self.resources.push((resource, kept(p)));
    }

    /// The stanzas that make the contact's current state, one per
    /// resource; empty when nothing came yet.
    pub fn presences(&self) -> impl Iterator<Item = &Element> {
        self.resources.iter().map(|(_, e)| e)
    }
}

/// What the translation reads of a presence stanza: its addressing, type,
/// language and the show, status and priority children.
fn kept(p: &Element) -> Element {
    let mut e = Element::new(p.ns().to_owned(), "presence");
    for name in ["from", "to", "type"] {
        if let Some(v) = p.attr(name) {
            e.set_attr(name, v.to_owned());
        }
    }
    if let Some(lang) = p.lang() {
        e.set_attr_ns(crate::xml::ns::XML, "lang", lang);
    }
    for c in p
        .children()
        .filter(|c| c.ns() == p.ns() && matches!(c.name(), "show" | "status" | "priority"))
    {
        e.push_child(c.clone());
    }
    e
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
        let pair = (user.to_owned(), contact.to_owned());
        let w = self.pairs.entry(pair.clone()).or_default();
        w.subs.push(sub);
        w.announced |= announced;
        let fetch = !announced;
        self.dialogs.insert(sub, Dialog { pair, flow, fetch });
    }

    /// What `user` knows of `contact`.
    pub fn get(&self, user: &str, contact: &str) -> Option<&Watched> {
        self.pairs.get(&(user.to_owned(), contact.to_owned()))
    }

    /// The same, to change.
    pub fn get_mut(&mut self, user: &str, contact: &str) -> Option<&mut Watched> {
        self.pairs.get_mut(&(user.to_owned(), contact.to_owned()))
    }

    /// The XMPP contacts `user` watches, with what is known of each, sorted.
    pub fn of_user(&self, user: &str) -> Vec<(&str, &Watched)> {
        let mut v: Vec<(&str, &Watched)> = self
            .pairs
            .iter()
            .filter(|((u, _), _)| u == user)
            .map(|((_, c), w)| (c.as_str(), w))
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
        w.subs.retain(|s| *s != sub);
        let last = if w.subs.is_empty() {
            self.pairs.remove(&d.pair)
        } else {
            None
        };
        Some((d.pair, last))
    }

    /// A NOTIFY of `sub` went out as client transaction `tx`.
    pub fn notify_sent(&mut self, tx: TxId, sub: SubId) {
        self.notifies.insert(tx, sub);
    }

    /// The dialog a client transaction's NOTIFY belongs to, forgotten.
    pub fn notify_answered(&mut self, tx: TxId) -> Option<SubId> {
        self.notifies.remove(&tx)
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

    fn resources(w: &Watched) -> Vec<(Option<String>, Option<String>)> {
        w.presences()
            .map(|e| {
                (
                    e.attr("from").map(str::to_owned),
                    e.attr("type").map(str::to_owned),
                )
            })
            .collect()
    }

    #[test]
    fn latest_per_resource() {
        let mut w = Watched::default();
        w.set_presence(&p("b@r/1", None));
        w.set_presence(&p("b@r/2", None));
        w.set_presence(&p("b@r/1", None));
        assert_eq!(w.presences().count(), 2);
        assert!(w.presences().all(|e| e.children().count() == 1), "kept");
        w.set_presence(&p("b@r/1", Some("unavailable")));
        assert_eq!(resources(&w), [(Some("b@r/2".into()), None)]);
        w.set_presence(&p("b@r/2", Some("unavailable")));
        assert_eq!(
            resources(&w),
            [(Some("b@r/2".into()), Some("unavailable".into()))]
        );
        w.set_presence(&p("b@r/3", None));
        assert_eq!(resources(&w), [(Some("b@r/3".into()), None)]);
        for i in 0..40 {
            w.set_presence(&p(&format!("b@r/{i}"), None));
        }
        assert_eq!(w.presences().count(), MAX_RESOURCES);
    }
}
