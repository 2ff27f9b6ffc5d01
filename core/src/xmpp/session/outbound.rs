//! The initiating side of a stream: our header, the peer's features,
//! STARTTLS, SASL EXTERNAL, and what may flow back over bidi (XEP-0288).

use base64::Engine;

use crate::config::{Negotiation, StreamPolicy};
use crate::xml::{ns, Element, Scope, StreamHeader};
use crate::xmpp::stanza::{self, Kind};
use crate::xmpp::{StreamCondition, StreamError};

use super::{AuthMethod, Direction, Offer, Phase, Session, SessionEvent, Settings, Time};

/// How an outbound stream to a domain without a policy is negotiated: the
/// gateway routes only to domains with one, so this only keeps the session
/// total (and strict) on its own.
const UNLISTED_POLICY: StreamPolicy = StreamPolicy {
    tls: Negotiation::Required,
    sasl: Negotiation::Optional,
    dialback: true,
    keepalive: false,
};

impl Offer {
    /// What a `<stream:features/>` offers.
    fn read(f: &Element) -> Offer {
        let starttls = f.child(ns::TLS, "starttls");
        Offer {
            starttls: starttls.is_some(),
            starttls_required: starttls.is_some_and(|s| s.child(ns::TLS, "required").is_some()),
            external: f.child(ns::SASL, "mechanisms").is_some_and(|m| {
                m.children()
                    .any(|c| c.name() == "mechanism" && c.text().trim() == "EXTERNAL")
            }),
            dialback: f.child(ns::DIALBACK_FEATURE, "dialback").is_some(),
            bidi: f.child(ns::BIDI_FEATURE, "bidi").is_some(),
        }
    }
}

impl Session {
    pub(super) fn send_outbound_header(&mut self, t: Time) {
        let Direction::Outbound { local, remote } = &self.dir else {
            return;
        };
        let header = StreamHeader::new(Scope::server())
            .with_attr("from", local.clone())
            .with_attr("to", remote.clone())
            .with_attr("version", "1.0");
        let mut out = Vec::new();
        header.write(&mut out);
        self.send_bytes(&out, t);
        self.phase = Phase::AwaitHeader;
    }

    pub(super) fn outbound_header(&mut self, h: StreamHeader, settings: &Settings) {
        if h.default_ns() != ns::SERVER {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::InvalidNamespace,
                    "content namespace is not jabber:server",
                ),
            );
        }
        self.stream_id = h.id().unwrap_or_default().to_owned();
        self.peer_db = h.scope().resolve("db") == Some(ns::DIALBACK);
        self.phase = Phase::AwaitFeatures;
    }

    pub(super) fn outbound_element(&mut self, e: Element, settings: &Settings, t: Time) {
        match (self.phase, e.ns(), e.name()) {
            (Phase::AwaitFeatures, ns::STREAM, "features") => {
                self.outbound_features(&e, settings, t)
            }
            (Phase::AwaitProceed, ns::TLS, "proceed") => {
                let (Direction::Outbound { remote, .. }, Some(cfg)) =
                    (&self.dir, &settings.tls_client)
                else {
                    return self.fail_outbound(settings, "no TLS client configuration".into());
                };
                let remote = remote.clone();
                match self.pipe.start_client(cfg.clone(), &remote) {
                    Ok(()) => {
                        self.phase = Phase::TlsHandshake;
                        self.reader.reset();
                    }
                    Err(e) => self.fail_outbound(settings, format!("cannot start TLS: {e}")),
                }
            }
            (Phase::AwaitProceed, ns::TLS, "failure") => {
                self.fail_outbound(settings, "peer refused STARTTLS".into());
                self.finish("peer refused STARTTLS".into());
            }
            (Phase::AwaitSasl, ns::SASL, "success") => {
                self.sasl_done = true;
                self.reader.reset();
                self.send_outbound_header(t);
            }
            (Phase::AwaitSasl, ns::SASL, "failure") => {
                let why = e
                    .children()
                    .next()
                    .map(|c| c.name().to_owned())
                    .unwrap_or_default();
                self.events
                    .push_back(SessionEvent::Notice(format!("SASL EXTERNAL failed: {why}")));
                self.phase = Phase::Open;
                if !self.start_dialback(settings, t) {
                    self.fail_outbound(
                        settings,
                        format!("SASL EXTERNAL failed ({why}) and dialback is not possible"),
                    );
                    self.close_gracefully("authentication failed", t.now);
                }
            }
            (Phase::Open, ns::DIALBACK, _) => self.outbound_dialback_answer(&e, t),
            (Phase::Open, _, _) if Kind::of(&e).is_some() => self.outbound_stanza(e, settings),
            (_, ns, name) => self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::UnsupportedStanzaType,
                    format!("unexpected element {{{ns}}}{name}"),
                ),
            ),
        }
    }

    /// The peer's features: STARTTLS first, then SASL EXTERNAL or
    /// dialback; after the post-SASL restart, the stream is ready.
    pub(super) fn outbound_features(&mut self, f: &Element, settings: &Settings, t: Time) {
        let Direction::Outbound { remote, .. } = &self.dir else {
            return;
        };
        let policy = settings.policy(remote).unwrap_or(UNLISTED_POLICY);
        self.offer = Offer::read(f);
        self.phase = Phase::Open;
        if self.sasl_done {
            return self.ready_after_sasl(t);
        }
        if !self.pipe.is_tls() && self.negotiate_tls(policy, settings, t) {
            return;
        }
        if self.offer.bidi && self.pipe.is_tls() {
            self.send_element(&Element::new(ns::BIDI, "bidi"), t);
            self.bidi = true;
        }
        // The stream is now usable for dialback verification requests.
        self.flush_verifies(t);
        self.authenticate(policy, settings, t);
    }

    /// Features after the post-SASL restart: the pair is authenticated.
    fn ready_after_sasl(&mut self, t: Time) {
        let Direction::Outbound { local, remote } = self.dir.clone() else {
            return;
        };
        self.authorized.insert((local.clone(), remote.clone()));
        self.events.push_back(SessionEvent::OutboundReady {
            local,
            remote,
            method: AuthMethod::Sasl,
        });
        self.flush_verifies(t);
    }

    /// On a plain stream: STARTTLS when offered and allowed, or the end of
    /// a stream the policy and the peer cannot agree on TLS for. True when
    /// this step is over (TLS started or the stream failed).
    fn negotiate_tls(&mut self, policy: StreamPolicy, settings: &Settings, t: Time) -> bool {
        if self.offer.starttls_required && policy.tls == Negotiation::NotSupported {
            // Dialback in the clear would only be refused.
            self.fail_outbound(
                settings,
                "peer requires TLS, which tls = \"not-supported\" rules out for this partner"
                    .into(),
            );
            self.close_gracefully("peer requires TLS", t.now);
            return true;
        }
        if self.offer.starttls
            && settings.tls_client.is_some()
            && policy.tls != Negotiation::NotSupported
        {
            self.send_element(&Element::new(ns::TLS, "starttls"), t);
            self.phase = Phase::AwaitProceed;
            return true;
        }
        if policy.tls == Negotiation::Required {
            self.fail_outbound(
                settings,
                "peer does not offer TLS, which this partner requires".into(),
            );
            self.stream_error(
                settings,
                StreamError::new(StreamCondition::PolicyViolation, "TLS is required"),
            );
            return true;
        }
        false
    }

    /// SASL EXTERNAL when offered over TLS and allowed, else dialback, else
    /// the route fails.
    fn authenticate(&mut self, policy: StreamPolicy, settings: &Settings, t: Time) {
        if self.offer.external && self.pipe.is_tls() && policy.sasl != Negotiation::NotSupported {
            let Direction::Outbound { local, .. } = &self.dir else {
                return;
            };
            // XEP-0178 interop note: send our domain as authzid.
            let authzid = base64::engine::general_purpose::STANDARD.encode(local.as_bytes());
            let auth = Element::new(ns::SASL, "auth")
                .with_attr("mechanism", "EXTERNAL")
                .with_text(&authzid);
            self.send_element(&auth, t);
            self.phase = Phase::AwaitSasl;
            return;
        }
        if policy.sasl == Negotiation::Required {
            self.fail_outbound(
                settings,
                "peer does not offer SASL EXTERNAL, which this partner requires".into(),
            );
            return self.close_gracefully("SASL EXTERNAL required", t.now);
        }
        if !self.start_dialback(settings, t) {
            self.fail_outbound(
                settings,
                "no authentication method in common with the peer".into(),
            );
            self.close_gracefully("no authentication method in common", t.now);
        }
    }

    pub(super) fn outbound_stanza(&mut self, e: Element, settings: &Settings) {
        // Without bidi, stanzas never flow towards the initiator.
        let Direction::Outbound { local, remote } = &self.dir else {
            return;
        };
        if !self.bidi {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::UnsupportedStanzaType,
                    "stanza on our outbound stream without bidi",
                ),
            );
        }
        match stanza::addressing(&e) {
            Some(a) if a.from.domain() == remote && a.to.domain() == local => {
                self.events.push_back(SessionEvent::Stanza(e))
            }
            Some(_) => self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::InvalidFrom,
                    "bidi stanza outside the authenticated pair",
                ),
            ),
            None => self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::ImproperAddressing,
                    "stanza without valid from and to",
                ),
            ),
        }
    }
}
