//! The receiving side of a stream: our header and features, STARTTLS,
//! SASL EXTERNAL (XEP-0178), and the stanzas of authenticated pairs.

use base64::Engine;

use crate::config::{Negotiation, StreamPolicy};
use crate::tls::{check_peer, PeerCert};
use crate::xml::{ns, Element, Scope, StreamHeader};
use crate::xmpp::stanza::{self, Kind};
use crate::xmpp::{StreamCondition, StreamError};

use super::{AuthMethod, Phase, Session, SessionEvent, Settings, Time};

/// An inbound stream whose header has no `from`: RFC 3920-era peers omit
/// it, and each dialback request is then judged by its own `from`.
const NO_FROM_POLICY: StreamPolicy = StreamPolicy {
    tls: Negotiation::Optional,
    sasl: Negotiation::NotSupported,
    dialback: true,
    keepalive: false,
};

fn domain_of(jid: &crate::jid::Jid) -> String {
    jid.domain().to_owned()
}

impl Session {
    /// The peer's stream header (a new stream, or the restart after SASL):
    /// answered with ours, checked, then our features.
    pub(super) fn inbound_header(&mut self, h: StreamHeader, settings: &Settings, t: Time) {
        self.stream_id = self.rng.token();
        let served = h.to().filter(|d| settings.is_local(d)).map(str::to_owned);
        self.send_response_header(&h, served.as_deref(), settings, t);
        let (to, policy) = match self.admit_header(&h, served, settings) {
            Ok(admitted) => admitted,
            Err(error) => return self.stream_error(settings, error),
        };
        let from = h.from().map(str::to_owned);
        self.peer_db = h.scope().resolve("db") == Some(ns::DIALBACK);
        self.keepalive = policy.keepalive;
        self.peer_from = from.clone();
        self.header_to = Some(to);
        self.phase = Phase::Open;
        let features = self.inbound_features(policy, from.as_deref(), settings, t);
        self.send_element(&features, t);
    }

    /// Our header, sent before the peer's is judged so that a stream error
    /// has a stream to go on: to the peer's `from`, from the domain it
    /// addressed if we serve it, else our first.
    fn send_response_header(
        &mut self,
        h: &StreamHeader,
        served: Option<&str>,
        settings: &Settings,
        t: Time,
    ) {
        let mut response = StreamHeader::new(Scope::server())
            .with_attr("id", self.stream_id.clone())
            .with_attr("version", "1.0");
        if let Some(f) = h.from() {
            response = response.with_attr("to", f.to_owned());
        }
        let ours = served
            .map(str::to_owned)
            .unwrap_or_else(|| settings.local_domains.first().cloned().unwrap_or_default());
        response = response.with_attr("from", ours);
        let mut out = Vec::new();
        response.write(&mut out);
        self.send_bytes(&out, t);
    }

    /// The domain the header addressed and the policy of the one it
    /// claims, or the stream error that ends the stream.
    fn admit_header(
        &self,
        h: &StreamHeader,
        served: Option<String>,
        settings: &Settings,
    ) -> Result<(String, StreamPolicy), StreamError> {
        if h.default_ns() != ns::SERVER {
            return Err(StreamError::new(
                StreamCondition::InvalidNamespace,
                format!(
                    "content namespace '{}' is not jabber:server",
                    h.default_ns()
                ),
            ));
        }
        let Some(to) = served else {
            return Err(StreamError::new(
                StreamCondition::HostUnknown,
                format!("{} is not served here", h.to().unwrap_or("(no to)")),
            ));
        };
        if h.version().is_none_or(|v| v.split('.').next() != Some("1")) {
            return Err(StreamError::new(
                StreamCondition::UnsupportedVersion,
                "XMPP 1.0 streams only",
            ));
        }
        if self.sasl_done && h.from() != self.peer_from.as_deref() {
            return Err(StreamError::new(
                StreamCondition::InvalidFrom,
                "from changed after authentication",
            ));
        }
        let policy = match h.from() {
            Some(f) => settings.policy(f).ok_or_else(|| {
                StreamError::new(
                    StreamCondition::PolicyViolation,
                    format!("{f} is not allowed to federate with {to}"),
                )
            })?,
            None => NO_FROM_POLICY,
        };
        Ok((to, policy))
    }

    pub(super) fn inbound_features(
        &mut self,
        policy: StreamPolicy,
        from: Option<&str>,
        settings: &Settings,
        t: Time,
    ) -> Element {
        let mut f = Element::new(ns::STREAM, "features");
        if self.sasl_done {
            return f;
        }
        if !self.pipe.is_tls() {
            if Session::offers_starttls(policy, settings) {
                let mut tls = Element::new(ns::TLS, "starttls");
                if policy.tls == Negotiation::Required {
                    tls.push_child(Element::new(ns::TLS, "required"));
                }
                f.push_child(tls);
            }
        } else if let Some(from) = from {
            // EXTERNAL only once the certificate is validated for the
            // claimed domain (XEP-0178).
            self.peer_cert = self.cert_for(settings, from, t);
            if policy.sasl != Negotiation::NotSupported
                && matches!(self.peer_cert, PeerCert::Trusted)
            {
                f.push_child(
                    Element::new(ns::SASL, "mechanisms")
                        .with_child(Element::new(ns::SASL, "mechanism").with_text("EXTERNAL")),
                );
            }
        }
        let tls_ok = self.pipe.is_tls() || policy.tls != Negotiation::Required;
        if policy.dialback && tls_ok && policy.sasl != Negotiation::Required {
            f.push_child(
                Element::new(ns::DIALBACK_FEATURE, "dialback")
                    .with_child(Element::new(ns::DIALBACK_FEATURE, "errors")),
            );
        }
        f.push_child(Element::new(ns::BIDI_FEATURE, "bidi"));
        f
    }

    pub(super) fn inbound_element(&mut self, e: Element, settings: &Settings, t: Time) {
        if self.phase != Phase::Open {
            return;
        }
        match (e.ns(), e.name()) {
            (ns::TLS, "starttls") => self.inbound_starttls(settings, t),
            (ns::SASL, "auth") => self.inbound_auth(&e, settings, t),
            (ns::SASL, "abort") => {
                let failure = Element::new(ns::SASL, "failure").with_child(Element::new(ns::SASL, "aborted"));
                self.send_element(&failure, t);
            }
            (ns::BIDI, "bidi") => {
                if self.is_established() {
                    self.events
                        .push_back(SessionEvent::Notice("bidi requested after authentication; ignored".into()));
                } else {
                    self.bidi = true;
                }
            }
            (ns::DIALBACK, "result") if e.attr("type").is_none() => self.dialback_request(&e, settings, t),
            (ns::DIALBACK, "verify") if e.attr("type").is_none() => self.authoritative_verify(&e, settings, t),
            (ns::DIALBACK, _) if self.bidi => self.outbound_dialback_answer(&e, t),
            (ns::DIALBACK, name) => self.events.push_back(SessionEvent::Notice(format!(
                "unsolicited db:{name} with type on an inbound stream ignored (XEP-0220 section 3.1)"
            ))),
            _ if Kind::of(&e).is_some() => self.inbound_stanza(e, settings),
            (ns, name) => self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::UnsupportedStanzaType,
                    format!("unexpected element {{{ns}}}{name}"),
                ),
            ),
        }
    }

    /// Whether an inbound stream under `policy` offers STARTTLS, and so
    /// accepts it: never to a partner with `tls = "not-supported"`.
    pub(super) fn offers_starttls(policy: StreamPolicy, settings: &Settings) -> bool {
        settings.tls_server.is_some() && policy.tls != Negotiation::NotSupported
    }

    /// The policy of the peer's header `from`.
    pub(super) fn header_policy(&self, settings: &Settings) -> Option<StreamPolicy> {
        match &self.peer_from {
            Some(from) => settings.policy(from),
            None => Some(NO_FROM_POLICY),
        }
    }

    pub(super) fn inbound_starttls(&mut self, settings: &Settings, t: Time) {
        let offered = self
            .header_policy(settings)
            .is_some_and(|p| Session::offers_starttls(p, settings));
        match (&settings.tls_server, self.pipe.is_tls() || !offered) {
            (Some(cfg), false) => {
                let cfg = cfg.clone();
                self.send_element(&Element::new(ns::TLS, "proceed"), t);
                match self.pipe.start_server(cfg) {
                    Ok(()) => {
                        self.phase = Phase::TlsHandshake;
                        self.reader.reset();
                    }
                    Err(e) => self.finish(format!("cannot start TLS: {e}")),
                }
            }
            _ => {
                self.send_element(&Element::new(ns::TLS, "failure"), t);
                self.write_raw(b"</stream:stream>", t);
                self.finish("STARTTLS refused: already TLS, not offered or no certificate".into());
            }
        }
    }

    pub(super) fn inbound_auth(&mut self, e: &Element, settings: &Settings, t: Time) {
        match self.judge_auth(e, settings, t) {
            Ok(from) => {
                self.send_element(&Element::new(ns::SASL, "success"), t);
                self.sasl_done = true;
                self.reader.reset();
                self.phase = Phase::AwaitHeader;
                let to = self.header_to.clone().unwrap_or_default();
                self.authorize_inbound(from, to, AuthMethod::Sasl);
            }
            Err((condition, why)) => {
                let failure =
                    Element::new(ns::SASL, "failure").with_child(Element::new(ns::SASL, condition));
                self.send_element(&failure, t);
                self.events.push_back(SessionEvent::Notice(format!(
                    "SASL EXTERNAL refused: {why}"
                )));
            }
        }
    }

    /// The domain an `<auth/>` authenticates, or the SASL condition that
    /// refuses it and why: EXTERNAL only, only where it was offered, an
    /// authzid (if any) naming the header's `from`, and a certificate
    /// valid for it (XEP-0178).
    fn judge_auth(
        &self,
        e: &Element,
        settings: &Settings,
        t: Time,
    ) -> Result<String, (&'static str, String)> {
        if e.attr("mechanism") != Some("EXTERNAL") {
            let why = format!("mechanism {:?}", e.attr("mechanism"));
            return Err(("invalid-mechanism", why));
        }
        let Some(from) = self.peer_from.clone() else {
            return Err(("not-authorized", "stream header has no from".into()));
        };
        let policy = settings.policy(&from);
        if !policy.is_some_and(|p| p.sasl != Negotiation::NotSupported) || self.sasl_done {
            return Err(("invalid-mechanism", "EXTERNAL was not offered".into()));
        }
        let authzid = match e.text().trim() {
            "" | "=" => None,
            b64 => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or(("incorrect-encoding", "authzid is not base64 UTF-8".into()))?,
            ),
        };
        if authzid
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case(&from))
        {
            return Err((
                "invalid-authzid",
                format!("authzid {authzid:?} is not {from}"),
            ));
        }
        match self.cert_for(settings, &from, t) {
            PeerCert::Trusted => Ok(from),
            PeerCert::Untrusted { reason } => Err(("not-authorized", reason.to_string())),
            PeerCert::None => Err(("not-authorized", "no certificate presented".into())),
        }
    }

    pub(super) fn authorize_inbound(&mut self, from: String, to: String, method: AuthMethod) {
        if self.authorized.insert((from.clone(), to.clone())) {
            self.events
                .push_back(SessionEvent::InboundAuthorized { from, to, method });
        }
    }

    /// Inbound: the peer's certificate judged for the domain it claims.
    pub(super) fn cert_for(&self, settings: &Settings, domain: &str, t: Time) -> PeerCert {
        match self.pipe.peer_certificates() {
            Some(chain) if self.is_tls() => check_peer(chain, &settings.trust, t.unix, domain),
            _ => PeerCert::None,
        }
    }

    pub(super) fn inbound_stanza(&mut self, e: Element, settings: &Settings) {
        if self.authorized.is_empty() {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::NotAuthorized,
                    "stanza before authentication",
                ),
            );
        }
        let Some(addr) = stanza::addressing(&e) else {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::ImproperAddressing,
                    "stanza without valid from and to",
                ),
            );
        };
        let pair = (domain_of(&addr.from), domain_of(&addr.to));
        if self.authorized.contains(&pair.0, &pair.1) {
            self.events.push_back(SessionEvent::Stanza(e));
        } else if !settings.is_local(&pair.1) {
            self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::HostUnknown,
                    format!("{} is not served here", pair.1),
                ),
            );
        } else {
            self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::InvalidFrom,
                    format!("{} is not authenticated on this stream", pair.0),
                ),
            );
        }
    }
}
