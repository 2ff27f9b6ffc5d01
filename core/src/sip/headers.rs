//! The header section: fields in order, names as written, lookups by full
//! name (case-insensitive, compact forms expanded), typed accessors.

use std::borrow::Cow;

use super::event::{parse_entity_tag, parse_event_type, Event, SubscriptionState};
use super::syntax::{is_token, is_word_char, split_commas, trim_wsp};
use super::values::{parse_delta, CSeq, Contact, HeaderError, NameAddr, Via};

/// Compact forms (RFC 3261 section 7.3.3 and the extensions that define
/// one) and the full names they stand for.
const COMPACT: [(u8, &str); 20] = [
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'd', "Request-Disposition"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'j', "Reject-Contact"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'n', "Identity-Info"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// Names stored without allocating when written in this spelling.
const KNOWN: [&str; 40] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Type",
    "Content-Length",
    "Expires",
    "User-Agent",
    "Server",
    "Allow",
    "Supported",
    "Require",
    "Route",
    "Record-Route",
    "Event",
    "Subscription-State",
    "Accept",
    "Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Subject",
    "Date",
    "Timestamp",
    "Allow-Events",
    "Min-Expires",
    "Retry-After",
    "Warning",
    "Content-Encoding",
    "Content-Disposition",
    "Proxy-Require",
    "Unsupported",
    "Path",
    "SIP-ETag",
    "SIP-If-Match",
    "P-Asserted-Identity",
    "Authentication-Info",
];

/// The full name for a compact form; any other name unchanged.
pub fn full_name(name: &str) -> &str {
    if let [b] = name.as_bytes() {
        let b = b.to_ascii_lowercase();
        if let Some((_, full)) = COMPACT.iter().find(|(c, _)| *c == b) {
            return full;
        }
    }
    name
}

/// True when two header names denote the same header.
pub fn same_name(a: &str, b: &str) -> bool {
    full_name(a).eq_ignore_ascii_case(full_name(b))
}

fn intern(name: &str) -> Cow<'static, str> {
    if let [b] = name.as_bytes() {
        const LETTERS: &str = "abcdefghijklmnopqrstuvwxyz";
        if b.is_ascii_lowercase() {
            let i = usize::from(b - b'a');
            return Cow::Borrowed(&LETTERS[i..=i]);
        }
    }
    match KNOWN.iter().find(|k| **k == name) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(name.to_owned()),
    }
}

/// One header field line (after unfolding), as the message holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    /// As kept: a copy into other headers takes the interned name along.
    name: &'a Cow<'static, str>,
    value: &'a str,
}

impl<'a> Header<'a> {
    /// The name as written (maybe a compact form).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The name with a compact form expanded.
    pub fn full_name(&self) -> &'a str {
        full_name(self.name)
    }

    /// The value, trimmed, folding replaced by single spaces.
    pub fn value(&self) -> &'a str {
        self.value
    }

    /// True when this is the header `name` (any spelling).
    pub fn is(&self, name: &str) -> bool {
        same_name(self.name, name)
    }
}

/// Bytes of values and lines a request we build usually has (a MESSAGE:
/// Via, Max-Forwards, From, To, Call-ID, CSeq, Content-Type and a few
/// more), reserved at the first line.
const TYPICAL_TEXT: usize = 384;
const TYPICAL_LINES: usize = 10;

/// Where one line's value is in [`Headers`]' text.
#[derive(Clone, Debug)]
struct Entry {
    name: Cow<'static, str>,
    start: usize,
    end: usize,
}

/// Header fields in their order. Several lines of one name, and several
/// comma-separated values in one line, are both kept as written.
///
/// The values are slices of one text, written once as the message is read
/// (or as lines are added): a message's header section costs one buffer,
/// not one allocation per line. A line replaced or removed leaves its
/// bytes in the text until the message goes.
///
/// Content-Length is framing, not content: the parser removes it (the body
/// is the truth) and the writer always computes it, so [`Headers::push`]
/// ignores it.
#[derive(Clone, Default)]
pub struct Headers {
    text: String,
    list: Vec<Entry>,
}

impl PartialEq for Headers {
    /// The same lines in the same order, however the text is laid out.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl std::hash::Hash for Headers {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.len().hash(state);
        for h in self {
            h.hash(state);
        }
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|h| (h.name(), h.value)))
            .finish()
    }
}

/// The lines of [`Headers`], in order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    text: &'a str,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iter<'a> {
    fn header(&self, e: &'a Entry) -> Header<'a> {
        Header {
            name: &e.name,
            value: self.text.get(e.start..e.end).unwrap_or(""),
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Header<'a>;
    fn next(&mut self) -> Option<Header<'a>> {
        let e = self.entries.next()?;
        Some(self.header(e))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let e = self.entries.next_back()?;
        Some(self.header(e))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// No headers yet, room for `bytes` of values and the usual lines.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Headers {
            text: String::with_capacity(bytes),
            list: Vec::with_capacity(TYPICAL_LINES),
        }
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// No header lines.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every header line, in the order written.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            entries: self.list.iter(),
        }
    }

    /// Writes `value` into the text: where it is.
    fn store(&mut self, name: Cow<'static, str>, value: &str) -> Entry {
        if self.text.capacity() == 0 {
            // A request we build: room for its usual lines at once,
            // rather than growing from a few bytes.
            self.text.reserve(TYPICAL_TEXT.max(value.len()));
            self.list.reserve(TYPICAL_LINES);
        }
        let start = self.text.len();
        self.text.push_str(value);
        Entry {
            name,
            start,
            end: self.text.len(),
        }
    }

    /// Appends a header line. So that what is written reads back the same,
    /// characters a name cannot hold are dropped (an empty name becomes
    /// `X`), control characters in the value become spaces, and the value
    /// is trimmed. Content-Length is ignored (see the type's note).
    pub fn push(&mut self, name: &str, value: impl AsRef<str>) {
        if let Some((name, value)) = sanitized(name, value.as_ref()) {
            let e = self.store(name, &value);
            self.list.push(e);
        }
    }

    /// Inserts a header line first (a Via we add on top).
    pub fn push_front(&mut self, name: &str, value: impl AsRef<str>) {
        if let Some((name, value)) = sanitized(name, value.as_ref()) {
            let e = self.store(name, &value);
            self.list.insert(0, e);
        }
    }

    /// Replaces every line of `name` by one line holding `value`, where the
    /// first was (or at the end).
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) {
        let Some((clean, value)) = sanitized(name, value.as_ref()) else {
            return;
        };
        let e = self.store(clean, &value);
        match self.list.iter().position(|x| same_name(&x.name, name)) {
            Some(i) => {
                self.list[i] = e;
                let mut k = 0;
                self.list.retain(|x| {
                    let keep = k <= i || !same_name(&x.name, name);
                    k += 1;
                    keep
                });
            }
            None => self.list.push(e),
        }
    }

    /// Removes every line of `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.list.len();
        self.list.retain(|h| !same_name(&h.name, name));
        before - self.list.len()
    }

    /// Appends without sanitizing, for the parser, which has validated.
    pub(crate) fn push_parsed(&mut self, name: &str, value: &str) {
        let e = self.store(intern(name), value);
        self.list.push(e);
    }

    /// Appends a copy of a line.
    pub(crate) fn push_header(&mut self, h: Header<'_>) {
        let e = self.store(h.name.clone(), h.value);
        self.list.push(e);
    }

    /// Continues the last line's value with `more` (a folded line): one
    /// space between, none at the end of what was there. The new length,
    /// or `None` when there is no line yet.
    pub(crate) fn fold_into_last(&mut self, more: &str) -> Option<usize> {
        let (mut start, mut end) = self.list.last().map(|e| (e.start, e.end))?;
        if end != self.text.len() {
            // Not at the end of the text: moved there first.
            let value = self.text.get(start..end).unwrap_or("").to_owned();
            start = self.text.len();
            self.text.push_str(&value);
            end = self.text.len();
        }
        let kept = self
            .text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches([' ', '\t'])
            .len();
        self.text.truncate(start + kept);
        if !more.is_empty() {
            if kept > 0 {
                self.text.push(' ');
            }
            self.text.push_str(more);
        }
        end = self.text.len();
        if let Some(e) = self.list.last_mut() {
            e.start = start;
            e.end = end;
        }
        Some(end - start)
    }

    fn value_of(&self, e: &Entry) -> &str {
        self.text.get(e.start..e.end).unwrap_or("")
    }

    /// True when some line is the header `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.list.iter().any(|h| same_name(&h.name, name))
    }

    /// The value of the first line of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|h| same_name(&h.name, name))
            .map(|h| self.value_of(h))
    }

    /// The value of each line of `name`, in order, unsplit. For headers
    /// whose values hold commas (Date, WWW-Authenticate...).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.list
            .iter()
            .filter(move |h| same_name(&h.name, name))
            .map(|h| self.value_of(h))
    }

    /// Every value of the list header `name`: all its lines, each split at
    /// commas that are not inside quotes or `<>` (RFC 3261 section 7.3.1).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_commas)
    }

    /// The one value of a header that may appear only once.
    fn single(&self, name: &'static str) -> Result<&str, HeaderError> {
        let mut all = self.get_all(name);
        let first = all.next().ok_or(HeaderError::missing(name))?;
        if all.next().is_some() {
            return Err(HeaderError::invalid(name, "appears more than once"));
        }
        Ok(first)
    }

    fn optional(&self, name: &'static str) -> Result<Option<&str>, HeaderError> {
        match self.single(name) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_missing() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every Via value, topmost first.
    pub fn via(&self) -> Result<Vec<Via>, HeaderError> {
        let vias = self
            .values("Via")
            .map(|v| Via::parse(v).map_err(|d| HeaderError::invalid("Via", d)))
            .collect::<Result<Vec<_>, _>>()?;
        if vias.is_empty() {
            return Err(HeaderError::missing("Via"));
        }
        Ok(vias)
    }

    /// The topmost Via, which transactions match on.
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let v = self
            .values("Via")
            .next()
            .ok_or(HeaderError::missing("Via"))?;
        Via::parse(v).map_err(|d| HeaderError::invalid("Via", d))
    }

    /// The single From, parsed.
    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.single("From")?).map_err(|d| HeaderError::invalid("From", d))
    }

    /// The single To, parsed.
    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.single("To")?).map_err(|d| HeaderError::invalid("To", d))
    }

    /// `word [ "@" word ]`.
    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let v = self.single("Call-ID")?;
        let valid = match v.split_once('@') {
            Some((a, b)) => is_word(a) && is_word(b),
            None => is_word(v),
        };
        if valid {
            Ok(v)
        } else {
            Err(HeaderError::invalid("Call-ID", "not a word[@word]"))
        }
    }

    /// The single CSeq, parsed.
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        CSeq::parse(self.single("CSeq")?).map_err(|d| HeaderError::invalid("CSeq", d))
    }

    /// Every Contact value in order; empty when there is none. `*` must be
    /// the only one.
    pub fn contacts(&self) -> Result<Vec<Contact>, HeaderError> {
        let mut out = Vec::new();
        for v in self.values("Contact") {
            if v == "*" {
                out.push(Contact::Star);
            } else {
                let a = NameAddr::parse(v).map_err(|d| HeaderError::invalid("Contact", d))?;
                out.push(Contact::Addr(a));
            }
        }
        if out.len() > 1 && out.contains(&Contact::Star) {
            return Err(HeaderError::invalid("Contact", "'*' with other values"));
        }
        Ok(out)
    }

    /// `Expires:` in seconds (saturating at `u32::MAX`).
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.optional("Expires")?
            .map(|v| parse_delta(v).ok_or_else(|| HeaderError::invalid("Expires", "not digits")))
            .transpose()
    }

    /// `Min-Expires:` in seconds (of a 423), saturating at `u32::MAX`.
    pub fn min_expires(&self) -> Result<Option<u32>, HeaderError> {
        self.optional("Min-Expires")?
            .map(|v| {
                parse_delta(v).ok_or_else(|| HeaderError::invalid("Min-Expires", "not digits"))
            })
            .transpose()
    }

    /// The single `Event:` (compact `o`), parsed; `None` when absent.
    pub fn event(&self) -> Result<Option<Event>, HeaderError> {
        self.optional("Event")?
            .map(|v| Event::parse(v).map_err(|d| HeaderError::invalid("Event", d)))
            .transpose()
    }

    /// The single `Subscription-State:`, parsed; `None` when absent.
    pub fn subscription_state(&self) -> Result<Option<SubscriptionState>, HeaderError> {
        self.optional("Subscription-State")?
            .map(|v| {
                SubscriptionState::parse(v)
                    .map_err(|d| HeaderError::invalid("Subscription-State", d))
            })
            .transpose()
    }

    /// Every event type of `Allow-Events:` (compact `u`), all lines, in
    /// order; empty when there is none.
    pub fn allow_events(&self) -> Result<Vec<&str>, HeaderError> {
        self.values("Allow-Events")
            .map(|v| parse_event_type(v).map_err(|d| HeaderError::invalid("Allow-Events", d)))
            .collect()
    }

    /// `SIP-ETag:` (RFC 3903), the entity-tag a 2xx to PUBLISH gives.
    pub fn sip_etag(&self) -> Result<Option<&str>, HeaderError> {
        self.optional("SIP-ETag")?
            .map(|v| parse_entity_tag(v).map_err(|d| HeaderError::invalid("SIP-ETag", d)))
            .transpose()
    }

    /// `SIP-If-Match:` (RFC 3903), the entity-tag a PUBLISH refreshes,
    /// modifies or removes.
    pub fn sip_if_match(&self) -> Result<Option<&str>, HeaderError> {
        self.optional("SIP-If-Match")?
            .map(|v| parse_entity_tag(v).map_err(|d| HeaderError::invalid("SIP-If-Match", d)))
            .transpose()
    }

    /// `Max-Forwards:`.
    pub fn max_forwards(&self) -> Result<Option<u32>, HeaderError> {
        self.optional("Max-Forwards")?
            .map(|v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| HeaderError::invalid("Max-Forwards", "not a number"))
            })
            .transpose()
    }

    /// `Content-Type:` as written (`text/plain;charset=UTF-8`).
    pub fn content_type(&self) -> Option<&str> {
        self.get("Content-Type")
    }

    /// True when Content-Type's `type/subtype` is `essence`, compared
    /// case-insensitively, parameters ignored.
    pub fn content_type_is(&self, essence: &str) -> bool {
        self.content_type()
            .map(|v| trim_wsp(v.split(';').next().unwrap_or("")))
            .is_some_and(|t| t.eq_ignore_ascii_case(essence))
    }

    /// Content-Length as framing reads it: absent, or one decimal value.
    /// Values too large for `usize` saturate, so a limit refuses them.
    pub(crate) fn content_length(&self) -> Result<Option<usize>, HeaderError> {
        let Some(v) = self.optional("Content-Length")? else {
            return Ok(None);
        };
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HeaderError::invalid("Content-Length", "not a number"));
        }
        Ok(Some(v.parse::<usize>().unwrap_or(usize::MAX)))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = Header<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_word_char)
}

/// A name and value as [`Headers::push`] keeps them.
fn sanitized<'v>(name: &str, value: &'v str) -> Option<(Cow<'static, str>, Cow<'v, str>)> {
    let mut name: String = name
        .bytes()
        .filter(|&b| is_token(b))
        .map(char::from)
        .collect();
    if name.is_empty() {
        name.push('X');
    }
    if same_name(&name, "Content-Length") {
        return None;
    }
    let value: Cow<'v, str> = if value.chars().any(|c| c.is_control() && c != '\t') {
        Cow::Owned(
            value
                .chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(value)
    };
    let value = match value {
        Cow::Borrowed(v) => Cow::Borrowed(trim_wsp(v)),
        Cow::Owned(v) => Cow::Owned(trim_wsp(&v).to_owned()),
    };
    Some((intern(&name), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Method;

    #[test]
    fn lookup_by_any_spelling() {
        let mut h = Headers::new();
        h.push(
            "v",
            "SIP/2.0/UDP a.test;branch=z9hG4bK1, SIP/2.0/TCP b.test;branch=z9hG4bK2",
        );
        h.push("VIA", "SIP/2.0/UDP c.test;branch=z9hG4bK3");
        h.push("i", "abc@host");
        h.push("f", "<sip:a@a.test>;tag=1");
        h.push("T", "Bob <sip:b@b.test>");
        h.push("cseq", "7 MESSAGE");
        h.push("l", "10");
        h.push("Content-LENGTH", "10");
        h.push("c", "Text/Plain ; charset=utf-8");
        assert_eq!(h.len(), 7, "Content-Length is never stored");
        assert_eq!(h.get("call-id"), Some("abc@host"));
        assert_eq!(h.get("I"), Some("abc@host"));
        assert_eq!(h.iter().next().unwrap().name(), "v");
        assert_eq!(h.iter().next().unwrap().full_name(), "Via");
        let vias = h.via().unwrap();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[2].branch(), Some("z9hG4bK3"));
        assert_eq!(h.top_via().unwrap().host().to_string(), "a.test");
        assert_eq!(h.from().unwrap().tag(), Some("1"));
        assert_eq!(h.to().unwrap().tag(), None);
        assert_eq!(h.to().unwrap().display_name(), Some("Bob"));
        assert_eq!(h.call_id(), Ok("abc@host"));
        assert_eq!(h.cseq().unwrap().method, Method::Message);
        assert!(h.content_type_is("text/plain"));
        assert_eq!(h.expires(), Ok(None));
        assert_eq!(h.max_forwards(), Ok(None));
        assert_eq!(h.contacts(), Ok(vec![]));
    }

    #[test]
    fn typed_errors() {
        let mut h = Headers::new();
        assert!(h.call_id().unwrap_err().is_missing());
        assert_eq!(h.via().unwrap_err().to_string(), "Missing Via header field");
        h.push("Call-ID", "a b");
        assert!(!h.call_id().unwrap_err().is_missing());
        h.set("Call-ID", "ok");
        h.push("i", "again");
        assert_eq!(
            h.call_id().unwrap_err().to_string(),
            "Invalid Call-ID header field: appears more than once"
        );
        h.push("Max-Forwards", "+70");
        assert!(h.max_forwards().is_err());
        h.set("Max-Forwards", "70");
        assert_eq!(h.max_forwards(), Ok(Some(70)));
        h.push("Expires", "x");
        assert!(h.expires().is_err());
        h.push("Contact", "*, <sip:a@b>");
        assert!(h.contacts().is_err());
    }

    #[test]
    fn event_headers() {
        let mut h = Headers::new();
        assert_eq!(h.event(), Ok(None));
        assert_eq!(h.subscription_state(), Ok(None));
        assert_eq!(h.allow_events(), Ok(vec![]));
        assert_eq!(h.sip_etag(), Ok(None));
        assert_eq!(h.sip_if_match(), Ok(None));
        assert_eq!(h.min_expires(), Ok(None));
        h.push("o", "presence;id=7");
        h.push("Subscription-State", "active;expires=60");
        h.push("u", "presence, presence.winfo");
        h.push("Allow-Events", "dialog");
        h.push("SIP-ETag", "dx200xyz");
        h.push("SIP-If-Match", "kwj449x");
        h.push("Min-Expires", "3600");
        assert_eq!(h.event().unwrap().unwrap().id(), Some("7"));
        assert_eq!(h.subscription_state().unwrap().unwrap().expires, Some(60));
        assert_eq!(
            h.allow_events().unwrap(),
            ["presence", "presence.winfo", "dialog"]
        );
        assert_eq!(h.sip_etag(), Ok(Some("dx200xyz")));
        assert_eq!(h.sip_if_match(), Ok(Some("kwj449x")));
        assert_eq!(h.min_expires(), Ok(Some(3600)));

        let mut bad = Headers::new();
        bad.push("Event", "presence;id=\"x y\"");
        bad.push("Subscription-State", "active;expires=soon");
        bad.push("Allow-Events", "presence, ;");
        bad.push("SIP-ETag", "a b");
        bad.push("SIP-If-Match", "\"quoted\"");
        bad.push("Min-Expires", "-1");
        assert_eq!(bad.event().unwrap_err().name(), "Event");
        assert!(!bad.subscription_state().unwrap_err().is_missing());
        assert_eq!(bad.allow_events().unwrap_err().name(), "Allow-Events");
        assert!(bad.sip_etag().is_err());
        assert!(bad.sip_if_match().is_err());
        assert!(bad.min_expires().is_err());
        bad.set("Event", "presence");
        bad.push("o", "presence");
        assert_eq!(
            bad.event().unwrap_err().to_string(),
            "Invalid Event header field: appears more than once"
        );
    }

    #[test]
    fn contacts_and_lists() {
        let mut h = Headers::new();
        h.push(
            "m",
            r#""A, B" <sip:a@a.test>;expires=60;q=0.5, sip:b@b.test;q=1"#,
        );
        h.push("Contact", "<sip:c@c.test;transport=tcp>");
        let c = h.contacts().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].expires(), Some(60));
        assert_eq!(c[0].q(), Some(500));
        assert_eq!(c[1].q(), Some(1000));
        let mut star = Headers::new();
        star.push("Contact", " * ");
        assert_eq!(star.contacts(), Ok(vec![Contact::Star]));
        let mut h = Headers::new();
        h.push("Date", "Sat, 13 Nov 2010 23:29:00 GMT");
        h.push("Allow", "INVITE, ACK,MESSAGE");
        assert_eq!(h.get_all("date").count(), 1);
        assert_eq!(
            h.values("allow").collect::<Vec<_>>(),
            ["INVITE", "ACK", "MESSAGE"]
        );
    }

    #[test]
    fn push_sanitizes_and_set_replaces() {
        let mut h = Headers::new();
        h.push("Sub ject:", "  a\r\nb\0c  ");
        assert_eq!(h.iter().next().unwrap().name(), "Subject");
        assert_eq!(h.get("subject"), Some("a  b c"));
        h.push("", "x");
        assert_eq!(h.get("X"), Some("x"));
        h.push("Route", "<sip:1>");
        h.push("Route", "<sip:2>");
        h.push("Accept", "text/plain");
        h.push("route", "<sip:3>");
        h.set("Route", "<sip:new>");
        let names: Vec<_> = h.iter().map(|x| (x.name(), x.value())).collect();
        assert_eq!(
            names,
            [
                ("Subject", "a  b c"),
                ("X", "x"),
                ("Route", "<sip:new>"),
                ("Accept", "text/plain")
            ]
        );
        assert_eq!(h.remove("subject"), 1);
        h.push_front("Via", "SIP/2.0/UDP x");
        assert_eq!(h.iter().next().unwrap().name(), "Via");
    }
}
