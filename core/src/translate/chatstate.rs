//! Chat states (XEP-0085) <-> isComposing (RFC 3994).
//!
//! The mapping follows RFC 7573 Tables 3 and 4 with two deliberate changes
//! for pager mode, where there is no session:
//! - isComposing `idle` becomes `<paused/>`, not `<active/>`: RFC 3994
//!   sends `idle` only when typing stopped without a message being sent,
//!   which is XEP-0085's definition of paused, and XEP-0085 says a
//!   standalone notification SHOULD be a state other than `<active/>`.
//! - `<gone/>` becomes `idle` instead of a BYE: there is no session to end,
//!   but a composing indicator still showing must be cleared.
//!
//! The gateway only relays states the SIP user agent actually signalled
//! (rfcs.md 2.12); it never invents them.

use std::fmt;

use crate::xml::{ns, parse_element, Child, Element, Node};

/// MIME type of isComposing documents (RFC 3994 section 8.1).
pub const IS_COMPOSING_CONTENT_TYPE: &str = "application/im-iscomposing+xml";

/// Namespace of isComposing documents.
pub const IS_COMPOSING_NS: &str = "urn:ietf:params:xml:ns:im-iscomposing";

/// The five XEP-0085 chat states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChatState {
    /// `<active/>`: paying attention to the conversation.
    Active,
    /// `<composing/>`: typing.
    Composing,
    /// `<paused/>`: was typing, has stopped.
    Paused,
    /// `<inactive/>`: not paying attention for a while.
    Inactive,
    /// `<gone/>`: has left the conversation.
    Gone,
}

impl ChatState {
    /// Every state, in XEP-0085 order.
    pub const ALL: [ChatState; 5] = [
        ChatState::Active,
        ChatState::Composing,
        ChatState::Paused,
        ChatState::Inactive,
        ChatState::Gone,
    ];

    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatState::Active => "active",
            ChatState::Composing => "composing",
            ChatState::Paused => "paused",
            ChatState::Inactive => "inactive",
            ChatState::Gone => "gone",
        }
    }

    /// Reads an element name.
    pub fn from_name(name: &str) -> Option<ChatState> {
        ChatState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The state a message carries (given its children): its first child in the chat states
    /// namespace (XEP-0085 allows at most one). Unknown names are ignored.
    pub fn of_message(children: &[Child<'_>]) -> Option<ChatState> {
        children
            .iter()
            .filter(|c| c.ns == ns::CHATSTATES)
            .find_map(|c| ChatState::from_name(c.name))
    }

    /// The `<state xmlns='http://jabber.org/protocol/chatstates'/>` child.
    pub fn element(self) -> Element {
        Element::new(ns::CHATSTATES, self.as_str())
    }

    /// Puts this state on a message, replacing any chat state it had, since
    /// a message may carry only one.
    pub fn set_on(self, message: &mut Element) {
        // The tree has no child removal, so the message is rebuilt.
        let mut rebuilt = Element::new(ns::intern(message.ns()), ns::intern_name(message.name()));
        for a in message.attrs() {
            rebuilt.set_attr_ns(ns::intern(a.ns()), ns::intern_name(a.name()), a.value());
        }
        for node in message.nodes() {
            match node {
                Node::Element(e) if e.ns() == ns::CHATSTATES => {}
                Node::Element(e) => rebuilt.push_child(e.clone()),
                Node::Text(t) => rebuilt.push_text(t),
            }
        }
        rebuilt.push_child(self.element());
        *message = rebuilt;
    }

    /// The isComposing state for this chat state: only `<composing/>` is
    /// `active`; every other state means "not typing" (RFC 7573 Table 4,
    /// with `<gone/>` as `idle` in pager mode).
    pub fn to_composing(self) -> ComposingState {
        match self {
            ChatState::Composing => ComposingState::Active,
            ChatState::Active | ChatState::Paused | ChatState::Inactive | ChatState::Gone => {
                ComposingState::Idle
            }
        }
    }
}

impl fmt::Display for ChatState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two RFC 3994 states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ComposingState {
    /// The user is composing.
    Active,
    /// The user is not composing; the state before any indication.
    #[default]
    Idle,
}

impl ComposingState {
    /// The `<state>` text.
    pub fn as_str(self) -> &'static str {
        match self {
            ComposingState::Active => "active",
            ComposingState::Idle => "idle",
        }
    }

    /// The chat state to send to XMPP: `active` is `<composing/>`, `idle`
    /// is `<paused/>` (see the module notes for why not `<active/>`).
    pub fn to_chat_state(self) -> ChatState {
        match self {
            ComposingState::Active => ChatState::Composing,
            ComposingState::Idle => ChatState::Paused,
        }
    }
}

/// Whether to send an isComposing status for a chat state, given the last
/// one sent to that SIP user (`Idle` before any): `None` when it would
/// repeat it. Several chat states map to `idle`, and each SIP status is a
/// MESSAGE transaction, serialized per destination (RFC 3428 section 8).
pub fn next_is_composing(last_sent: ComposingState, state: ChatState) -> Option<ComposingState> {
    let next = state.to_composing();
    (next != last_sent).then_some(next)
}

/// An isComposing status message (RFC 3994 section 3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsComposing {
    /// `active` or `idle`; any other token reads as `idle` (section 3.5).
    pub state: ComposingState,
    /// `<lastactive>`, as sent (a dateTime).
    pub last_active: Option<String>,
    /// `<contenttype>`, a hint such as `text/plain` or `audio`.
    pub content_type: Option<String>,
    /// `<refresh>` in seconds: the receiver falls back to idle after this,
    /// or after 120 s without it (section 3.3).
    pub refresh: Option<u32>,
}

/// Why a body is not an isComposing document.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IsComposingError {
    /// Not one well-formed element of restricted XML (no DTD, comment or
    /// processing instruction beyond the XML declaration).
    Xml(crate::xml::Error),
    /// The root is not `isComposing` in the RFC 3994 namespace.
    NotIsComposing,
    /// The mandatory `<state>` is missing.
    MissingState,
}

impl IsComposingError {
    /// The SIP response for a MESSAGE whose isComposing body is broken.
    pub fn sip_status(&self) -> u16 {
        400
    }
}

impl fmt::Display for IsComposingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsComposingError::Xml(e) => write!(f, "isComposing body is not usable XML: {e}"),
            IsComposingError::NotIsComposing => {
                f.write_str("root element is not urn:ietf:params:xml:ns:im-iscomposing isComposing")
            }
            IsComposingError::MissingState => f.write_str("isComposing without <state>"),
        }
    }
}

impl std::error::Error for IsComposingError {}

/// Builds the `application/im-iscomposing+xml` body for a chat state.
///
/// The state is [`ChatState::to_composing`]; `<contenttype>` is always
/// `text/plain`, the only content the gateway carries. `refresh` (seconds;
/// RFC 3994 says at least 60) is written only for `active` and when
/// positive, since refreshes exist only in the active state.
pub fn is_composing_xml(state: ChatState, refresh: Option<u32>) -> String {
    let composing = state.to_composing();
    let child =
        |name: &'static str, text: &str| Element::new(IS_COMPOSING_NS, name).with_text(text);
    let mut doc = Element::new(IS_COMPOSING_NS, "isComposing")
        .with_child(child("state", composing.as_str()))
        .with_child(child("contenttype", "text/plain"));
    if let (ComposingState::Active, Some(secs @ 1..)) = (composing, refresh) {
        doc.push_child(child("refresh", &secs.to_string()));
    }
    let mut out = String::from("<?xml version='1.0' encoding='UTF-8'?>\n");
    out.push_str(&String::from_utf8_lossy(&doc.to_bytes()));
    out
}

/// Removes the XML declaration (and a byte order mark) that isComposing
/// bodies start with, which the element parser does not take. Only the
/// prolog's fixed opening is recognized; the element itself is left to
/// [`parse_element`].
fn strip_prolog(body: &str) -> &str {
    let body = body.trim_start_matches('\u{feff}').trim_start();
    match body.strip_prefix("<?xml") {
        Some(rest) if rest.starts_with([' ', '\t', '\r', '\n']) => match rest.find("?>") {
            Some(end) => rest.get(end + 2..).unwrap_or_default().trim(),
            None => body,
        },
        _ => body.trim(),
    }
}

/// Reads an isComposing body (RFC 3994 section 6).
///
/// Tolerant where the RFC asks for it: unknown state tokens read as
/// `idle`, elements in other namespaces are ignored, and an unusable
/// `<refresh>` (not a positive integer) is treated as absent.
pub fn parse_is_composing(body: &str) -> Result<IsComposing, IsComposingError> {
    let root = parse_element(strip_prolog(body)).map_err(IsComposingError::Xml)?;
    if !root.is(IS_COMPOSING_NS, "isComposing") {
        return Err(IsComposingError::NotIsComposing);
    }
    let text = |name: &str| {
        root.child(IS_COMPOSING_NS, name)
            .map(|e| e.text().trim().to_owned())
    };
    let state = match text("state")
        .ok_or(IsComposingError::MissingState)?
        .as_str()
    {
        "active" => ComposingState::Active,
        _ => ComposingState::Idle,
    };
    Ok(IsComposing {
        state,
        last_active: text("lastactive").filter(|s| !s.is_empty()),
        content_type: text("contenttype").filter(|s| !s.is_empty()),
        refresh: text("refresh")
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|secs| *secs > 0),
    })
}
