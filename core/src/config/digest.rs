//! The digest algorithms a deployment may offer (RFC 8760), named here
//! because `sip.digest_algorithms` lists them; the registrar hashes with
//! them (`registrar::digest`).

/// A digest algorithm the registrar accepts (RFC 8760 section 2). The `-sess`
/// variants are not offered, so they are refused. Which of these a
/// deployment offers, and in which order, is `sip.digest_algorithms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256 (RFC 8760).
    Sha256,
    /// MD5, obsolete, kept for older clients (RFC 8760 section 1).
    Md5,
}

impl Algorithm {
    /// Every algorithm implemented, strongest first.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    /// The name used in the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    /// The algorithm a parameter value names (case-insensitive).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        if name.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else if name.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else {
            None
        }
    }

    /// The algorithm a stored HA1 was made with, told by its length (32 hex
    /// digits for MD5, 64 for SHA-256), since the configuration holds only
    /// the hex.
    pub fn of_ha1(ha1: &str) -> Option<Algorithm> {
        if !ha1.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        match ha1.len() {
            32 => Some(Algorithm::Md5),
            64 => Some(Algorithm::Sha256),
            _ => None,
        }
    }
}
