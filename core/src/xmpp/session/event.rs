//! What a session tells the gateway, and what it was opened for.

use crate::xml::{Element, Stanza};
use crate::xmpp::stanza::StanzaCondition;

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
    /// A stanza over an authenticated inbound stream, as it came, from a
    /// session whose settings say `relay`: checked, addressed, authorized,
    /// never built into a tree.
    Relay(Stanza),
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
