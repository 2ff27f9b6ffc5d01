//! XEP-0106 escaping of localparts.
//!
//! The gateway needs it to carry SIP user parts such as `o'malley` or
//! `m&m` (RFC 7247 section 6) in a localpart, where those characters are
//! forbidden, and to give them back unchanged on the way out.

use super::JidError;

/// The ten XEP-0106 pairs. The hex is lowercase because the specification
/// says case is significant, and PRECIS case mapping keeps it that way.
const TABLE: [(char, &[u8; 2]); 10] = [
    (' ', b"20"),
    ('"', b"22"),
    ('&', b"26"),
    ('\'', b"27"),
    ('/', b"2f"),
    (':', b"3a"),
    ('<', b"3c"),
    ('>', b"3e"),
    ('@', b"40"),
    ('\\', b"5c"),
];

/// The character that `\` + the first two bytes of `after` stand for, if
/// they are exactly one of the ten sequences.
fn decode(after: &[u8]) -> Option<char> {
    let hex = after.get(..2)?;
    TABLE
        .iter()
        .find(|(_, code)| hex == code.as_slice())
        .map(|(c, _)| *c)
}

/// Escapes a foreign user name (already URI-decoded, scheme removed) for use
/// as a localpart.
///
/// A backslash becomes `\5c` only when it and the next two characters would
/// otherwise read as one of the ten escapes; every other backslash is left
/// alone, so `call\me` stays as it is (XEP-0106 section 4.3, rule 7).
///
/// Fails with [`JidError::SpaceAtEdge`] when `raw` starts or ends with a
/// space: `\20` must not start or end an escaped localpart, and dropping the
/// space would make another user's address, so the caller has to refuse
/// the address (RFC 7247: `jid-malformed`, or 404 towards SIP).
///
/// The result is not yet a valid localpart: the caller still prepares it
/// through [`Jid::from_parts`](super::Jid::from_parts), which rejects what
/// PRECIS forbids (controls, symbols, other spaces) and case-maps it. Note
/// that case mapping turns a source sequence such as `\2F`, which is not an
/// escape and is therefore kept, into the escape `\2f`.
pub fn escape_local(raw: &str) -> Result<String, JidError> {
    if raw.starts_with(' ') || raw.ends_with(' ') {
        return Err(JidError::SpaceAtEdge);
    }
    let mut out = String::with_capacity(raw.len() + raw.len() / 4);
    let bytes = raw.as_bytes();
    for (i, c) in raw.char_indices() {
        if c == '\\' {
            let rest = bytes.get(i + 1..).unwrap_or_default();
            if decode(rest).is_some() {
                out.push_str("\\5c");
            } else {
                out.push('\\');
            }
            continue;
        }
        match TABLE.iter().find(|(t, _)| *t == c) {
            Some((_, code)) => {
                out.push('\\');
                out.extend(code.iter().map(|b| char::from(*b)));
            }
            None => out.push(c),
        }
    }
    Ok(out)
}

/// The prepared localpart that names a user of another address system (a
/// SIP user, decoded): XEP-0106 escaping, then PRECIS UsernameCaseMapped,
/// so `Alice` and `alice` are one user. This is the canonical form of a
/// gatewayed user, in which accounts, bindings, senders and JIDs are all
/// compared.
///
/// A `\` before an upper-case escape look-alike (`\2F`) is escaped too,
/// since case mapping would turn it into a real escape (the user `\2F`
/// would become the JID of `/`). [`JidError::Unstable`] when PRECIS makes
/// an escaping that does not read back as the same user (fullwidth `＼`
/// before `20` at an edge, ...).
pub fn foreign_local(raw: &str) -> Result<String, JidError> {
    let escaped = escape_foreign(raw)?;
    let local = super::prepare_local(&escaped)?.into_owned();
    if escape_foreign(&unescape_local(&local)).as_deref() != Ok(local.as_str()) {
        return Err(JidError::Unstable);
    }
    Ok(local)
}

/// [`escape_local`], plus the escaping of `\` before `2F`, `3A`, `3C`,
/// `3E` or `5C` written with an upper-case letter.
fn escape_foreign(raw: &str) -> Result<String, JidError> {
    let escaped = escape_local(raw)?;
    if !escaped.contains(['A', 'C', 'E', 'F']) {
        return Ok(escaped);
    }
    const UPPER: [&str; 5] = ["2F", "3A", "3C", "3E", "5C"];
    let mut out = String::with_capacity(escaped.len() + 8);
    let mut rest = escaped.as_str();
    while let Some(pos) = rest.find('\\') {
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        let after = tail.get(1..).unwrap_or_default();
        let code = after.get(..2).unwrap_or_default();
        if UPPER.iter().any(|u| code.eq_ignore_ascii_case(u))
            && code.bytes().any(|b| b.is_ascii_uppercase())
        {
            out.push_str("\\5c");
        } else {
            out.push('\\');
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// Turns an escaped localpart back into the foreign user name.
///
/// Only the ten exact lowercase sequences are decoded; partial or other
/// sequences (`\2plus`, `foo\bar`, `\41`, `\2F`) pass through untouched, as
/// XEP-0106 requires so that existing JIDs keep their meaning. Call it on a
/// prepared localpart ([`Jid::local`](super::Jid::local)), never to compare
/// JIDs.
pub fn unescape_local(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(pos) = rest.find('\\') {
        out.push_str(rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos + 1..).unwrap_or_default();
        match decode(after.as_bytes()) {
            Some(c) => {
                out.push(c);
                // The two decoded bytes are ASCII, so index 2 is a boundary.
                rest = after.get(2..).unwrap_or_default();
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0106 section 5.1 table: user input and escaped form.
    const XEP_EXAMPLES: &[(&str, &str)] = &[
        ("space cadet", r"space\20cadet"),
        (r#"call me "ishmael""#, r"call\20me\20\22ishmael\22"),
        ("at&t guy", r"at\26t\20guy"),
        ("d'artagnan", r"d\27artagnan"),
        ("/.fanboy", r"\2f.fanboy"),
        ("::foo::", r"\3a\3afoo\3a\3a"),
        ("<foo>", r"\3cfoo\3e"),
        ("user@host", r"user\40host"),
        (r"c:\net", r"c\3a\net"),
        (r"c:\\net", r"c\3a\\net"),
        (r"c:\cool stuff", r"c\3a\cool\20stuff"),
        (r"c:\5commas", r"c\3a\5c5commas"),
        // Section 4.3, the Wireless Village address.
        (r"\3and\2is\5cool", r"\5c3and\2is\5c5cool"),
        (r"\5c", r"\5c5c"),
        (r"call me\20", r"call\20me\5c20"),
    ];

    #[test]
    fn xep_examples_escape_and_unescape() {
        for (raw, escaped) in XEP_EXAMPLES {
            assert_eq!(escape_local(raw).as_deref(), Ok(*escaped), "escape {raw}");
            assert_eq!(unescape_local(escaped), *raw, "unescape {escaped}");
        }
    }

    #[test]
    fn brief_examples() {
        assert_eq!(escape_local("call\\me").as_deref(), Ok("call\\me"));
        assert_eq!(escape_local("c:\\net").as_deref(), Ok("c\\3a\\net"));
    }

    #[test]
    fn partial_and_foreign_sequences_are_untouched() {
        for s in [
            r"\2plus\2is\4",
            r"foo\bar",
            r"foob\41r",
            r"\2F",
            r"\",
            r"a\",
            r"\5",
        ] {
            assert_eq!(escape_local(s).as_deref(), Ok(s), "escape {s}");
            assert_eq!(unescape_local(s), s, "unescape {s}");
        }
    }

    #[test]
    fn spaces_at_the_edges_are_refused() {
        assert_eq!(escape_local(" cadet"), Err(JidError::SpaceAtEdge));
        assert_eq!(escape_local("cadet "), Err(JidError::SpaceAtEdge));
        assert_eq!(escape_local(" "), Err(JidError::SpaceAtEdge));
        assert_eq!(escape_local("").as_deref(), Ok(""));
    }

    #[test]
    fn unescape_handles_multibyte_text() {
        assert_eq!(
            unescape_local("tr\u{e9}ville\\40musketeers.lit"),
            "tr\u{e9}ville@musketeers.lit"
        );
        assert_eq!(unescape_local("\u{e9}\\\u{e9}\\2"), "\u{e9}\\\u{e9}\\2");
    }
}
