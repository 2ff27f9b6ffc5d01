//! The vocabulary the core and its runtime share: connection and query
//! ids, listeners, and the [`Output`]s the runtime carries out.
//!
//! Every part of the core (XMPP sessions through the gateway, the SIP
//! side) reports through these types, so none of them needs another's.

use std::net::SocketAddr;
use std::time::Duration;

use crate::event::Event;
use crate::store::Persist;
use crate::xml::Element;

/// A connection, as the gateway and the runtime name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A DNS query in flight, as the gateway and the runtime name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// Which listener accepted a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The STARTTLS port (5269).
    S2s,
    /// The direct TLS port (XEP-0368, 5270).
    S2sDirectTls,
    /// SIP over TCP (5060).
    SipTcp,
    /// SIP over TLS (5061).
    SipTls,
}

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
    /// A stanza for a local user, for the gateway role (translation to
    /// SIP). Until that exists, only replies land here (iq results and
    /// errors); requests are answered `service-unavailable` by the core.
    Stanza(Element),
    /// Changes for the store, to apply in order.
    Persist(Vec<Persist>),
    /// Something happened: for the log, metrics and tests.
    Event(Event),
}

/// Hands out connection ids: one per gateway, for XMPP and SIP alike, so
/// that two connections never share one.
#[derive(Debug)]
pub struct ConnIds {
    next: u64,
}

impl Default for ConnIds {
    fn default() -> Self {
        ConnIds { next: 1 }
    }
}

impl ConnIds {
    /// A fresh id.
    pub fn allocate(&mut self) -> ConnId {
        let id = ConnId(self.next);
        self.next += 1;
        id
    }
}
