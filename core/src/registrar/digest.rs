//! HTTP Digest as SIP uses it (RFC 3261 section 22, RFC 7616, RFC 8760):
//! SHA-256 and MD5, `qop=auth`, and nonces the server can check without
//! remembering them.
//!
//! # Nonces
//!
//! A nonce is `base64url(ts || rand || tag)` without padding (64 characters):
//! `ts` is the issue time in unix seconds (8 bytes, big-endian), `rand` 8
//! bytes from [`Rng`], and `tag` the full HMAC-SHA256, under the key given to
//! [`Digest::new`], of a domain-separation label, the realm and `ts || rand`.
//! A nonce is ours when its tag verifies (so its time is the one we wrote);
//! it is fresh while `now - ts` is within the lifetime. No table of issued
//! nonces exists, so any instance holding the same key accepts any other's
//! nonces, and memory does not grow with clients. Binding the realm stops a
//! nonce issued for one local domain from being used in another.
//!
//! Checking a nonce needs no state, so `nc` is only checked for syntax
//! here; the registrar remembers the counts of nonces that authenticated a
//! request ([`super::replay`]) and refuses a count seen before, so a
//! captured `Authorization` cannot be replayed to the same instance. The
//! lifetime is short (five minutes by default), which bounds that table.

use base64::Engine;
use md5::Digest as _;
use ring::hmac;

use crate::config::SipCredential;
use crate::rng::Rng;

/// What the HMAC of a nonce starts with, so the key can be shared with
/// other uses without a tag of one ever verifying as the other.
const NONCE_LABEL: &[u8] = b"xfed sip digest nonce v1\0";
/// Issue time (8) and random bytes (8) before the tag.
const NONCE_HEAD: usize = 16;
/// Head plus a full HMAC-SHA256 tag.
const NONCE_BYTES: usize = NONCE_HEAD + 32;
/// Base64url without padding of `NONCE_BYTES`.
const NONCE_CHARS: usize = 64;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use crate::config::digest::Algorithm;

/// The hashing, here with the rest of the digest: the type itself is the
/// configuration's vocabulary (`sip.digest_algorithms`).
impl Algorithm {
    /// Lowercase hex of the hash of `parts` joined by `:`, the `H(a:b:c)`
    /// of RFC 7616, without building the joined string.
    pub fn hash_hex(self, parts: &[&str]) -> String {
        match self {
            Algorithm::Md5 => {
                let mut h = md5::Md5::new();
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        h.update(b":");
                    }
                    h.update(p.as_bytes());
                }
                hex(&h.finalize())
            }
            Algorithm::Sha256 => {
                let mut h = ring::digest::Context::new(&ring::digest::SHA256);
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        h.update(b":");
                    }
                    h.update(p.as_bytes());
                }
                hex(h.finish().as_ref())
            }
        }
    }
}

/// Lowercase hex, as digest values are written.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `HA1 = H(username:realm:password)`.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash_hex(&[username, realm, password])
}

/// The `response` value for `qop=auth` (RFC 7616 section 3.4.1):
/// `H(HA1:nonce:nc:cnonce:qop:H(method:uri))`. With `qop` absent it is the
/// RFC 2069 form `H(HA1:nonce:H(method:uri))`, which only the client side
/// uses (the registrar requires `qop=auth`).
pub fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = alg.hash_hex(&[method, uri]);
    match qop {
        Some((nc, cnonce, qop)) => alg.hash_hex(&[ha1, nonce, nc, cnonce, qop, &ha2]),
        None => alg.hash_hex(&[ha1, nonce, &ha2]),
    }
}

/// Why a header value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The scheme is not `Digest`.
    NotDigest,
    /// Bad syntax at this byte offset.
    Syntax(usize),
    /// A parameter appears twice (RFC 7235 section 2.1 forbids it).
    Duplicate(String),
    /// A required parameter is missing.
    Missing(&'static str),
    /// The challenge names an algorithm we do not implement.
    UnsupportedAlgorithm(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NotDigest => f.write_str("not a Digest header"),
            ParseError::Syntax(at) => write!(f, "bad syntax at byte {at}"),
            ParseError::Duplicate(p) => write!(f, "parameter '{p}' appears twice"),
            ParseError::Missing(p) => write!(f, "parameter '{p}' is missing"),
            ParseError::UnsupportedAlgorithm(a) => write!(f, "unsupported algorithm '{a}'"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Splits `Digest name=value, name="quoted", ...` into lowercase names and
/// unescaped values. Lenient where it costs nothing: any whitespace
/// (including folded line ends), empty list elements, and unquoted values
/// made of anything but whitespace and commas.
fn parse_params(value: &str) -> Result<Vec<(String, String)>, ParseError> {
    let b = value.as_bytes();
    let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let mut i = 0;
    while i < b.len() && ws(b[i]) {
        i += 1;
    }
    let start = i;
    while i < b.len() && !ws(b[i]) {
        i += 1;
    }
    if !value[start..i].eq_ignore_ascii_case("Digest") {
        return Err(ParseError::NotDigest);
    }
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        // Separators: whitespace and commas (empty elements are allowed).
        while i < b.len() && (ws(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let name_start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(ParseError::Syntax(i));
        }
        let name = value[name_start..i].to_ascii_lowercase();
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            return Err(ParseError::Syntax(i));
        }
        i += 1;
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        let val = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut out = String::new();
            let mut run = i;
            loop {
                match b.get(i) {
                    None => return Err(ParseError::Syntax(i)),
                    Some(b'"') => {
                        out.push_str(&value[run..i]);
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        out.push_str(&value[run..i]);
                        i += 1;
                        // The escaped character may be multi-byte: copy it whole.
                        let Some(c) = value.get(i..).and_then(|s| s.chars().next()) else {
                            return Err(ParseError::Syntax(i));
                        };
                        out.push(c);
                        i += c.len_utf8();
                        run = i;
                    }
                    Some(_) => i += 1,
                }
            }
            out
        } else {
            let v_start = i;
            while i < b.len() && !ws(b[i]) && b[i] != b',' {
                if b[i] == b'"' {
                    return Err(ParseError::Syntax(i));
                }
                i += 1;
            }
            if i == v_start {
                return Err(ParseError::Syntax(i));
            }
            value[v_start..i].to_string()
        };
        // After a value: whitespace, then a comma or the end.
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] != b',' {
            return Err(ParseError::Syntax(i));
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(ParseError::Duplicate(name));
        }
        params.push((name, val));
    }
    Ok(params)
}

/// RFC 7230 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `value` as a quoted-string, escaping `"` and `\`.
fn quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Takes parameter `name` out of `params`.
fn take(params: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let at = params.iter().position(|(n, _)| n == name)?;
    Some(params.swap_remove(at).1)
}

/// One `WWW-Authenticate` challenge: ours to send, or a peer's, read when
/// xfed authenticates to a SIP proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space: the SIP domain.
    pub realm: String,
    /// The server's nonce.
    pub nonce: String,
    /// The algorithm the answer must use.
    pub algorithm: Algorithm,
    /// The `qop` list as sent (ours is always `auth`); `None` for RFC 2069.
    pub qop: Option<String>,
    /// The nonce was stale, the password right: retry without asking anyone.
    pub stale: bool,
    /// To be echoed back unchanged when present.
    pub opaque: Option<String>,
}

impl Challenge {
    /// The header value, e.g. `Digest realm="example.com", nonce="...",
    /// algorithm=SHA-256, qop="auth"`.
    pub fn header_value(&self) -> String {
        let mut s = format!(
            "Digest realm={}, nonce={}, algorithm={}",
            quote(&self.realm),
            quote(&self.nonce),
            self.algorithm.name()
        );
        if let Some(qop) = &self.qop {
            s.push_str(", qop=");
            s.push_str(&quote(qop));
        }
        if let Some(opaque) = &self.opaque {
            s.push_str(", opaque=");
            s.push_str(&quote(opaque));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// Reads a `WWW-Authenticate` or `Proxy-Authenticate` value. A missing
    /// algorithm means MD5 (RFC 2617).
    pub fn parse(value: &str) -> Result<Challenge, ParseError> {
        let mut p = parse_params(value)?;
        let algorithm = match take(&mut p, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_name(&a).ok_or(ParseError::UnsupportedAlgorithm(a))?,
        };
        Ok(Challenge {
            realm: take(&mut p, "realm").ok_or(ParseError::Missing("realm"))?,
            nonce: take(&mut p, "nonce").ok_or(ParseError::Missing("nonce"))?,
            algorithm,
            qop: take(&mut p, "qop"),
            stale: take(&mut p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            opaque: take(&mut p, "opaque"),
        })
    }

    /// Whether `qop` offers `auth`.
    pub fn offers_auth(&self) -> bool {
        self.qop
            .as_deref()
            .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")))
    }

    /// The client's answer to this challenge: `qop=auth` when offered (with
    /// `cnonce` and the count `nc`), else the RFC 2069 form.
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> Authorization {
        let ha1 = ha1(self.algorithm, username, &self.realm, password);
        let (nc, cnonce, qop) = if self.offers_auth() {
            (
                Some(format!("{nc:08x}")),
                Some(cnonce.to_string()),
                Some("auth".to_string()),
            )
        } else {
            (None, None, None)
        };
        let q = match (&nc, &cnonce, &qop) {
            (Some(nc), Some(c), Some(q)) => Some((nc.as_str(), c.as_str(), q.as_str())),
            _ => None,
        };
        let response = response(self.algorithm, &ha1, &self.nonce, q, method, uri);
        Authorization {
            username: username.to_string(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_string(),
            response,
            algorithm: Some(self.algorithm.name().to_string()),
            cnonce,
            nc,
            qop,
            opaque: self.opaque.clone(),
        }
    }
}

/// A parsed `Authorization` (or `Proxy-Authorization`) value. Unknown
/// parameters are dropped; `username*` and `userhash` are not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, echoed from the challenge.
    pub nonce: String,
    /// `uri`: the Request-URI the client signed.
    pub uri: String,
    /// `response`: hex digest.
    pub response: String,
    /// `algorithm` as sent; absent means MD5.
    pub algorithm: Option<String>,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `nc`: eight hex digits.
    pub nc: Option<String>,
    /// `qop`.
    pub qop: Option<String>,
    /// `opaque`, echoed.
    pub opaque: Option<String>,
}

impl Authorization {
    /// Reads a header value: quoted strings with `\` escapes and commas
    /// inside, parameters in any order, unknown ones ignored. Never panics.
    pub fn parse(value: &str) -> Result<Authorization, ParseError> {
        let mut p = parse_params(value)?;
        Ok(Authorization {
            username: take(&mut p, "username").ok_or(ParseError::Missing("username"))?,
            realm: take(&mut p, "realm").ok_or(ParseError::Missing("realm"))?,
            nonce: take(&mut p, "nonce").ok_or(ParseError::Missing("nonce"))?,
            uri: take(&mut p, "uri").ok_or(ParseError::Missing("uri"))?,
            response: take(&mut p, "response").ok_or(ParseError::Missing("response"))?,
            algorithm: take(&mut p, "algorithm"),
            cnonce: take(&mut p, "cnonce"),
            nc: take(&mut p, "nc"),
            qop: take(&mut p, "qop"),
            opaque: take(&mut p, "opaque"),
        })
    }

    /// The header value, as a client sends it (RFC 7616 quoting: `nc`,
    /// `qop` and `algorithm` bare, the rest quoted).
    pub fn header_value(&self) -> String {
        let mut s = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response)
        );
        if let Some(a) = &self.algorithm {
            s.push_str(", algorithm=");
            s.push_str(a);
        }
        if let Some(c) = &self.cnonce {
            s.push_str(", cnonce=");
            s.push_str(&quote(c));
        }
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            s.push_str(&quote(o));
        }
        if let Some(q) = &self.qop {
            s.push_str(", qop=");
            s.push_str(q);
        }
        if let Some(nc) = &self.nc {
            s.push_str(", nc=");
            s.push_str(nc);
        }
        s
    }
}

/// The outcome of checking credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The client knows the password and the nonce is ours and fresh.
    Valid,
    /// The response is right but the nonce is expired or not ours (for
    /// example issued before a restart under another key): challenge again
    /// with `stale=true`, so the client retries without asking its user.
    Stale,
    /// Refused.
    Failed(Failure),
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `username` is not the account's.
    Username,
    /// `realm` is not the domain's.
    Realm,
    /// `uri` is not the request's Request-URI.
    Uri,
    /// `algorithm` is not SHA-256 or MD5.
    Algorithm,
    /// The stored HA1 was made with another algorithm than the client used.
    AlgorithmMismatch,
    /// `qop` is not `auth` (we offer nothing else; RFC 2069 answers are refused).
    Qop,
    /// `nc` is not eight hex digits, or `cnonce` is missing or empty.
    NonceCount,
    /// The stored HA1 is not 32 or 64 hex digits.
    Credential,
    /// The response does not match: wrong password.
    Response,
}

/// The server side: issues challenges and checks answers, with no state
/// beyond its key.
pub struct Digest {
    key: hmac::Key,
    lifetime: u64,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Digest {
    /// Five minutes: long enough for a client to answer, short enough to
    /// bound replays (see the module documentation).
    pub const DEFAULT_NONCE_LIFETIME: u64 = 300;

    /// A server keyed by `key` (any length; 32 random bytes, or bytes
    /// derived from a secret shared by every instance of a deployment so
    /// that any instance accepts any other's nonces).
    pub fn new(key: &[u8], nonce_lifetime_secs: u64) -> Digest {
        Digest {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            lifetime: nonce_lifetime_secs,
        }
    }

    /// How long a nonce stays fresh, in seconds.
    pub fn nonce_lifetime(&self) -> u64 {
        self.lifetime
    }

    fn tag(&self, realm: &str, head: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(NONCE_LABEL);
        // The realm's length first, so realm and head cannot be re-split.
        ctx.update(&(realm.len() as u64).to_be_bytes());
        ctx.update(realm.as_bytes());
        ctx.update(head);
        ctx.sign()
    }

    /// A fresh nonce for `realm`.
    pub fn nonce(&self, realm: &str, now_unix: u64, rng: &mut Rng) -> String {
        let mut raw = [0u8; NONCE_BYTES];
        raw[..8].copy_from_slice(&now_unix.to_be_bytes());
        raw[8..NONCE_HEAD].copy_from_slice(&rng.block()[..8]);
        let tag = self.tag(realm, &raw[..NONCE_HEAD]);
        raw[NONCE_HEAD..].copy_from_slice(tag.as_ref());
        B64.encode(raw)
    }

    /// The issue time of `nonce` if we made it for `realm`.
    pub fn nonce_issued(&self, realm: &str, nonce: &str) -> Option<u64> {
        if nonce.len() != NONCE_CHARS {
            return None;
        }
        let raw = B64.decode(nonce).ok()?;
        if raw.len() != NONCE_BYTES {
            return None;
        }
        let mut ctx = Vec::with_capacity(NONCE_LABEL.len() + 8 + realm.len() + NONCE_HEAD);
        ctx.extend_from_slice(NONCE_LABEL);
        ctx.extend_from_slice(&(realm.len() as u64).to_be_bytes());
        ctx.extend_from_slice(realm.as_bytes());
        ctx.extend_from_slice(&raw[..NONCE_HEAD]);
        hmac::verify(&self.key, &ctx, &raw[NONCE_HEAD..]).ok()?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        Some(u64::from_be_bytes(ts))
    }

    /// Whether a nonce issued at `issued` is still fresh at `now_unix`. A
    /// nonce from the future (the caller's clock stepped back) stays valid
    /// for one lifetime ahead, no more.
    fn fresh(&self, issued: u64, now_unix: u64) -> bool {
        now_unix.saturating_sub(issued) <= self.lifetime
            && issued <= now_unix.saturating_add(self.lifetime)
    }

    /// One challenge per algorithm in `algorithms`, in that order, sharing
    /// one nonce: RFC 8760 section 2.3 has the UAS add one header field per
    /// algorithm "in the order in which it would prefer to see them used",
    /// and section 2.4 has the client use "the topmost header field that it
    /// supports".
    pub fn challenges(
        &self,
        realm: &str,
        algorithms: &[Algorithm],
        stale: bool,
        now_unix: u64,
        rng: &mut Rng,
    ) -> Vec<Challenge> {
        let nonce = self.nonce(realm, now_unix, rng);
        algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: realm.to_string(),
                nonce: nonce.clone(),
                algorithm,
                qop: Some("auth".to_string()),
                stale,
                opaque: None,
            })
            .collect()
    }

    /// Checks `auth` for a request with `method` and `request_uri`, against
    /// the account `user` of `realm` holding `credential`; an answer with
    /// an algorithm outside `accepted` (`sip.digest_algorithms`) fails, so
    /// that leaving MD5 out of the list is not undone by a client (or an
    /// on-path attacker rewriting the challenge) answering MD5 anyway.
    ///
    /// Every check but the nonce's comes first; the nonce is judged only
    /// once the response is right, so that `Stale` means "right password,
    /// old nonce" as RFC 7616 section 3.3 requires of `stale=true`.
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        realm: &str,
        auth: &Authorization,
        user: &str,
        credential: &SipCredential,
        accepted: &[Algorithm],
        method: &str,
        request_uri: &str,
        now_unix: u64,
    ) -> Verdict {
        if auth.username != user {
            return Verdict::Failed(Failure::Username);
        }
        if auth.realm != realm {
            return Verdict::Failed(Failure::Realm);
        }
        if auth.uri != request_uri {
            return Verdict::Failed(Failure::Uri);
        }
        let alg = match auth.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => match Algorithm::from_name(a) {
                Some(alg) => alg,
                None => return Verdict::Failed(Failure::Algorithm),
            },
        };
        if !accepted.contains(&alg) {
            return Verdict::Failed(Failure::Algorithm);
        }
        let Some(qop) = auth
            .qop
            .as_deref()
            .filter(|q| q.eq_ignore_ascii_case("auth"))
        else {
            return Verdict::Failed(Failure::Qop);
        };
        let (Some(nc), Some(cnonce)) = (auth.nc.as_deref(), auth.cnonce.as_deref()) else {
            return Verdict::Failed(Failure::NonceCount);
        };
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) || cnonce.is_empty() {
            return Verdict::Failed(Failure::NonceCount);
        }
        let ha1 = match credential {
            SipCredential::Password(p) => ha1(alg, user, realm, p.expose()),
            SipCredential::Ha1(h) => match Algorithm::of_ha1(h.expose()) {
                None => return Verdict::Failed(Failure::Credential),
                Some(a) if a != alg => return Verdict::Failed(Failure::AlgorithmMismatch),
                Some(_) => h.expose().to_ascii_lowercase(),
            },
        };
        let expected = response(
            alg,
            &ha1,
            &auth.nonce,
            Some((nc, cnonce, qop)),
            method,
            &auth.uri,
        );
        if !self.equal(&expected, &auth.response.to_ascii_lowercase()) {
            return Verdict::Failed(Failure::Response);
        }
        match self.nonce_issued(realm, &auth.nonce) {
            Some(issued) if self.fresh(issued, now_unix) => Verdict::Valid,
            _ => Verdict::Stale,
        }
    }

    /// Constant-time equality by comparing HMACs of both sides ("double
    /// HMAC"): `hmac::verify` compares in constant time, and ring's plain
    /// slice comparison is deprecated.
    fn equal(&self, a: &str, b: &str) -> bool {
        let tag = hmac::sign(&self.key, a.as_bytes());
        hmac::verify(&self.key, b.as_bytes(), tag.as_ref()).is_ok()
    }
}

/// The algorithms to offer an account, in the order of `preference`
/// (`sip.digest_algorithms`): all of them for a password (or a user with
/// no account, who must not be told apart), only the HA1's own for a
/// stored HA1 (another could never verify). Empty only for an HA1 whose
/// algorithm the preference leaves out, which loading the configuration
/// refuses.
pub fn algorithms_for(
    preference: &[Algorithm],
    credential: Option<&SipCredential>,
) -> Vec<Algorithm> {
    let own = match credential {
        Some(SipCredential::Ha1(h)) => Algorithm::of_ha1(h.expose()),
        _ => None,
    };
    preference
        .iter()
        .copied()
        .filter(|a| own.is_none_or(|own| own == *a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn pw(p: &str) -> SipCredential {
        SipCredential::Password(Secret::new(p))
    }

    /// RFC 2617 section 3.5.
    #[test]
    fn rfc2617_example() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b", "auth")),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 section 3.9.1, both algorithms.
    #[test]
    fn rfc7616_examples() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, expected) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
            let r = response(
                alg,
                &ha1,
                nonce,
                Some(("00000001", cnonce, "auth")),
                "GET",
                "/dir/index.html",
            );
            assert_eq!(r, expected, "{alg:?}");
        }
    }

    /// The RFC 7616 SHA-256 `Authorization` example, parsed as sent.
    #[test]
    fn parse_rfc7616_authorization() {
        let v = r#"Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let a = Authorization::parse(v).unwrap();
        assert_eq!(a.username, "Mufasa");
        assert_eq!(a.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(a.nc.as_deref(), Some("00000001"));
        assert_eq!(a.qop.as_deref(), Some("auth"));
        assert_eq!(
            a.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        let ha1 = ha1(Algorithm::Sha256, &a.username, &a.realm, "Circle of Life");
        let r = response(
            Algorithm::Sha256,
            &ha1,
            &a.nonce,
            Some(("00000001", a.cnonce.as_deref().unwrap(), "auth")),
            "GET",
            &a.uri,
        );
        assert_eq!(r, a.response);
    }

    #[test]
    fn quoted_strings_escapes_and_commas() {
        let a = Authorization::parse(
            r#"digest USERNAME="a\"b\\c", realm="x, y", nonce=n, uri="sip:x", response="r", foo="bar,baz", ,"#,
        )
        .unwrap();
        assert_eq!(a.username, "a\"b\\c");
        assert_eq!(a.realm, "x, y");
        assert_eq!(a.nonce, "n");
        // Round trip through our own writer.
        assert_eq!(Authorization::parse(&a.header_value()).unwrap(), a);
    }

    #[test]
    fn parse_refusals() {
        assert_eq!(
            Authorization::parse("Basic dXNlcjpwYXNz"),
            Err(ParseError::NotDigest)
        );
        assert_eq!(Authorization::parse(""), Err(ParseError::NotDigest));
        assert!(matches!(
            Authorization::parse(r#"Digest username="unterminated"#),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            Authorization::parse(r#"Digest username="a" realm="b""#),
            Err(ParseError::Syntax(_))
        ));
        assert_eq!(
            Authorization::parse(r#"Digest username="a", username="b""#),
            Err(ParseError::Duplicate("username".into()))
        );
        assert_eq!(
            Authorization::parse(r#"Digest username="a", realm="b", nonce="c", uri="d""#),
            Err(ParseError::Missing("response"))
        );
        assert!(Authorization::parse("Digest username=\"\\").is_err());
        assert!(Authorization::parse("Digest =x").is_err());
    }

    #[test]
    fn challenge_text_and_round_trip() {
        let d = Digest::new(b"k", 300);
        let mut rng = Rng::new([1; 32]);
        let cs = d.challenges("example.com", &Algorithm::ALL, true, 1000, &mut rng);
        assert_eq!(cs.len(), 2);
        let v = cs[0].header_value();
        assert!(
            v.starts_with("Digest realm=\"example.com\", nonce=\""),
            "{v}"
        );
        assert!(
            v.ends_with("algorithm=SHA-256, qop=\"auth\", stale=true"),
            "{v}"
        );
        assert!(cs[1].header_value().contains("algorithm=MD5"));
        assert_eq!(cs[0].nonce, cs[1].nonce);
        assert_eq!(cs[0].nonce.len(), NONCE_CHARS);
        assert_eq!(Challenge::parse(&v).unwrap(), cs[0]);
        assert_eq!(d.nonce_issued("example.com", &cs[0].nonce), Some(1000));
        assert_eq!(d.nonce_issued("other.example", &cs[0].nonce), None);
        assert_eq!(
            Digest::new(b"k2", 300).nonce_issued("example.com", &cs[0].nonce),
            None
        );
    }

    #[test]
    fn verify_cases() {
        let d = Digest::new(b"key", 300);
        let mut rng = Rng::new([2; 32]);
        let uri = "sip:example.com";
        for alg in Algorithm::ALL {
            let ch = &d.challenges("example.com", &[alg], false, 1000, &mut rng)[0];
            let good = ch.answer("alice", "secret", "REGISTER", uri, "c1", 1);
            let check = |a: &Authorization, cred: &SipCredential, now: u64| {
                d.verify(
                    "example.com",
                    a,
                    "alice",
                    cred,
                    &Algorithm::ALL,
                    "REGISTER",
                    uri,
                    now,
                )
            };
            assert_eq!(check(&good, &pw("secret"), 1000), Verdict::Valid);
            assert_eq!(check(&good, &pw("secret"), 1300), Verdict::Valid);
            assert_eq!(check(&good, &pw("secret"), 1301), Verdict::Stale);
            assert_eq!(
                check(&good, &pw("wrong"), 1000),
                Verdict::Failed(Failure::Response)
            );
            // Wrong password and expired: a failure, not stale.
            assert_eq!(
                check(&good, &pw("wrong"), 5000),
                Verdict::Failed(Failure::Response)
            );
            // HA1, right and wrong algorithm.
            let h = SipCredential::Ha1(Secret::new(ha1(alg, "alice", "example.com", "secret")));
            assert_eq!(check(&good, &h, 1000), Verdict::Valid);
            let other = if alg == Algorithm::Md5 {
                Algorithm::Sha256
            } else {
                Algorithm::Md5
            };
            let h2 = SipCredential::Ha1(Secret::new(ha1(other, "alice", "example.com", "secret")));
            assert_eq!(
                check(&good, &h2, 1000),
                Verdict::Failed(Failure::AlgorithmMismatch)
            );
            let bad = SipCredential::Ha1(Secret::new("xyz"));
            assert_eq!(
                check(&good, &bad, 1000),
                Verdict::Failed(Failure::Credential)
            );
            // Uppercase hex response is the same response.
            let mut upper = good.clone();
            upper.response = upper.response.to_ascii_uppercase();
            assert_eq!(check(&upper, &pw("secret"), 1000), Verdict::Valid);
            // Every field that is checked.
            let mut a = good.clone();
            a.username = "bob".into();
            assert_eq!(
                check(&a, &pw("secret"), 1000),
                Verdict::Failed(Failure::Username)
            );
            let mut a = good.clone();
            a.realm = "evil.example".into();
            assert_eq!(
                check(&a, &pw("secret"), 1000),
                Verdict::Failed(Failure::Realm)
            );
            let mut a = good.clone();
            a.uri = "sip:other.example".into();
            assert_eq!(
                check(&a, &pw("secret"), 1000),
                Verdict::Failed(Failure::Uri)
            );
            let mut a = good.clone();
            a.algorithm = Some("SHA-512-256".into());
            assert_eq!(
                check(&a, &pw("secret"), 1000),
                Verdict::Failed(Failure::Algorithm)
            );
            // Right password, but an algorithm the deployment left out.
            let others: Vec<Algorithm> = Algorithm::ALL.into_iter().filter(|o| *o != alg).collect();
            assert_eq!(
                d.verify(
                    "example.com",
                    &good,
                    "alice",
                    &pw("secret"),
                    &others,
                    "REGISTER",
                    uri,
                    1000
                ),
                Verdict::Failed(Failure::Algorithm)
            );
            let mut a = good.clone();
            a.qop = None;
            assert_eq!(
                check(&a, &pw("secret"), 1000),
                Verdict::Failed(Failure::Qop)
            );
            let mut a = good.clone();
            a.nc = Some("1".into());
            assert_eq!(
                check(&a, &pw("secret"), 1000),
                Verdict::Failed(Failure::NonceCount)
            );
            let mut a = good.clone();
            a.cnonce = Some(String::new());
            assert_eq!(
                check(&a, &pw("secret"), 1000),
                Verdict::Failed(Failure::NonceCount)
            );
            let mut a = good.clone();
            a.nc = Some("00000002".into());
            assert_eq!(
                check(&a, &pw("secret"), 1000),
                Verdict::Failed(Failure::Response)
            );
        }
    }

    #[test]
    fn forged_nonce_with_right_password_is_stale() {
        let d = Digest::new(b"key", 300);
        let ch = Challenge {
            realm: "example.com".into(),
            nonce: "made-up".into(),
            algorithm: Algorithm::Sha256,
            qop: Some("auth".into()),
            stale: false,
            opaque: None,
        };
        let a = ch.answer("alice", "secret", "REGISTER", "sip:example.com", "c", 1);
        assert_eq!(
            d.verify(
                "example.com",
                &a,
                "alice",
                &pw("secret"),
                &Algorithm::ALL,
                "REGISTER",
                "sip:example.com",
                0
            ),
            Verdict::Stale
        );
    }

    #[test]
    fn clock_stepped_back() {
        let d = Digest::new(b"key", 300);
        let mut rng = Rng::new([3; 32]);
        let n = d.nonce("r", 10_000, &mut rng);
        let issued = d.nonce_issued("r", &n).unwrap();
        assert!(d.fresh(issued, 9_800));
        assert!(!d.fresh(issued, 9_000));
    }

    #[test]
    fn ha1_algorithm_by_length() {
        assert_eq!(Algorithm::of_ha1(&"a".repeat(32)), Some(Algorithm::Md5));
        assert_eq!(Algorithm::of_ha1(&"A".repeat(64)), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::of_ha1(&"a".repeat(40)), None);
        assert_eq!(Algorithm::of_ha1(&"g".repeat(32)), None);
    }

    #[test]
    fn offered_algorithms_follow_the_preference() {
        use Algorithm::{Md5, Sha256};
        let md5 = SipCredential::Ha1(Secret::new("a".repeat(32)));
        let sha = SipCredential::Ha1(Secret::new("b".repeat(64)));
        for pref in [&[Sha256, Md5][..], &[Md5, Sha256], &[Sha256], &[Md5]] {
            assert_eq!(algorithms_for(pref, Some(&pw("x"))), pref);
            assert_eq!(algorithms_for(pref, None), pref);
            let only = |a| if pref.contains(&a) { vec![a] } else { vec![] };
            assert_eq!(algorithms_for(pref, Some(&md5)), only(Md5));
            assert_eq!(algorithms_for(pref, Some(&sha)), only(Sha256));
        }
    }
}
