//! One server-to-server connection, in either direction, as a sans-IO state
//! machine: stream headers and features, STARTTLS or direct TLS, SASL
//! EXTERNAL (XEP-0178), Server Dialback (XEP-0220) in all three roles,
//! bidi (XEP-0288), keepalives, timeouts, stream errors and closing.
//!
//! A session knows nothing of other connections. What needs another
//! connection (verifying a dialback key with the authoritative server,
//! routing a stanza) leaves as a [`SessionEvent`] for the gateway, which
//! answers through methods such as [`Session::dialback_verified`].
//!
//! This file holds the [`Session`], its phases and what both sides share
//! (bytes in and out through the pipe, TLS set-up, closing); the rest is
//! split by concern: `settings` (what all sessions share), `event` (what
//! a session reports), `inbound` (the receiving side), `outbound` (the
//! initiating side), `dialback` (XEP-0220's three roles) and `timers`
//! (Lync's clocks and our keepalives).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::rng::Rng;
use crate::tls::{check_peer, PeerCert};
use crate::xml::{Element, Event, Scope, Stanza};

use super::pipe::Pipe;
use super::stanza::StanzaCondition;
use super::{StreamCondition, StreamError};
use crate::xmpp::input::{Input, Read};
use pairs::Pairs;

mod dialback;
mod event;
mod inbound;
mod outbound;
mod pairs;
mod recheck;
mod settings;
mod timers;

pub use crate::xmpp::input::Reading;
pub use event::{AuthMethod, Direction, SessionEvent};
pub use settings::{S2sBounds, Settings, Time};
pub use timers::keepalive_period;

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
    /// STARTTLS with `<required/>`: the peer goes no further without TLS.
    starttls_required: bool,
    external: bool,
    dialback: bool,
    bidi: bool,
}

/// How long a stream we closed waits for the peer's closing tag (RFC 6120
/// section 4.4: "a reasonable amount of time").
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// One s2s connection.
pub struct Session {
    dir: Direction,
    direct_tls: bool,
    pipe: Pipe,
    reader: Input,
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
    authorized: Pairs,
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
    /// Last byte received, whitespace included: the partner is alive.
    last_rx: Instant,
    /// Last byte sent: when our next keepalive is due.
    last_tx: Instant,
    /// Last element received or stanza sent: what keeps a stream from
    /// being idle (whitespace, ours or the peer's, does not).
    last_active: Instant,
    /// When a stream we closed is given up if the peer does not close too.
    closing_by: Option<Instant>,
    keepalive: bool,
}

impl std::fmt::Debug for Session {
    /// What an operator asks of a stream: which way, how far, how
    /// protected, and for whom (never keys, buffers or generator state).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("direction", &self.dir)
            .field("phase", &self.phase)
            .field("tls", &self.tls_version())
            .field("bidi", &self.bidi)
            .field("authorized", &self.authorized)
            .field("verifying", &self.verifying.len())
            .finish_non_exhaustive()
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
            reader: Input::new(settings.limits, settings.reading, crate::xml::ns::SERVER),
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
            authorized: Pairs::default(),
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

    /// The TLS version protecting the connection, if any.
    pub fn tls_version(&self) -> Option<&'static str> {
        self.pipe.tls_version()
    }

    /// When the peer's TLS certificate expires (notAfter, Unix seconds),
    /// if it presented one that can be read: what an operator checks
    /// before a partner's streams start failing.
    pub fn peer_certificate_expiry(&self) -> Option<u64> {
        let leaf = self.pipe.peer_certificates()?.first()?;
        crate::tls::cert_not_after(leaf).ok()
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
                Direction::Outbound { .. } => self.authorized.contains(local, remote),
                // With bidi, the inverse of a pair the peer proved.
                Direction::Inbound => self.bidi && self.authorized.contains(remote, local),
            }
    }

    /// The next event for the gateway.
    /// Once drained the queue's memory goes back: an idle link holds none.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        event
    }

    /// Bytes for the network.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.pipe.has_output().then(|| self.pipe.take_output())
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
                        Ok(Read::Xml(ev)) => self.on_xml(ev, settings, t),
                        Ok(Read::Relay(stanza)) => self.on_relay(stanza, settings, t),
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
        self.reader.release_idle();
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

    fn on_xml(&mut self, ev: Event, settings: &Settings, t: Time) {
        self.last_active = t.now;
        match ev {
            Event::Header(h) => match self.dir {
                Direction::Inbound => self.inbound_header(h, settings, t),
                Direction::Outbound { .. } => self.outbound_header(h, settings),
            },
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

    /// A stanza from a raw input: passed on as it came when it comes from
    /// a domain authenticated for it, over an inbound stream or, with
    /// bidi, our outbound one; anything else takes the tree path, which
    /// answers it.
    fn on_relay(&mut self, stanza: Stanza, settings: &Settings, t: Time) {
        let addr = crate::xmpp::stanza::addressing_of(stanza.from(), stanza.to());
        let pair = addr.as_ref().map(|a| (a.from.domain(), a.to.domain()));
        let authorized = self.phase == Phase::Open
            && match (&self.dir, pair) {
                (Direction::Inbound, Some((from, to))) => self.authorized.contains(from, to),
                (Direction::Outbound { local, remote }, Some((from, to))) => {
                    self.bidi && self.is_established() && from == remote && to == local
                }
                _ => false,
            };
        if authorized {
            self.last_active = t.now;
            self.events.push_back(SessionEvent::Relay(stanza));
            return;
        }
        match stanza.element() {
            Ok(e) => self.on_xml(Event::Stanza(e), settings, t),
            Err(e) => self.stream_error(
                settings,
                StreamError::new(StreamCondition::from(e.kind()), e.detail().to_owned()),
            ),
        }
    }

    /// Sends a stanza on an authenticated stream.
    pub fn send_stanza(&mut self, e: &Element, t: Time) {
        self.last_active = t.now;
        self.send_element(e, t);
    }

    /// Sends a stanza as it came over another stream, unread: only a
    /// self-contained one ([`Stanza::self_contained`]), whose unprefixed
    /// names then take this stream's content namespace as
    /// [`Self::send_stanza`]'s tree would; false when it was not sent.
    pub fn send_raw(&mut self, stanza: &Stanza, t: Time) -> bool {
        if !stanza.self_contained() {
            return false;
        }
        self.last_active = t.now;
        self.send_bytes(stanza.text().as_bytes(), t);
        true
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
