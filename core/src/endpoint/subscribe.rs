//! Local SIP users watching XMPP contacts (RFC 8048's SIP -> XMPP
//! mapping, `reference/rfcs.md` section 4.5), in both modes: in proxy
//! mode the SUBSCRIBE comes from a trusted peer (the proxy) and the
//! NOTIFYs go back to the next hop, which follows their Route and
//! Request-URI:
//!
//! - An authenticated SUBSCRIBE (`Event: presence`, PIDF accepted) from a
//!   local user to an XMPP address gets 200 with the Expires granted,
//!   creates a notifier dialog in the endpoint's
//!   [`SubscriptionTable`](crate::sip::SubscriptionTable)
//!   (`sip.max_subscriptions`), whose `pending` NOTIFY goes out at once,
//!   and `<presence type='subscribe'/>` goes from the user's bare JID to
//!   the contact. It is also the invitation a pending `public-unverified`
//!   watcher of the user waits for, and makes the contact one the user
//!   contacted (so the contact's own `subscribe` is approved).
//! - The contact's `subscribed` makes the user's dialogs `active`; its
//!   availability presence (the latest per resource) becomes one PIDF
//!   document per NOTIFY, rate-limited and coalesced by the table;
//!   `unsubscribed` ends the dialogs with `terminated;reason=rejected`.
//! - A refresh gets 200 and a NOTIFY with the current state; `Expires: 0`
//!   a final NOTIFY (PIDF closed, `terminated;reason=timeout`), and when
//!   it was the user's last dialog with the contact, `<presence
//!   type='unavailable'/>` goes to the contact: never `unsubscribe`, since
//!   a device signing out removes no contact.
//! - NOTIFYs go to the subscriber's Contact, or over the connection its
//!   SUBSCRIBE came by, as MESSAGEs reach a user; a NOTIFY answered with
//!   481 and the like (or timing out) ends its dialog, as the table says.

use super::*;
use crate::sip::subscription::{Action, Cause, Content, Ended, Refusal as TableRefusal, Role};
use crate::sip::{DialogId, Reason, SubId, SubState, SubscriptionState};
use crate::store::{Persist, SavedSide, StoredDialog};
use crate::translate::presence::{pidf_body, xmpp_to_pidf, Disclosure, PIDF_CONTENT_TYPE};
use crate::xml::ns;

/// Whether the request's Accept admits PIDF (no Accept: it does, RFC
/// 3856 section 6.7).
fn accepts_pidf(req: &Request) -> bool {
    let mut values = req.headers.values("Accept").peekable();
    if values.peek().is_none() {
        return true;
    }
    values.any(|v| {
        let media = v.split(';').next().unwrap_or("").trim();
        [PIDF_CONTENT_TYPE, "application/*", "*/*"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
    })
}

/// The XMPP contact a SUBSCRIBE names (its bare JID): the Request-URI
/// when it names a user, else the To URI, as for MESSAGE.
fn contact_of(req: &Request) -> Result<Jid, (u16, &'static str)> {
    let to = req.headers.to().map_err(|_| (400, "Bad To"))?;
    let target = if req.uri.user().is_some_and(|u| !u.is_empty()) {
        &req.uri
    } else {
        to.uri()
    };
    if target.scheme() == Scheme::Sips {
        return Err((403, "SIPS Not Gatewayed"));
    }
    match translate::sip_to_jid(&target.to_string()) {
        Ok(j) if j.local().is_some() => Ok(j.bare()),
        _ => Err((404, "Not An XMPP Address")),
    }
}

/// The Contact of a request sent with Via `via` (`UDP 10.0.0.1:5060`).
pub(super) fn contact_of_via(via: &str) -> String {
    let (transport, sent_by) = via.split_once(' ').unwrap_or(("UDP", via));
    match transport {
        "UDP" => format!("<sip:{sent_by}>"),
        t => format!("<sip:{sent_by};transport={}>", t.to_ascii_lowercase()),
    }
}

/// The closed PIDF of `contact` (the final NOTIFY of a dialog the user
/// ended, RFC 8048).
fn closed_pidf(contact: &str) -> Option<Vec<u8>> {
    let p = Element::new(ns::SERVER, "presence")
        .with_attr("from", contact.to_owned())
        .with_attr("type", "unavailable");
    xmpp_to_pidf([&p], Disclosure::Full).ok()
}

impl Endpoint {
    /// A SUBSCRIBE (registrar mode): a local user, authenticated as its
    /// From, watching an XMPP contact; a new dialog or a refresh.
    pub(super) fn subscribe(&mut self, id: TxId, req: Request, src: Source, t: &mut Turn<'_>) {
        let Some(user) = self.message_sender(id, &req, src, t) else {
            return;
        };
        let expires = match self.subscribe_terms(&req) {
            Ok(e) => e,
            Err(r) => return self.subscribe_refused(id, &req, &user, r, t),
        };
        let in_dialog = req.headers.to().is_ok_and(|to| to.tag().is_some());
        if in_dialog {
            self.resubscribe(id, &req, &user, expires, t);
        } else {
            self.new_subscription(id, &req, &user, expires, src.addr, t);
        }
    }

    /// What a SUBSCRIBE asks, checked: the presence package (else 489),
    /// PIDF accepted (else 406), an Expires the policy grants (else 423).
    /// The refusal otherwise.
    fn subscribe_terms(&mut self, req: &Request) -> Result<u32, Response> {
        let tag = sip::new_tag(&mut self.rng);
        let presence = matches!(req.headers.event(),
            Ok(Some(e)) if e.event_type().eq_ignore_ascii_case("presence"));
        if !presence {
            let mut r = req.response(489, &tag).with_reason("Bad Event");
            r.headers.push("Allow-Events", "presence");
            return Err(r);
        }
        if !accepts_pidf(req) {
            let mut r = req.response(406, &tag);
            r.headers.push("Accept", PIDF_CONTENT_TYPE);
            return Err(r);
        }
        let Ok(requested) = req.headers.expires() else {
            return Err(req.response(400, &tag).with_reason("Bad Expires"));
        };
        self.subscribe_expires.grant(requested).map_err(|b| {
            let mut r = req.response(423, &tag);
            r.headers.push("Min-Expires", b.min_expires.to_string());
            r
        })
    }

    fn subscribe_refused(
        &mut self,
        id: TxId,
        req: &Request,
        user: &str,
        r: Response,
        t: &mut Turn<'_>,
    ) {
        let contact = req.uri.to_string();
        self.event(Event::WatchRefused {
            local_user: user.to_owned(),
            contact,
            status: r.status,
            why: r.reason.clone(),
        });
        self.respond_with(id, r, t);
    }

    fn refusal(&mut self, req: &Request, code: u16, reason: &str) -> Response {
        let tag = sip::new_tag(&mut self.rng);
        let mut r = req.response(code, &tag).with_reason(reason);
        if code == 503 {
            r.headers.push("Retry-After", OVERLOAD_RETRY_AFTER);
        }
        r
    }

    /// Our Contact for the response to server transaction `id`.
    fn our_contact(&self, id: TxId) -> String {
        let tls = match self.tx_dest.get(&id) {
            Some(Dest::Conn(c)) => Some(self.conns.get(c).is_some_and(SipConn::is_tls)),
            _ => None,
        };
        let transport = match tls {
            None => "UDP",
            Some(false) => "TCP",
            Some(true) => "TLS",
        };
        contact_of_via(&format!("{transport} {}", self.sent_by()))
    }

    /// The 200 to an accepted SUBSCRIBE (`tag` for the To of a new
    /// dialog).
    fn subscribe_ok(&mut self, id: TxId, req: &Request, tag: &str, expires: u32, t: &mut Turn<'_>) {
        let mut r = req.response(200, tag);
        r.headers.push("Expires", expires.to_string());
        r.headers.push("Contact", self.our_contact(id));
        self.respond_with(id, r, t);
    }

    /// A SUBSCRIBE from `peer` that creates a dialog (`expires == 0`: a
    /// one-shot fetch, answered from what is known; a probe goes to the
    /// contact when nothing is).
    fn new_subscription(
        &mut self,
        id: TxId,
        req: &Request,
        user: &str,
        expires: u32,
        peer: SocketAddr,
        t: &mut Turn<'_>,
    ) {
        let contact = match contact_of(req) {
            Ok(c) if !self.is_local(c.domain()) => c,
            Ok(_) => {
                return self.subscribe_refused_with(id, req, user, 404, "Not An XMPP Address", t)
            }
            Err((code, why)) => return self.subscribe_refused_with(id, req, user, code, why, t),
        };
        let known = self.watching.get(user, contact.as_str());
        let authorized = known.is_some_and(|w| w.authorized);
        let cached = known.is_some_and(watching::Watched::has_presence);
        let tag = sip::new_tag(&mut self.rng);
        let sub = match self.subs.accept(req, &tag, expires, authorized, t.now) {
            Ok(sub) => sub,
            Err(refusal) => return self.subscription_full(id, req, user, refusal, peer, t),
        };
        let flow = match self.tx_dest.get(&id) {
            Some(Dest::Conn(c)) => Some(*c),
            _ => None,
        };
        self.watching
            .add(user, contact.as_str(), sub, flow, expires != 0);
        self.subscribe_ok(id, req, &tag, expires, t);
        self.event(Event::WatchAccepted {
            local_user: user.to_owned(),
            contact: contact.to_string(),
            expires,
            refresh: false,
        });
        if expires != 0 {
            self.announce(user, &contact, t);
        } else if !cached {
            // A poll with nothing cached (RFC 8048, SIP to XMPP): ask the
            // contact, whose answer reaches the user's dialogs if any.
            self.presence_to_contact(user, contact.as_str(), "probe");
        }
        self.drain_subs(t);
    }

    fn subscribe_refused_with(
        &mut self,
        id: TxId,
        req: &Request,
        user: &str,
        code: u16,
        why: &str,
        t: &mut Turn<'_>,
    ) {
        let r = self.refusal(req, code, why);
        self.subscribe_refused(id, req, user, r, t);
    }

    /// The table refused a new dialog: 503 at its bound (a warning within
    /// `peer`'s log budget: one user agent can send a storm of them),
    /// else its answer.
    fn subscription_full(
        &mut self,
        id: TxId,
        req: &Request,
        user: &str,
        refusal: TableRefusal,
        peer: SocketAddr,
        t: &mut Turn<'_>,
    ) {
        if refusal.code == 503 {
            let event = Event::LimitReached {
                conn: None,
                key: "sip.max_subscriptions",
                detail: format!(
                    "SUBSCRIBE from {user} at {peer}: {} dialogs held; 503",
                    self.subs.len()
                ),
            };
            self.event_limited(peer, event, t.now);
        }
        self.subscribe_refused_with(id, req, user, refusal.code, refusal.reason, t);
    }

    /// `user` watches `contact`: `<presence type='subscribe'/>` from the
    /// user's bare JID; the contact counts as contacted (its own
    /// subscribe is approved) and a pending request of theirs is approved
    /// (the invitation).
    fn announce(&mut self, user: &str, contact: &Jid, t: &mut Turn<'_>) {
        let Ok(from) = Jid::parse(user) else {
            return;
        };
        let subscribe = Element::new(ns::SERVER, "presence")
            .with_attr("from", from.as_str().to_owned())
            .with_attr("to", contact.as_str().to_owned())
            .with_attr("type", "subscribe");
        self.to_xmpp.push_back((subscribe, false));
        if let Some(w) = self.watching.get_mut(user, contact.as_str()) {
            w.asked_at = Some(t.now);
        }
        let changes = self.access.remember(user, contact.as_str(), t.unix);
        self.persist(changes);
        self.invited(user, contact.as_str(), t);
    }

    /// A SUBSCRIBE within a dialog of `user`: a refresh, or the end of
    /// the dialog (`expires == 0`).
    fn resubscribe(&mut self, id: TxId, req: &Request, user: &str, expires: u32, t: &mut Turn<'_>) {
        let sub = self.dialog_of(req);
        let contact = sub
            .and_then(|s| self.watching.dialog(s))
            .filter(|(p, _)| p.user() == user)
            .map(|(p, _)| p.contact().to_owned());
        let Some(contact) = contact else {
            return self.subscribe_refused_with(
                id,
                req,
                user,
                481,
                "Subscription Does Not Exist",
                t,
            );
        };
        match self.subs.refresh(req, expires, t.now) {
            Ok(_) => {
                self.subscribe_ok(id, req, "", expires, t);
                if expires != 0 {
                    self.reprobe(user, &contact, t);
                }
                self.event(Event::WatchAccepted {
                    local_user: user.to_owned(),
                    contact,
                    expires,
                    refresh: true,
                });
                self.drain_subs(t);
            }
            Err(r) => self.subscribe_refused_with(id, req, user, r.code, r.reason, t),
        }
    }

    /// Probes `contact` for `user` again when it was last asked more than
    /// `gateway.subscription_refresh_interval` ago (Lync's
    /// `SubscriptionRefreshInterval`): XMPP has no subscription refresh,
    /// so a presence lost on the way (a partner's restart) is corrected
    /// at the latest one interval later, at the pace of the user's own
    /// refreshes and never more often.
    fn reprobe(&mut self, user: &str, contact: &str, t: &Turn<'_>) {
        let Some(w) = self.watching.get_mut(user, contact) else {
            return;
        };
        let due = w
            .asked_at
            .is_none_or(|at| t.now.saturating_duration_since(at) >= self.reprobe_after);
        if w.authorized && due {
            w.asked_at = Some(t.now);
            self.presence_to_contact(user, contact, "probe");
        }
    }

    /// The notifier dialog a request within a dialog belongs to.
    fn dialog_of(&self, req: &Request) -> Option<SubId> {
        let h = &req.headers;
        let to = h.to().ok()?;
        let from = h.from().ok()?;
        let id = DialogId::new(h.call_id().ok()?, to.tag()?, from.tag()?);
        self.subs.find(&id)
    }

    /// Carries out what the subscription table wants: NOTIFYs, and the
    /// ends of dialogs.
    pub(super) fn drain_subs(&mut self, t: &mut Turn<'_>) {
        let mut saves = Vec::new();
        while let Some(action) = self.subs.poll_action() {
            match action {
                Action::Notify {
                    sub,
                    request,
                    state,
                    content,
                } => self.send_notify(sub, request, &state, content, t),
                Action::Subscribe { sub, request, .. } => self.send_subscribe(sub, request, t),
                Action::Ended(ended) if ended.role == Role::Subscriber => {
                    self.upstream_ended(ended, t)
                }
                Action::Ended(ended) => self.dialog_ended(ended),
                Action::Save(sub) => {
                    if !saves.contains(&sub) {
                        saves.push(sub);
                    }
                }
            }
        }
        self.save_dialogs(&saves, t);
        self.drain_table(t);
    }

    /// Persists the dialogs whose lasting state changed (those still
    /// held: an ended one was deleted as it ended): a local user's
    /// watching a contact, or proxy mode's own for a watcher of the user.
    fn save_dialogs(&mut self, subs: &[SubId], t: &Turn<'_>) {
        let records = subs
            .iter()
            .filter_map(|&sub| {
                let (local_user, remote_jid) = match self.watching.dialog(sub) {
                    Some((pair, _)) => (pair.user().to_owned(), pair.contact().to_owned()),
                    None => self.upstream.pair_of(sub)?.clone(),
                };
                Some(Persist::PutDialog(StoredDialog {
                    local_user,
                    remote_jid,
                    dialog: self.subs.saved(sub, t.now, t.unix)?,
                }))
            })
            .collect();
        self.persist(records);
    }

    /// Takes back the notification dialogs of local users saved before a
    /// restart: each goes on in its dialog (NOTIFYs to its target, as the
    /// flow its SUBSCRIBE came by is gone), and each contact is probed
    /// again, since what it said before the restart is not kept. Dialogs
    /// that expired meanwhile, or that this configuration cannot hold, are
    /// deleted. Proxy mode's own dialogs for XMPP watchers go back to
    /// their pairs ([`Endpoint::restore_subscriber`]).
    pub(super) fn restore_dialogs(&mut self, dialogs: Vec<StoredDialog>, t: &mut Turn<'_>) {
        let mut dropped = Vec::new();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for d in dialogs {
            let restored = match d.dialog.side {
                SavedSide::Notifier => self.subs.restore(&d.dialog, t.now, t.unix).ok(),
                SavedSide::Subscriber { .. } => {
                    if self.restore_subscriber(&d, t) {
                        continue;
                    }
                    None
                }
            };
            let Some(sub) = restored else {
                dropped.push(Persist::DeleteDialog {
                    call_id: d.dialog.call_id,
                    local_tag: d.dialog.local_tag,
                });
                continue;
            };
            self.watching
                .add(&d.local_user, &d.remote_jid, sub, None, true);
            if let Some(w) = self.watching.get_mut(&d.local_user, &d.remote_jid) {
                w.authorized |= d.dialog.active;
                w.asked_at = Some(t.now);
            }
            let pair = (d.local_user, d.remote_jid);
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
        self.event(Event::DialogsRestored {
            restored: self.subs.len(),
            dropped: dropped.len(),
        });
        self.persist(dropped);
        for (user, contact) in &pairs {
            self.presence_to_contact(user, contact, "probe");
        }
        self.drain_subs(t);
    }

    /// The body of a NOTIFY: nothing before authorization or after a
    /// refusal, the closed PIDF at the end of a dialog (but not of a
    /// fetch), else the contact's presence (one document, every resource)
    /// when any came.
    fn notify_body(
        &self,
        sub: SubId,
        contact: &str,
        state: &SubscriptionState,
        content: Content,
    ) -> Option<Vec<u8>> {
        if content == Content::Nothing {
            return None;
        }
        match (&state.state, &state.reason) {
            (SubState::Terminated, Some(Reason::Rejected)) => None,
            (SubState::Terminated, _) if !self.watching.is_fetch(sub) => closed_pidf(contact),
            _ => {
                let presentity = self.watching.of_dialog(sub)?.presentity()?;
                let entity = Jid::parse(contact).ok()?;
                Some(pidf_body(&entity, &presentity, Disclosure::Full))
            }
        }
    }

    fn send_notify(
        &mut self,
        sub: SubId,
        mut request: Request,
        state: &SubscriptionState,
        content: Content,
        t: &mut Turn<'_>,
    ) {
        let Some((user, contact, flow)) = self
            .watching
            .dialog(sub)
            .map(|(p, f)| (p.user().to_owned(), p.contact().to_owned(), f))
        else {
            return;
        };
        let body = self.notify_body(sub, &contact, state, content);
        let pidf = body.is_some();
        if let Some(body) = body {
            request.headers.push("Content-Type", PIDF_CONTENT_TYPE);
            request.body = body;
        }
        let started = self
            .notify_target(&user, &request.uri, flow)
            .and_then(|target| self.start_request(request, &target, true, t));
        match started {
            Some(tx) => self.watching.notify_sent(tx, sub),
            None => {
                self.subs.handle_notify_response(sub, 480);
            }
        }
        self.event(Event::NotifySent {
            local_user: user,
            contact,
            state: state.to_string(),
            pidf,
        });
    }

    /// Where a NOTIFY of `user`'s dialog goes: over the connection its
    /// SUBSCRIBE came by while it lives, else to its target (the
    /// subscriber's Contact) as a MESSAGE to that contact would go.
    fn notify_target(&mut self, user: &str, uri: &Uri, flow: Option<ConnId>) -> Option<Target> {
        if self.mode == SipMode::Proxy {
            // Through the proxy, which follows the Route and Request-URI.
            return self.next_hop_target(uri.clone());
        }
        let flow = flow.filter(|c| self.conns.contains_key(c));
        let Some(flow) = flow else {
            return self.binding_target(user, &uri.to_string());
        };
        Some(Target {
            uri: uri.clone(),
            to: format!("sip:{user}"),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            transport: SipTransport::Tcp,
            tls_name: None,
            flow: Some(flow),
        })
    }

    /// A client transaction ended with this response or failure (408 a
    /// timeout, 480 a dead transport): a NOTIFY's, or a MESSAGE's.
    pub(super) fn client_answered(
        &mut self,
        id: TxId,
        result: Result<Response, u16>,
        t: &mut Turn<'_>,
    ) {
        if self.subscribe_answered(id, &result, t) || self.presence_forward_answered(id, &result) {
            return;
        }
        let Some(sub) = self.watching.notify_answered(id) else {
            return self.message_answered(id, result, t);
        };
        let status = match &result {
            Ok(r) => r.status,
            Err(code) => *code,
        };
        if self.subs.handle_notify_response(sub, status) {
            self.drain_subs(t);
        }
    }

    /// A dialog ended: forgotten, and when it was the user's last with
    /// the contact (and the contact did not refuse), the contact hears
    /// `unavailable` (RFC 8048: `Expires: 0` is no `unsubscribe`).
    fn dialog_ended(&mut self, ended: Ended) {
        if !self.watching.is_fetch(ended.sub) {
            self.persist(vec![Persist::DeleteDialog {
                call_id: ended.id.call_id().to_owned(),
                local_tag: ended.id.local_tag().to_owned(),
            }]);
        }
        let Some((pair, last)) = self.watching.remove(ended.sub) else {
            return;
        };
        let (user, contact) = (pair.user().to_owned(), pair.contact().to_owned());
        let why = match &ended.cause {
            Cause::Expired => "expired".to_owned(),
            Cause::Unsubscribed => "Expires: 0".to_owned(),
            Cause::Terminated(r) => format!("terminated;reason={r}"),
            Cause::Response(s) => format!("NOTIFY answered {s}"),
            Cause::NoNotify => "no NOTIFY".to_owned(),
        };
        let rejected = matches!(ended.cause, Cause::Terminated(Reason::Rejected));
        if let (Some(w), false) = (&last, rejected) {
            if w.announced {
                self.presence_to_contact(&user, &contact, "unavailable");
            }
        }
        self.event(Event::WatchEnded {
            local_user: user,
            contact,
            why,
            last: last.is_some(),
        });
    }

    fn presence_to_contact(&mut self, user: &str, contact: &str, kind: &str) {
        let stanza = Element::new(ns::SERVER, "presence")
            .with_attr("from", user.to_owned())
            .with_attr("to", contact.to_owned())
            .with_attr("type", kind.to_owned());
        self.to_xmpp.push_back((stanza, false));
    }

    /// Presence from an XMPP contact a local user watches: `subscribed`,
    /// `unsubscribed`, or availability. `false` when no dialog of the
    /// user watches the sender (the stanza takes the other paths).
    pub(super) fn contact_presence(
        &mut self,
        stanza: &Element,
        from: &Jid,
        to: &Jid,
        t: &mut Turn<'_>,
    ) -> bool {
        let (user, contact) = (to.bare(), from.bare());
        let Some(w) = self.watching.get_mut(user.as_str(), contact.as_str()) else {
            return false;
        };
        let subs = w.subs().to_vec();
        match stanza.attr("type") {
            Some("subscribed") => {
                w.authorized = true;
                for &s in &subs {
                    self.subs.activate(s, t.now);
                }
                self.watch_answered(&user, &contact, true, subs.len());
            }
            Some("unsubscribed") => {
                w.authorized = false;
                for &s in &subs {
                    self.subs.terminate(s, Reason::Rejected, None, t.now);
                }
                self.watch_answered(&user, &contact, false, subs.len());
            }
            None | Some("unavailable") => {
                w.set_presence(stanza);
                for &s in &subs {
                    self.subs.changed(s, t.now);
                }
            }
            _ => return false,
        }
        self.drain_subs(t);
        true
    }

    fn watch_answered(&mut self, user: &Jid, contact: &Jid, authorized: bool, dialogs: usize) {
        self.event(Event::WatchAnswered {
            local_user: user.to_string(),
            contact: contact.to_string(),
            authorized,
            dialogs,
        });
    }
}
