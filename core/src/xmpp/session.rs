//! One server-to-server connection, in either direction, as a sans-IO state
//! machine: stream headers and features, STARTTLS or direct TLS, SASL
//! EXTERNAL (XEP-0178), Server Dialback (XEP-0220) in all three roles,
//! bidi (XEP-0288), keepalives, timeouts, stream errors and closing.
//!
//! A session knows nothing of other connections. What needs another
//! connection (verifying a dialback key with the authoritative server,
//! routing a stanza) leaves as a [`SessionEvent`] for the gateway, which
//! answers through methods such as [`Session::dialback_verified`].

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::{ClientConfig, ServerConfig};

use crate::config::{Negotiation, StreamPolicy};
use crate::rng::Rng;
use crate::tls::{check_peer, CallerClock, PeerCert, TrustAnchors};
use crate::xml::{ns, Element, Event, Limits, Reader, Scope, StreamHeader};

use super::dialback_key::{dialback_key, verify_dialback_key};
use super::pipe::Pipe;
use super::stanza::{self, Kind, StanzaCondition};
use super::{StreamCondition, StreamError};

/// Decides which remote domains may federate, and how; `None` refuses.
pub type PolicyFn = dyn Fn(&str) -> Option<StreamPolicy> + Send + Sync;

/// What every session of a gateway shares.
pub struct Settings {
    /// The domains xfed serves.
    pub local_domains: Vec<String>,
    /// Reader limits.
    pub limits: Limits,
    /// Our certificate as a TLS server; `None` disables inbound TLS.
    pub tls_server: Option<Arc<ServerConfig>>,
    /// Our certificate as a TLS client; `None` disables outbound TLS.
    pub tls_client: Option<Arc<ClientConfig>>,
    /// The same for direct TLS (XEP-0368: ALPN `xmpp-server`).
    pub tls_server_direct: Option<Arc<ServerConfig>>,
    /// The same for direct TLS connections we open.
    pub tls_client_direct: Option<Arc<ClientConfig>>,
    /// The time rustls checks certificates against, set from [`Time`] by
    /// the gateway before every call.
    pub clock: Arc<CallerClock>,
    /// Anchors peer certificates are validated against.
    pub trust: Arc<TrustAnchors>,
    /// The dialback secret (XEP-0185), shared by every instance.
    pub dialback_secret: String,
    /// From connection to authenticated stream.
    pub establishment_timeout: Duration,
    /// Silence after which a stream is closed.
    pub inactivity_timeout: Duration,
    /// Whitespace keepalive period.
    pub keepalive_interval: Duration,
    /// Per-domain admission and negotiation.
    pub policy: Arc<PolicyFn>,
    /// Fixed address of a domain's server (a partner's `connect`), which
    /// replaces DNS for it.
    pub connect: Arc<ConnectFn>,
    /// Most inbound connections one remote domain may hold (a partner's
    /// `connection_limit`, else `partner_connection_limit`).
    pub connection_limit: Arc<LimitFn>,
    /// What dialback requests may make the gateway hold.
    pub bounds: S2sBounds,
}

/// What an unauthenticated peer can make the s2s side hold, at most: the
/// `[gateway]` keys of the same names (see `config::GatewayConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2sBounds {
    /// Dialback requests waiting for verification on one inbound stream.
    pub max_pending_dialback_per_stream: usize,
    /// Verifications of one originating domain waiting, over all streams.
    pub max_pending_dialback_per_domain: usize,
    /// Outbound routes being set up or up.
    pub max_routes: usize,
    /// DNS queries in flight.
    pub max_dns_queries: usize,
    /// Warnings about one stream's refusals per minute
    /// (`gateway.log_lines_per_source`).
    pub log_lines_per_source: u32,
}

impl Default for S2sBounds {
    /// The configuration's defaults.
    fn default() -> Self {
        use crate::config::defaults;
        S2sBounds {
            max_pending_dialback_per_stream: defaults::MAX_PENDING_DIALBACK_PER_STREAM as usize,
            max_pending_dialback_per_domain: defaults::MAX_PENDING_DIALBACK_PER_DOMAIN as usize,
            max_routes: defaults::MAX_ROUTES as usize,
            max_dns_queries: defaults::MAX_DNS_QUERIES as usize,
            log_lines_per_source: defaults::LOG_LINES_PER_SOURCE,
        }
    }
}

impl S2sBounds {
    /// The bounds a configuration sets.
    pub fn from_config(g: &crate::config::GatewayConfig) -> Self {
        S2sBounds {
            max_pending_dialback_per_stream: g.max_pending_dialback_per_stream as usize,
            max_pending_dialback_per_domain: g.max_pending_dialback_per_domain as usize,
            max_routes: g.max_routes as usize,
            max_dns_queries: g.max_dns_queries as usize,
            log_lines_per_source: g.log_lines_per_source,
        }
    }
}

/// A per-domain connection limit.
pub type LimitFn = dyn Fn(&str) -> usize + Send + Sync;

/// A partner's fixed `connect` address: host (name or IP literal) and port.
pub type ConnectFn = dyn Fn(&str) -> Option<(String, u16)> + Send + Sync;

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("local_domains", &self.local_domains)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// How to treat `domain`; `None` refuses it.
    pub fn policy(&self, domain: &str) -> Option<StreamPolicy> {
        (self.policy)(domain)
    }

    /// The fixed address configured for `domain`, if any.
    pub fn connect_for(&self, domain: &str) -> Option<(String, u16)> {
        (self.connect)(domain)
    }

    /// Most inbound connections `domain` may hold.
    pub fn connection_limit_for(&self, domain: &str) -> usize {
        (self.connection_limit)(domain)
    }

    /// Whether xfed serves `domain`.
    pub fn is_local(&self, domain: &str) -> bool {
        self.local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// The caller's notion of time: monotonic for timers, Unix seconds for
/// certificate validity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    /// Monotonic now.
    pub now: Instant,
    /// Wall-clock now, seconds since the Unix epoch.
    pub unix: u64,
}

/// How a domain pair was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// SASL EXTERNAL with a certificate.
    Sasl,
    /// Dialback, confirmed by the authoritative server.
    Dialback,
    /// Dialback answered at once because the TLS certificate already proves
    /// the domain (XEP-0344 "dialback without dialing back").
    DialbackByCertificate,
}

/// What a session reports to the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// Inbound: stanzas from `from` to `to` may now be accepted.
    InboundAuthorized {
        /// Remote sender domain.
        from: String,
        /// Local target domain.
        to: String,
        /// How.
        method: AuthMethod,
    },
    /// Outbound: stanzas from `local` to `remote` may now be sent.
    OutboundReady {
        /// Our domain.
        local: String,
        /// Their domain.
        remote: String,
        /// How.
        method: AuthMethod,
    },
    /// Outbound: this stream will never carry stanzas; bounce what waits.
    OutboundFailed {
        /// What to bounce queued stanzas with.
        condition: StanzaCondition,
        /// For the log.
        reason: String,
    },
    /// A stanza from an authenticated peer, addressing checked.
    Stanza(Element),
    /// Receiving role: ask the authoritative server of `originating`
    /// whether `key` is valid (Step 2 of XEP-0220).
    VerifyNeeded {
        /// Our domain (the target of the dialback request).
        receiving: String,
        /// The peer's claimed domain.
        originating: String,
        /// The id of this inbound stream.
        stream_id: String,
        /// The key to verify.
        key: String,
    },
    /// The authoritative server answered a `db:verify` we sent here.
    VerifyAnswered {
        /// Our domain.
        receiving: String,
        /// The domain whose key was checked.
        originating: String,
        /// The stream id the key was for.
        stream_id: String,
        /// `Some(valid)`, or `None` when it answered with an error.
        valid: Option<bool>,
    },
    /// Receiving role: a dialback request (`db:result`) was refused with a
    /// dialback error (XEP-0220 section 2.4); the stream goes on.
    DialbackRefused {
        /// The domain the peer claimed (the request's `from`).
        sender: String,
        /// The domain it asked to reach (the request's `to`).
        target: String,
        /// The condition sent.
        condition: StanzaCondition,
        /// Why, for the log.
        reason: String,
    },
    /// A protocol event worth a log line that changes nothing.
    Notice(String),
    /// The connection is finished; the runtime closes it after sending
    /// what is pending.
    Closed {
        /// Why, for the log.
        reason: String,
    },
}

/// Which side opened the connection, and what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The peer connected to us.
    Inbound,
    /// We connected to `remote` to send stanzas from `local`.
    Outbound {
        /// Our domain.
        local: String,
        /// Their domain.
        remote: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Outbound: TCP not connected yet.
    Connecting,
    /// TLS handshake at the start of a direct TLS connection, or after
    /// `<proceed/>`.
    TlsHandshake,
    /// Waiting for the peer's stream header.
    AwaitHeader,
    /// Outbound: header received, waiting for `<features/>`.
    AwaitFeatures,
    /// Outbound: `<starttls/>` sent.
    AwaitProceed,
    /// Outbound: `<auth/>` sent.
    AwaitSasl,
    /// Stream open: negotiation elements, dialback and stanzas flow.
    Open,
    /// Our closing tag is sent; waiting for the peer's.
    Closing,
    /// Done.
    Closed,
}

/// What the peer's features offered (outbound).
#[derive(Clone, Debug, Default)]
struct Offer {
    starttls: bool,
    external: bool,
    dialback: bool,
    bidi: bool,
}

/// How long a stream we closed waits for the peer's closing tag (RFC 6120
/// section 4.4: "a reasonable amount of time").
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// One s2s connection.
#[derive(Debug)]
pub struct Session {
    dir: Direction,
    direct_tls: bool,
    pipe: Pipe,
    reader: Reader,
    phase: Phase,
    rng: Rng,
    /// Inbound: the id we issued; outbound: the id the peer issued.
    stream_id: String,
    /// Inbound: the peer's header `from` and our domain it addressed.
    peer_from: Option<String>,
    header_to: Option<String>,
    /// Whether the peer declared the `db:` prefix (legacy dialback offer).
    peer_db: bool,
    offer: Offer,
    peer_cert: PeerCert,
    sasl_done: bool,
    bidi: bool,
    /// Inbound: (sender, target) pairs verified; outbound: (local, remote)
    /// pairs ready.
    authorized: BTreeSet<(String, String)>,
    /// Inbound: pairs waiting for the authoritative server.
    verifying: BTreeSet<(String, String)>,
    /// Outbound: `db:verify` elements waiting for the stream to open, and
    /// those sent and not yet answered (receiving, originating, id).
    verify_queue: Vec<Element>,
    verify_sent: BTreeSet<(String, String, String)>,
    /// Outbound: a `db:result` is outstanding.
    result_sent: bool,
    events: VecDeque<SessionEvent>,
    established_by: Instant,
    last_rx: Instant,
    last_tx: Instant,
    /// Last byte received or stanza sent: what keeps a stream from being
    /// idle (our keepalive spaces do not).
    last_active: Instant,
    /// When a stream we closed is given up if the peer does not close too.
    closing_by: Option<Instant>,
    keepalive: bool,
}

fn db(name: &'static str) -> Element {
    Element::new(ns::DIALBACK, name)
}

fn domain_of(jid: &crate::jid::Jid) -> String {
    jid.domain().to_owned()
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
    /// A connection a peer opened to us; `direct_tls` for the XEP-0368 port.
    pub fn inbound(direct_tls: bool, settings: &Settings, rng: Rng, t: Time) -> Session {
        let mut s = Session::new(Direction::Inbound, direct_tls, settings, rng, t);
        s.phase = Phase::AwaitHeader;
        if direct_tls {
            match &settings.tls_server_direct {
                Some(cfg) => match s.pipe.start_server(cfg.clone()) {
                    Ok(()) => s.phase = Phase::TlsHandshake,
                    Err(e) => s.fail_now(format!("cannot start TLS: {e}")),
                },
                None => s.fail_now("direct TLS connection but no certificate configured".into()),
            }
        }
        s
    }

    /// A connection we open to `remote` for stanzas from `local`; call
    /// [`Session::handle_connected`] once TCP is up.
    pub fn outbound(
        local: &str,
        remote: &str,
        direct_tls: bool,
        settings: &Settings,
        rng: Rng,
        t: Time,
    ) -> Session {
        let dir = Direction::Outbound {
            local: local.to_owned(),
            remote: remote.to_owned(),
        };
        let mut s = Session::new(dir, direct_tls, settings, rng, t);
        s.keepalive = settings.policy(remote).is_some_and(|p| p.keepalive);
        s
    }

    fn new(dir: Direction, direct_tls: bool, settings: &Settings, rng: Rng, t: Time) -> Session {
        Session {
            dir,
            direct_tls,
            pipe: Pipe::default(),
            reader: Reader::new(settings.limits),
            phase: Phase::Connecting,
            rng,
            stream_id: String::new(),
            peer_from: None,
            header_to: None,
            peer_db: false,
            offer: Offer::default(),
            peer_cert: PeerCert::None,
            sasl_done: false,
            bidi: false,
            authorized: BTreeSet::new(),
            verifying: BTreeSet::new(),
            verify_queue: Vec::new(),
            verify_sent: BTreeSet::new(),
            result_sent: false,
            events: VecDeque::new(),
            established_by: t.now + settings.establishment_timeout,
            last_rx: t.now,
            last_tx: t.now,
            last_active: t.now,
            closing_by: None,
            keepalive: false,
        }
    }

    /// Which side opened this connection.
    pub fn direction(&self) -> &Direction {
        &self.dir
    }

    /// Whether the connection is finished.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether at least one domain pair is authenticated.
    pub fn is_established(&self) -> bool {
        !self.authorized.is_empty()
    }

    /// Whether TLS protects the connection.
    pub fn is_tls(&self) -> bool {
        self.pipe.is_tls() && !self.pipe.is_handshaking()
    }

    /// Whether bidi (XEP-0288) is in use on this connection.
    pub fn is_bidi(&self) -> bool {
        self.bidi
    }

    /// The authenticated pairs, (sender, target) as seen by the stanzas'
    /// initiator.
    pub fn pairs(&self) -> impl Iterator<Item = &(String, String)> {
        self.authorized.iter()
    }

    /// Outbound: the stream may carry stanzas from `local` to `remote`.
    pub fn can_send(&self, local: &str, remote: &str) -> bool {
        self.phase == Phase::Open
            && match &self.dir {
                Direction::Outbound { .. } => self
                    .authorized
                    .contains(&(local.to_owned(), remote.to_owned())),
                // With bidi, the inverse of a pair the peer proved.
                Direction::Inbound => {
                    self.bidi
                        && self
                            .authorized
                            .contains(&(remote.to_owned(), local.to_owned()))
                }
            }
    }

    /// The next event for the gateway.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Bytes for the network.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.pipe.has_output().then(|| self.pipe.take_output())
    }

    /// When [`Session::handle_timeout`] must next be called.
    pub fn poll_timeout(&self, settings: &Settings) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        if let (Phase::Closing, Some(by)) = (self.phase, self.closing_by) {
            return Some(by);
        }
        let mut next = self.last_active + settings.inactivity_timeout;
        if !self.is_established() {
            next = next.min(self.established_by);
        }
        if self.keepalive && self.phase == Phase::Open {
            next = next.min(self.last_tx + settings.keepalive_interval);
        }
        Some(next)
    }

    /// Time passed: establishment and inactivity timeouts, keepalives.
    pub fn handle_timeout(&mut self, settings: &Settings, t: Time) {
        if self.phase == Phase::Closed {
            return;
        }
        if !self.is_established() && t.now >= self.established_by {
            self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::ConnectionTimeout,
                    "stream not established in time",
                ),
            );
            return;
        }
        if let (Phase::Closing, Some(by)) = (self.phase, self.closing_by) {
            if t.now >= by {
                self.finish("peer did not close its stream".into());
            }
            return;
        }
        if t.now >= self.last_active + settings.inactivity_timeout {
            self.close_gracefully("inactivity timeout", t.now);
            return;
        }
        if self.keepalive
            && self.phase == Phase::Open
            && t.now >= self.last_tx + settings.keepalive_interval
        {
            // RFC 6120 section 4.6.1: a single space between stanzas.
            self.write_raw(b" ", t);
        }
    }

    /// Outbound: the TCP connection is up.
    pub fn handle_connected(&mut self, settings: &Settings, t: Time) {
        if self.phase != Phase::Connecting {
            return;
        }
        self.last_rx = t.now;
        if self.direct_tls {
            let Direction::Outbound { remote, .. } = &self.dir else {
                return;
            };
            let remote = remote.clone();
            let started = match &settings.tls_client_direct {
                Some(cfg) => self
                    .pipe
                    .start_client(cfg.clone(), &remote)
                    .map_err(|e| format!("cannot start TLS: {e}")),
                None => Err("direct TLS but no client certificate".to_owned()),
            };
            match started {
                Ok(()) => self.phase = Phase::TlsHandshake,
                Err(why) => {
                    self.fail_outbound(settings, why.clone());
                    self.finish(why);
                }
            }
        } else {
            self.send_outbound_header(t);
        }
    }

    /// Bytes from the network.
    pub fn handle_bytes(&mut self, bytes: &[u8], settings: &Settings, t: Time) {
        if self.phase == Phase::Closed {
            return;
        }
        self.last_rx = t.now;
        self.last_active = t.now;
        let was_handshaking = self.pipe.is_handshaking();
        if let Err(e) = self.pipe.receive(bytes) {
            self.handle_tls_failure(settings, e.to_string());
            return;
        }
        self.after_receive(was_handshaking, settings, t);
    }

    fn after_receive(&mut self, was_handshaking: bool, settings: &Settings, t: Time) {
        if was_handshaking && !self.pipe.is_handshaking() && self.phase == Phase::TlsHandshake {
            self.tls_established(settings, t);
        }
        loop {
            let plain = self.pipe.take_plain();
            if plain.is_empty() {
                break;
            }
            let mut rest = &plain[..];
            while !rest.is_empty() && self.phase != Phase::Closed {
                let n = self.reader.feed(rest);
                rest = &rest[n..];
                while let Some(ev) = self.reader.poll() {
                    match ev {
                        Ok(ev) => self.on_xml(ev, settings, t),
                        Err(e) => {
                            let cond = StreamCondition::from(e.kind());
                            self.events
                                .push_back(SessionEvent::Notice(format!("bad XML from peer: {e}")));
                            self.stream_error(
                                settings,
                                StreamError::new(cond, e.detail().to_owned()),
                            );
                        }
                    }
                    if self.phase == Phase::TlsHandshake {
                        break;
                    }
                }
                if self.phase == Phase::TlsHandshake && !rest.is_empty() {
                    // The peer's first TLS records came in the same read as
                    // the STARTTLS exchange.
                    let handshaking = self.pipe.is_handshaking();
                    if let Err(e) = self.pipe.push_back_as_ciphertext(rest) {
                        self.handle_tls_failure(settings, e.to_string());
                        return;
                    }
                    rest = &[];
                    if handshaking && !self.pipe.is_handshaking() {
                        self.tls_established(settings, t);
                    }
                }
            }
            if self.phase == Phase::Closed {
                break;
            }
        }
    }

    fn handle_tls_failure(&mut self, settings: &Settings, reason: String) {
        if matches!(self.dir, Direction::Outbound { .. }) && !self.is_established() {
            self.events.push_back(SessionEvent::OutboundFailed {
                condition: StanzaCondition::RemoteServerTimeout,
                reason: reason.clone(),
            });
        }
        let _ = settings;
        self.finish(reason);
    }

    fn tls_established(&mut self, settings: &Settings, t: Time) {
        self.reader.reset();
        let peer_domain = match &self.dir {
            Direction::Outbound { remote, .. } => Some(remote.clone()),
            Direction::Inbound => None,
        };
        self.peer_cert = match (self.pipe.peer_certificates(), peer_domain) {
            (Some(chain), Some(domain)) => check_peer(chain, &settings.trust, t.unix, &domain),
            // Inbound: the domain to check is the stream header's `from`,
            // known only once the new header arrives.
            _ => PeerCert::None,
        };
        match self.dir {
            Direction::Outbound { .. } => self.send_outbound_header(t),
            Direction::Inbound => self.phase = Phase::AwaitHeader,
        }
    }

    /// Inbound: the peer's certificate judged for the domain it claims.
    fn cert_for(&self, settings: &Settings, domain: &str, t: Time) -> PeerCert {
        match self.pipe.peer_certificates() {
            Some(chain) if self.is_tls() => check_peer(chain, &settings.trust, t.unix, domain),
            _ => PeerCert::None,
        }
    }

    fn on_xml(&mut self, ev: Event, settings: &Settings, t: Time) {
        match ev {
            Event::Header(h) => self.on_header(h, settings, t),
            Event::Stanza(e) => {
                if let Some(err) = StreamError::from_element(&e) {
                    self.events.push_back(SessionEvent::Notice(format!(
                        "peer sent stream error: {err}"
                    )));
                    self.fail_outbound(settings, format!("peer sent stream error: {err}"));
                    self.finish(format!("peer sent stream error: {err}"));
                    return;
                }
                match self.dir {
                    Direction::Inbound => self.inbound_element(e, settings, t),
                    Direction::Outbound { .. } => self.outbound_element(e, settings, t),
                }
            }
            Event::End => {
                if self.phase != Phase::Closing {
                    self.write_raw(b"</stream:stream>", t);
                }
                self.fail_outbound(settings, "peer closed the stream".into());
                self.pipe.close();
                self.finish("peer closed the stream".into());
            }
        }
    }

    // ---- inbound (receiving and authoritative roles) ----

    fn on_header(&mut self, h: StreamHeader, settings: &Settings, t: Time) {
        if let Direction::Outbound { .. } = self.dir {
            return self.outbound_header(h, settings);
        }
        self.stream_id = self.rng.token();
        let to = h.to().map(str::to_owned);
        let from = h.from().map(str::to_owned);
        let mut response = StreamHeader::new(Scope::server())
            .with_attr("id", self.stream_id.clone())
            .with_attr("version", "1.0");
        if let Some(f) = &from {
            response = response.with_attr("to", f.clone());
        }
        let served = to
            .as_deref()
            .filter(|d| settings.is_local(d))
            .map(str::to_owned);
        response = response.with_attr(
            "from",
            served
                .clone()
                .unwrap_or_else(|| settings.local_domains.first().cloned().unwrap_or_default()),
        );
        let mut out = Vec::new();
        response.write(&mut out);
        self.send_bytes(&out, t);
        if h.default_ns() != ns::SERVER {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::InvalidNamespace,
                    format!(
                        "content namespace '{}' is not jabber:server",
                        h.default_ns()
                    ),
                ),
            );
        }
        let Some(to) = served else {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::HostUnknown,
                    format!(
                        "{} is not served here",
                        to.unwrap_or_else(|| "(no to)".into())
                    ),
                ),
            );
        };
        if h.version().is_none_or(|v| v.split('.').next() != Some("1")) {
            return self.stream_error(
                settings,
                StreamError::new(StreamCondition::UnsupportedVersion, "XMPP 1.0 streams only"),
            );
        }
        if self.sasl_done && from.as_deref() != self.peer_from.as_deref() {
            return self.stream_error(
                settings,
                StreamError::new(
                    StreamCondition::InvalidFrom,
                    "from changed after authentication",
                ),
            );
        }
        let policy = match from.as_deref() {
            Some(f) => match settings.policy(f) {
                Some(p) => p,
                None => {
                    return self.stream_error(
                        settings,
                        StreamError::new(
                            StreamCondition::PolicyViolation,
                            format!("{f} is not allowed to federate with {to}"),
                        ),
                    )
                }
            },
            // RFC 3920-era peers omit `from`; each dialback request is
            // then judged by its own `from`.
            None => StreamPolicy {
                tls: Negotiation::Optional,
                sasl: Negotiation::NotSupported,
                dialback: true,
                keepalive: false,
            },
        };
        self.peer_db = h.scope().resolve("db") == Some(ns::DIALBACK);
        self.peer_from = from.clone();
        self.header_to = Some(to);
        self.phase = Phase::Open;
        let features = self.inbound_features(policy, from.as_deref(), settings, t);
        self.send_element(&features, t);
    }

    fn inbound_features(
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
            if settings.tls_server.is_some() && policy.tls != Negotiation::NotSupported {
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

    fn inbound_element(&mut self, e: Element, settings: &Settings, t: Time) {
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
            (ns::DIALBACK, _) if self.bidi => self.outbound_dialback_answer(&e, settings, t),
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

    fn inbound_starttls(&mut self, settings: &Settings, t: Time) {
        match (&settings.tls_server, self.pipe.is_tls()) {
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
                self.finish("STARTTLS refused: already TLS or no certificate".into());
            }
        }
    }

    fn inbound_auth(&mut self, e: &Element, settings: &Settings, t: Time) {
        let fail = |s: &mut Session, cond: &'static str, why: String| {
            let failure =
                Element::new(ns::SASL, "failure").with_child(Element::new(ns::SASL, cond));
            s.send_element(&failure, t);
            s.events.push_back(SessionEvent::Notice(format!(
                "SASL EXTERNAL refused: {why}"
            )));
        };
        if e.attr("mechanism") != Some("EXTERNAL") {
            return fail(
                self,
                "invalid-mechanism",
                format!("mechanism {:?}", e.attr("mechanism")),
            );
        }
        let Some(from) = self.peer_from.clone() else {
            return fail(self, "not-authorized", "stream header has no from".into());
        };
        let policy = settings.policy(&from);
        if !policy.is_some_and(|p| p.sasl != Negotiation::NotSupported) || self.sasl_done {
            return fail(self, "invalid-mechanism", "EXTERNAL was not offered".into());
        }
        let text = e.text();
        let authzid = match text.trim() {
            "" | "=" => None,
            b64 => match base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(s) => Some(s),
                None => {
                    return fail(
                        self,
                        "incorrect-encoding",
                        "authzid is not base64 UTF-8".into(),
                    )
                }
            },
        };
        if authzid
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case(&from))
        {
            return fail(
                self,
                "invalid-authzid",
                format!("authzid {authzid:?} is not {from}"),
            );
        }
        match self.cert_for(settings, &from, t) {
            PeerCert::Trusted => {
                self.send_element(&Element::new(ns::SASL, "success"), t);
                self.sasl_done = true;
                self.reader.reset();
                self.phase = Phase::AwaitHeader;
                let to = self.header_to.clone().unwrap_or_default();
                self.authorize_inbound(from, to, AuthMethod::Sasl);
            }
            PeerCert::Untrusted { reason } => fail(self, "not-authorized", reason.to_string()),
            PeerCert::None => fail(self, "not-authorized", "no certificate presented".into()),
        }
    }

    fn authorize_inbound(&mut self, from: String, to: String, method: AuthMethod) {
        if self.authorized.insert((from.clone(), to.clone())) {
            self.events
                .push_back(SessionEvent::InboundAuthorized { from, to, method });
        }
    }

    fn dialback_error(
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
    fn dialback_request(&mut self, e: &Element, settings: &Settings, t: Time) {
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
        let refuse = |s: &mut Session, condition: StanzaCondition, reason: String| {
            s.send_element(
                &Session::dialback_error("result", &target, &sender, condition, None),
                t,
            );
            s.events.push_back(SessionEvent::DialbackRefused {
                sender: sender.clone(),
                target: target.clone(),
                condition,
                reason,
            });
        };
        if !settings.is_local(&target) {
            return refuse(
                self,
                StanzaCondition::ItemNotFound,
                format!("{target} is not served here"),
            );
        }
        if let Some(why) = unverifiable_sender(&sender) {
            // XEP-0220 section 2.4: the asserted identity cannot be
            // established; nothing is resolved or dialled for it.
            return refuse(self, StanzaCondition::NotAcceptable, why);
        }
        let Some(policy) = settings.policy(&sender) else {
            return refuse(
                self,
                StanzaCondition::PolicyViolation,
                "not a federation partner".into(),
            );
        };
        if !policy.dialback || policy.sasl == Negotiation::Required {
            return refuse(
                self,
                StanzaCondition::PolicyViolation,
                "dialback not allowed for this partner".into(),
            );
        }
        if policy.tls == Negotiation::Required && !self.is_tls() {
            return refuse(
                self,
                StanzaCondition::PolicyViolation,
                "TLS required before dialback".into(),
            );
        }
        if self.authorized.contains(&(sender.clone(), target.clone())) {
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
        let pair = (sender.clone(), target.clone());
        if self.verifying.contains(&pair) {
            return;
        }
        let most = settings.bounds.max_pending_dialback_per_stream;
        if self.verifying.len() >= most {
            // Each verification costs a route, DNS queries and a
            // connection: one stream may not start more than `most`.
            return refuse(
                self,
                StanzaCondition::ResourceConstraint,
                format!(
                    "{most} dialback requests already pending on this stream (gateway.max_pending_dialback_per_stream)"
                ),
            );
        }
        self.verifying.insert(pair);
        self.events.push_back(SessionEvent::VerifyNeeded {
            receiving: target,
            originating: sender,
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
    fn authoritative_verify(&mut self, e: &Element, settings: &Settings, t: Time) {
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
            db("verify")
                .with_attr("from", originating.to_owned())
                .with_attr("to", receiving.to_owned())
                .with_attr("id", id.to_owned())
                .with_attr("type", if valid { "valid" } else { "invalid" })
        };
        self.send_element(&reply, t);
    }

    fn inbound_stanza(&mut self, e: Element, settings: &Settings) {
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
        if self.authorized.contains(&pair) {
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

    // ---- outbound (initiating role, and receiving role's verify channel) ----

    fn send_outbound_header(&mut self, t: Time) {
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

    fn outbound_header(&mut self, h: StreamHeader, settings: &Settings) {
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

    fn outbound_element(&mut self, e: Element, settings: &Settings, t: Time) {
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
            (Phase::Open, ns::DIALBACK, _) => self.outbound_dialback_answer(&e, settings, t),
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

    fn outbound_features(&mut self, f: &Element, settings: &Settings, t: Time) {
        let Direction::Outbound { remote, .. } = &self.dir else {
            return;
        };
        let policy = settings.policy(remote).unwrap_or(StreamPolicy {
            tls: Negotiation::Required,
            sasl: Negotiation::Optional,
            dialback: true,
            keepalive: false,
        });
        self.offer = Offer {
            starttls: f.child(ns::TLS, "starttls").is_some(),
            external: f.child(ns::SASL, "mechanisms").is_some_and(|m| {
                m.children()
                    .any(|c| c.name() == "mechanism" && c.text().trim() == "EXTERNAL")
            }),
            dialback: f.child(ns::DIALBACK_FEATURE, "dialback").is_some(),
            bidi: f.child(ns::BIDI_FEATURE, "bidi").is_some(),
        };
        self.phase = Phase::Open;
        if self.sasl_done {
            // Features after the post-SASL restart: the stream is ready.
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
            return;
        }
        if !self.pipe.is_tls() {
            if self.offer.starttls
                && settings.tls_client.is_some()
                && policy.tls != Negotiation::NotSupported
            {
                self.send_element(&Element::new(ns::TLS, "starttls"), t);
                self.phase = Phase::AwaitProceed;
                return;
            }
            if policy.tls == Negotiation::Required {
                self.fail_outbound(
                    settings,
                    "peer does not offer TLS, which this partner requires".into(),
                );
                return self.stream_error(
                    settings,
                    StreamError::new(StreamCondition::PolicyViolation, "TLS is required"),
                );
            }
        }
        if self.offer.bidi && self.pipe.is_tls() {
            self.send_element(&Element::new(ns::BIDI, "bidi"), t);
            self.bidi = true;
        }
        // The stream is now usable for dialback verification requests.
        self.flush_verifies(t);
        let cert_ok = matches!(self.peer_cert, PeerCert::Trusted);
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
            let _ = cert_ok;
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

    /// Sends Step 1 for our pair; false when dialback is not possible.
    fn start_dialback(&mut self, settings: &Settings, t: Time) -> bool {
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
    fn outbound_dialback_answer(&mut self, e: &Element, settings: &Settings, t: Time) {
        let (Some(from), Some(to), Some(kind)) = (e.attr("from"), e.attr("to"), e.attr("type"))
        else {
            return self.events.push_back(SessionEvent::Notice(
                "dialback element without from, to or type ignored".into(),
            ));
        };
        let (from, to) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
        match e.name() {
            "result" => {
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
            "verify" => {
                let id = e.attr("id").unwrap_or_default().to_owned();
                // Answer to our request (to=receiving=us, from=originating).
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
            _ => {}
        }
        let _ = settings;
    }

    fn outbound_stanza(&mut self, e: Element, settings: &Settings) {
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

    fn offer_seen(&self) -> bool {
        // Verification requests may go out once features were received on
        // the final (TLS, if any) stream.
        !matches!(
            self.phase,
            Phase::Connecting | Phase::TlsHandshake | Phase::AwaitHeader | Phase::AwaitFeatures
        )
    }

    fn flush_verifies(&mut self, t: Time) {
        for v in std::mem::take(&mut self.verify_queue) {
            self.send_element(&v, t);
        }
    }

    /// Verify requests sent or queued here and not answered; the gateway
    /// fails them if the connection dies.
    pub fn pending_verifies(&self) -> impl Iterator<Item = &(String, String, String)> {
        self.verify_sent.iter()
    }

    /// Sends a stanza on an authenticated stream.
    pub fn send_stanza(&mut self, e: &Element, t: Time) {
        self.last_active = t.now;
        self.send_element(e, t);
    }

    /// Closes with `</stream:stream>` (SIGTERM, idle streams): RFC 6120
    /// section 4.4; the peer's closing tag or the inactivity timeout ends it.
    pub fn close_gracefully(&mut self, why: &str, now: Instant) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        self.closing_by = Some(now + CLOSE_TIMEOUT);
        self.pipe.send(b"</stream:stream>");
        self.events
            .push_back(SessionEvent::Notice(format!("closing stream: {why}")));
        self.phase = Phase::Closing;
    }

    /// Closes with a stream error; `system-shutdown` on SIGTERM.
    pub fn close_with(&mut self, settings: &Settings, error: StreamError) {
        self.stream_error(settings, error);
    }

    fn stream_error(&mut self, settings: &Settings, error: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        if matches!(self.phase, Phase::Connecting | Phase::TlsHandshake) {
            return self.finish(format!("{error}"));
        }
        let mut out = Vec::new();
        error.to_element().write(&Scope::server(), &mut out);
        out.extend_from_slice(b"</stream:stream>");
        self.pipe.send(&out);
        self.pipe.close();
        self.fail_outbound(settings, format!("stream error {error}"));
        self.finish(format!("stream error sent: {error}"));
    }

    fn fail_outbound(&mut self, settings: &Settings, reason: String) {
        let _ = settings;
        if let Direction::Outbound { .. } = self.dir {
            if !self.is_established() && !self.failed_reported() {
                self.events.push_back(SessionEvent::OutboundFailed {
                    condition: StanzaCondition::RemoteServerTimeout,
                    reason,
                });
            }
        }
    }

    fn failed_reported(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, SessionEvent::OutboundFailed { .. }))
    }

    fn fail_now(&mut self, reason: String) {
        self.finish(reason);
    }

    fn finish(&mut self, reason: String) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(SessionEvent::Closed { reason });
        }
    }

    fn send_element(&mut self, e: &Element, t: Time) {
        let mut out = Vec::new();
        e.write(&Scope::server(), &mut out);
        self.send_bytes(&out, t);
    }

    fn send_bytes(&mut self, bytes: &[u8], t: Time) {
        self.pipe.send(bytes);
        self.last_tx = t.now;
    }

    fn write_raw(&mut self, bytes: &[u8], t: Time) {
        self.send_bytes(bytes, t);
    }
}
