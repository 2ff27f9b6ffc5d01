//! Server Dialback (XEP-0220) in its three roles: initiating (Step 1 and
//! its answer), receiving (a request checked, verified through the
//! gateway, answered) and authoritative (`db:verify` answered from the
//! shared secret).

use crate::config::Negotiation;
use crate::tls::PeerCert;
use crate::xml::{ns, Element};
use crate::xmpp::dialback_key::{dialback_key, verify_dialback_key};
use crate::xmpp::stanza::{self, StanzaCondition};
use crate::xmpp::{StreamCondition, StreamError};

use super::{AuthMethod, Direction, Phase, Session, SessionEvent, Settings, Time};

fn db(name: &'static str) -> Element {
    Element::new(ns::DIALBACK, name)
}

/// Why dialback cannot verify `sender`, if it cannot: the authoritative
/// server is found through DNS for a domain name, and an IP literal would
/// have us dial an address the peer chose.
fn unverifiable_sender(sender: &str) -> Option<String> {
    match crate::jid::Jid::parse(sender) {
        Ok(jid) if jid.is_domain() => {
            let host = jid.domain().trim_start_matches('[').trim_end_matches(']');
            host.parse::<std::net::IpAddr>().is_ok().then(|| {
                format!("{sender} is an IP literal, not a domain name dialback could verify")
            })
        }
        _ => Some(format!("{sender} is not a domain name")),
    }
}

impl Session {
    pub(super) fn dialback_error(
        name: &'static str,
        from: &str,
        to: &str,
        cond: StanzaCondition,
        id: Option<&str>,
    ) -> Element {
        let mut e = db(name)
            .with_attr("from", from.to_owned())
            .with_attr("to", to.to_owned())
            .with_attr("type", "error");
        if let Some(id) = id {
            e.set_attr("id", id.to_owned());
        }
        e.with_child(stanza::error_element(cond, None))
    }

    /// Step 1 received: `<db:result from=S to=T>key`.
    pub(super) fn dialback_request(&mut self, e: &Element, settings: &Settings, t: Time) {
        let (Some(sender), Some(target)) = (e.attr("from"), e.attr("to")) else {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::ImproperAddressing,
                    "db:result without from or to",
                ),
            );
        };
        let (sender, target, key) = (
            sender.to_ascii_lowercase(),
            target.to_ascii_lowercase(),
            e.text().trim().to_owned(),
        );
        if let Err((condition, reason)) = self.judge_request(&sender, &target, settings) {
            return self.refuse_request(sender, target, condition, reason, t);
        }
        if self.authorized.contains(&sender, &target) {
            return;
        }
        if let PeerCert::Trusted = self.cert_for(settings, &sender, t) {
            let valid = db("result")
                .with_attr("from", target.clone())
                .with_attr("to", sender.clone())
                .with_attr("type", "valid");
            self.send_element(&valid, t);
            return self.authorize_inbound(sender, target, AuthMethod::DialbackByCertificate);
        }
        self.verify_request(sender, target, key, settings, t);
    }

    /// Why a request from `sender` to `target` is refused before anything
    /// is resolved or dialled for it, if it is.
    fn judge_request(
        &self,
        sender: &str,
        target: &str,
        settings: &Settings,
    ) -> Result<(), (StanzaCondition, String)> {
        use StanzaCondition::{ItemNotFound, NotAcceptable, PolicyViolation};
        if !settings.is_local(target) {
            return Err((ItemNotFound, format!("{target} is not served here")));
        }
        if let Some(why) = unverifiable_sender(sender) {
            // XEP-0220 section 2.4: the asserted identity cannot be
            // established; nothing is resolved or dialled for it.
            return Err((NotAcceptable, why));
        }
        let Some(policy) = settings.policy(sender) else {
            return Err((PolicyViolation, "not a federation partner".into()));
        };
        if !policy.dialback || policy.sasl == Negotiation::Required {
            return Err((
                PolicyViolation,
                "dialback not allowed for this partner".into(),
            ));
        }
        if policy.tls == Negotiation::Required && !self.is_tls() {
            return Err((PolicyViolation, "TLS required before dialback".into()));
        }
        Ok(())
    }

    /// A dialback error for the request; the stream goes on.
    fn refuse_request(
        &mut self,
        sender: String,
        target: String,
        condition: StanzaCondition,
        reason: String,
        t: Time,
    ) {
        let error = Session::dialback_error("result", &target, &sender, condition, None);
        self.send_element(&error, t);
        self.events.push_back(SessionEvent::DialbackRefused {
            sender,
            target,
            condition,
            reason,
        });
    }

    /// Step 2 asked of the gateway, within the stream's bound.
    fn verify_request(
        &mut self,
        sender: String,
        target: String,
        key: String,
        settings: &Settings,
        t: Time,
    ) {
        let pair = (sender, target);
        if self.verifying.contains(&pair) {
            return;
        }
        let most = settings.bounds.max_pending_dialback_per_stream;
        if self.verifying.len() >= most {
            // Each verification costs a route, DNS queries and a
            // connection: one stream may not start more than `most`.
            let reason = format!(
                "{most} dialback requests already pending on this stream (gateway.max_pending_dialback_per_stream)"
            );
            let (sender, target) = pair;
            return self.refuse_request(
                sender,
                target,
                StanzaCondition::ResourceConstraint,
                reason,
                t,
            );
        }
        self.verifying.insert(pair.clone());
        let (originating, receiving) = pair;
        self.events.push_back(SessionEvent::VerifyNeeded {
            receiving,
            originating,
            stream_id: self.stream_id.clone(),
            key,
        });
    }

    /// Step 3 arrived (through the gateway) for a request on this stream.
    /// `None` means the authoritative server could not be asked.
    pub fn dialback_verified(
        &mut self,
        receiving: &str,
        originating: &str,
        result: Result<bool, StanzaCondition>,
        settings: &Settings,
        t: Time,
    ) {
        if !self
            .verifying
            .remove(&(originating.to_owned(), receiving.to_owned()))
        {
            self.events.push_back(SessionEvent::Notice(format!(
                "dialback result for {originating} -> {receiving} matches no request on this stream; ignored"
            )));
            return;
        }
        match result {
            Ok(true) => {
                let valid = db("result")
                    .with_attr("from", receiving.to_owned())
                    .with_attr("to", originating.to_owned())
                    .with_attr("type", "valid");
                self.send_element(&valid, t);
                self.authorize_inbound(
                    originating.to_owned(),
                    receiving.to_owned(),
                    AuthMethod::Dialback,
                );
            }
            Ok(false) => {
                let invalid = db("result")
                    .with_attr("from", receiving.to_owned())
                    .with_attr("to", originating.to_owned())
                    .with_attr("type", "invalid");
                self.send_element(&invalid, t);
                self.events.push_back(SessionEvent::Notice(format!(
                    "dialback key of {originating} for {receiving} is invalid"
                )));
                if self.authorized.is_empty() {
                    // XEP-0220 section 2.4: the first pair failing closes the stream.
                    self.stream_error(
                        settings,
                        StreamError::new(StreamCondition::NotAuthorized, "dialback key invalid"),
                    );
                }
            }
            Err(cond) => {
                let err = Session::dialback_error("result", receiving, originating, cond, None);
                self.send_element(&err, t);
            }
        }
    }

    /// Authoritative role: `<db:verify from=R to=O id=SID>key`.
    pub(super) fn authoritative_verify(&mut self, e: &Element, settings: &Settings, t: Time) {
        let (Some(receiving), Some(originating), Some(id)) =
            (e.attr("from"), e.attr("to"), e.attr("id"))
        else {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::ImproperAddressing,
                    "db:verify without from, to or id",
                ),
            );
        };
        let reply = if !settings.is_local(originating) {
            Session::dialback_error(
                "verify",
                originating,
                receiving,
                StanzaCondition::ItemNotFound,
                Some(id),
            )
        } else {
            let valid = verify_dialback_key(
                &settings.dialback_secret,
                receiving,
                originating,
                id,
                e.text().trim(),
            );
            // An invalid key from a peer's verification is how instances
            // with different dialback secrets show: worth a line.
            let verdict = if valid { "valid" } else { "invalid" };
            self.events.push_back(SessionEvent::Notice(format!(
                "dialback key for {originating} -> {receiving} checked as authoritative server: {verdict}"
            )));
            db("verify")
                .with_attr("from", originating.to_owned())
                .with_attr("to", receiving.to_owned())
                .with_attr("id", id.to_owned())
                .with_attr("type", verdict)
        };
        self.send_element(&reply, t);
    }

    /// Sends Step 1 for our pair; false when dialback is not possible.
    pub(super) fn start_dialback(&mut self, settings: &Settings, t: Time) -> bool {
        let Direction::Outbound { local, remote } = self.dir.clone() else {
            return false;
        };
        let policy = settings.policy(&remote);
        let allowed = policy.is_none_or(|p| p.dialback && p.sasl != Negotiation::Required);
        if !allowed || !(self.peer_db || self.offer.dialback) {
            return false;
        }
        let key = dialback_key(&settings.dialback_secret, &remote, &local, &self.stream_id);
        let result = db("result")
            .with_attr("from", local)
            .with_attr("to", remote)
            .with_text(&key);
        self.send_element(&result, t);
        self.result_sent = true;
        true
    }

    /// Step 4 (`db:result` with type) or Step 3 (`db:verify` with type).
    pub(super) fn outbound_dialback_answer(&mut self, e: &Element, t: Time) {
        let (Some(from), Some(to), Some(kind)) = (e.attr("from"), e.attr("to"), e.attr("type"))
        else {
            return self.events.push_back(SessionEvent::Notice(
                "dialback element without from, to or type ignored".into(),
            ));
        };
        let (from, to) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
        match e.name() {
            "result" => self.result_answer(e, from, to, kind, t),
            "verify" => self.verify_answer(e, from, to, kind),
            _ => {}
        }
    }

    /// Step 4: the receiving server's verdict on our own `db:result`.
    fn result_answer(&mut self, e: &Element, from: String, to: String, kind: &str, t: Time) {
        let ours = match &self.dir {
            Direction::Outbound { local, remote } => *local == to && *remote == from,
            Direction::Inbound => false,
        };
        if !ours || !self.result_sent {
            return self.events.push_back(SessionEvent::Notice(format!(
                "unsolicited db:result from {from} to {to} ignored (XEP-0220 section 3.1)"
            )));
        }
        self.result_sent = false;
        match kind {
            "valid" => {
                self.authorized.insert((to.clone(), from.clone()));
                self.events.push_back(SessionEvent::OutboundReady {
                    local: to,
                    remote: from,
                    method: AuthMethod::Dialback,
                });
            }
            "invalid" => {
                self.events.push_back(SessionEvent::OutboundFailed {
                    condition: StanzaCondition::InternalServerError,
                    reason: format!("{from} judged our dialback key invalid"),
                });
                self.close_gracefully("dialback refused", t.now);
            }
            _ => {
                let cond = stanza::error_condition(&e.clone().with_attr("type", "error"));
                self.events.push_back(SessionEvent::OutboundFailed {
                    condition: StanzaCondition::RemoteServerTimeout,
                    reason: format!("{from} answered dialback with an error ({cond:?})"),
                });
                self.close_gracefully("dialback error", t.now);
            }
        }
    }

    /// Step 3: the authoritative server's answer to a `db:verify` we sent
    /// (to = receiving = us, from = originating).
    fn verify_answer(&mut self, e: &Element, from: String, to: String, kind: &str) {
        let id = e.attr("id").unwrap_or_default().to_owned();
        if !self
            .verify_sent
            .remove(&(to.clone(), from.clone(), id.clone()))
        {
            return self.events.push_back(SessionEvent::Notice(format!(
                "unsolicited db:verify from {from} to {to} ignored (XEP-0220 section 3.1)"
            )));
        }
        let valid = match kind {
            "valid" => Some(true),
            "invalid" => Some(false),
            _ => None,
        };
        self.events.push_back(SessionEvent::VerifyAnswered {
            receiving: to,
            originating: from,
            stream_id: id,
            valid,
        });
    }

    /// Receiving role, Step 2: asks the peer (authoritative for
    /// `originating`) about a key; sent once this stream is usable.
    pub fn request_verify(
        &mut self,
        receiving: &str,
        originating: &str,
        stream_id: &str,
        key: &str,
        t: Time,
    ) {
        let v = db("verify")
            .with_attr("from", receiving.to_owned())
            .with_attr("to", originating.to_owned())
            .with_attr("id", stream_id.to_owned())
            .with_text(key);
        self.verify_sent.insert((
            receiving.to_owned(),
            originating.to_owned(),
            stream_id.to_owned(),
        ));
        self.verify_queue.push(v);
        if self.phase == Phase::Open && self.offer_seen() {
            self.flush_verifies(t);
        }
    }

    pub(super) fn offer_seen(&self) -> bool {
        // Verification requests may go out once features were received on
        // the final (TLS, if any) stream.
        !matches!(
            self.phase,
            Phase::Connecting | Phase::TlsHandshake | Phase::AwaitHeader | Phase::AwaitFeatures
        )
    }

    pub(super) fn flush_verifies(&mut self, t: Time) {
        for v in std::mem::take(&mut self.verify_queue) {
            self.send_element(&v, t);
        }
    }

    /// Verify requests sent or queued here and not answered; the gateway
    /// fails them if the connection dies.
    pub fn pending_verifies(&self) -> impl Iterator<Item = &(String, String, String)> {
        self.verify_sent.iter()
    }
}
