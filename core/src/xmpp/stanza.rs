//! Stanzas on s2s streams: kinds, addressing, and error replies
//! (RFC 6120 sections 8.1 to 8.3).

use std::fmt;

use crate::jid::Jid;
use crate::xml::{ns, Element};

/// The three stanza kinds; anything else at the top level of a stream is
/// a negotiation element or `unsupported-stanza-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `<message/>`
    Message,
    /// `<presence/>`
    Presence,
    /// `<iq/>`
    Iq,
}

impl Kind {
    /// The kind of a top-level element in the stream's content namespace.
    pub fn of(e: &Element) -> Option<Kind> {
        Kind::named(e.ns(), e.name())
    }

    /// The same from the element's expanded name alone (a raw stanza's).
    pub fn named(ns: &str, name: &str) -> Option<Kind> {
        if ns != ns::SERVER {
            return None;
        }
        Kind::of_name(name)
    }

    /// The kind a stanza of this local name is, in whatever namespace its
    /// stream gives stanzas.
    pub fn of_name(name: &str) -> Option<Kind> {
        match name {
            "message" => Some(Kind::Message),
            "presence" => Some(Kind::Presence),
            "iq" => Some(Kind::Iq),
            _ => None,
        }
    }
}

/// Whether a stanza is itself an error (never answered with an error).
pub fn is_error(e: &Element) -> bool {
    e.attr("type") == Some("error")
}

/// Whether an iq requires a reply (get or set).
pub fn is_iq_request(e: &Element) -> bool {
    Kind::of(e) == Some(Kind::Iq) && matches!(e.attr("type"), Some("get" | "set"))
}

/// A stanza's `from` and `to`, both present and valid, as s2s requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addressing {
    /// The sender.
    pub from: Jid,
    /// The recipient.
    pub to: Jid,
}

/// Reads the addressing of a stanza received over s2s; `None` means
/// `improper-addressing` (missing, empty or malformed `from`/`to`).
pub fn addressing(e: &Element) -> Option<Addressing> {
    addressing_of(e.attr("from"), e.attr("to"))
}

/// [`addressing`] from the two attributes' values.
pub fn addressing_of(from: Option<&str>, to: Option<&str>) -> Option<Addressing> {
    let from = Jid::parse(from?).ok()?;
    let to = Jid::parse(to?).ok()?;
    Some(Addressing { from, to })
}

/// The error `type` attribute values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry.
    Cancel,
    /// Proceed (a warning).
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting.
    Wait,
}

impl ErrorType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }

    /// Reads the attribute value.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "auth" => ErrorType::Auth,
            "cancel" => ErrorType::Cancel,
            "continue" => ErrorType::Continue,
            "modify" => ErrorType::Modify,
            "wait" => ErrorType::Wait,
            _ => return None,
        })
    }
}

macro_rules! stanza_conditions {
    ($($variant:ident => $name:literal, $ty:ident;)*) => {
        /// The 22 stanza error conditions of RFC 6120 section 8.3.3.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum StanzaCondition {
            $(#[doc = concat!("`<", $name, "/>`")] $variant,)*
        }

        impl StanzaCondition {
            /// Every condition, in RFC order.
            pub const ALL: &'static [StanzaCondition] = &[$(StanzaCondition::$variant,)*];

            /// The element name in `urn:ietf:params:xml:ns:xmpp-stanzas`.
            pub fn as_str(self) -> &'static str {
                match self { $(StanzaCondition::$variant => $name,)* }
            }

            /// The error type RFC 6120 recommends for this condition.
            pub fn default_type(self) -> ErrorType {
                match self { $(StanzaCondition::$variant => ErrorType::$ty,)* }
            }

            /// Reads a condition element name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(StanzaCondition::$variant),)* _ => None }
            }
        }
    };
}

stanza_conditions! {
    BadRequest => "bad-request", Modify;
    Conflict => "conflict", Cancel;
    FeatureNotImplemented => "feature-not-implemented", Cancel;
    Forbidden => "forbidden", Auth;
    Gone => "gone", Cancel;
    InternalServerError => "internal-server-error", Cancel;
    ItemNotFound => "item-not-found", Cancel;
    JidMalformed => "jid-malformed", Modify;
    NotAcceptable => "not-acceptable", Modify;
    NotAllowed => "not-allowed", Cancel;
    NotAuthorized => "not-authorized", Auth;
    PolicyViolation => "policy-violation", Modify;
    RecipientUnavailable => "recipient-unavailable", Wait;
    Redirect => "redirect", Modify;
    RegistrationRequired => "registration-required", Auth;
    RemoteServerNotFound => "remote-server-not-found", Cancel;
    RemoteServerTimeout => "remote-server-timeout", Wait;
    ResourceConstraint => "resource-constraint", Wait;
    ServiceUnavailable => "service-unavailable", Cancel;
    SubscriptionRequired => "subscription-required", Auth;
    UndefinedCondition => "undefined-condition", Cancel;
    UnexpectedRequest => "unexpected-request", Wait;
}

impl fmt::Display for StanzaCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `<error/>` child for a condition, with optional English text.
pub fn error_element(condition: StanzaCondition, text: Option<&str>) -> Element {
    let mut e = Element::new(ns::SERVER, "error")
        .with_attr("type", condition.default_type().as_str())
        .with_child(Element::new(ns::STANZAS, condition.as_str()));
    if let Some(text) = text {
        e.push_child(
            Element::new(ns::STANZAS, "text")
                .with_attr_ns(ns::XML, "lang", "en")
                .with_text(text),
        );
    }
    e
}

/// The error reply to `stanza` (RFC 6120 section 8.3.1): same kind and id,
/// `from`/`to` swapped, and an `<error/>`. Of the payload only a message's
/// `<thread/>` is kept (so a client files the error in its conversation):
/// echoing a body would let any sender double what we write for it, and
/// RFC 6120 makes the copy optional. `None` for an error stanza, which is
/// never answered with another error.
pub fn error_reply(
    stanza: &Element,
    condition: StanzaCondition,
    text: Option<&str>,
) -> Option<Element> {
    if is_error(stanza) {
        return None;
    }
    let mut reply = Element::new(ns::SERVER, stanza.name().to_owned()).with_attr("type", "error");
    if let Some(id) = stanza.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(from) = stanza.attr("to") {
        reply.set_attr("from", from);
    }
    if let Some(to) = stanza.attr("from") {
        reply.set_attr("to", to);
    }
    if let Some(thread) = stanza.child(ns::SERVER, "thread") {
        reply.push_child(thread.clone());
    }
    reply.push_child(error_element(condition, text));
    Some(reply)
}

/// One line naming a stanza for the log: kind, type, id, addresses, the
/// error condition and the payload's element names, never its text (a
/// message body is logged only where `log_message_bodies` says so).
pub fn summary(e: &Element) -> String {
    let attr = |name: &str| e.attr(name).unwrap_or("");
    let mut line = format!(
        "<{}> type={:?} id={:?} from={:?} to={:?}",
        e.name(),
        attr("type"),
        attr("id"),
        attr("from"),
        attr("to")
    );
    if let Some(c) = error_condition(e) {
        line.push_str(&format!(" condition={c}"));
    }
    let payload: Vec<String> = e
        .children()
        .filter(|c| !(c.ns() == ns::SERVER && c.name() == "error"))
        .take(4)
        .map(|c| format!("{{{}}}{}", c.ns(), c.name()))
        .collect();
    if !payload.is_empty() {
        line.push_str(&format!(" payload={}", payload.join(",")));
    }
    line
}

/// Reads the defined condition of a received error stanza; an unknown or
/// missing one is `undefined-condition`.
pub fn error_condition(stanza: &Element) -> Option<StanzaCondition> {
    if !is_error(stanza) {
        return None;
    }
    let cond = stanza
        .child(ns::SERVER, "error")
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
        })
        .and_then(|c| StanzaCondition::from_name(c.name()));
    Some(cond.unwrap_or(StanzaCondition::UndefinedCondition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_element;

    #[test]
    fn twenty_two_conditions() {
        assert_eq!(StanzaCondition::ALL.len(), 22);
        for c in StanzaCondition::ALL {
            assert_eq!(StanzaCondition::from_name(c.as_str()), Some(*c));
        }
        assert_eq!(
            StanzaCondition::RemoteServerTimeout.default_type(),
            ErrorType::Wait
        );
    }

    #[test]
    fn summary_names_a_stanza_without_its_text() {
        let m = parse_element(
            "<message xmlns='jabber:server' type='error' id='a&#10;b' from='x@y' to='y'>\
             <body>SECRET</body><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        )
        .unwrap();
        let line = summary(&m);
        assert!(!line.contains("SECRET") && !line.contains('\n'), "{line}");
        assert!(line.contains("id=\"a\\nb\""), "{line}");
        assert!(line.contains("condition=item-not-found"), "{line}");
        assert!(line.contains("payload={jabber:server}body"), "{line}");
    }

    #[test]
    fn error_reply_swaps_addresses_and_keeps_id() {
        let m = parse_element(
            "<message xmlns='jabber:server' from='a@x/r' to='b@y' id='7' type='chat'><body>hi</body></message>",
        )
        .unwrap();
        let r = error_reply(&m, StanzaCondition::ServiceUnavailable, None).unwrap();
        assert_eq!(
            (r.attr("from"), r.attr("to"), r.attr("id")),
            (Some("b@y"), Some("a@x/r"), Some("7"))
        );
        assert_eq!(r.attr("type"), Some("error"));
        assert_eq!(
            error_condition(&r),
            Some(StanzaCondition::ServiceUnavailable)
        );
        assert_eq!(
            r.child(ns::SERVER, "error").and_then(|e| e.attr("type")),
            Some("cancel")
        );
        assert!(error_reply(&r, StanzaCondition::BadRequest, None).is_none());
        assert_eq!(Kind::of(&m), Some(Kind::Message));
        // The body is never echoed (a 100 KB message got a 100 KB error);
        // the thread is kept.
        assert!(r.child(ns::SERVER, "body").is_none());
        let big = format!(
            "<message xmlns='jabber:server' from='a@x' to='b@y'><thread>t1</thread><body>{}</body></message>",
            "x".repeat(100_000)
        );
        let r = error_reply(
            &parse_element(&big).unwrap(),
            StanzaCondition::NotAcceptable,
            None,
        )
        .unwrap();
        assert_eq!(
            r.child(ns::SERVER, "thread").map(|t| t.text()),
            Some("t1".into())
        );
        assert!(r.to_bytes().len() < 1_000);
        let a = addressing(&m).unwrap();
        assert_eq!(a.to.domain(), "y");
        let bad = parse_element("<message xmlns='jabber:server' to='b@y'/>").unwrap();
        assert!(addressing(&bad).is_none());
    }
}
