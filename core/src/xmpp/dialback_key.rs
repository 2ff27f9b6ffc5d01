//! Server Dialback keys (XEP-0185, as adopted by XEP-0220 section 2.1.1).
//!
//! `key = HEX(HMAC-SHA256(HEX(SHA256(secret)), receiving ' ' originating ' ' stream_id))`
//!
//! The HMAC key is the lowercase hex *string* of the secret's digest, not the
//! 32 raw bytes: that is what the published examples compute, and what
//! every deployed server does. Keys depend only on the secret and their
//! inputs, so every instance of a deployment sharing the secret can verify
//! keys that another one issued.

use ring::{digest, hmac};

/// Length in bytes of an HMAC-SHA256 tag; a key is twice this in hex.
const TAG_LEN: usize = 32;

/// The dialback key for a stream: `receiving` is the Receiving Server's
/// domain (the `to` of our `db:result`), `originating` the domain we
/// authenticate as (its `from`), `stream_id` the id the Receiving Server
/// gave the stream. Lowercase hex, 64 characters.
pub fn dialback_key(secret: &str, receiving: &str, originating: &str, stream_id: &str) -> String {
    to_hex(
        hmac::sign(
            &hmac_key(secret),
            &message(receiving, originating, stream_id),
        )
        .as_ref(),
    )
}

/// Whether `key` (as received in a `db:verify`, surrounding whitespace
/// allowed, hex digits in either case) is the one [`dialback_key`] gives for
/// these inputs. The comparison runs in constant time (`ring::hmac::verify`),
/// so a peer cannot guess a key byte by byte from response times.
pub fn verify_dialback_key(
    secret: &str,
    receiving: &str,
    originating: &str,
    stream_id: &str,
    key: &str,
) -> bool {
    let Some(tag) = from_hex(key.trim_matches(|c: char| c.is_ascii_whitespace())) else {
        return false;
    };
    hmac::verify(
        &hmac_key(secret),
        &message(receiving, originating, stream_id),
        &tag,
    )
    .is_ok()
}

/// The HMAC key: the lowercase hex of SHA-256 over the secret, as text.
fn hmac_key(secret: &str) -> hmac::Key {
    let hashed = to_hex(digest::digest(&digest::SHA256, secret.as_bytes()).as_ref());
    hmac::Key::new(hmac::HMAC_SHA256, hashed.as_bytes())
}

/// The three inputs joined by single spaces (U+0020), which keeps
/// `example.in` + `form.example.org` apart from `example.info` + `rm.example.org`.
fn message(receiving: &str, originating: &str, stream_id: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(receiving.len() + originating.len() + stream_id.len() + 2);
    msg.extend_from_slice(receiving.as_bytes());
    msg.push(b' ');
    msg.extend_from_slice(originating.as_bytes());
    msg.push(b' ');
    msg.extend_from_slice(stream_id.as_bytes());
    msg
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes exactly one HMAC-SHA256 tag from hex; anything else is `None`.
fn from_hex(text: &str) -> Option<[u8; TAG_LEN]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != TAG_LEN * 2 {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    for (out, pair) in tag.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0185 section 3 ("Example"): Receiving Server `xmpp.example.com`,
    /// Originating Server `example.org`, secret `s3cr3tf0rd14lb4ck`,
    /// stream id `D60000229F`.
    #[test]
    fn xep_0185_example() {
        assert_eq!(
            to_hex(digest::digest(&digest::SHA256, b"s3cr3tf0rd14lb4ck").as_ref()),
            "a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc"
        );
        assert_eq!(
            dialback_key(
                "s3cr3tf0rd14lb4ck",
                "xmpp.example.com",
                "example.org",
                "D60000229F"
            ),
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
    }

    /// XEP-0220 section 2.1.1 (Example 1): capulet.example sends a key to
    /// montague.example on the stream montague.example opened with id D60000229F.
    #[test]
    fn xep_0220_initiating_example() {
        assert_eq!(
            dialback_key(
                "s3cr3tf0rd14lb4ck",
                "montague.example",
                "capulet.example",
                "D60000229F"
            ),
            "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
        );
    }

    /// XEP-0220 section 2.2.2: the Authoritative Server's computation for
    /// `<db:verify from='capulet.example' to='montague.example' id='417GAF25'>`.
    #[test]
    fn xep_0220_authoritative_example() {
        assert_eq!(
            dialback_key(
                "d14lb4ck43v3r",
                "capulet.example",
                "montague.example",
                "417GAF25"
            ),
            "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"
        );
        assert!(verify_dialback_key(
            "d14lb4ck43v3r",
            "capulet.example",
            "montague.example",
            "417GAF25",
            // As the example carries it: indented inside the element.
            "\n       225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d\n     "
        ));
    }

    /// The two plausible misreadings give other values: the raw digest as
    /// HMAC key, and the domains swapped.
    #[test]
    fn misreadings_differ() {
        let raw = digest::digest(&digest::SHA256, b"s3cr3tf0rd14lb4ck");
        let wrong = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, raw.as_ref()),
            b"xmpp.example.com example.org D60000229F",
        );
        assert_ne!(
            to_hex(wrong.as_ref()),
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
        assert_ne!(
            dialback_key(
                "s3cr3tf0rd14lb4ck",
                "example.org",
                "xmpp.example.com",
                "D60000229F"
            ),
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
    }

    #[test]
    fn verify_accepts_own_keys_and_either_case() {
        let key = dialback_key("secret", "a.example", "b.example", "id-1");
        assert_eq!(key.len(), 64);
        assert!(key
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        assert!(verify_dialback_key(
            "secret",
            "a.example",
            "b.example",
            "id-1",
            &key
        ));
        assert!(verify_dialback_key(
            "secret",
            "a.example",
            "b.example",
            "id-1",
            &key.to_ascii_uppercase()
        ));
    }

    #[test]
    fn verify_refuses_any_changed_input() {
        let key = dialback_key("secret", "a.example", "b.example", "id-1");
        assert!(!verify_dialback_key(
            "Secret",
            "a.example",
            "b.example",
            "id-1",
            &key
        ));
        assert!(!verify_dialback_key(
            "secret",
            "b.example",
            "a.example",
            "id-1",
            &key
        ));
        assert!(!verify_dialback_key(
            "secret",
            "a.example",
            "b.example",
            "id-2",
            &key
        ));
        assert!(!verify_dialback_key(
            "secret",
            "a.example",
            "c.example",
            "id-1",
            &key
        ));
        // Concatenation ambiguity is removed by the delimiter.
        let k1 = dialback_key("s", "example.in", "form.example.org", "x");
        assert_ne!(k1, dialback_key("s", "example.info", "rm.example.org", "x"));
    }

    #[test]
    fn verify_refuses_malformed_keys() {
        let key = dialback_key("secret", "a.example", "b.example", "id-1");
        for bad in [
            "",
            " ",
            &key[..63],
            &key[..62],
            &format!("{key}00"),
            &format!("{}g", &key[..63]),
            &format!("{} {}", &key[..32], &key[32..]),
            "éééééééééééééééééééééééééééééééé",
        ] {
            assert!(
                !verify_dialback_key("secret", "a.example", "b.example", "id-1", bad),
                "{bad:?}"
            );
        }
        let mut flipped = key.into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        assert!(!verify_dialback_key(
            "secret",
            "a.example",
            "b.example",
            "id-1",
            &flipped
        ));
    }
}
