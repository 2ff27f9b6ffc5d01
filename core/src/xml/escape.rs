//! Escaping for the serializer, and reference expansion with XML 1.0's
//! end-of-line and attribute-value normalization for the reader.
//!
//! Written here rather than taken from quick-xml so that each failure maps
//! to its RFC 6120 class: an unknown entity is `restricted-xml`, a broken
//! reference `not-well-formed`.

use std::borrow::Cow;

use super::error::{Error, ErrorKind};

/// Escapes character data. `\r` becomes a character reference so that it
/// survives the reader's end-of-line normalization.
pub fn escape_text(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |c| match c {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\r' => Some(b"&#13;"),
        _ => None,
    })
}

/// Escapes an attribute value for single-quoted output; tab, newline and
/// carriage return become references because attribute-value normalization
/// would otherwise turn them into spaces.
pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |c| match c {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'\'' => Some(b"&apos;"),
        b'"' => Some(b"&quot;"),
        b'\t' => Some(b"&#9;"),
        b'\n' => Some(b"&#10;"),
        b'\r' => Some(b"&#13;"),
        _ => None,
    })
}

fn escape_with(s: &str, out: &mut Vec<u8>, map: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(rep) = map(b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(rep);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Expands references in raw character data and normalizes line endings.
pub fn unescape_text(raw: &str) -> Result<Cow<'_, str>, Error> {
    unescape(raw, false)
}

/// Checks that each `&` in raw character data is closed by a `;` before
/// the next `&`: what the reference reader's tokenizer refuses first,
/// before any reference's name is read.
pub fn check_closed(raw: &str) -> Result<(), Error> {
    let bytes = raw.as_bytes();
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'&', &bytes[at..]) {
        let from = at + i + 1;
        match memchr::memchr2(b';', b'&', &bytes[from..]) {
            Some(j) if bytes[from + j] == b';' => at = from + j + 1,
            _ => {
                return Err(Error::new(
                    ErrorKind::NotWellFormed,
                    "unterminated reference",
                ))
            }
        }
    }
    Ok(())
}

/// Checks the references in raw character data as [`unescape_text`]
/// would read them, without expanding them (after [`check_closed`]).
pub fn check_text(raw: &str) -> Result<(), Error> {
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'&', rest.as_bytes()) {
        let tail = &rest[i..];
        let end = tail
            .find(';')
            .ok_or_else(|| Error::new(ErrorKind::NotWellFormed, "unterminated reference"))?;
        reference(&tail[1..end])?;
        rest = &tail[end + 1..];
    }
    Ok(())
}

/// Expands references in a raw attribute value and applies attribute-value
/// normalization (literal whitespace characters become spaces).
pub fn unescape_attr(raw: &str) -> Result<Cow<'_, str>, Error> {
    // One pass without branches for both questions: values are short,
    // and most hold neither.
    let (lt, special) = raw.bytes().fold((false, false), |(lt, special), b| {
        (
            lt | (b == b'<'),
            special | (b == b'&') | (b == b'\r') | (b == b'\n') | (b == b'\t'),
        )
    });
    if lt {
        return Err(Error::new(
            ErrorKind::NotWellFormed,
            "'<' in an attribute value",
        ));
    }
    if !special {
        return Ok(Cow::Borrowed(raw));
    }
    unescape(raw, true)
}

fn unescape(raw: &str, attr: bool) -> Result<Cow<'_, str>, Error> {
    let special = |b: u8| b == b'&' || b == b'\r' || (attr && (b == b'\n' || b == b'\t'));
    if !attr && memchr::memchr2(b'&', b'\r', raw.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.bytes().position(special) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match tail.as_bytes()[0] {
            b'&' => {
                let end = tail.find(';').ok_or_else(|| {
                    Error::new(ErrorKind::NotWellFormed, "unterminated reference")
                })?;
                out.push(reference(&tail[1..end])?);
                rest = &tail[end + 1..];
            }
            b'\r' => {
                out.push(if attr { ' ' } else { '\n' });
                rest = tail[1..].strip_prefix('\n').unwrap_or(&tail[1..]);
            }
            _ => {
                out.push(' ');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// Resolves the name between `&` and `;`.
fn reference(name: &str) -> Result<char, Error> {
    let code = if let Some(hex) = name.strip_prefix("#x") {
        parse_digits(hex, 16)?
    } else if let Some(dec) = name.strip_prefix('#') {
        parse_digits(dec, 10)?
    } else {
        return match name {
            "lt" => Ok('<'),
            "gt" => Ok('>'),
            "amp" => Ok('&'),
            "apos" => Ok('\''),
            "quot" => Ok('"'),
            _ if is_name(name) => Err(Error::new(
                ErrorKind::RestrictedXml,
                format!("entity '&{name};' is not one of the five predefined ones"),
            )),
            _ => Err(Error::new(ErrorKind::NotWellFormed, "malformed reference")),
        };
    };
    char::from_u32(code)
        .filter(|c| is_xml_char(*c))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotWellFormed,
                format!("character reference to U+{code:X}, not an XML character"),
            )
        })
}

fn parse_digits(digits: &str, radix: u32) -> Result<u32, Error> {
    let bad = || Error::new(ErrorKind::NotWellFormed, "malformed character reference");
    if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    u32::from_str_radix(digits, radix).map_err(|_| bad())
}

/// XML 1.0 `Char` production.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML 1.0 `Name`, exact for ASCII; any non-ASCII letter is accepted as a
/// name character (XMPP never needs the finer Unicode classes, and they
/// cannot smuggle markup).
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii();
    start(first) && chars.all(|c| start(c) || c.is_ascii_digit() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand() {
        assert_eq!(
            unescape_text("a &lt;b&gt; &amp; &apos;&quot; &#65;&#x42;").unwrap(),
            "a <b> & '\" AB"
        );
        assert!(matches!(unescape_text("plain"), Ok(Cow::Borrowed("plain"))));
    }

    #[test]
    fn line_endings_and_attribute_normalization() {
        assert_eq!(unescape_text("a\r\nb\rc\nd").unwrap(), "a\nb\nc\nd");
        assert_eq!(unescape_attr("a\r\nb\tc\nd").unwrap(), "a b c d");
        assert_eq!(unescape_attr("a&#10;b&#9;c&#13;").unwrap(), "a\nb\tc\r");
    }

    #[test]
    fn reference_errors_are_classified() {
        let kind = |s| unescape_text(s).unwrap_err().kind();
        assert_eq!(kind("&nbsp;"), ErrorKind::RestrictedXml);
        assert_eq!(kind("&lol9;"), ErrorKind::RestrictedXml);
        assert_eq!(kind("a & b"), ErrorKind::NotWellFormed);
        assert_eq!(kind("&#0;"), ErrorKind::NotWellFormed);
        assert_eq!(kind("&#xD800;"), ErrorKind::NotWellFormed);
        assert_eq!(kind("&#xFFFE;"), ErrorKind::NotWellFormed);
        assert_eq!(kind("&#x110000;"), ErrorKind::NotWellFormed);
        assert_eq!(kind("&#;"), ErrorKind::NotWellFormed);
        assert_eq!(kind("&#x-1;"), ErrorKind::NotWellFormed);
        assert_eq!(kind("&;"), ErrorKind::NotWellFormed);
        assert_eq!(
            unescape_attr("a<b").unwrap_err().kind(),
            ErrorKind::NotWellFormed
        );
    }

    #[test]
    fn escaping_round_trips() {
        let s = "<a href='x'>&\"\t\r\n]]>";
        let mut out = Vec::new();
        escape_attr(s, &mut out);
        let esc = String::from_utf8(out).unwrap();
        assert!(!esc.contains(['<', '\'', '"', '\t', '\r', '\n']));
        assert_eq!(unescape_attr(&esc).unwrap(), s);
        let mut out = Vec::new();
        escape_text(s, &mut out);
        let esc = String::from_utf8(out).unwrap();
        assert!(!esc.contains(['<', '>', '\r']));
        assert_eq!(unescape_text(&esc).unwrap(), s);
    }
}
