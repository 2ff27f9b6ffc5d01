//! The names the core and its runtime give connections, DNS queries and
//! listeners: the vocabulary every other module shares.

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
    /// The edge's internal link, where gateways attach (23456).
    Internal,
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
