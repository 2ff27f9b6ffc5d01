//! SIP transports as the endpoint sees them: where a message goes, and
//! the state of each TCP or TLS connection (its byte pipe and framer).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;

use crate::gateway::ConnId;
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
    /// Whether TLS runs on it.
    pub tls: bool,
    pipe: Pipe,
    framer: StreamFramer,
    /// Outbound and not connected yet: plaintext waits here.
    waiting: Option<Vec<u8>>,
}

impl SipConn {
    /// A connection a peer opened to a SIP listener.
    pub fn accepted(
        peer: SocketAddr,
        tls: Option<Arc<ServerConfig>>,
        limits: Limits,
    ) -> Result<SipConn, TlsFailure> {
        let mut pipe = Pipe::default();
        let is_tls = tls.is_some();
        if let Some(config) = tls {
            pipe.start_server(config)?;
        }
        Ok(SipConn {
            peer,
            tls: is_tls,
            pipe,
            framer: StreamFramer::new(limits),
            waiting: None,
        })
    }

    /// A plain TCP connection we open; bytes wait for [`SipConn::connected`].
    pub fn outbound(peer: SocketAddr, limits: Limits) -> SipConn {
        SipConn {
            peer,
            tls: false,
            pipe: Pipe::default(),
            framer: StreamFramer::new(limits),
            waiting: Some(Vec::new()),
        }
    }

    /// The TCP connection is up: what waited goes out.
    pub fn connected(&mut self) {
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

    /// Bytes from the wire; frames come out of [`SipConn::poll`].
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), TlsFailure> {
        self.pipe.receive(bytes)?;
        let plain = self.pipe.take_plain();
        self.framer.feed(&plain);
        Ok(())
    }

    /// The next message or keepalive read.
    pub fn poll(&mut self) -> Option<Result<Frame, ParseError>> {
        self.framer.poll()
    }
}
