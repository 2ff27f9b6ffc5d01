//! Namespace names the core matches on, and interning of the common ones so
//! that a parsed stanza does not allocate a string per element for them.

use std::borrow::Cow;

/// RFC 6120 stream namespace (`stream:` prefix).
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// Default content namespace of server-to-server streams.
pub const SERVER: &str = "jabber:server";
/// Default content namespace of client streams (never served, but recognised).
pub const CLIENT: &str = "jabber:client";
/// XEP-0114 component streams.
pub const COMPONENT: &str = "jabber:component:accept";
/// XEP-0220 Server Dialback elements (`db:` prefix).
pub const DIALBACK: &str = "jabber:server:dialback";
/// XEP-0220 dialback stream feature (with errors support).
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
/// Stream error conditions.
pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// STARTTLS negotiation.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL negotiation.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// XEP-0288 bidi stream feature.
pub const BIDI_FEATURE: &str = "urn:xmpp:features:bidi";
/// XEP-0288 bidi enable element.
pub const BIDI: &str = "urn:xmpp:bidi";
/// XEP-0199 ping.
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0030 disco#info.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 disco#items.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0085 chat states.
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// The `xml:` prefix, bound by definition (used by `xml:lang`).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// The `xmlns` pseudo-namespace; it may never be declared.
pub const XMLNS: &str = "http://www.w3.org/2000/xmlns/";

const KNOWN: &[&str] = &[
    SERVER,
    CLIENT,
    STREAM,
    DIALBACK,
    DIALBACK_FEATURE,
    STREAMS,
    STANZAS,
    TLS,
    SASL,
    BIDI_FEATURE,
    BIDI,
    PING,
    DISCO_INFO,
    DISCO_ITEMS,
    CHATSTATES,
    COMPONENT,
    XML,
];

/// Returns a borrowed `'static` name for the namespaces the core knows,
/// an owned copy otherwise.
pub fn intern(ns: &str) -> Cow<'static, str> {
    match KNOWN.iter().find(|k| **k == ns) {
        Some(k) => Cow::Borrowed(k),
        None if ns.is_empty() => Cow::Borrowed(""),
        None => Cow::Owned(ns.to_owned()),
    }
}

const NAMES: &[&str] = &[
    "message",
    "presence",
    "iq",
    "body",
    "subject",
    "thread",
    "error",
    "text",
    "from",
    "to",
    "type",
    "id",
    "stream",
    "features",
    "result",
    "verify",
    "query",
    "identity",
    "feature",
    "ping",
    "active",
    "composing",
    "paused",
    "inactive",
    "gone",
    "show",
    "status",
    "priority",
    "version",
    "name",
    "category",
    "var",
    "lang",
];

/// Like [`intern`], for the element and attribute names stanzas repeat.
pub fn intern_name(name: &str) -> Cow<'static, str> {
    match NAMES.iter().find(|k| **k == name) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(name.to_owned()),
    }
}
