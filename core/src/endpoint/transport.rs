//! SIP transports as the endpoint sees them: where a message goes, and
//! the state of each TCP or TLS connection (its byte pipe and framer, and
//! the times its timeouts count from).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ServerConfig};

use crate::ids::ConnId;
use crate::sip::{Frame, Limits, ParseError, StreamFramer};
use crate::xmpp::{Pipe, TlsFailure};

/// Where a SIP message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// A datagram from our socket `local` to `peer`.
    Udp {
        /// Our socket.
        local: SocketAddr,
        /// Theirs.
        peer: SocketAddr,
    },
    /// A TCP or TLS connection.
    Conn(ConnId),
}

impl Dest {
    /// Whether the transport is reliable (no retransmissions).
    pub fn reliable(self) -> bool {
        matches!(self, Dest::Conn(_))
    }
}

/// One SIP connection over TCP or TLS.
#[derive(Debug)]
pub struct SipConn {
    /// The remote address.
    pub peer: SocketAddr,
    security: Security,
    pipe: Pipe,
    framer: StreamFramer,
    /// Outbound and not usable yet (not connected, or TLS whose server is
    /// not verified): plaintext waits here.
    waiting: Option<Vec<u8>>,
    timing: Timing,
}

/// The timeouts of SIP connections (`sip.handshake_timeout`,
/// `sip.request_timeout`, `sip.idle_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connected and through TLS (outbound), or through TLS (accepted).
    pub handshake: Duration,
    /// The first message of an accepted connection, and any message once
    /// started.
    pub request: Duration,
    /// Silence from the peer, unless the connection carries a live
    /// binding.
    pub idle: Duration,
}

/// Which timeout of a connection ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Not connected, or its TLS handshake not finished.
    Handshake,
    /// Accepted, and no complete message yet.
    FirstMessage,
    /// A message started and never finished.
    Unfinished,
    /// Nothing from the peer for a while, and no live binding over it.
    Idle,
}

impl Expiry {
    /// The configuration key that sets this timeout.
    pub fn key(self) -> &'static str {
        match self {
            Expiry::Handshake => "sip.handshake_timeout",
            Expiry::FirstMessage | Expiry::Unfinished => "sip.request_timeout",
            Expiry::Idle => "sip.idle_timeout",
        }
    }

    /// What happened, for a log line followed by the duration: on a
    /// connection a peer opened (`inbound`) or one we opened.
    pub fn describe(self, inbound: bool) -> &'static str {
        match self {
            Expiry::Handshake if inbound => "TLS handshake not finished within",
            Expiry::Handshake => "not connected (and through TLS) within",
            Expiry::FirstMessage => "no complete message within",
            Expiry::Unfinished => "a message left unfinished for",
            Expiry::Idle => "idle (no message or keepalive, no live registration over it) for",
        }
    }

    /// How long that timeout is.
    pub fn duration(self, timeouts: &Timeouts) -> Duration {
        match self {
            Expiry::Handshake => timeouts.handshake,
            Expiry::FirstMessage | Expiry::Unfinished => timeouts.request,
            Expiry::Idle => timeouts.idle,
        }
    }
}

/// What a connection's timeouts count from.
#[derive(Debug)]
struct Timing {
    /// A peer opened it (else we did).
    inbound: bool,
    /// When it was accepted, or asked of the runtime.
    opened: Instant,
    /// When it became usable: connected, and through its TLS handshake.
    ready: Option<Instant>,
    /// The peer's last complete message or keepalive (at first, `opened`).
    last_heard: Instant,
    /// Whether the peer has sent a complete message.
    heard_message: bool,
    /// When the message being received started, if one is unfinished.
    partial_since: Option<Instant>,
    /// Whether the connection carries a live binding (a flow): no idle
    /// timeout then.
    flow: bool,
}

impl Timing {
    fn new(inbound: bool, ready: bool, now: Instant) -> Timing {
        Timing {
            inbound,
            opened: now,
            ready: ready.then_some(now),
            last_heard: now,
            heard_message: false,
            partial_since: None,
            flow: false,
        }
    }

    /// The earliest timeout that applies, and when it runs out.
    fn deadline(&self, timeouts: &Timeouts) -> Option<(Instant, Expiry)> {
        let Some(ready) = self.ready else {
            return Some((self.opened + timeouts.handshake, Expiry::Handshake));
        };
        let first = (self.inbound && !self.heard_message)
            .then(|| (ready + timeouts.request, Expiry::FirstMessage));
        let unfinished = self
            .partial_since
            .map(|since| (since + timeouts.request, Expiry::Unfinished));
        let idle = (!self.flow).then(|| (self.last_heard + timeouts.idle, Expiry::Idle));
        [first, unfinished, idle]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }
}

/// Whether TLS runs on a connection, which side opened it, and what the
/// peer's certificate proved.
#[derive(Debug)]
enum Security {
    Plain,
    /// A peer opened TLS to our listener; its client certificate, if any,
    /// is judged once the handshake ends.
    Accepted {
        proven: Judged,
    },
    /// We open TLS toward `name`: the handshake starts once TCP is up
    /// (`config` waits until then) and plaintext waits until the server's
    /// certificate proves `name`.
    Opened {
        name: String,
        config: Option<Arc<ClientConfig>>,
        verified: bool,
    },
}

/// A client certificate, judged or not yet.
#[derive(Debug)]
enum Judged {
    Pending,
    /// The trusted name it proved, if any.
    Done(Option<String>),
}

/// A TLS connection whose handshake has ended and whose peer certificate
/// waits to be judged ([`SipConn::pending_check`]).
#[derive(Debug, PartialEq, Eq)]
pub enum PendingCheck<'a> {
    /// A client of our listener: which trusted name, if any, does its
    /// certificate prove?
    Client,
    /// A server we opened TLS to: does its certificate prove this name?
    Server(&'a str),
}

impl SipConn {
    /// A connection a peer opened to a SIP listener.
    pub fn accepted(
        peer: SocketAddr,
        tls: Option<Arc<ServerConfig>>,
        limits: Limits,
        now: Instant,
    ) -> Result<SipConn, TlsFailure> {
        let plain = tls.is_none();
        let mut pipe = Pipe::default();
        let security = match tls {
            Some(config) => {
                pipe.start_server(config)?;
                Security::Accepted {
                    proven: Judged::Pending,
                }
            }
            None => Security::Plain,
        };
        Ok(SipConn {
            peer,
            security,
            pipe,
            framer: StreamFramer::new(limits),
            waiting: None,
            timing: Timing::new(true, plain, now),
        })
    }

    /// A connection we open, plain TCP or (with `tls`: the client
    /// configuration and the name the server must prove) TLS; bytes wait
    /// for [`SipConn::connected`] (and, over TLS, [`SipConn::verified`]).
    pub fn outbound(
        peer: SocketAddr,
        tls: Option<(Arc<ClientConfig>, String)>,
        limits: Limits,
        now: Instant,
    ) -> SipConn {
        let security = match tls {
            Some((config, name)) => Security::Opened {
                name,
                config: Some(config),
                verified: false,
            },
            None => Security::Plain,
        };
        SipConn {
            peer,
            security,
            pipe: Pipe::default(),
            framer: StreamFramer::new(limits),
            waiting: Some(Vec::new()),
            timing: Timing::new(false, false, now),
        }
    }

    /// Whether TLS runs on it.
    pub fn is_tls(&self) -> bool {
        !matches!(self.security, Security::Plain)
    }

    /// The name the server must prove, on TLS we opened.
    pub fn opened_to(&self) -> Option<&str> {
        match &self.security {
            Security::Opened { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The name the peer's certificate proved: a trusted name for a
    /// client of our listener, the server's name on TLS we opened.
    pub fn proven(&self) -> Option<&str> {
        match &self.security {
            Security::Accepted {
                proven: Judged::Done(name),
            } => name.as_deref(),
            Security::Opened {
                name,
                verified: true,
                ..
            } => Some(name),
            _ => None,
        }
    }

    /// What must be judged now that the handshake has ended, if anything.
    pub fn pending_check(&self) -> Option<PendingCheck<'_>> {
        if self.pipe.is_handshaking() {
            return None;
        }
        match &self.security {
            Security::Accepted {
                proven: Judged::Pending,
            } => Some(PendingCheck::Client),
            Security::Opened {
                name,
                config: None,
                verified: false,
            } => Some(PendingCheck::Server(name)),
            _ => None,
        }
    }

    /// The certificate chain the peer presented (empty if none).
    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        self.pipe.peer_certificates().unwrap_or_default()
    }

    /// Records what a client's certificate proved.
    pub fn judged(&mut self, name: Option<String>) {
        if let Security::Accepted { proven } = &mut self.security {
            *proven = Judged::Done(name);
        }
    }

    /// The server's certificate proved its name: what waited goes out.
    pub fn verified(&mut self) {
        if let Security::Opened { verified, .. } = &mut self.security {
            *verified = true;
            self.release();
        }
    }

    /// The TCP connection is up: plain TCP sends what waited (and is
    /// ready), TLS starts its handshake.
    pub fn connected(&mut self, now: Instant) -> Result<(), TlsFailure> {
        match &mut self.security {
            Security::Opened { name, config, .. } => match config.take() {
                Some(config) => self.pipe.start_client(config, name),
                None => Ok(()),
            },
            _ => {
                self.release();
                self.timing.ready.get_or_insert(now);
                Ok(())
            }
        }
    }

    fn release(&mut self) {
        if let Some(bytes) = self.waiting.take() {
            self.pipe.send(&bytes);
        }
    }

    /// Queues plaintext.
    pub fn send(&mut self, bytes: &[u8]) {
        match &mut self.waiting {
            Some(w) => w.extend_from_slice(bytes),
            None => self.pipe.send(bytes),
        }
    }

    /// What to put on the wire now.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.pipe.take_output()
    }

    /// Bytes from the wire at `now`; frames come out of
    /// [`SipConn::poll`].
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Result<(), TlsFailure> {
        self.pipe.receive(bytes)?;
        if self.timing.ready.is_none() && self.handshake_done() {
            self.timing.ready = Some(now);
        }
        let plain = self.pipe.take_plain();
        self.framer.feed(&plain);
        let timing = &mut self.timing;
        timing.partial_since = match (self.framer.mid_message(), self.framer.has_frames()) {
            (false, _) => None,
            // Something completed: what is unfinished started with it.
            (true, true) => Some(now),
            (true, false) => timing.partial_since.or(Some(now)),
        };
        Ok(())
    }

    /// Whether it is connected and through its TLS handshake, if any.
    fn handshake_done(&self) -> bool {
        let started = !matches!(
            self.security,
            Security::Opened {
                config: Some(_),
                ..
            }
        );
        started && !self.pipe.is_handshaking()
    }

    /// The next message or keepalive read (which counts as the peer's
    /// activity at `now`).
    pub fn poll(&mut self, now: Instant) -> Option<Result<Frame, ParseError>> {
        let frame = self.framer.poll();
        if let Some(Ok(f)) = &frame {
            self.timing.last_heard = now;
            self.timing.heard_message |= matches!(f, Frame::Message(_));
        }
        frame
    }

    /// Whether a peer opened it.
    pub fn is_inbound(&self) -> bool {
        self.timing.inbound
    }

    /// Whether it carries a live binding (a flow, kept while the binding
    /// lives); when it stops being one, its idle time counts from `now`.
    pub fn set_flow(&mut self, flow: bool, now: Instant) {
        if self.timing.flow && !flow {
            self.timing.last_heard = now;
        }
        self.timing.flow = flow;
    }

    /// When the first of its timeouts runs out, and which.
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<(Instant, Expiry)> {
        self.timing.deadline(timeouts)
    }
}
