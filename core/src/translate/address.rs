//! SIP URI <-> JID mapping (RFC 7247 section 6).
//!
//! URIs travel as text and are read by [`Uri::parse_address`], the SIP
//! URI reader's entry point for address mapping (it also takes `im:` and
//! `pres:`); the mapping uses the scheme, the user, the host and the `gr`
//! parameter. Everything else (password, port, other parameters, headers)
//! is not part of the address and is dropped.
//!
//! The local part goes through full XEP-0106 escaping, not only the three
//! characters (`& ' /`) of RFC 7247 section 6.4 step 5: a percent-decoded
//! user can hold any of the ten (`%40` is `@`, `%20` a space), and section
//! 6.2's general rule says every character the destination reserves is
//! escaped. Symmetrically, [`jid_to_sip`] undoes all ten escapes and
//! percent-encodes whatever the SIP `user` rule does not allow, a superset
//! of the byte set of section 6.5 step 5.

use std::borrow::Cow;
use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use crate::jid::{foreign_local, unescape_local, Jid, JidError};
use crate::sip::{
    encode, is_param_char, is_user_char, percent_decode_checked, Host, Scheme, Uri, UriError,
};

/// Why a URI does not map to a JID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// A `sips:` URI. RFC 7247 section 8: XMPP cannot promise TLS on every
    /// hop, so such a request MUST NOT be gatewayed; answer 403.
    Sips,
    /// A scheme other than `sip`, `im` or `pres` (`tel:`, `mailto:`, ...).
    UnsupportedScheme,
    /// Not a URI of those schemes: no scheme, no host, an empty user, a
    /// broken `%` escape or port.
    Malformed(&'static str),
    /// The percent-decoded user or `gr` value is not UTF-8 (RFC 7247
    /// section 6.4 step 4 treats it as UTF-8).
    NotUtf8,
    /// No JID can carry this user, host or GRUU: PRECIS refuses it, the
    /// user starts or ends with a space, or the host is no domain name.
    Jid(JidError),
    /// The user prepares into a localpart whose escapes read back as a
    /// different user (fullwidth `＼` before `20` at an edge, ...), so the
    /// JID would not map back to this URI's user.
    Unstable,
}

impl AddressError {
    /// The SIP response for a Request-URI or `To` that fails this way:
    /// 403 for `sips:` (rfcs.md 4.1), 416 Unsupported URI Scheme, 400 for
    /// a broken URI, and 404 for a user no XMPP address can name (rfcs.md
    /// 4.2: such a user does not exist on the XMPP side).
    pub fn sip_status(&self) -> u16 {
        match self {
            AddressError::Sips => 403,
            AddressError::UnsupportedScheme => 416,
            AddressError::Malformed(_) | AddressError::NotUtf8 => 400,
            AddressError::Jid(_) | AddressError::Unstable => 404,
        }
    }
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::Sips => f.write_str("sips: URIs are not gatewayed to XMPP"),
            AddressError::UnsupportedScheme => f.write_str("URI scheme is not sip, im or pres"),
            AddressError::Malformed(why) => write!(f, "malformed URI: {why}"),
            AddressError::NotUtf8 => f.write_str("percent-decoded URI part is not UTF-8"),
            AddressError::Jid(e) => write!(f, "no JID for this URI: {e}"),
            AddressError::Unstable => {
                f.write_str("user escapes into a JID that reads back differently")
            }
        }
    }
}

impl std::error::Error for AddressError {}

/// Reads a URI that may map to a JID: `sip:`, `im:` or `pres:`.
fn read_uri(uri: &str) -> Result<Uri, AddressError> {
    // RFC 7247 section 8 refuses sips: whatever follows the scheme.
    if uri
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
    {
        return Err(AddressError::Sips);
    }
    let uri = Uri::parse_address(uri).map_err(|e| match e {
        UriError::UnsupportedScheme(_) => AddressError::UnsupportedScheme,
        UriError::Malformed { fault, .. } => AddressError::Malformed(fault.as_str()),
    })?;
    match uri.scheme() {
        Scheme::Sip | Scheme::Im | Scheme::Pres => Ok(uri),
        Scheme::Sips => Err(AddressError::Sips),
        Scheme::Tel => Err(AddressError::UnsupportedScheme),
    }
}

/// Percent-decodes a URI part and reads the octets as UTF-8 (RFC 7247 6.4
/// steps 3 and 4). Raw non-ASCII, which some agents send unencoded, passes.
fn percent_decode(s: &str) -> Result<Cow<'_, str>, AddressError> {
    match percent_decode_checked(s).ok_or(AddressError::Malformed("bad percent-encoding"))? {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|_| AddressError::NotUtf8),
        Cow::Owned(v) => String::from_utf8(v)
            .map(Cow::Owned)
            .map_err(|_| AddressError::NotUtf8),
    }
}

/// Maps a `sip:`, `im:` or `pres:` URI to a JID (RFC 7247 section 6.4).
///
/// The user is percent-decoded, read as UTF-8, XEP-0106-escaped and
/// prepared (PRECIS UsernameCaseMapped, so `Alice` becomes `alice`); the
/// host becomes the domainpart (A-labels turn into U-labels); a `gr`
/// parameter becomes the resourcepart (only a public GRUU has a value).
/// A URI without a user maps to a domain JID. `sips:` is refused with
/// [`AddressError::Sips`].
pub fn sip_to_jid(uri: &str) -> Result<Jid, AddressError> {
    let uri = read_uri(uri)?;
    let local = match uri.user() {
        Some(user) => Some(foreign_local(&percent_decode(user)?)?),
        None => None,
    };
    // A valueless gr marks a temporary GRUU (RFC 5627), never mapped (RFC
    // 7247 section 6.3); an empty one names nothing either.
    let gr = uri.gr().flatten().filter(|gr| !gr.is_empty());
    let resource = gr.map(percent_decode).transpose()?;
    let host = match uri.host() {
        Some(Host::Domain(name)) => Cow::Borrowed(name.as_str()),
        Some(ip) => Cow::Owned(ip.to_string()),
        // Only tel: has no host, and read_uri refused it.
        None => return Err(AddressError::Malformed("empty host")),
    };
    Jid::from_parts(local.as_deref(), &host, resource.as_deref()).map_err(AddressError::Jid)
}

/// The canonical address of record `user@domain` of a SIP URI's user
/// (percent-encoded, as written in the URI) at `domain`:
/// [`foreign_local`] of the decoded user, and the domain in lower case.
/// Local users are compared in this form everywhere (accounts, bindings,
/// the `From` of a request, the JID it becomes).
pub fn canonical_aor(user: &str, domain: &str) -> Result<String, AddressError> {
    let user = foreign_local(&percent_decode(user)?).map_err(AddressError::from)?;
    Ok(format!("{user}@{}", domain.to_ascii_lowercase()))
}

impl From<JidError> for AddressError {
    fn from(e: JidError) -> Self {
        match e {
            JidError::Unstable => AddressError::Unstable,
            e => AddressError::Jid(e),
        }
    }
}

/// The SIP form of a prepared domainpart: A-labels, since SIP URIs carry
/// no IDNs (rfcs.md 4.2, implementation note); ASCII names and IP literals unchanged.
fn sip_host(domain: &str) -> Cow<'_, str> {
    if domain.is_ascii() {
        return Cow::Borrowed(domain);
    }
    match Uts46::new().to_ascii(
        domain.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::CheckFirstLast,
        DnsLength::Ignore,
    ) {
        Ok(ascii) => Cow::Owned(ascii.into_owned()),
        // Unreachable for a prepared domainpart, which passed the same
        // UTS 46 rules; keeping the U-label beats panicking.
        Err(_) => Cow::Borrowed(domain),
    }
}

/// Maps a JID to a `sip:` URI (RFC 7247 section 6.5).
///
/// All ten XEP-0106 escapes are undone and the result percent-encoded
/// where the SIP `user` rule requires (`m\26m` -> `m&m`, `tschüss` ->
/// `tsch%C3%BCss`); the domain is written as A-labels; a resourcepart
/// becomes `;gr=` (the examples' reading of the garbled step 8). The scheme
/// is always `sip:`: the far side is a SIP domain, and `im:`/`pres:` are
/// only for domains that advertise them.
///
/// JIDs whose localpart is escaped in a non-canonical way (`a\5cb`, which
/// XEP-0106 writes `a\b`, or a `\20` at either end) map to the same URI as
/// their canonical twin, so only canonical localparts survive the way back.
pub fn jid_to_sip(jid: &Jid) -> String {
    let mut out = String::with_capacity(jid.as_str().len() + 16);
    out.push_str("sip:");
    if let Some(local) = jid.local() {
        out.push_str(&encode(unescape_local(local).as_bytes(), is_user_char));
        out.push('@');
    }
    out.push_str(&sip_host(jid.domain()));
    if let Some(resource) = jid.resource() {
        out.push_str(";gr=");
        out.push_str(&encode(resource.as_bytes(), is_param_char));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_uri_refusals() {
        assert_eq!(read_uri("sips:a@b").err(), Some(AddressError::Sips));
        assert_eq!(read_uri("SIPS:not a uri").err(), Some(AddressError::Sips));
        assert_eq!(
            read_uri("tel:+1555").err(),
            Some(AddressError::UnsupportedScheme)
        );
        for (bad, why) in [
            ("alice", "no scheme"),
            ("sip:@x", "empty user"),
            ("sip:a@", "empty host"),
            ("sip:a@b:x", "bad port"),
            ("sip:a@[::1", "unclosed IPv6 literal"),
            ("sip:a@[::1]x", "bad parameter"),
            ("sip:a%4@b", "bad percent-encoding"),
        ] {
            assert_eq!(
                read_uri(bad).err(),
                Some(AddressError::Malformed(why)),
                "{bad}"
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("f%C3%bc").as_deref(), Ok("f\u{fc}"));
        assert_eq!(percent_decode("plain").as_deref(), Ok("plain"));
        assert!(matches!(
            percent_decode("%4"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            percent_decode("%g0"),
            Err(AddressError::Malformed(_))
        ));
        assert_eq!(percent_decode("%C3"), Err(AddressError::NotUtf8));
    }

    #[test]
    fn encoding_sets() {
        let jid = Jid::from_parts(
            Some(r"a\20b\22\3c\3e\3a\40\26\27\2f#"),
            "x.example",
            Some("a;b=c?d@e/[x]:&%"),
        )
        .expect("jid");
        assert_eq!(
            jid_to_sip(&jid),
            "sip:a%20b%22%3C%3E%3A%40&'/%23@x.example;gr=a%3Bb%3Dc%3Fd%40e/[x]:&%25"
        );
    }
}
