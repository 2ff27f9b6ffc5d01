//! One connection of `xfed plan --check`, sans-IO: how far a listener or
//! a partner's server lets an outsider get. STARTTLS is the start of a
//! real s2s stream (our header, the peer's header and features,
//! `<starttls/>`, `<proceed/>`, the handshake) with the core's own XML
//! reader and writer and TLS [`Pipe`]; direct TLS and SIP over TLS are
//! the handshake alone. The probe stops once TLS is up (or, with
//! `tls = "not-supported"`, once the features came): authenticating
//! would need the dialback secret or the partner's consent, and is not
//! what a plan checks.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;

use crate::xml::{ns, Element, Event, Limits, Reader, Scope, StreamHeader};
use crate::xmpp::{Pipe, StreamError};

/// What kind of listener is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// XMPP s2s with STARTTLS (port 5269).
    StartTls,
    /// XMPP s2s without TLS: header and features only.
    Plain,
    /// TLS at once, ALPN `xmpp-server` (XEP-0368, port 5270).
    DirectTls,
    /// TLS at once, no ALPN: SIP over TLS (port 5061).
    Tls,
}

/// How far a probe got when it succeeded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// The TLS version negotiated, if TLS was.
    pub tls_version: Option<&'static str>,
    /// The peer's certificate chain, end entity first (empty without TLS).
    pub chain: Vec<CertificateDer<'static>>,
    /// Whether the peer offered STARTTLS (XMPP kinds).
    pub starttls_offered: bool,
    /// Whether it said STARTTLS is required.
    pub starttls_required: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    AwaitHeader,
    AwaitFeatures,
    AwaitProceed,
    Handshake,
    Done,
}

/// A probe: call [`Probe::connected`] once TCP is up, then move bytes
/// ([`Probe::poll_transmit`], [`Probe::handle_bytes`],
/// [`Probe::handle_eof`]) until [`Probe::outcome`] is `Some`.
pub struct Probe {
    kind: ProbeKind,
    from: Option<String>,
    to: String,
    tls: Arc<ClientConfig>,
    pipe: Pipe,
    reader: Reader,
    phase: Phase,
    reached: Reached,
    outcome: Option<Result<Reached, String>>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("kind", &self.kind)
            .field("to", &self.to)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// A probe of a server for the domain `to` (stream `to`, TLS server
    /// name), saying it comes from `from` when given (a partner expects
    /// our domain; our own listener is asked anonymously, since it
    /// refuses its own domains as peers). `tls` is the client
    /// configuration: [`crate::tls::probe_client_config`], with ALPN for
    /// direct TLS.
    pub fn new(kind: ProbeKind, from: Option<&str>, to: &str, tls: Arc<ClientConfig>) -> Probe {
        Probe {
            kind,
            from: from.map(str::to_owned),
            to: to.to_owned(),
            tls,
            pipe: Pipe::default(),
            reader: Reader::new(Limits::default()),
            phase: Phase::Connecting,
            reached: Reached::default(),
            outcome: None,
        }
    }

    /// TCP is up: the header goes out, or the handshake starts.
    pub fn connected(&mut self) {
        if self.phase != Phase::Connecting {
            return;
        }
        match self.kind {
            ProbeKind::StartTls | ProbeKind::Plain => self.send_header(),
            ProbeKind::DirectTls | ProbeKind::Tls => self.start_tls(),
        }
    }

    /// Bytes for the network.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.pipe.has_output().then(|| self.pipe.take_output())
    }

    /// The result, once there is one: how far it got, or why it stopped.
    pub fn outcome(&self) -> Option<&Result<Reached, String>> {
        self.outcome.as_ref()
    }

    /// The peer closed the connection.
    pub fn handle_eof(&mut self) {
        let during = match self.phase {
            Phase::Connecting | Phase::Done => return,
            Phase::AwaitHeader => "before its stream header",
            Phase::AwaitFeatures => "before its stream features",
            Phase::AwaitProceed => "after <starttls/>",
            Phase::Handshake => "during the TLS handshake",
        };
        self.fail(format!("the peer closed the connection {during}"));
    }

    /// Bytes from the network.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Done {
            return;
        }
        if let Err(e) = self.pipe.receive(bytes) {
            return self.fail(e.to_string());
        }
        self.after_receive();
    }

    fn after_receive(&mut self) {
        if self.phase == Phase::Handshake {
            if !self.pipe.is_handshaking() {
                self.tls_up();
            }
            return;
        }
        let plain = self.pipe.take_plain();
        let mut rest = &plain[..];
        while !rest.is_empty() && self.phase != Phase::Done {
            let n = self.reader.feed(rest);
            rest = &rest[n..];
            while let Some(ev) = self.reader.poll() {
                match ev {
                    Ok(ev) => self.on_xml(ev),
                    Err(e) => self.fail(format!("bad XML from the peer: {e}")),
                }
                if matches!(self.phase, Phase::Done | Phase::Handshake) {
                    break;
                }
            }
            if self.phase == Phase::Handshake {
                // The first TLS records came with <proceed/>.
                if !rest.is_empty() {
                    if let Err(e) = self.pipe.push_back_as_ciphertext(rest) {
                        return self.fail(e.to_string());
                    }
                }
                if !self.pipe.is_handshaking() {
                    self.tls_up();
                }
                return;
            }
        }
    }

    fn on_xml(&mut self, ev: Event) {
        match (self.phase, ev) {
            (Phase::AwaitHeader, Event::Header(h)) => {
                if h.default_ns() != ns::SERVER {
                    return self.fail(format!(
                        "the peer's stream is '{}', not jabber:server",
                        h.default_ns()
                    ));
                }
                self.phase = Phase::AwaitFeatures;
            }
            (_, Event::Stanza(e)) if StreamError::from_element(&e).is_some() => {
                let err = StreamError::from_element(&e).map(|e| e.to_string());
                self.fail(format!(
                    "the peer sent a stream error: {}",
                    err.unwrap_or_default()
                ));
            }
            (Phase::AwaitFeatures, Event::Stanza(e)) if e.is(ns::STREAM, "features") => {
                let starttls = e.child(ns::TLS, "starttls");
                self.reached.starttls_offered = starttls.is_some();
                self.reached.starttls_required =
                    starttls.is_some_and(|s| s.child(ns::TLS, "required").is_some());
                match (self.kind, starttls.is_some()) {
                    (ProbeKind::StartTls, true) => {
                        self.send_element(&Element::new(ns::TLS, "starttls"));
                        self.phase = Phase::AwaitProceed;
                    }
                    (ProbeKind::StartTls, false) => {
                        self.fail("the peer does not offer STARTTLS".into())
                    }
                    _ => self.succeed(),
                }
            }
            (Phase::AwaitProceed, Event::Stanza(e)) if e.is(ns::TLS, "proceed") => {
                self.reader.reset();
                self.start_tls();
            }
            (Phase::AwaitProceed, Event::Stanza(e)) if e.is(ns::TLS, "failure") => {
                self.fail("the peer refused STARTTLS (<failure/>)".into())
            }
            (_, Event::End) => self.fail("the peer closed its stream".into()),
            (_, Event::Header(_)) => self.fail("a second stream header".into()),
            (_, Event::Stanza(e)) => {
                self.fail(format!("unexpected element {{{}}}{}", e.ns(), e.name()))
            }
        }
    }

    fn send_header(&mut self) {
        let mut header = StreamHeader::new(Scope::server());
        if let Some(from) = &self.from {
            header = header.with_attr("from", from.clone());
        }
        let header = header
            .with_attr("to", self.to.clone())
            .with_attr("version", "1.0");
        let mut out = Vec::new();
        header.write(&mut out);
        self.pipe.send(&out);
        self.phase = Phase::AwaitHeader;
    }

    fn send_element(&mut self, e: &Element) {
        let mut out = Vec::new();
        e.write(&Scope::server(), &mut out);
        self.pipe.send(&out);
    }

    fn start_tls(&mut self) {
        let name = match crate::tls::server_name(&self.to) {
            Ok(n) => n.to_str().into_owned(),
            Err(e) => return self.fail(e.to_string()),
        };
        match self.pipe.start_client(self.tls.clone(), &name) {
            Ok(()) => self.phase = Phase::Handshake,
            Err(e) => self.fail(e.to_string()),
        }
    }

    fn tls_up(&mut self) {
        self.reached.tls_version = self.pipe.tls_version();
        self.reached.chain = self
            .pipe
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        // Leave politely: close_notify.
        self.pipe.close();
        self.succeed();
    }

    fn succeed(&mut self) {
        self.phase = Phase::Done;
        self.outcome = Some(Ok(std::mem::take(&mut self.reached)));
    }

    fn fail(&mut self, why: String) {
        self.phase = Phase::Done;
        self.outcome = Some(Err(why));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::rng::Rng;
    use crate::tls::testing::{LeafSpec, TestCa, NOW};
    use crate::tls::{
        check_peer, direct_tls_server_config, probe_client_config, server_config, CallerClock,
        PeerCert,
    };
    use crate::xmpp::session::{Reading, S2sBounds, Session, Settings, Time};

    /// xfed's own inbound side for plan.test, certificate from `ca`.
    fn settings(ca: &TestCa) -> Settings {
        let cert = ca.issue(&LeafSpec::xmpp_server("plan.test"));
        let id = cert.identity();
        let clock = Arc::new(CallerClock::new(NOW));
        let loaded =
            crate::config::parse("[gateway]\ndomains = [\"plan.test\"]\ndialback_secret = \"s\"\n")
                .expect("config");
        Settings {
            local_domains: vec!["plan.test".to_owned()],
            limits: Limits::default(),
            tls_server: Some(server_config(&id, clock.clone())),
            tls_client: None,
            tls_server_direct: Some(direct_tls_server_config(&id, clock.clone())),
            tls_client_direct: None,
            clock,
            trust: Arc::new(ca.trust_anchors()),
            dialback_secret: "s".to_owned(),
            establishment_timeout: Duration::from_secs(60),
            inactivity_timeout: Duration::from_secs(600),
            keepalive_interval: Duration::from_secs(300),
            partners: Arc::new(loaded.config),
            bounds: S2sBounds::default(),
            reading: Reading::Trees,
        }
    }

    /// Runs `kind` against an inbound session of xfed, bytes both ways
    /// in memory, until the probe has its outcome.
    fn probe(kind: ProbeKind, to: &str) -> (Result<Reached, String>, TestCa) {
        let ca = TestCa::new("probe CA");
        let settings = settings(&ca);
        let t = Time {
            now: Instant::now(),
            unix: NOW,
        };
        let direct = kind == ProbeKind::DirectTls;
        let mut server = Session::inbound(direct, &settings, Rng::new([7; 32]), t);
        let config = probe_client_config(Arc::new(CallerClock::new(NOW)), direct);
        let mut p = Probe::new(kind, None, to, config);
        p.connected();
        for _ in 0..20 {
            if let Some(bytes) = p.poll_transmit() {
                server.handle_bytes(&bytes, &settings, t);
            }
            while let Some(bytes) = server.poll_transmit() {
                p.handle_bytes(&bytes);
            }
            if let Some(outcome) = p.outcome() {
                return (outcome.clone(), ca);
            }
        }
        panic!("the probe never ended: {p:?}");
    }

    #[test]
    fn starttls_reaches_tls_and_gets_the_chain() {
        let (outcome, ca) = probe(ProbeKind::StartTls, "plan.test");
        let r = outcome.expect("STARTTLS probe");
        assert!(r.starttls_offered);
        assert_eq!(r.tls_version, Some("TLSv1_3"));
        let judged = check_peer(&r.chain, &ca.trust_anchors(), NOW, "plan.test");
        assert_eq!(judged, PeerCert::Trusted);
    }

    #[test]
    fn direct_tls_reaches_tls() {
        let (outcome, _) = probe(ProbeKind::DirectTls, "plan.test");
        assert_eq!(outcome.expect("direct TLS").tls_version, Some("TLSv1_3"));
    }

    #[test]
    fn plain_stops_at_the_features() {
        let (outcome, _) = probe(ProbeKind::Plain, "plan.test");
        let r = outcome.expect("plain probe");
        assert!(r.starttls_offered);
        assert_eq!(r.tls_version, None);
        assert!(r.chain.is_empty());
    }

    #[test]
    fn a_domain_not_served_is_the_peers_stream_error() {
        let (outcome, _) = probe(ProbeKind::StartTls, "elsewhere.test");
        let why = outcome.expect_err("not served");
        assert!(why.contains("host-unknown"), "{why}");
    }

    #[test]
    fn a_close_says_when() {
        let config = probe_client_config(Arc::new(CallerClock::new(NOW)), false);
        let mut p = Probe::new(ProbeKind::StartTls, Some("a.test"), "b.test", config);
        p.connected();
        let header = String::from_utf8(p.poll_transmit().expect("header")).expect("utf-8");
        assert!(
            header.contains("from='a.test'") || header.contains("from=\"a.test\""),
            "{header}"
        );
        p.handle_eof();
        assert_eq!(
            p.outcome(),
            Some(&Err(
                "the peer closed the connection before its stream header".to_owned()
            ))
        );
        // Garbage after the end changes nothing.
        p.handle_bytes(b"<junk");
        assert!(matches!(p.outcome(), Some(Err(_))));
    }
}
