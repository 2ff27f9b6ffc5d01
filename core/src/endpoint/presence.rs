//! Presence in registrar mode: xfed is the presence server of its local
//! users. Their devices PUBLISH (RFC 3903) PIDF documents, composed per
//! user by [`crate::registrar::publication`]; remote XMPP users subscribe
//! to them (RFC 6121) under their domain's partner type (DESIGN.md
//! section 4) and get the composed state as XMPP presence (RFC 8048
//! Table 2). In proxy mode the same rules approve or hold a watcher, and
//! [`super::presence_proxy`] takes over once one is approved: the state
//! comes from the SIP domain's presence server.
//!
//! - `federated` and `public-verified` watchers are approved at once;
//!   `public-unverified` ones wait (pending, persisted) until the local
//!   user writes to them: the message reaching their domain is the
//!   invitation that approves the request (the remembered-contact rule of
//!   `access`).
//! - Only `federated` watchers see notes ([`Disclosure::Full`]).
//! - A user who does not exist here (no account, binding or publication)
//!   or has no XMPP access (`[[access]]`) is answered `unsubscribed` to a
//!   subscribe or probe (RFC 6121 sections 3.1.3 and 4.3.2 for a missing
//!   account; both answered alike, so nobody can tell them apart).
//! - A change of a user's composed state (a publication made, modified,
//!   removed or expired) is translated once per disclosure level in use
//!   (at most two translations), then addressed to each approved watcher.

use super::watchers::Full;
use super::*;
use crate::config::PartnerType;
use crate::registrar::publication::{
    Document, Note as PubNote, Publications, PublishError, PublishPolicy, PublishRequest,
    StoredPublication,
};
use crate::store::StoredAuthorization;
use crate::translate::presence::{
    is_pidf_content_type, parse_pidf_with_language, presentity_to_xmpp, Availability, Disclosure,
    Lang, Note, PidfError, PidfLimits, Presentity, ResourcePresence, Show,
};
use crate::xml::ns;

/// A published PIDF document, as composition sees it.
#[derive(Debug, Clone)]
pub struct PidfDoc {
    presentity: Presentity,
    note: Option<PubNote>,
}

impl PidfDoc {
    /// The document `p` describes: its note is the first of its most
    /// available tuple.
    pub fn new(presentity: Presentity) -> PidfDoc {
        let note = presentity
            .top()
            .and_then(|r| r.notes().first())
            .map(|n| PubNote {
                text: n.text().to_owned(),
                lang: n.lang().map(|l| l.as_str().to_owned()),
            });
        PidfDoc { presentity, note }
    }

    /// Reads a stored or published body; the PIDF reader's refusal
    /// otherwise.
    pub fn parse(body: &[u8], content_language: Option<&str>) -> Result<PidfDoc, PidfError> {
        parse_pidf_with_language(body, &PidfLimits::default(), content_language).map(PidfDoc::new)
    }

    fn show(&self) -> Option<Show> {
        match self.presentity.top()?.availability() {
            Availability::Available { show, .. } => show,
            Availability::Unavailable => None,
        }
    }
}

impl Document for PidfDoc {
    fn is_open(&self) -> bool {
        self.presentity
            .resources()
            .iter()
            .any(|r| matches!(r.availability(), Availability::Available { .. }))
    }

    fn note(&self) -> Option<&PubNote> {
        self.note.as_ref()
    }
}

/// A user's presence rendered for watchers: translated at most once per
/// disclosure level, then addressed to each.
struct Rendered {
    from: Jid,
    presentity: Presentity,
    full: Option<Vec<Element>>,
    availability_only: Option<Vec<Element>>,
    translations: usize,
}

impl Rendered {
    fn for_watcher(&mut self, to: &Jid, disclosure: Disclosure) -> Vec<Element> {
        let slot = match disclosure {
            Disclosure::Full => &mut self.full,
            Disclosure::AvailabilityOnly => &mut self.availability_only,
        };
        let stanzas = match slot {
            Some(s) => s,
            None => {
                self.translations += 1;
                slot.insert(presentity_to_xmpp(
                    &self.presentity,
                    &self.from,
                    to,
                    disclosure,
                ))
            }
        };
        let mut out = stanzas.clone();
        for s in &mut out {
            s.set_attr("to", to.as_str().to_owned());
        }
        out
    }
}

/// A presence stanza of `kind` (subscribed, unsubscribed...) between bare
/// JIDs.
fn presence_of_type(from: &Jid, to: &Jid, kind: &str) -> Element {
    Element::new(ns::SERVER, "presence")
        .with_attr("from", from.as_str().to_owned())
        .with_attr("to", to.as_str().to_owned())
        .with_attr("type", kind.to_owned())
}

impl Endpoint {
    /// What `Allow` lists.
    pub(super) fn allowed_methods(&self) -> &'static str {
        match self.mode {
            SipMode::Registrar => "REGISTER, MESSAGE, OPTIONS, PUBLISH, SUBSCRIBE, NOTIFY",
            SipMode::Proxy => "REGISTER, MESSAGE, OPTIONS, SUBSCRIBE, NOTIFY",
        }
    }

    /// Loads the publications and authorizations the store kept.
    pub(super) fn restore_presence(
        &mut self,
        publications: Vec<StoredPublication>,
        authorizations: Vec<StoredAuthorization>,
        t: &Turn<'_>,
    ) {
        let path = self.registrar.bindings().path().map(str::to_owned);
        let (p, dropped) = Publications::restore(
            PublishPolicy::default(),
            path,
            publications,
            |b| PidfDoc::parse(b, None).ok(),
            t.unix,
        );
        self.publications = p;
        self.persist(dropped);
        let dropped = self.watchers.restore(authorizations);
        self.persist(dropped);
    }

    /// A PUBLISH (registrar mode): authenticated as the presentity it
    /// names, `Event: presence`, a PIDF body or none (a refresh).
    pub(super) fn publish(&mut self, id: TxId, req: Request, src: Source, t: &mut Turn<'_>) {
        if self.mode == SipMode::Proxy {
            return self.not_allowed(id, &req, src.addr, t);
        }
        let Some(aor) = aor_of(&req.uri) else {
            return self.respond(id, &req, 404, Some("Invalid Address of Record"), t);
        };
        let Some(aor) = self.authenticate(id, &req, &aor, src, t) else {
            return;
        };
        let is_presence = matches!(req.headers.event(), Ok(Some(e)) if e.package() == "presence");
        if !is_presence {
            let tag = sip::new_tag(&mut self.rng);
            let mut r = req.response(489, &tag).with_reason("Bad Event");
            r.headers.push("Allow-Events", "presence");
            return self.respond_with(id, r, t);
        }
        let preq = match publish_request(&req) {
            Ok(p) => p,
            Err((status, why)) => {
                // Any device can send it, as often as it likes: budgeted.
                let peer = src.addr;
                let detail = format!("SIP PUBLISH from {peer} as {aor}: {why}; {status}");
                self.refused_limited(peer, t.now, detail);
                return self.respond(id, &req, status, None, t);
            }
        };
        let before = self.presentity_of(&aor, t.unix);
        match self.publications.publish(&aor, preq, t.unix, &mut self.rng) {
            Ok(o) => {
                self.persist(o.changes);
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(200, &tag);
                if let Some(etag) = &o.etag {
                    r.headers.push("SIP-ETag", etag.clone());
                }
                r.headers.push("Expires", o.expires.to_string());
                self.respond_with(id, r, t);
                if o.changed {
                    self.notify_if_changed(&aor, &before, t);
                }
            }
            Err(e) => self.publish_refused(id, &req, e, t),
        }
    }

    fn publish_refused(&mut self, id: TxId, req: &Request, e: PublishError, t: &mut Turn<'_>) {
        let tag = sip::new_tag(&mut self.rng);
        let mut r = req.response(e.code, &tag).with_reason(e.reason);
        if let Some(min) = e.min_expires {
            r.headers.push("Min-Expires", min.to_string());
        }
        if let Some(after) = e.retry_after {
            r.headers.push("Retry-After", after.to_string());
        }
        self.respond_with(id, r, t);
    }

    /// Publications that expired: stored no more, and their users'
    /// watchers told when that changed what they see.
    pub(super) fn expire_publications(&mut self, t: &mut Turn<'_>) {
        let before: Vec<(String, Presentity)> = self
            .publications
            .due(t.unix)
            .into_iter()
            .map(|(user, at)| {
                let was = self.presentity_of(&user, at.saturating_sub(1));
                (user, was)
            })
            .collect();
        let expired = self.publications.expire(t.unix);
        self.persist(expired.changes);
        for (user, was) in before {
            self.notify_if_changed(&user, &was, t);
        }
    }

    /// Tells `user`'s watchers their presence unless it is still
    /// `before`: a second device saying the same, a publication modified
    /// to what it was or one that expires while another says the same
    /// change nothing a watcher sees (one presence per change, not per
    /// PUBLISH).
    fn notify_if_changed(&mut self, user: &str, before: &Presentity, t: &Turn<'_>) {
        if self.presentity_of(user, t.unix) != *before {
            self.notify_watchers(user, t);
        }
    }

    /// When the next publication expires.
    pub(super) fn publication_deadline(&self) -> Option<Instant> {
        self.publications
            .next_expiry()
            .map(|unix| self.anchor.0 + Duration::from_secs(unix.saturating_sub(self.anchor.1)))
    }

    /// `user`'s composed state as one presence of the bare JID: open if a
    /// device is, with the `<show/>` of the newest open document and the
    /// newest note.
    fn presentity_of(&self, user: &str, unix: u64) -> Presentity {
        let c = self.publications.compose(user, unix);
        let availability = if c.open {
            let show = self
                .publications
                .of(user, unix)
                .into_iter()
                .filter(|p| p.doc.is_open())
                .max_by(|a, b| (a.published_at, &a.etag).cmp(&(b.published_at, &b.etag)))
                .and_then(|p| p.doc.show());
            Availability::Available {
                show,
                priority: None,
            }
        } else {
            Availability::Unavailable
        };
        let mut r = ResourcePresence::new(None, availability);
        let lang = |n: &PubNote| n.lang.as_deref().and_then(Lang::new);
        if let Some(note) = c.note.and_then(|n| Note::new(&n.text, lang(n))) {
            r.push_note(note);
        }
        let mut p = Presentity::default();
        p.push(r);
        p
    }

    fn rendered(&self, user: &str, unix: u64) -> Option<Rendered> {
        Some(Rendered {
            from: Jid::parse(user).ok()?,
            presentity: self.presentity_of(user, unix),
            full: None,
            availability_only: None,
            translations: 0,
        })
    }

    /// How much of a presence `watcher`'s domain may see.
    pub(super) fn disclosure(&self, watcher: &str) -> Disclosure {
        match self.access.partner_type(domain_of(watcher)) {
            PartnerType::Federated => Disclosure::Full,
            PartnerType::PublicVerified | PartnerType::PublicUnverified => {
                Disclosure::AvailabilityOnly
            }
        }
    }

    /// Sends `user`'s current presence to every approved watcher.
    pub(super) fn notify_watchers(&mut self, user: &str, t: &Turn<'_>) {
        let watchers = self.watchers.approved(user);
        if watchers.is_empty() {
            return;
        }
        let Some(mut r) = self.rendered(user, t.unix) else {
            return;
        };
        let mut sent = 0;
        for w in &watchers {
            let Ok(to) = Jid::parse(w) else { continue };
            for s in r.for_watcher(&to, self.disclosure(w)) {
                self.to_xmpp.push_back((s, false));
            }
            sent += 1;
        }
        self.presence_sent(user, sent, &r);
    }

    fn presence_sent(&mut self, user: &str, watchers: usize, r: &Rendered) {
        let available = r
            .presentity
            .top()
            .is_some_and(|p| matches!(p.availability(), Availability::Available { .. }));
        self.event(Event::PresenceSent {
            local_user: user.to_owned(),
            watchers,
            translations: r.translations,
            available,
        });
    }

    /// Sends `user`'s current presence to one watcher.
    fn send_presence(&mut self, user: &Jid, watcher: &Jid, t: &Turn<'_>) {
        let Some(mut r) = self.rendered(user.as_str(), t.unix) else {
            return;
        };
        for s in r.for_watcher(watcher, self.disclosure(watcher.as_str())) {
            self.to_xmpp.push_back((s, false));
        }
        self.presence_sent(user.as_str(), 1, &r);
    }

    pub(super) fn send_type(&mut self, from: &Jid, to: &Jid, kind: &str) {
        self.to_xmpp
            .push_back((presence_of_type(from, to, kind), false));
    }

    /// Whether `user` is someone here a watcher may see: an account, or a
    /// user with a binding or a publication (trusted sources need no
    /// account), with XMPP access. In proxy mode the SIP domain knows its
    /// users: its presence server answers for them (a 404 there ends the
    /// subscription), so XMPP access is all xfed checks.
    fn watchable(&self, user: &str, unix: u64) -> bool {
        if self.mode == SipMode::Proxy {
            return self.access.xmpp_allowed(user);
        }
        let exists = self.registrar.has_account(user)
            || !self.registrar.bindings().lookup(user, unix).is_empty()
            || !self.publications.of(user, unix).is_empty();
        exists && self.access.xmpp_allowed(user)
    }

    /// A subscription event, within the watcher's domain's log budget (a
    /// storm of subscriptions logs a few lines and a count).
    pub(super) fn subscription_event(&mut self, watcher: &Jid, event: Event, t: &Turn<'_>) {
        let domain = watcher.domain().to_ascii_lowercase();
        self.presence_log
            .report(domain, event, t.now, &mut self.out);
    }

    /// Presence stanzas for a local user: subscribe, unsubscribe and probe
    /// (answered here in registrar mode, relayed to the SIP domain's
    /// presence server in proxy mode), and a watched contact's presence;
    /// `false` for the others, which take the message path.
    pub(super) fn presence_from_xmpp(
        &mut self,
        stanza: &Element,
        from: &Jid,
        to: &Jid,
        t: &mut Turn<'_>,
    ) -> bool {
        if Kind::of(stanza) != Some(Kind::Presence) {
            return false;
        }
        let (watcher, user) = (from.bare(), to.bare());
        match stanza.attr("type") {
            Some("subscribe") => self.xmpp_subscribe(stanza, &watcher, &user, t),
            Some("unsubscribe") => self.xmpp_unsubscribe(&watcher, &user, t),
            Some("probe") => self.xmpp_probe(&watcher, &user, t),
            _ => {
                return self.contact_presence(stanza, from, to, t)
                    || self.forward_contact_presence(stanza, from, to, t)
            }
        }
        true
    }

    fn refuse_subscription(&mut self, watcher: &Jid, user: &Jid, why: &'static str, t: &Turn<'_>) {
        let event = Event::SubscriptionRefused {
            local_user: user.to_string(),
            watcher: watcher.to_string(),
            why,
            limit: false,
        };
        self.subscription_event(watcher, event, t);
        self.send_type(user, watcher, "unsubscribed");
    }

    fn xmpp_subscribe(&mut self, stanza: &Element, watcher: &Jid, user: &Jid, t: &mut Turn<'_>) {
        if !self.watchable(user.as_str(), t.unix) {
            let why = "no such user or no XMPP access; unsubscribed";
            return self.refuse_subscription(watcher, user, why, t);
        }
        let why = match self.watchers.state(user.as_str(), watcher.as_str()) {
            Some(true) => "approved before",
            _ => match self.access.partner_type(watcher.domain()) {
                PartnerType::Federated => "federated partner",
                PartnerType::PublicVerified => "public-verified partner",
                PartnerType::PublicUnverified => {
                    if !self
                        .access
                        .may_reach(watcher.as_str(), user.as_str(), t.unix)
                    {
                        return self.pend(stanza, watcher, user, t);
                    }
                    "invited: the user wrote to them"
                }
            },
        };
        self.approve(stanza, watcher, user, why, t);
    }

    fn full(&mut self, stanza: &Element, watcher: &Jid, user: &Jid, t: &Turn<'_>) {
        let event = Event::SubscriptionRefused {
            local_user: user.to_string(),
            watcher: watcher.to_string(),
            why: "sip.max_watchers reached; resource-constraint",
            limit: true,
        };
        self.subscription_event(watcher, event, t);
        self.refuse_stanza(stanza, StanzaCondition::ResourceConstraint, "");
    }

    fn pend(&mut self, stanza: &Element, watcher: &Jid, user: &Jid, t: &Turn<'_>) {
        match self.watchers.pend(user.as_str(), watcher.as_str(), t.unix) {
            Err(Full) => self.full(stanza, watcher, user, t),
            Ok(change) => {
                self.persist(change.into_iter().collect());
                let event = Event::SubscriptionPending {
                    local_user: user.to_string(),
                    watcher: watcher.to_string(),
                };
                self.subscription_event(watcher, event, t);
            }
        }
    }

    fn approve(
        &mut self,
        stanza: &Element,
        watcher: &Jid,
        user: &Jid,
        why: &'static str,
        t: &mut Turn<'_>,
    ) {
        // Proxy mode: each approved watcher holds a SIP dialog, bounded.
        if self.mode == SipMode::Proxy && !self.upstream.has_room(user.as_str(), watcher.as_str()) {
            return self.full(stanza, watcher, user, t);
        }
        match self
            .watchers
            .approve(user.as_str(), watcher.as_str(), t.unix)
        {
            Err(Full) => self.full(stanza, watcher, user, t),
            Ok(change) => self.approved(watcher, user, why, change, t),
        }
    }

    /// An approval: in registrar mode the watcher gets `subscribed` and
    /// the user's presence at once; in proxy mode xfed subscribes at the
    /// SIP domain's presence server, whose `active` NOTIFY brings both.
    fn approved(
        &mut self,
        watcher: &Jid,
        user: &Jid,
        why: &'static str,
        change: Persist,
        t: &mut Turn<'_>,
    ) {
        self.persist(vec![change]);
        let event = Event::SubscriptionApproved {
            local_user: user.to_string(),
            watcher: watcher.to_string(),
            why,
        };
        self.subscription_event(watcher, event, t);
        if self.mode == SipMode::Proxy {
            return self.upstream_approved(watcher, user, t);
        }
        self.send_type(user, watcher, "subscribed");
        self.send_presence(user, watcher, t);
    }

    /// The local user's message reached `remote`: a pending request from
    /// them is approved (the message is the invitation).
    pub(super) fn invited(&mut self, local: &str, remote: &str, t: &mut Turn<'_>) {
        if self.watchers.state(local, remote) != Some(false) {
            return;
        }
        let (Ok(user), Ok(watcher)) = (Jid::parse(local), Jid::parse(remote)) else {
            return;
        };
        if self.mode == SipMode::Proxy && !self.upstream.has_room(local, remote) {
            return;
        }
        if let Ok(change) = self.watchers.approve(local, remote, t.unix) {
            let why = "invited: the user wrote to them";
            self.approved(&watcher, &user, why, change, t);
        }
    }

    /// RFC 6121 section 3.3.3: the authorization goes (the watcher is told
    /// `unavailable` if it saw the user available), and `unsubscribed`
    /// acknowledges it. Nothing to remove: nothing is sent.
    fn xmpp_unsubscribe(&mut self, watcher: &Jid, user: &Jid, t: &mut Turn<'_>) {
        if !self.drop_authorization(watcher, user, t) {
            return;
        }
        let event = Event::SubscriptionEnded {
            local_user: user.to_string(),
            watcher: watcher.to_string(),
        };
        self.subscription_event(watcher, event, t);
    }

    /// Removes `watcher`'s authorization for `user`, if any, and tells
    /// them: `unavailable` if they saw the user available, then
    /// `unsubscribed`. Whether there was one.
    pub(super) fn drop_authorization(
        &mut self,
        watcher: &Jid,
        user: &Jid,
        t: &mut Turn<'_>,
    ) -> bool {
        let Some((approved, change)) = self.watchers.remove(user.as_str(), watcher.as_str()) else {
            return false;
        };
        self.persist(vec![change]);
        if self.mode == SipMode::Proxy {
            self.upstream_unsubscribed(watcher, user, t);
        } else if approved && self.publications.compose(user.as_str(), t.unix).open {
            self.send_type(user, watcher, "unavailable");
        }
        self.send_type(user, watcher, "unsubscribed");
        true
    }

    /// RFC 6121 section 4.3.2: an approved watcher gets the current
    /// presence; a pending one nothing yet; anyone else `unsubscribed`.
    fn xmpp_probe(&mut self, watcher: &Jid, user: &Jid, t: &mut Turn<'_>) {
        let state = self.watchers.state(user.as_str(), watcher.as_str());
        match state {
            Some(true) if self.access.xmpp_allowed(user.as_str()) => {
                if self.mode == SipMode::Proxy {
                    self.upstream_probe(watcher, user, t);
                } else {
                    self.send_presence(user, watcher, t);
                }
            }
            Some(false) => {}
            _ => self.refuse_subscription(
                watcher,
                user,
                "probe without authorization; unsubscribed",
                t,
            ),
        }
    }
}

/// The PUBLISH as the publication store takes it; the status of the
/// refusal and why otherwise (400 for bad headers, 415 for a body that is
/// not PIDF, the PIDF reader's status for one it cannot read: 400 for bad
/// XML or too many tuples, 413 for a body over its size limit).
fn publish_request(req: &Request) -> Result<PublishRequest<PidfDoc>, (u16, String)> {
    let bad = |what: &str| (400_u16, format!("bad {what}"));
    let if_match = req
        .headers
        .sip_if_match()
        .map_err(|_| bad("SIP-If-Match"))?;
    let expires = req.headers.expires().map_err(|_| bad("Expires"))?;
    let body = if req.body.trim_ascii().is_empty() {
        None
    } else {
        if !req.headers.content_type().is_some_and(is_pidf_content_type) {
            return Err((415, "body is not PIDF".to_owned()));
        }
        let lang = req.headers.get("Content-Language");
        let doc = PidfDoc::parse(&req.body, lang).map_err(|e| (e.sip_status(), e.to_string()))?;
        Some((doc, req.body.clone()))
    };
    Ok(PublishRequest {
        if_match: if_match.map(str::to_owned),
        expires,
        body,
    })
}
