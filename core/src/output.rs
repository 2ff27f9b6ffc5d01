//! What the runtime carries out: the [`Output`]s of the gateway.
//!
//! The XMPP and SIP sides both produce these (with the ids of
//! [`crate::ids`]), so neither needs the other's types.

use std::net::SocketAddr;
use std::time::Duration;

use crate::event::Event;
use crate::ids::{ConnId, QueryId};
use crate::store::Persist;
use crate::xml::Element;

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send bytes on a connection.
    Transmit {
        /// Which.
        conn: ConnId,
        /// What.
        bytes: Vec<u8>,
    },
    /// Send a UDP datagram from our SIP socket `local`.
    Datagram {
        /// Which of our sockets.
        local: SocketAddr,
        /// To whom.
        peer: SocketAddr,
        /// What.
        bytes: Vec<u8>,
    },
    /// Stop reading a connection: what it carries cannot be taken now
    /// (backpressure). Bytes already read may still be handed in.
    PauseReading {
        /// Which.
        conn: ConnId,
    },
    /// Read a paused connection again.
    ResumeReading {
        /// Which.
        conn: ConnId,
    },
    /// Open a TCP connection; answer with `handle_connected` or
    /// `handle_connect_failed`.
    Connect {
        /// The id the connection will have.
        conn: ConnId,
        /// Where.
        addr: SocketAddr,
    },
    /// Close a connection once what was transmitted is sent.
    Close {
        /// Which.
        conn: ConnId,
    },
    /// Send a DNS query to the resolver (one UDP datagram from a fresh
    /// socket, or over TCP with 2-byte length framing when `tcp`); answer
    /// with `Gateway::handle_dns`.
    DnsQuery {
        /// Which query.
        query: QueryId,
        /// The DNS message, unframed.
        bytes: Vec<u8>,
        /// Send over TCP (after a truncated UDP answer).
        tcp: bool,
        /// Give up after this: the core no longer waits for the reply.
        timeout: Duration,
    },
    /// A reply (iq result or error) for the local side itself: the answer
    /// to `xfed ping`, or to what a test sent with `Gateway::send`.
    /// Stanzas for local users go to the SIP side, never here.
    Stanza(Element),
    /// Changes for the store, to apply in order.
    Persist(Vec<Persist>),
    /// Something happened: for the log, metrics and tests.
    Event(Event),
}
