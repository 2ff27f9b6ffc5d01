//! SIP transports as the endpoint sees them: where a message goes, and
//! the state of each TCP or TLS connection (its byte pipe and framer).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ServerConfig};

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
    security: Security,
    pipe: Pipe,
    framer: StreamFramer,
    /// Outbound and not usable yet (not connected, or TLS whose server is
    /// not verified): plaintext waits here.
    waiting: Option<Vec<u8>>,
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
    ) -> Result<SipConn, TlsFailure> {
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
        })
    }

    /// A connection we open, plain TCP or (with `tls`: the client
    /// configuration and the name the server must prove) TLS; bytes wait
    /// for [`SipConn::connected`] (and, over TLS, [`SipConn::verified`]).
    pub fn outbound(
        peer: SocketAddr,
        tls: Option<(Arc<ClientConfig>, String)>,
        limits: Limits,
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

    /// The TCP connection is up: plain TCP sends what waited, TLS starts
    /// its handshake.
    pub fn connected(&mut self) -> Result<(), TlsFailure> {
        match &mut self.security {
            Security::Opened { name, config, .. } => match config.take() {
                Some(config) => self.pipe.start_client(config, name),
                None => Ok(()),
            },
            _ => {
                self.release();
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
