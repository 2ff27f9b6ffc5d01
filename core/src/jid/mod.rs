//! JIDs per RFC 7622, and XEP-0106 escaping of localparts.
//!
//! A [`Jid`] only exists in prepared (canonical) form, so `==`, `Hash` and
//! `Display` are the comparisons and wire form RFC 7622 asks for, and no
//! caller can compare two spellings of one address by accident.
//!
//! Crates: `precis-profiles` implements the PRECIS profiles of RFC 8265
//! (UsernameCaseMapped for localparts, OpaqueString for resourceparts) from
//! static tables; it is used through its `Profile` trait, not its lazily
//! built global instances. `idna` does the domainpart with UTS 46, which is
//! close to, though a little more lenient than, IDNA2008 (details in
//! `domain.rs`). The `idna_adapter ~1.1` pin in Cargo.toml selects idna's
//! unicode-rs back end, which shares `unicode-normalization` with PRECIS;
//! the default ICU4X back end would add some twenty-five crates, proc
//! macros among them, for the same answers.
//!
//! Nothing here does I/O, keeps state or panics on input; every failure is a
//! [`JidError`], all of which the stanza layer answers with `jid-malformed`.

mod domain;
mod escape;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use precis_profiles::precis_core::profile::{stabilize, Profile};
use precis_profiles::precis_core::Error as PrecisError;
use precis_profiles::{OpaqueString, UsernameCaseMapped};

pub use escape::{escape_local, foreign_local, unescape_local};

/// Longest part, in octets, after preparation (RFC 7622 section 3.1).
const MAX_PART: usize = 1023;

/// Longest part accepted before preparation. Preparation can shorten a part
/// (width mapping, composition, ignorable code points in domains), so the
/// real limit is checked afterwards; this bound only keeps hostile input
/// from costing unbounded Unicode work.
const MAX_RAW_PART: usize = 4 * MAX_PART;

/// Characters RFC 7622 section 3.3.1 forbids in a localpart on top of what
/// PRECIS IdentifierClass forbids.
const LOCAL_FORBIDDEN: [char; 8] = ['"', '&', '\'', '/', ':', '<', '>', '@'];

/// Which part of a JID an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JidPart {
    /// The part before `@`.
    Local,
    /// The domain name or IP literal.
    Domain,
    /// The part after `/`.
    Resource,
}

impl fmt::Display for JidPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JidPart::Local => "localpart",
            JidPart::Domain => "domainpart",
            JidPart::Resource => "resourcepart",
        })
    }
}

/// Why a string is not a JID. Each variant names the fault so that logs and
/// error texts can say what to fix; on the wire they all become
/// `jid-malformed` (see [`JidError::condition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JidError {
    /// A part is present but empty, as in `@example.com`, `juliet@` or
    /// `example.com/`, or the domainpart is missing.
    Empty(JidPart),
    /// A part is longer than 1023 octets after preparation.
    TooLong(JidPart),
    /// A part holds a character its profile does not allow, such as a space
    /// or `"` in a localpart, or a control character in a resourcepart.
    ForbiddenChar(JidPart, char),
    /// PRECIS refused the part as a whole: the bidi rule, a contextual rule
    /// (joiners, middle dot, ...), or a string that never becomes stable.
    Precis(JidPart),
    /// The domainpart is not a domain name under UTS 46 with STD3 rules:
    /// a character outside letters, digits and hyphen, a hyphen at the
    /// start or end of a label, or a broken A-label.
    BadDomain,
    /// The domainpart has an empty label, as in `a..b` or `example.com..`.
    EmptyLabel,
    /// A label of the domainpart is longer than 63 octets as an A-label.
    LabelTooLong,
    /// A bracketed IPv6 literal that does not parse, or a dotted numeric
    /// name that is not a plain IPv4 address.
    BadIpLiteral,
    /// [`escape_local`] was given a name that starts or ends with a space,
    /// which XEP-0106 cannot represent.
    SpaceAtEdge,
    /// [`foreign_local`]: the prepared localpart does not read back as the
    /// same foreign user, so the address would not map back.
    Unstable,
}

impl JidError {
    /// The stanza error condition (RFC 6120 section 8.3.3) for this error.
    pub fn condition(&self) -> &'static str {
        "jid-malformed"
    }
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JidError::Empty(part) => write!(f, "empty {part}"),
            JidError::TooLong(part) => write!(f, "{part} longer than {MAX_PART} octets"),
            JidError::ForbiddenChar(part, c) => {
                write!(
                    f,
                    "{part} contains forbidden character U+{:04X}",
                    u32::from(*c)
                )
            }
            JidError::Precis(part) => write!(f, "{part} rejected by PRECIS rules"),
            JidError::BadDomain => f.write_str("domainpart is not a valid domain name"),
            JidError::EmptyLabel => f.write_str("domainpart has an empty label"),
            JidError::LabelTooLong => f.write_str("domainpart label longer than 63 octets"),
            JidError::BadIpLiteral => f.write_str("domainpart is not a valid IP address"),
            JidError::Unstable => {
                f.write_str("localpart does not map back to the same user once prepared")
            }
            JidError::SpaceAtEdge => {
                f.write_str("localpart cannot start or end with a space, even escaped")
            }
        }
    }
}

impl std::error::Error for JidError {}

/// An XMPP address, `[local@]domain[/resource]`, held in prepared form.
///
/// The canonical string is stored once, with the positions of its
/// separators, so that displaying, hashing and taking parts cost nothing.
/// A bare JID is a `Jid` without resource; [`Jid::bare`] makes one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    /// `[local@]domain[/resource]`, every part prepared.
    text: String,
    /// Byte index of the `@` that ends the localpart, if there is one.
    at: Option<usize>,
    /// Byte index of the `/` that starts the resourcepart, if there is one.
    slash: Option<usize>,
}

impl Jid {
    /// Parses and prepares a JID as it appears in a stanza or stream header.
    ///
    /// Splits at the first `/` and then at the first `@` before preparing
    /// anything (RFC 7622 section 3.1), so a resource may contain `@` and
    /// `/`, and a fullwidth `＠` cannot act as a separator.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        let (before_slash, resource) = match s.split_once('/') {
            Some((head, res)) => (head, Some(res)),
            None => (s, None),
        };
        let (local, domain) = match before_slash.split_once('@') {
            Some((loc, dom)) => (Some(loc), dom),
            None => (None, before_slash),
        };
        Jid::from_parts(local, domain, resource)
    }

    /// Builds a JID from separate parts, preparing each; for addresses made
    /// from something other than a JID string, such as a SIP URI whose user
    /// part went through [`escape_local`]. No splitting is done, so a `@`
    /// in `local` or a `/` in `domain` is an error rather than a separator.
    pub fn from_parts(
        local: Option<&str>,
        domain: &str,
        resource: Option<&str>,
    ) -> Result<Jid, JidError> {
        let domain = domain::prepare(domain)?;
        let local = local.map(prepare_local).transpose()?;
        let resource = resource.map(prepare_resource).transpose()?;
        Ok(Jid::assemble(
            local.as_deref(),
            &domain,
            resource.as_deref(),
        ))
    }

    /// Joins prepared parts; callers guarantee that each is prepared.
    fn assemble(local: Option<&str>, domain: &str, resource: Option<&str>) -> Jid {
        let len =
            local.map_or(0, |l| l.len() + 1) + domain.len() + resource.map_or(0, |r| r.len() + 1);
        let mut text = String::with_capacity(len);
        let mut at = None;
        if let Some(local) = local {
            text.push_str(local);
            at = Some(text.len());
            text.push('@');
        }
        text.push_str(domain);
        let mut slash = None;
        if let Some(resource) = resource {
            slash = Some(text.len());
            text.push('/');
            text.push_str(resource);
        }
        Jid { text, at, slash }
    }

    /// The prepared localpart, still escaped (compare and route on this).
    pub fn local(&self) -> Option<&str> {
        self.at.and_then(|at| self.text.get(..at))
    }

    /// The prepared domainpart: U-labels, or an IP literal.
    pub fn domain(&self) -> &str {
        let start = self.at.map_or(0, |at| at + 1);
        let end = self.slash.unwrap_or(self.text.len());
        self.text.get(start..end).unwrap_or_default()
    }

    /// The prepared resourcepart.
    pub fn resource(&self) -> Option<&str> {
        self.slash.and_then(|slash| self.text.get(slash + 1..))
    }

    /// The localpart with XEP-0106 escapes undone, for handing to SIP or
    /// showing to people; never use it to compare addresses.
    pub fn unescaped_local(&self) -> Option<String> {
        self.local().map(unescape_local)
    }

    /// True when there is no resourcepart (a bare JID).
    pub fn is_bare(&self) -> bool {
        self.slash.is_none()
    }

    /// True when the JID is only a domainpart, as server addresses are.
    pub fn is_domain(&self) -> bool {
        self.at.is_none() && self.slash.is_none()
    }

    /// This JID without its resourcepart.
    pub fn bare(&self) -> Jid {
        match self.slash {
            None => self.clone(),
            Some(slash) => Jid {
                text: self.text.get(..slash).unwrap_or_default().to_owned(),
                at: self.at,
                slash: None,
            },
        }
    }

    /// The domainpart alone, as a JID: the address of the server.
    pub fn domain_jid(&self) -> Jid {
        Jid::assemble(None, self.domain(), None)
    }

    /// This JID's bare form with `resource` (prepared here) as resourcepart.
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        let resource = prepare_resource(resource)?;
        Ok(Jid::assemble(self.local(), self.domain(), Some(&resource)))
    }

    /// True when both JIDs belong to the same domain; what s2s checks to
    /// hold a peer to the domain it authenticated.
    pub fn same_domain(&self, other: &Jid) -> bool {
        self.domain() == other.domain()
    }

    /// The canonical string, as it goes on the wire.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Runs a PRECIS profile until its output is stable, as RFC 8264 section 7
/// requires, so that preparing a prepared part never changes it again.
fn precis<P: Profile>(profile: &P, part: JidPart, raw: &str) -> Result<String, JidError> {
    if raw.is_empty() {
        return Err(JidError::Empty(part));
    }
    if raw.len() > MAX_RAW_PART {
        return Err(JidError::TooLong(part));
    }
    let prepared = stabilize(raw, |s: &str| profile.enforce(s)).map_err(|e| match e {
        PrecisError::BadCodepoint(info) => char::from_u32(info.cp)
            .map_or(JidError::Precis(part), |c| JidError::ForbiddenChar(part, c)),
        PrecisError::Invalid | PrecisError::Unexpected(_) => JidError::Precis(part),
    })?;
    if prepared.len() > MAX_PART {
        return Err(JidError::TooLong(part));
    }
    Ok(Cow::into_owned(prepared))
}

/// True for the bytes a localpart can hold without any PRECIS work: ASCII
/// 0x21..=0x7E (all PVALID in IdentifierClass under the ASCII7 rule of
/// RFC 8264 section 9.11) minus those RFC 7622 section 3.3.1 forbids.
fn is_plain_local_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !LOCAL_FORBIDDEN.contains(&char::from(b))
}

/// Prepares a localpart with UsernameCaseMapped (RFC 8265 section 3.3).
///
/// Fast path: for a non-empty string of [`is_plain_local_byte`] bytes,
/// width mapping (no ASCII code point has a decomposition), NFC (ASCII is
/// normalised) and the bidi rule (which only applies to strings with
/// right-to-left characters) change nothing, so enforcement is ASCII
/// lowercasing, which is also stable. Already-lowercase input is borrowed.
/// Everything else, errors included, goes through the full profile.
fn prepare_local(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if !raw.is_empty() && raw.len() <= MAX_PART && raw.bytes().all(is_plain_local_byte) {
        return Ok(if raw.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(raw.to_ascii_lowercase())
        } else {
            Cow::Borrowed(raw)
        });
    }
    prepare_local_precis(raw).map(Cow::Owned)
}

/// UsernameCaseMapped and the RFC 7622 character rules, for every input.
fn prepare_local_precis(raw: &str) -> Result<String, JidError> {
    let local = precis(&UsernameCaseMapped::new(), JidPart::Local, raw)?;
    // Checked after mapping, so that fullwidth forms of these are caught too.
    match local.chars().find(|c| LOCAL_FORBIDDEN.contains(c)) {
        Some(c) => Err(JidError::ForbiddenChar(JidPart::Local, c)),
        None => Ok(local),
    }
}

/// Prepares a resourcepart with OpaqueString (RFC 8265 section 4.2).
///
/// Fast path: a non-empty string of printable ASCII, space included
/// (0x20..=0x7E), is returned unchanged: FreeformClass allows all of it
/// (ASCII7 and the Spaces category), the additional mapping only touches
/// non-ASCII spaces and NFC leaves ASCII alone. The empty string is left
/// to the full path, which refuses it.
fn prepare_resource(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if !raw.is_empty() && raw.len() <= MAX_PART && raw.bytes().all(|b| matches!(b, 0x20..=0x7e)) {
        return Ok(Cow::Borrowed(raw));
    }
    prepare_resource_precis(raw).map(Cow::Owned)
}

/// OpaqueString, for every input.
fn prepare_resource_precis(raw: &str) -> Result<String, JidError> {
    precis(&OpaqueString::new(), JidPart::Resource, raw)
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Jid").field(&self.text).finish()
    }
}

impl FromStr for Jid {
    type Err = JidError;

    fn from_str(s: &str) -> Result<Jid, JidError> {
        Jid::parse(s)
    }
}

impl TryFrom<&str> for Jid {
    type Error = JidError;

    fn try_from(s: &str) -> Result<Jid, JidError> {
        Jid::parse(s)
    }
}

impl AsRef<str> for Jid {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl From<Jid> for String {
    fn from(jid: Jid) -> String {
        jid.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn jid(s: &str) -> Jid {
        match Jid::parse(s) {
            Ok(j) => j,
            Err(e) => panic!("{s:?} rejected: {e}"),
        }
    }

    fn hash(j: &Jid) -> u64 {
        let mut h = DefaultHasher::new();
        j.hash(&mut h);
        h.finish()
    }

    /// RFC 7622 section 3.5, examples 1 to 15, with their prepared parts.
    #[test]
    fn rfc7622_valid_examples() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("juliet@example.com", Some("juliet"), "example.com", None),
            (
                "juliet@example.com/foo",
                Some("juliet"),
                "example.com",
                Some("foo"),
            ),
            (
                "juliet@example.com/foo bar",
                Some("juliet"),
                "example.com",
                Some("foo bar"),
            ),
            (
                "juliet@example.com/foo@bar",
                Some("juliet"),
                "example.com",
                Some("foo@bar"),
            ),
            (
                "foo\\20bar@example.com",
                Some("foo\\20bar"),
                "example.com",
                None,
            ),
            (
                "fussball@example.com",
                Some("fussball"),
                "example.com",
                None,
            ),
            (
                "fu\u{df}ball@example.com",
                Some("fu\u{df}ball"),
                "example.com",
                None,
            ),
            ("\u{3c0}@example.com", Some("\u{3c0}"), "example.com", None),
            (
                "\u{3a3}@example.com/foo",
                Some("\u{3c3}"),
                "example.com",
                Some("foo"),
            ),
            (
                "\u{3c3}@example.com/foo",
                Some("\u{3c3}"),
                "example.com",
                Some("foo"),
            ),
            (
                "\u{3c2}@example.com/foo",
                Some("\u{3c2}"),
                "example.com",
                Some("foo"),
            ),
            (
                "king@example.com/\u{265a}",
                Some("king"),
                "example.com",
                Some("\u{265a}"),
            ),
            ("example.com", None, "example.com", None),
            ("example.com/foobar", None, "example.com", Some("foobar")),
            (
                "a.example.com/b@example.net",
                None,
                "a.example.com",
                Some("b@example.net"),
            ),
        ];
        for (input, local, domain, resource) in cases {
            let j = jid(input);
            assert_eq!(j.local(), *local, "{input}");
            assert_eq!(j.domain(), *domain, "{input}");
            assert_eq!(j.resource(), *resource, "{input}");
            assert_eq!(jid(j.as_str()), j, "{input}");
        }
    }

    /// RFC 7622 section 3.5, examples 16 to 23.
    #[test]
    fn rfc7622_invalid_examples() {
        let cases: &[(&str, JidError)] = &[
            (
                "\"juliet\"@example.com",
                JidError::ForbiddenChar(JidPart::Local, '"'),
            ),
            (
                "foo bar@example.com",
                JidError::ForbiddenChar(JidPart::Local, ' '),
            ),
            ("juliet@example.com/", JidError::Empty(JidPart::Resource)),
            ("@example.com/", JidError::Empty(JidPart::Local)),
            (
                "henri\u{2163}@example.com",
                JidError::ForbiddenChar(JidPart::Local, '\u{2163}'),
            ),
            (
                "\u{265a}@example.com",
                JidError::ForbiddenChar(JidPart::Local, '\u{265a}'),
            ),
            ("juliet@", JidError::Empty(JidPart::Domain)),
            ("/foobar", JidError::Empty(JidPart::Domain)),
        ];
        for (input, err) in cases {
            assert_eq!(Jid::parse(input), Err(*err), "{input}");
            assert_eq!(err.condition(), "jid-malformed");
        }
    }

    #[test]
    fn more_invalid() {
        for bad in [
            "",
            "@",
            "/",
            "@/",
            "a@b@example.com",
            "example.com/\u{7}",
            "user@exa mple.com",
            "user\u{ff20}evil@example.com",
            "a:b@example.com",
            "a<b@example.com",
            "it's@example.com",
            "a&b@example.com",
            "user@[::1",
            "user@300.0.0.1",
        ] {
            assert!(Jid::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Jid::parse("user\u{ff20}evil@example.com"),
            Err(JidError::ForbiddenChar(JidPart::Local, '@'))
        );
    }

    #[test]
    fn canonical_form_drives_equality_and_hash() {
        let a = jid("Juliet@Example.COM./Balcony");
        let b = jid("juliet@example.com/Balcony");
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(a.to_string(), "juliet@example.com/Balcony");
        // Resources keep their case.
        assert_ne!(jid("juliet@example.com/balcony"), a);
        // Fullwidth letters in the localpart are width-mapped.
        assert_eq!(jid("\u{ff2a}uliet@example.com"), jid("juliet@example.com"));
        assert_eq!(
            jid("juliet@xn--bcher-kva.example"),
            jid("juliet@B\u{dc}cher.example")
        );
    }

    #[test]
    fn accessors_and_builders() {
        let full = jid("romeo@montague.lit/orchard");
        assert!(!full.is_bare());
        assert!(!full.is_domain());
        let bare = full.bare();
        assert_eq!(bare.as_str(), "romeo@montague.lit");
        assert!(bare.is_bare());
        assert_eq!(bare.bare(), bare);
        assert_eq!(full.domain_jid().as_str(), "montague.lit");
        assert!(full.domain_jid().is_domain());
        let moved = full.with_resource("garden\u{a0}wall");
        assert_eq!(
            moved.map(String::from).as_deref(),
            Ok("romeo@montague.lit/garden wall")
        );
        assert_eq!(
            full.with_resource(""),
            Err(JidError::Empty(JidPart::Resource))
        );
        assert!(full.same_domain(&jid("juliet@Montague.lit.")));
        assert!(!full.same_domain(&jid("montague.lit.example")));
        let srv = jid("montague.lit/res");
        assert_eq!(srv.local(), None);
        assert_eq!(
            srv.with_resource("x").map(String::from).as_deref(),
            Ok("montague.lit/x")
        );
        assert_eq!("montague.lit".parse::<Jid>(), Ok(jid("montague.lit")));
        assert_eq!(Jid::try_from("montague.lit"), Ok(jid("montague.lit")));
        assert_eq!(format!("{full:?}"), "Jid(\"romeo@montague.lit/orchard\")");
    }

    #[test]
    fn from_parts_does_not_split() {
        assert_eq!(
            Jid::from_parts(Some("a@b"), "example.com", None),
            Err(JidError::ForbiddenChar(JidPart::Local, '@'))
        );
        assert_eq!(
            Jid::from_parts(None, "example.com/x", None),
            Err(JidError::BadDomain)
        );
        let j = Jid::from_parts(Some("o\\27malley"), "sip.example", Some("a/b"));
        assert_eq!(
            j.map(String::from).as_deref(),
            Ok("o\\27malley@sip.example/a/b")
        );
    }

    #[test]
    fn escaped_locals_survive_preparation() {
        // RFC 7247 section 6 examples.
        let e = escape_local("o'malley").unwrap_or_default();
        let j = Jid::from_parts(Some(&e), "sip.example", None);
        assert_eq!(j.as_ref().map(Jid::as_str), Ok("o\\27malley@sip.example"));
        assert_eq!(
            j.ok().and_then(|j| j.unescaped_local()).as_deref(),
            Some("o'malley")
        );
        let j = jid("m\\26m@xmpp.example");
        assert_eq!(j.unescaped_local().as_deref(), Some("m&m"));
        let j = jid("D\\27Artagnan@musketeers.lit");
        assert_eq!(j.local(), Some("d\\27artagnan"));
        assert_eq!(j.unescaped_local().as_deref(), Some("d'artagnan"));
    }

    #[test]
    fn part_lengths() {
        let l1023 = "a".repeat(1023);
        let l1024 = "a".repeat(1024);
        assert!(Jid::parse(&format!("{l1023}@example.com/{l1023}")).is_ok());
        assert_eq!(
            Jid::parse(&format!("{l1024}@example.com")),
            Err(JidError::TooLong(JidPart::Local))
        );
        assert_eq!(
            Jid::parse(&format!("example.com/{l1024}")),
            Err(JidError::TooLong(JidPart::Resource))
        );
        // 1023 octets once width-mapped, though longer as typed.
        let wide = "\u{ff41}".repeat(1023);
        assert_eq!(
            Jid::parse(&format!("{wide}@example.com")).map(|j| j.local().map(str::len)),
            Ok(Some(1023))
        );
        let huge = "a".repeat(10 * 1023);
        assert_eq!(
            Jid::parse(&format!("{huge}@x")),
            Err(JidError::TooLong(JidPart::Local))
        );
    }

    #[test]
    fn ip_domains() {
        assert_eq!(jid("user@[2001:DB8::1]/r").domain(), "[2001:db8::1]");
        assert_eq!(jid("user@127.0.0.1.").as_str(), "user@127.0.0.1");
        assert_eq!(Jid::parse("user@1.2.3"), Err(JidError::BadIpLiteral));
    }

    #[test]
    fn bidi_rule_applies() {
        // Hebrew followed by a Latin letter breaks the bidi rule.
        assert_eq!(
            Jid::parse("\u{5d0}a@example.com"),
            Err(JidError::Precis(JidPart::Local))
        );
        assert!(Jid::parse("\u{5d0}\u{5d1}@example.com").is_ok());
    }

    /// Printable ASCII with the edge cases of the fast paths weighted up:
    /// space, the RFC 7622 forbidden characters, DEL and controls.
    fn ascii_part() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let ch = prop_oneof![
            8 => prop::char::range('\u{20}', '\u{7e}'),
            2 => prop::sample::select(vec![' ', '"', '&', '\'', '/', ':', '<', '>', '@', 'A', 'Z']),
            1 => prop::sample::select(vec!['\u{0}', '\u{9}', '\u{1f}', '\u{7f}', '\u{ff21}']),
        ];
        prop::collection::vec(ch, 0..12).prop_map(|v| v.into_iter().collect())
    }

    proptest::proptest! {
        #[test]
        fn local_fast_path_agrees_with_precis(s in ascii_part()) {
            let fast = prepare_local(&s).map(Cow::into_owned);
            proptest::prop_assert_eq!(fast, prepare_local_precis(&s), "{:?}", s);
        }

        #[test]
        fn resource_fast_path_agrees_with_precis(s in ascii_part()) {
            let fast = prepare_resource(&s).map(Cow::into_owned);
            proptest::prop_assert_eq!(fast, prepare_resource_precis(&s), "{:?}", s);
        }
    }

    #[test]
    fn fast_paths_agree_on_edge_cases() {
        let long = "a".repeat(MAX_PART);
        let too_long = "A".repeat(MAX_PART + 1);
        for s in [
            "", " ", "a b", " a", "a ", "~", "!", "Juliet", "juliet", "\\20", "a\u{7f}", "\u{7f}",
            "\t", "\"", "@", "\u{e9}", &long, &too_long,
        ] {
            assert_eq!(
                prepare_local(s).map(Cow::into_owned),
                prepare_local_precis(s),
                "{s:?}"
            );
            assert_eq!(
                prepare_resource(s).map(Cow::into_owned),
                prepare_resource_precis(s),
                "{s:?}"
            );
        }
        assert!(matches!(prepare_local("juliet"), Ok(Cow::Borrowed(_))));
        assert!(matches!(
            prepare_resource("Balcony 2"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            JidError::ForbiddenChar(JidPart::Local, '"').to_string(),
            "localpart contains forbidden character U+0022"
        );
        assert_eq!(
            JidError::Empty(JidPart::Domain).to_string(),
            "empty domainpart"
        );
        let e: Box<dyn std::error::Error> = Box::new(JidError::BadDomain);
        assert!(!e.to_string().is_empty());
    }
}
