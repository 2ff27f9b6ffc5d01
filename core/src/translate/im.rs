//! Pager-mode instant messages: XMPP `<message/>` <-> SIP MESSAGE (RFC 7572
//! Tables 1 and 2).
//!
//! [`SipIm`] holds the MESSAGE fields the mapping uses, as plain text, so
//! that this module does not depend on the SIP message model. Everything
//! that lands in a SIP header is checked or cleaned here (no CR/LF can
//! reach a header), and everything that lands in XML is stripped of the
//! characters XML 1.0 forbids, which would otherwise make a peer close the
//! whole s2s stream.

use std::borrow::Cow;
use std::fmt;

use crate::jid::Jid;
use smallvec::SmallVec;

use crate::xml::{ns, Child, Element, Stanza};
use crate::xmpp::stanza::StanzaCondition;

use super::address::{jid_to_sip, sip_to_jid, AddressError};
use super::chatstate::{
    parse_is_composing, ChatState, IsComposingError, IS_COMPOSING_CONTENT_TYPE,
};

/// `Content-Type` of the MESSAGEs the gateway sends. The charset is
/// explicit because MIME's default for `text/*` is US-ASCII.
pub const TEXT_PLAIN_UTF8: &str = "text/plain;charset=UTF-8";

/// The `Accept` value for a 415 answer (RFC 3261 section 21.4.13).
pub const ACCEPTED_CONTENT_TYPES: &str = "text/plain, application/im-iscomposing+xml";

/// RFC 3428 section 8: a MESSAGE outside a session MUST NOT exceed 1300
/// bytes unless every hop is known to be congestion-controlled. The SIP
/// layer checks the serialized request against it (or a configured limit)
/// and answers the XMPP sender with [`ImError::TooLarge`].
pub const PAGER_MODE_LIMIT: usize = 1300;

/// Longest thread id used as a Call-ID as is; longer ones need a generated
/// Call-ID (and a map between the two) like any id that is not a SIP word.
pub const MAX_CALL_ID: usize = 256;

/// The fields of a pager-mode SIP MESSAGE that RFC 7572 maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipIm {
    /// `From` URI (no display name, no tag), e.g. `sip:juliet@example.com;gr=balcony`.
    pub from: String,
    /// `To` URI, also the Request-URI. RFC 7247 section 8 refuses a
    /// `sips:` To *or* Request-URI; this field covers one, so the caller
    /// checks the other when they differ.
    pub to: String,
    /// The body, already decoded from the wire into text.
    pub body: String,
    /// The `Content-Type` header value.
    pub content_type: String,
    /// `Subject`.
    pub subject: Option<String>,
    /// `Call-ID`. From XMPP, `None` means the thread (if any) is not a
    /// valid Call-ID and the SIP layer must generate one.
    pub call_id: Option<String>,
    /// `Content-Language`.
    pub language: Option<String>,
}

/// Why a message is not gatewayed; see [`ImError::condition`] and
/// [`ImError::sip_status`] for the answer to give.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImError {
    // XMPP -> SIP
    /// The element is not a `<message/>` in a stanza namespace.
    NotAMessage,
    /// A `type='error'` message: never answered, never gatewayed; the
    /// caller may match it to the MESSAGE it is about.
    ErrorMessage,
    /// A `type='groupchat'` message: SIP users are in no XMPP room, and
    /// RFC 6121 8.5.2.1.1 answers such messages `service-unavailable`.
    Groupchat,
    /// No (non-empty) `<body/>` and no chat state: receipts, markers and
    /// other payloads SIP cannot carry. Dropped without an answer.
    NoBody,
    /// A standalone chat state notification: not an IM, but input for the
    /// isComposing path (see [`super::chatstate`]).
    ChatStateOnly(ChatState),
    /// `from` or `to` is missing or not a JID.
    BadAddress,
    /// The MESSAGE would exceed [`PAGER_MODE_LIMIT`] (RFC 7572 section 6).
    TooLarge,
    // SIP -> XMPP
    /// A body type other than `text/plain` (UTF-8 or US-ASCII) or
    /// isComposing; answer 415 with `Accept: ACCEPTED_CONTENT_TYPES`.
    UnsupportedMediaType,
    /// A `text/plain` MESSAGE with no text.
    EmptyBody,
    /// An isComposing body that cannot be read.
    IsComposing(IsComposingError),
    /// The `From` URI maps to no JID.
    From(AddressError),
    /// The `To` URI maps to no JID (or is `sips:`).
    To(AddressError),
}

impl ImError {
    /// The stanza error to answer an XMPP message with, `None` when the
    /// message is dropped silently (or the error is about a SIP request).
    pub fn condition(&self) -> Option<StanzaCondition> {
        match self {
            ImError::NotAMessage => Some(StanzaCondition::BadRequest),
            ImError::Groupchat => Some(StanzaCondition::ServiceUnavailable),
            ImError::BadAddress => Some(StanzaCondition::JidMalformed),
            ImError::TooLarge => Some(StanzaCondition::PolicyViolation),
            ImError::ErrorMessage
            | ImError::NoBody
            | ImError::ChatStateOnly(_)
            | ImError::UnsupportedMediaType
            | ImError::EmptyBody
            | ImError::IsComposing(_)
            | ImError::From(_)
            | ImError::To(_) => None,
        }
    }

    /// The SIP response to answer a MESSAGE with. Only the SIP -> XMPP
    /// variants arise from a MESSAGE; the others give 500.
    pub fn sip_status(&self) -> u16 {
        match self {
            ImError::UnsupportedMediaType => 415,
            ImError::EmptyBody => 400,
            ImError::IsComposing(e) => e.sip_status(),
            ImError::From(AddressError::Sips) => 403,
            ImError::From(_) => 400,
            ImError::To(e) => e.sip_status(),
            ImError::NotAMessage
            | ImError::ErrorMessage
            | ImError::Groupchat
            | ImError::NoBody
            | ImError::ChatStateOnly(_)
            | ImError::BadAddress
            | ImError::TooLarge => 500,
        }
    }
}

impl fmt::Display for ImError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImError::NotAMessage => f.write_str("not a message stanza"),
            ImError::ErrorMessage => f.write_str("error messages are not gatewayed"),
            ImError::Groupchat => f.write_str("groupchat messages are not gatewayed"),
            ImError::NoBody => f.write_str("message has no body"),
            ImError::ChatStateOnly(s) => write!(f, "standalone chat state <{s}/>"),
            ImError::BadAddress => f.write_str("missing or malformed from/to"),
            ImError::TooLarge => f.write_str("message too large for SIP pager mode"),
            ImError::UnsupportedMediaType => f.write_str("unsupported content type"),
            ImError::EmptyBody => f.write_str("MESSAGE has an empty body"),
            ImError::IsComposing(e) => write!(f, "{e}"),
            ImError::From(e) => write!(f, "From: {e}"),
            ImError::To(e) => write!(f, "To: {e}"),
        }
    }
}

impl std::error::Error for ImError {}

/// Whether `ns` is a namespace stanzas arrive in.
fn is_stanza_ns(ns: &str) -> bool {
    ns == ns::SERVER || ns == ns::CLIENT || ns == ns::COMPONENT
}

/// XML 1.0 `Char`; the rest cannot be written into a stanza.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `s` without the characters XML forbids (NUL, other C0 controls,
/// U+FFFE/U+FFFF), which SIP text may hold. Dropped rather than refused:
/// a stray control character should not cost the user the message.
fn xml_text(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_xml_char) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|c| is_xml_char(*c)).collect())
    }
}

/// Text made fit for a SIP header value: controls (CR and LF above all,
/// which would inject headers) become spaces; `None` when nothing is left.
fn header_text(s: &str) -> Option<String> {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The first language tag of a `Content-Language` list or an `xml:lang`,
/// if it has the `primary *("-" subtag)` shape both sides accept
/// (1-8 letters, then subtags of 1-8 letters or digits).
fn language_tag(s: &str) -> Option<&str> {
    let tag = s.split(',').next().unwrap_or_default().trim();
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    let ok = (1..=8).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    ok.then_some(tag)
}

/// Whether a thread id can be a SIP `Call-ID` (`word ["@" word]`, RFC 3261
/// section 25.1) as it stands.
fn is_call_id(s: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b))
    };
    s.len() <= MAX_CALL_ID
        && match s.split_once('@') {
            Some((a, b)) => word(a) && word(b),
            None => word(s),
        }
}

/// Of several `name` children (RFC 6121 allows one per language), the one
/// in the message's language or without one, else the first.
fn pick(msg: &Message<'_>, name: &str) -> Option<usize> {
    let mut all =
        (msg.children.iter().enumerate()).filter(|(_, c)| c.ns == msg.ns && c.name == name);
    let (first, child) = all.next()?;
    let fits = |c: &Child<'_>| c.lang.is_none() || c.lang.as_deref() == msg.lang;
    if fits(child) {
        return Some(first);
    }
    Some(all.find(|(_, c)| fits(c)).map_or(first, |(i, _)| i))
}

/// What the mapping reads of a `<message/>`, from a tree or from a
/// stanza's text: the same mapping either way.
struct Message<'a> {
    ns: &'a str,
    name: &'a str,
    kind: Option<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    lang: Option<&'a str>,
    children: SmallVec<[Child<'a>; 4]>,
}

/// Translates an XMPP message into a SIP MESSAGE (RFC 7572 Table 1).
///
/// The body becomes a `text/plain` UTF-8 body; `<subject/>` the `Subject`;
/// `<thread/>` the `Call-ID` when it is a valid one; `from` the `From` URI
/// (bare JID, resource as `;gr=`); `to` the `To` and Request-URI; the
/// body's or message's `xml:lang` the `Content-Language`. `type` has no
/// mapping, so normal, chat and headline messages (and unknown types,
/// which RFC 6121 reads as normal) are all gatewayed; `error` and
/// `groupchat` are not, and a message without a body is either a chat
/// state ([`ImError::ChatStateOnly`]) or dropped ([`ImError::NoBody`]).
/// A chat state next to a body is dropped: content resets the SIP
/// receiver to idle by itself (RFC 3994 section 3.3). The `id` maps to the
/// transaction, which the caller keeps.
pub fn xmpp_message_to_sip(msg: &Element) -> Result<SipIm, ImError> {
    to_sip(Message {
        ns: msg.ns(),
        name: msg.name(),
        kind: msg.attr("type"),
        from: msg.attr("from"),
        to: msg.attr("to"),
        lang: msg.lang(),
        children: msg.children().map(Child::of).collect(),
    })
}

/// [`xmpp_message_to_sip`] read from a stanza's checked text, with no
/// element tree: what a gateway does with a message for a SIP user.
pub fn xmpp_stanza_to_sip(msg: &Stanza) -> Result<SipIm, ImError> {
    // The stanza was checked by the rules its children are read by: an
    // error here means a bug, answered as a malformed message.
    let children = msg.children().map_err(|_| ImError::NotAMessage)?;
    to_sip(Message {
        ns: msg.ns(),
        name: msg.name(),
        kind: msg.kind(),
        from: msg.from(),
        to: msg.to(),
        lang: msg.lang(),
        children,
    })
}

fn to_sip(mut msg: Message<'_>) -> Result<SipIm, ImError> {
    if msg.name != "message" || !is_stanza_ns(msg.ns) {
        return Err(ImError::NotAMessage);
    }
    match msg.kind {
        Some("error") => return Err(ImError::ErrorMessage),
        Some("groupchat") => return Err(ImError::Groupchat),
        _ => {}
    }
    let jid = |v: Option<&str>| v.and_then(|v| Jid::parse(v).ok());
    let (from, to) = match (jid(msg.from), jid(msg.to)) {
        (Some(from), Some(to)) => (from, to),
        _ => return Err(ImError::BadAddress),
    };
    let body = match pick(&msg, "body") {
        Some(i) if !msg.children[i].text.is_empty() => i,
        _ => {
            return Err(match ChatState::of_message(&msg.children) {
                Some(state) => ImError::ChatStateOnly(state),
                None => ImError::NoBody,
            })
        }
    };
    let language = msg.children[body]
        .lang
        .as_deref()
        .or(msg.lang)
        .and_then(language_tag)
        .map(str::to_owned);
    let subject = pick(&msg, "subject").and_then(|i| header_text(&msg.children[i].text));
    let call_id = msg
        .children
        .iter()
        .find(|c| c.ns == msg.ns && c.name == "thread")
        .map(|t| t.text.as_ref())
        .filter(|t| is_call_id(t))
        .map(str::to_owned);
    Ok(SipIm {
        from: jid_to_sip(&from),
        to: jid_to_sip(&to),
        body: std::mem::take(&mut msg.children[body].text).into_owned(),
        content_type: TEXT_PLAIN_UTF8.to_owned(),
        subject,
        call_id,
        language,
    })
}

/// What a `Content-Type` value announces, as far as the gateway cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Text,
    IsComposing,
    Other,
}

/// Reads `type/subtype *(; param)`: text/plain counts only with no
/// charset or a UTF-8 compatible one; isComposing only in UTF-8.
fn media(content_type: &str) -> Media {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let charset = parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"'));
    let utf8 = |ascii_ok: bool| match charset {
        None => true,
        Some(cs) => {
            cs.eq_ignore_ascii_case("utf-8")
                || cs.eq_ignore_ascii_case("utf8")
                || (ascii_ok && cs.eq_ignore_ascii_case("us-ascii"))
        }
    };
    if essence.eq_ignore_ascii_case("text/plain") && utf8(true) {
        Media::Text
    } else if essence.eq_ignore_ascii_case(IS_COMPOSING_CONTENT_TYPE) && utf8(false) {
        Media::IsComposing
    } else {
        Media::Other
    }
}

/// Translates a SIP MESSAGE into an XMPP message (RFC 7572 Table 2), in
/// `jabber:server`, with `id` (the transaction's) as its id.
///
/// The message is `type='chat'`, not RFC 7572's default (no type, that is
/// normal): chat is what XMPP clients show in the conversation, where a
/// SIP user's instant message belongs, while many show normal messages
/// apart or as notifications; `<thread/>` (from `Call-ID`) keeps the
/// conversation together.
///
/// `To` must map to a JID and must not be `sips:` (RFC 7247 section 8);
/// `From` becomes a full JID when it carries a public GRUU. A `text/plain`
/// body becomes `<body/>`, `Subject` `<subject/>`, `Call-ID` `<thread/>`,
/// `Content-Language` `xml:lang`, plus `<active/>`, as XEP-0085 wants of
/// content messages, since the SIP user did send it. An isComposing body
/// becomes a standalone chat state. Other bodies are
/// [`ImError::UnsupportedMediaType`].
pub fn sip_message_to_xmpp(im: &SipIm, id: &str) -> Result<Element, ImError> {
    let to = sip_to_jid(&im.to).map_err(ImError::To)?;
    let from = sip_to_jid(&im.from).map_err(ImError::From)?;
    let mut msg = Element::new(ns::SERVER, "message")
        .with_attr("from", String::from(from))
        .with_attr("to", String::from(to));
    if !id.is_empty() {
        msg.set_attr("id", id);
    }
    msg.set_attr("type", "chat");
    let thread = im
        .call_id
        .as_deref()
        .map(xml_text)
        .filter(|t| !t.is_empty())
        .map(|t| Element::new(ns::SERVER, "thread").with_text(&t));

    match media(&im.content_type) {
        Media::Other => Err(ImError::UnsupportedMediaType),
        Media::IsComposing => {
            let status = parse_is_composing(&im.body).map_err(ImError::IsComposing)?;
            if let Some(thread) = thread {
                msg.push_child(thread);
            }
            msg.push_child(status.state.to_chat_state().element());
            Ok(msg)
        }
        Media::Text => {
            let body = xml_text(&im.body);
            if body.is_empty() {
                return Err(ImError::EmptyBody);
            }
            if let Some(lang) = im.language.as_deref().and_then(language_tag) {
                msg.set_attr_ns(ns::XML, "lang", lang);
            }
            if let Some(subject) = im
                .subject
                .as_deref()
                .map(xml_text)
                .filter(|s| !s.is_empty())
            {
                msg.push_child(Element::new(ns::SERVER, "subject").with_text(&subject));
            }
            msg.push_child(Element::new(ns::SERVER, "body").with_text(&body));
            if let Some(thread) = thread {
                msg.push_child(thread);
            }
            msg.push_child(ChatState::Active.element());
            Ok(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        assert_eq!(language_tag("cs"), Some("cs"));
        assert_eq!(language_tag(" en-GB , fr"), Some("en-GB"));
        assert_eq!(language_tag("es-419"), Some("es-419"));
        assert_eq!(language_tag("*"), None);
        assert_eq!(language_tag(""), None);
        assert_eq!(language_tag("en\r\nX-Evil: 1"), None);
        assert_eq!(language_tag("toolongprimary"), None);
        assert_eq!(language_tag("en--gb"), None);
    }

    #[test]
    fn call_ids() {
        assert!(is_call_id("D9AA95FD-2BD5-46E2-AF0F-6CFAA96BDDFA"));
        assert!(is_call_id("a84b4c76e66710@pc33.atlanta.com"));
        assert!(!is_call_id("has space"));
        assert!(!is_call_id("a@b@c"));
        assert!(!is_call_id("@b"));
        assert!(!is_call_id(""));
        assert!(!is_call_id("caf\u{e9}"));
        assert!(!is_call_id(&"a".repeat(MAX_CALL_ID + 1)));
    }

    #[test]
    fn media_types() {
        assert_eq!(media("text/plain"), Media::Text);
        assert_eq!(media("TEXT/Plain; charset=\"UTF-8\""), Media::Text);
        assert_eq!(
            media("text/plain;format=flowed;charset=us-ascii"),
            Media::Text
        );
        assert_eq!(media("text/plain; charset=ISO-8859-1"), Media::Other);
        assert_eq!(media("application/im-iscomposing+xml"), Media::IsComposing);
        assert_eq!(
            media("application/im-iscomposing+xml;charset=us-ascii"),
            Media::Other
        );
        assert_eq!(media("text/html"), Media::Other);
        assert_eq!(media(""), Media::Other);
    }

    #[test]
    fn header_and_xml_cleaning() {
        assert_eq!(header_text("a\r\nb\tc").as_deref(), Some("a  b c"));
        assert_eq!(header_text(" \r\n "), None);
        assert_eq!(xml_text("a\u{0}b\u{1b}c\u{fffe}\n"), "abc\n");
        assert!(matches!(xml_text("plain"), Cow::Borrowed(_)));
    }
}
