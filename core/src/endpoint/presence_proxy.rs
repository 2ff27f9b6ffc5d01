//! Presence in proxy mode: XMPP watchers of local users are served by the
//! SIP domain's own presence server behind `next_hop` (RFC 8048's XMPP ->
//! SIP mapping, `reference/rfcs.md` section 4.5).
//!
//! - A watcher approved by the partner rules ([`super::presence`]) makes
//!   xfed the SIP subscriber: one SUBSCRIBE dialog per (local user,
//!   watcher) in the endpoint's
//!   [`SubscriptionTable`](crate::sip::SubscriptionTable), sent to the
//!   next hop (`Event: presence`, `Accept: application/pidf+xml`, From the
//!   watcher's address as IM maps it, Request-URI and To the user), which
//!   the table refreshes before it expires.
//! - Each NOTIFY is answered (200, or the PIDF reader's 400/413/415).
//!   `pending` says nothing to XMPP; the first `active` one sends
//!   `subscribed`, and each one's state goes to the watcher (Table 2,
//!   notes only for `federated` partners), with `unavailable` for the
//!   resources it no longer lists; a NOTIFY that changes nothing sends
//!   nothing. A probe is answered from the last state.
//! - `unsubscribe` ends the dialog (SUBSCRIBE with `Expires: 0`). 403, 489
//!   or 603 to a SUBSCRIBE, or `terminated;reason=rejected`, revoke the
//!   authorization: it is deleted and the watcher gets `unsubscribed`.
//!   Other ends subscribe again when RFC 6665 says so (`deactivated` and
//!   `timeout` at once, `probation` and `giveup` later, failures after the
//!   retry delay); a 404, 410 or 604 (no such user there), `noresource`
//!   or `invariant` do not, until the watcher probes again.
//! - A NOTIFY for no dialog of ours gets 481, in both modes; in proxy
//!   mode only trusted peers are heard (403).

use super::upstream::Relayed;
use super::*;
use crate::sip::subscription::{Cause, Ended, Next, SubscribeResult};
use crate::sip::{Event as SipEvent, SubId, SubState};
use crate::store::StoredDialog;
use crate::translate::presence::{
    is_pidf_content_type, parse_pidf, parse_pidf_with_language, pidf_body, presentity_to_xmpp,
    Availability, Disclosure, PidfLimits, Presentity, PIDF_CONTENT_TYPE,
};
use crate::xml::ns;

/// What xfed asks of the presence server (RFC 3856's default).
const UPSTREAM_EXPIRES: u32 = 3600;

/// The state a NOTIFY body describes (no body: nothing known, closed),
/// or the status that refuses it.
fn notify_state(req: &Request) -> Result<Presentity, (u16, &'static str)> {
    if req.body.trim_ascii().is_empty() {
        return Ok(Presentity::default());
    }
    if !req.headers.content_type().is_some_and(is_pidf_content_type) {
        return Err((415, "Unsupported Media Type"));
    }
    let lang = req.headers.get("Content-Language");
    parse_pidf_with_language(&req.body, &PidfLimits::default(), lang)
        .map_err(|e| (e.sip_status(), "Unreadable PIDF"))
}

/// The state last relayed for a pair (empty when none).
fn last_state(r: Option<&Relayed>) -> Presentity {
    r.and_then(|r| r.last.as_deref())
        .and_then(|b| parse_pidf(b, &PidfLimits::default()).ok())
        .unwrap_or_default()
}

fn is_available(r: &crate::translate::presence::ResourcePresence) -> bool {
    matches!(r.availability(), Availability::Available { .. })
}

/// `unavailable` from each resource available in `before` that `after`
/// does not list (all of them when `after` is `None`).
fn vanished(before: &Presentity, after: Option<&Presentity>, user: &Jid, to: &Jid) -> Vec<Element> {
    before
        .resources()
        .iter()
        .filter(|r| is_available(r))
        .filter(|r| {
            after.is_none_or(|a| a.resources().iter().all(|n| n.resource() != r.resource()))
        })
        .map(|r| {
            let from = match r.resource() {
                Some(res) => user.with_resource(res).unwrap_or_else(|_| user.clone()),
                None => user.clone(),
            };
            Element::new(ns::SERVER, "presence")
                .with_attr("from", String::from(from))
                .with_attr("to", to.as_str().to_owned())
                .with_attr("type", "unavailable")
        })
        .collect()
}

impl Endpoint {
    /// Where requests to the SIP domain go in proxy mode: the next hop,
    /// with `uri` as the Request-URI.
    pub(super) fn next_hop_target(&self, uri: Uri) -> Option<Target> {
        let hop = self.settings.next_hop.as_ref()?;
        Some(Target {
            to: uri.to_string(),
            uri,
            addr: hop.addr,
            transport: hop.transport,
            tls_name: Some(hop.name.clone()),
            flow: None,
        })
    }

    /// Proxy mode at start, after [`Endpoint::restore_subscriber`]: every
    /// approved authorization the store kept without a dialog gets a new
    /// one (those beyond the bounds are deleted).
    pub(super) fn restore_upstream(&mut self, t: &mut Turn<'_>) {
        for (user, watcher) in self.watchers.all_approved() {
            if self.upstream.add(&user, &watcher, Relayed::default()) {
                if self.upstream.idle(&user, &watcher) {
                    self.subscribe_upstream(&user, &watcher, t);
                }
            } else if let Some((_, change)) = self.watchers.remove(&user, &watcher) {
                self.persist(vec![change]);
            }
        }
    }

    /// A subscriber dialog the store kept: in proxy mode, for an approved
    /// watcher, it goes on in the same dialog and is refreshed at once, so
    /// that its NOTIFY brings the state missed meanwhile (the last state is
    /// not stored: the watcher hears `subscribed` again, which its server
    /// ignores, RFC 6121 section 3.1.5). `false` when it is not taken back
    /// (the caller deletes it).
    pub(super) fn restore_subscriber(&mut self, d: &StoredDialog, t: &mut Turn<'_>) -> bool {
        let (user, watcher) = (d.local_user.as_str(), d.remote_jid.as_str());
        if self.mode != SipMode::Proxy
            || self.watchers.state(user, watcher) != Some(true)
            || self.upstream.dialog_of(user, watcher).is_some()
            || !self.upstream.add(user, watcher, Relayed::default())
        {
            return false;
        }
        let Ok(sub) = self.subs.restore(&d.dialog, t.now, t.unix) else {
            return false;
        };
        self.upstream.link(user, watcher, sub);
        self.subs.refresh_now(sub);
        true
    }

    /// `watcher` was approved (again) to see `user`: xfed holds a dialog
    /// for the pair; a watcher told `subscribed` before hears it again,
    /// with the last state.
    pub(super) fn upstream_approved(&mut self, watcher: &Jid, user: &Jid, t: &mut Turn<'_>) {
        let (u, w) = (user.as_str(), watcher.as_str());
        if !self.upstream.add(u, w, Relayed::default()) {
            return;
        }
        if self.upstream.get(u, w).is_some_and(|r| r.told) {
            self.send_type(user, watcher, "subscribed");
            self.relay_last(user, watcher);
        }
        if self.upstream.idle(u, w) {
            self.subscribe_upstream(u, w, t);
        }
    }

    /// A probe from an approved watcher: the last state, and a dialog if
    /// the pair has none (nor a retry due).
    pub(super) fn upstream_probe(&mut self, watcher: &Jid, user: &Jid, t: &mut Turn<'_>) {
        let (u, w) = (user.as_str(), watcher.as_str());
        if !self.upstream.add(u, w, Relayed::default()) {
            return;
        }
        if self.upstream.get(u, w).is_some_and(|r| r.told) {
            self.relay_last(user, watcher);
        }
        if self.upstream.idle(u, w) {
            self.subscribe_upstream(u, w, t);
        }
    }

    /// The watcher unsubscribed (its authorization is gone): the dialog
    /// ends with `Expires: 0`, and the watcher hears `unavailable` from
    /// what it saw available.
    pub(super) fn upstream_unsubscribed(&mut self, watcher: &Jid, user: &Jid, t: &mut Turn<'_>) {
        let Some((relayed, sub)) = self.upstream.remove(user.as_str(), watcher.as_str()) else {
            return;
        };
        if let Some(sub) = sub {
            self.subs.unsubscribe(sub, t.now);
            self.drain_subs(t);
        }
        for s in vanished(&last_state(Some(&relayed)), None, user, watcher) {
            self.to_xmpp.push_back((s, false));
        }
    }

    /// A new dialog for the pair: the SUBSCRIBE goes out through
    /// [`Endpoint::drain_subs`]. At the table's bound, the pair tries
    /// again after the retry delay.
    fn subscribe_upstream(&mut self, user: &str, watcher: &str, t: &mut Turn<'_>) {
        let resource = Uri::parse(&format!("sip:{user}"));
        let local = Jid::parse(watcher).map(|w| translate::jid_to_sip(&w));
        let local = local.ok().and_then(|l| Uri::parse(&l).ok());
        let (Ok(resource), Some(local), Some(event)) = (resource, local, SipEvent::new("presence"))
        else {
            return;
        };
        let sub = self.subs.subscribe(
            &resource,
            &local,
            &event,
            UPSTREAM_EXPIRES,
            &mut self.rng,
            t.now,
        );
        match sub {
            Ok(sub) => self.upstream.link(user, watcher, sub),
            Err(refusal) => {
                self.event(Event::LimitReached {
                    conn: None,
                    key: "sip.max_subscriptions",
                    detail: format!(
                        "SUBSCRIBE to {user} for {watcher}: {refusal}; tried again later"
                    ),
                });
                let at = t.now + self.subs.config().retry_delay;
                self.upstream.schedule(user, watcher, at);
            }
        }
        self.drain_subs(t);
    }

    /// Sends a SUBSCRIBE the table made (Accept and our Contact added) to
    /// the next hop; one that cannot go out counts as timed out.
    pub(super) fn send_subscribe(&mut self, sub: SubId, mut request: Request, t: &mut Turn<'_>) {
        request.headers.push("Accept", PIDF_CONTENT_TYPE);
        let target = self.next_hop_target(request.uri.clone());
        match target.and_then(|target| self.start_request(request, &target, true, t)) {
            Some(tx) => self.upstream.subscribe_sent(tx, sub),
            None => {
                self.subs.handle_subscribe_timeout(sub, t.now);
            }
        }
    }

    /// A client transaction ended: `false` when it was no SUBSCRIBE of
    /// ours (a timeout or dead transport arrives as 408 or 480).
    pub(super) fn subscribe_answered(
        &mut self,
        tx: TxId,
        result: &Result<Response, u16>,
        t: &mut Turn<'_>,
    ) -> bool {
        let Some(sub) = self.upstream.subscribe_answered(tx) else {
            return false;
        };
        let outcome = match result {
            Ok(r) => self.subs.handle_subscribe_response(sub, r, t.now),
            Err(_) => self.subs.handle_subscribe_timeout(sub, t.now),
        };
        if let SubscribeResult::RetryAt(_) = outcome {
            let status = result.as_ref().map_or_else(|c| *c, |r| r.status);
            let pair = self.upstream.pair_of(sub).cloned().unwrap_or_default();
            self.detail(
                None,
                format!(
                    "refresh of the subscription to {} for {} answered {status}; kept until it expires",
                    pair.0, pair.1
                ),
            );
        }
        self.drain_subs(t);
        true
    }

    /// Timers: the pairs whose new dialog is due.
    pub(super) fn upstream_timeout(&mut self, t: &mut Turn<'_>) {
        for (user, watcher) in self.upstream.due(t.now) {
            self.subscribe_upstream(&user, &watcher, t);
        }
    }

    /// A subscriber dialog ended (the table said why and what next).
    pub(super) fn upstream_ended(&mut self, ended: Ended, t: &mut Turn<'_>) {
        // Saved once an answer confirmed it (it has the peer's tag then).
        if !ended.id.remote_tag().is_empty() {
            self.persist(vec![Persist::DeleteDialog {
                call_id: ended.id.call_id().to_owned(),
                local_tag: ended.id.local_tag().to_owned(),
            }]);
        }
        let Some((user, watcher)) = self.upstream.unlink(ended.sub) else {
            // The dialog of a pair already forgotten (an unsubscribe).
            return;
        };
        let why = match &ended.cause {
            Cause::Expired => "expired".to_owned(),
            Cause::Unsubscribed => "unsubscribed".to_owned(),
            Cause::Terminated(r) => format!("terminated;reason={r}"),
            Cause::Response(s) => format!("SUBSCRIBE answered {s}"),
            Cause::NoNotify => "no NOTIFY".to_owned(),
        };
        let no_such_user = matches!(ended.cause, Cause::Response(404 | 410 | 604));
        let then = match ended.next {
            Next::CancelAuthorization => {
                self.revoke(&user, &watcher);
                "authorization revoked; unsubscribed"
            }
            Next::ResubscribeAt(at) if !no_such_user => {
                if at <= t.now {
                    self.subscribe_upstream(&user, &watcher, t);
                } else {
                    self.upstream.schedule(&user, &watcher, at);
                }
                "subscribing again"
            }
            _ => {
                self.went_away(&user, &watcher);
                "no new subscription until the watcher probes"
            }
        };
        self.event(Event::UpstreamEnded {
            local_user: user,
            watcher,
            why,
            then,
        });
    }

    /// The SIP side revoked the authorization: deleted, and the watcher
    /// hears `unavailable` (from what it saw available) and `unsubscribed`.
    fn revoke(&mut self, user: &str, watcher: &str) {
        if let Some((_, change)) = self.watchers.remove(user, watcher) {
            self.persist(vec![change]);
        }
        let relayed = self.upstream.remove(user, watcher).map(|(r, _)| r);
        let (Ok(u), Ok(w)) = (Jid::parse(user), Jid::parse(watcher)) else {
            return;
        };
        for s in vanished(&last_state(relayed.as_ref()), None, &u, &w) {
            self.to_xmpp.push_back((s, false));
        }
        self.send_type(&u, &w, "unsubscribed");
    }

    /// The pair's dialog ended for good: the watcher hears `unavailable`
    /// from what it saw available; the authorization stays.
    fn went_away(&mut self, user: &str, watcher: &str) {
        let (Ok(u), Ok(w)) = (Jid::parse(user), Jid::parse(watcher)) else {
            return;
        };
        let before = last_state(self.upstream.get(user, watcher));
        for s in vanished(&before, None, &u, &w) {
            self.to_xmpp.push_back((s, false));
        }
        if let Some(r) = self.upstream.get_mut(user, watcher) {
            r.last = None;
        }
    }

    /// A NOTIFY: refused (403 from an untrusted peer in proxy mode, 481
    /// for no dialog of ours, the table's 400/489/500), or answered 200
    /// (the PIDF reader's status for an unreadable body) and relayed.
    pub(super) fn sip_notify(&mut self, id: TxId, req: Request, src: Source, t: &mut Turn<'_>) {
        let peer = src.addr;
        if self.mode == SipMode::Proxy && !self.trusted_peer(id, &req, src, t) {
            return;
        }
        let notified = match self.subs.handle_notify(&req, t.now) {
            Ok(n) => n,
            Err(refusal) => {
                let event = Event::SipRefused {
                    peer,
                    detail: format!("SIP NOTIFY from {peer}: {refusal}"),
                    warning: false,
                };
                self.event_limited(peer, event, t.now);
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(refusal.code, &tag).with_reason(refusal.reason);
                if refusal.code == 489 {
                    r.headers.push("Allow-Events", "presence");
                }
                return self.respond_with(id, r, t);
            }
        };
        let state = notify_state(&req);
        match &state {
            Ok(_) => self.respond(id, &req, 200, None, t),
            Err((code, reason)) => {
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(*code, &tag).with_reason(*reason);
                if *code == 415 {
                    r.headers.push("Accept", PIDF_CONTENT_TYPE);
                }
                self.respond_with(id, r, t);
            }
        }
        let Some((user, watcher)) = self.upstream.pair_of(notified.sub).cloned() else {
            return self.drain_subs(t);
        };
        self.event(Event::PresenceNotified {
            local_user: user.clone(),
            watcher: watcher.clone(),
            state: notified.state.to_string(),
            pidf: !req.body.trim_ascii().is_empty(),
        });
        if let (SubState::Active, Ok(p)) = (&notified.state.state, state) {
            self.relay_state(&user, &watcher, p);
        }
        // A final NOTIFY ended the dialog: what follows is done now.
        self.drain_subs(t);
    }

    /// An `active` NOTIFY's state for the watcher: `subscribed` first
    /// (once), then the state, when it differs from the last.
    fn relay_state(&mut self, user: &str, watcher: &str, now: Presentity) {
        let (Ok(u), Ok(w)) = (Jid::parse(user), Jid::parse(watcher)) else {
            return;
        };
        let body = pidf_body(&u, &now, Disclosure::Full);
        let Some(r) = self.upstream.get(user, watcher) else {
            return;
        };
        let told = r.told;
        if told && r.last.as_deref() == Some(body.as_slice()) {
            return;
        }
        let before = last_state(Some(r));
        if let Some(r) = self.upstream.get_mut(user, watcher) {
            r.told = true;
            r.last = Some(body);
        }
        if !told {
            self.send_type(&u, &w, "subscribed");
        }
        let disclosure = self.disclosure(watcher);
        let mut stanzas = vanished(&before, Some(&now), &u, &w);
        stanzas.extend(presentity_to_xmpp(&now, &u, &w, disclosure));
        for s in stanzas {
            self.to_xmpp.push_back((s, false));
        }
        self.relayed_event(user, &now);
    }

    /// The last state to the watcher (a probe, an approval again).
    fn relay_last(&mut self, user: &Jid, watcher: &Jid) {
        let Some(r) = self.upstream.get(user.as_str(), watcher.as_str()) else {
            return;
        };
        if r.last.is_none() {
            return;
        }
        let p = last_state(Some(r));
        let disclosure = self.disclosure(watcher.as_str());
        for s in presentity_to_xmpp(&p, user, watcher, disclosure) {
            self.to_xmpp.push_back((s, false));
        }
        self.relayed_event(user.as_str(), &p);
    }

    fn relayed_event(&mut self, user: &str, p: &Presentity) {
        self.event(Event::PresenceSent {
            local_user: user.to_owned(),
            watchers: 1,
            translations: 1,
            available: p.resources().iter().any(is_available),
        });
    }
}
