//! RFC 3261 section 25 character classes, percent coding and the small
//! scanners (quoted strings, comma lists, header parameters) shared by the
//! URI and header parsers.

use std::borrow::Cow;

/// `token` characters.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// A non-empty run of token characters.
pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// `unreserved` = alphanum / mark.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Unescaped characters of a SIP URI user part.
pub(crate) fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,;?/".contains(&b)
}

/// Unescaped characters of a SIP URI password.
pub(crate) fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,".contains(&b)
}

/// Unescaped characters of URI parameter names and values (`paramchar`).
pub(crate) fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || b"[]/:&+$".contains(&b)
}

/// Unescaped characters of URI header names and values.
pub(crate) fn is_hnv_char(b: u8) -> bool {
    is_unreserved(b) || b"[]/?:+$".contains(&b)
}

/// Characters of a Call-ID `word`.
pub(crate) fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b)
}

/// Characters of an unquoted header parameter value: `token` or `host`
/// (which adds `:`, `[` and `]` for IPv6 addresses, as in Via `received`).
pub(crate) fn is_gen_value_char(b: u8) -> bool {
    is_token(b) || b":[]".contains(&b)
}

/// True when every byte is allowed or part of a well-formed `%XX` escape.
pub(crate) fn valid_escaped(s: &str, allowed: fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Percent-encodes every byte that `allowed` refuses (and `%` itself).
pub(crate) fn encode(s: &[u8], allowed: fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b != b'%' && allowed(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// [`percent_decode`] for text that must be well escaped: `None` when a
/// `%` is not followed by two hexadecimal digits.
pub fn percent_decode_checked(s: &str) -> Option<Cow<'_, [u8]>> {
    valid_escaped(s, |_| true).then(|| percent_decode(s))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Space or horizontal tab.
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_wsp(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Length of the quoted string that `s` starts with (both quotes
/// included), or `None` when it is unterminated or holds a control
/// character other than tab.
pub(crate) fn quoted_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                // quoted-pair: any character but CR and LF.
                match b.get(i + 1) {
                    Some(b'\r' | b'\n') | None => return None,
                    Some(_) => i += 2,
                }
            }
            c if c < 0x20 && c != b'\t' || c == 0x7F => return None,
            _ => i += 1,
        }
    }
    None
}

/// The content of a quoted string (without its quotes), unescaped.
pub(crate) fn unquote(quoted: &str) -> String {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` as a quoted string, escaping `"` and `\`; control characters
/// (which a quoted string cannot hold) become spaces.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push(c),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Splits a header value at the commas that separate list elements: not
/// inside a quoted string, not inside `<...>`. Elements are trimmed and
/// empty ones skipped.
pub(crate) fn split_commas(value: &str) -> impl Iterator<Item = &str> {
    let b = value.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut angle = false;
    let mut quoted = false;
    std::iter::from_fn(move || {
        while start <= b.len() {
            while i < b.len() {
                match b[i] {
                    b'\\' if quoted => i += 1,
                    b'"' if !angle => quoted = !quoted,
                    b'<' if !quoted => angle = true,
                    b'>' if !quoted => angle = false,
                    b',' if !quoted && !angle => break,
                    _ => {}
                }
                i += 1;
            }
            let end = i.min(b.len());
            // Only ASCII was matched, so these are character boundaries.
            let item = trim_wsp(value.get(start..end).unwrap_or(""));
            i = end + 1;
            start = i;
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    })
}

/// Parses `*( SEMI generic-param )` with optional whitespace around `;`
/// and `=`. Values are kept as written (a quoted string with its quotes).
pub(crate) fn parse_header_params(mut s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut params = Vec::new();
    loop {
        s = trim_wsp(s);
        if s.is_empty() {
            return Ok(params);
        }
        let Some(rest) = s.strip_prefix(';') else {
            return Err(format!("unexpected text '{}'", short(s)));
        };
        let rest = rest.trim_start_matches([' ', '\t']);
        let name_len = rest.bytes().take_while(|&b| is_token(b)).count();
        if name_len == 0 {
            return Err("empty parameter name".into());
        }
        let name = &rest[..name_len];
        let after = rest[name_len..].trim_start_matches([' ', '\t']);
        if let Some(v) = after.strip_prefix('=') {
            let v = v.trim_start_matches([' ', '\t']);
            let len = if v.starts_with('"') {
                quoted_len(v).ok_or("unterminated quoted string")?
            } else {
                v.bytes().take_while(|&b| is_gen_value_char(b)).count()
            };
            if len == 0 {
                return Err(format!("parameter '{name}' has an empty value"));
            }
            params.push((name.to_owned(), Some(v[..len].to_owned())));
            s = &v[len..];
        } else {
            params.push((name.to_owned(), None));
            s = after;
        }
    }
}

/// At most 32 characters of `s`, for error details.
pub(crate) fn short(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert!(valid_escaped("a%20b", is_user_char));
        assert!(!valid_escaped("a%2", is_user_char));
        assert!(!valid_escaped("a%", is_user_char));
        assert!(!valid_escaped("a%zz", is_user_char));
        assert!(!valid_escaped("a b", is_user_char));
        assert_eq!(encode("a b%@".as_bytes(), is_user_char), "a%20b%25%40");
        assert_eq!(&*percent_decode("a%20b%25%40"), b"a b%@");
        assert_eq!(&*percent_decode("%"), b"%");
        assert_eq!(&*percent_decode("%4"), b"%4");
        assert_eq!(&*percent_decode("%41"), b"A");
        assert_eq!(&*percent_decode("%zz"), b"%zz");
    }

    #[test]
    fn commas() {
        let v: Vec<&str> = split_commas(r#""a, \"b" <sip:x,y>;q=1 , <sip:z>,, c "#).collect();
        assert_eq!(v, [r#""a, \"b" <sip:x,y>;q=1"#, "<sip:z>", "c"]);
        assert_eq!(split_commas("").count(), 0);
        assert_eq!(split_commas("\"unterminated, x").count(), 1);
    }

    #[test]
    fn params() {
        let p = parse_header_params(" ; tag = abc ;lr; x=\"a;b\"").unwrap();
        assert_eq!(
            p,
            [
                ("tag".into(), Some("abc".into())),
                ("lr".into(), None),
                ("x".into(), Some("\"a;b\"".into()))
            ]
        );
        assert!(parse_header_params(";").is_err());
        assert!(parse_header_params(";a=").is_err());
        assert!(parse_header_params(";a=\"x").is_err());
        assert!(parse_header_params(" junk").is_err());
        assert_eq!(
            parse_header_params(";received=2001:db8::1").unwrap()[0].1,
            Some("2001:db8::1".into())
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(unquote(&quote("a\"b\\c")), "a\"b\\c");
        assert_eq!(quoted_len(r#""a\"b" rest"#), Some(6));
        assert_eq!(quoted_len("\"abc"), None);
        assert_eq!(quoted_len("\"a\\"), None);
    }
}
