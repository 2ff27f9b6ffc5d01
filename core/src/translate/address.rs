//! SIP URI <-> JID mapping (RFC 7247 section 6).
//!
//! URIs travel as text and `parse_uri` reads only what the mapping needs:
//! the scheme (`sip:`, and `im:`/`pres:` which `crate::sip::Uri`
//! does not take), the user, the host and the `gr` parameter. Everything
//! else (password, port, other parameters, headers) is not part of the
//! address and is dropped. (This predates `crate::sip::Uri`; folding the
//! two readers into one is open work.)
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

/// The URI schemes that map to JIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sip,
    /// `im:` (RFC 3860) and `pres:` (RFC 3859): `user@domain`, no params.
    ImOrPres,
}

/// The parts of a URI the mapping uses, still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UriParts<'a> {
    /// The user, without the password; `None` when the URI names a host.
    user: Option<&'a str>,
    /// The host, without port.
    host: &'a str,
    /// The `gr` parameter's value; `None` also for a bare `;gr`, which
    /// marks a temporary GRUU (RFC 5627), never mapped (RFC 7247 6.3).
    gr: Option<&'a str>,
}

/// Minimal reader for `sip:`, `im:` and `pres:` URI text; a stand-in for
/// `crate::sip::Uri` that knows only the parts the mapping uses.
fn parse_uri(uri: &str) -> Result<UriParts<'_>, AddressError> {
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or(AddressError::Malformed("no scheme"))?;
    let scheme = if scheme.eq_ignore_ascii_case("sip") {
        Scheme::Sip
    } else if scheme.eq_ignore_ascii_case("sips") {
        return Err(AddressError::Sips);
    } else if scheme.eq_ignore_ascii_case("im") || scheme.eq_ignore_ascii_case("pres") {
        Scheme::ImOrPres
    } else if !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(AddressError::UnsupportedScheme);
    } else {
        return Err(AddressError::Malformed("no scheme"));
    };

    // RFC 7247 6.4 step 2: split at the first '@'. A raw '@' is allowed
    // neither in parameters nor in headers, so it always ends the user.
    let (userinfo, after) = match rest.split_once('@') {
        Some((u, a)) => (Some(u), a),
        None => (None, rest),
    };
    let user = match userinfo {
        // `user:password`; the user part cannot hold a raw ':'.
        Some(u) => match u.split_once(':').map_or(u, |(user, _)| user) {
            "" => return Err(AddressError::Malformed("empty user")),
            user => Some(user),
        },
        None => None,
    };

    let (hostport, params) = match scheme {
        Scheme::Sip => {
            let end = after.find([';', '?']).unwrap_or(after.len());
            let (hostport, tail) = after.split_at(end);
            // Parameters end where headers start.
            let params = tail.split('?').next().unwrap_or_default();
            (hostport, params)
        }
        Scheme::ImOrPres => (after.split('?').next().unwrap_or_default(), ""),
    };
    let host = strip_port(hostport)?;
    if host.is_empty() {
        return Err(AddressError::Malformed("empty host"));
    }

    let gr = params
        .split(';')
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("gr"))
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty());
    Ok(UriParts { user, host, gr })
}

/// The host of `host[:port]`, where the host may be a bracketed IPv6
/// literal. The port is a transport detail, not part of an address.
fn strip_port(hostport: &str) -> Result<&str, AddressError> {
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(end) => {
                let (host, rest) = hostport.split_at(end + 1);
                match rest {
                    "" => (host, None),
                    _ => match rest.strip_prefix(':') {
                        Some(port) => (host, Some(port)),
                        None => return Err(AddressError::Malformed("text after IPv6 literal")),
                    },
                }
            }
            None => return Err(AddressError::Malformed("unclosed IPv6 literal")),
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    match port {
        Some(p) if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) => {
            Err(AddressError::Malformed("bad port"))
        }
        _ => Ok(host),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes a URI part and reads the octets as UTF-8 (RFC 7247 6.4
/// steps 3 and 4). Raw non-ASCII, which some agents send unencoded, passes.
fn percent_decode(s: &str) -> Result<Cow<'_, str>, AddressError> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(AddressError::Malformed("bad percent-encoding")),
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| AddressError::NotUtf8)
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
    let parts = parse_uri(uri)?;
    let local = match parts.user {
        Some(user) => Some(foreign_local(&percent_decode(user)?)?),
        None => None,
    };
    let resource = parts.gr.map(percent_decode).transpose()?;
    Jid::from_parts(local.as_deref(), parts.host, resource.as_deref()).map_err(AddressError::Jid)
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

/// Bytes the SIP `user` rule (RFC 3261 25.1: unreserved / user-unreserved)
/// allows unencoded.
fn is_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b)
}

/// Bytes the SIP `paramchar` rule allows unencoded.
fn is_param_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$".contains(&b)
}

fn percent_encode(s: &str, keep: fn(u8) -> bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
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
        percent_encode(&unescape_local(local), is_user_byte, &mut out);
        out.push('@');
    }
    out.push_str(&sip_host(jid.domain()));
    if let Some(resource) = jid.resource() {
        out.push_str(";gr=");
        percent_encode(resource, is_param_byte, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_uri_parts() {
        let p = parse_uri("sip:alice:secret@[2001:db8::1]:5061;transport=tcp;gr=x%20y?subject=hi");
        assert_eq!(
            p,
            Ok(UriParts {
                user: Some("alice"),
                host: "[2001:db8::1]",
                gr: Some("x%20y"),
            })
        );
        let p = parse_uri("SIP:example.com;GR=a;gr=b");
        assert_eq!(
            p,
            Ok(UriParts {
                user: None,
                host: "example.com",
                gr: Some("a"),
            })
        );
        // A valueless gr is a temporary GRUU: no resource.
        assert_eq!(
            parse_uri("sip:tgruu.7hs@example.com;gr").map(|p| p.gr),
            Ok(None)
        );
        assert_eq!(
            parse_uri("im:romeo@example.net?body=x").map(|p| p.host),
            Ok("example.net")
        );
        assert_eq!(parse_uri("sips:a@b"), Err(AddressError::Sips));
        assert_eq!(parse_uri("tel:+1555"), Err(AddressError::UnsupportedScheme));
        assert!(matches!(
            parse_uri("alice"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            parse_uri("sip:@x"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            parse_uri("sip:a@"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            parse_uri("sip:a@b:x"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            parse_uri("sip:a@[::1"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            parse_uri("sip:a@[::1]x"),
            Err(AddressError::Malformed(_))
        ));
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
        let mut s = String::new();
        percent_encode("a b#%[\\]^`{|}\"<>:@&'/;?=+$,", is_user_byte, &mut s);
        assert_eq!(
            s,
            "a%20b%23%25%5B%5C%5D%5E%60%7B%7C%7D%22%3C%3E%3A%40&'/;?=+$,"
        );
        let mut s = String::new();
        percent_encode("a;b=c?d@e/[x]:&", is_param_byte, &mut s);
        assert_eq!(s, "a%3Bb%3Dc%3Fd%40e/[x]:&");
    }
}
