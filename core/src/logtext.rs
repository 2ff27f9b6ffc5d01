//! Text a peer controls, made safe for one log line: a log line is what an
//! operator trusts, so nothing a peer sends may start a new one or hide
//! part of it.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` could break or disguise a log line: control characters
/// (newlines, escape sequences), Unicode line and paragraph separators,
/// and the bidirectional overrides that reorder what a terminal shows.
fn unsafe_in_log(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every character that could break or disguise a log line
/// written as an escape (`\n`, `\r`, `\t`, `\u{1b}` ...); borrowed when
/// there is none, which is almost always.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_in_log) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_in_log(c) {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn nothing_a_peer_writes_breaks_a_line() {
        assert!(matches!(
            escape("plain é 漢字"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(escape("a\nFORGED"), "a\\nFORGED");
        assert_eq!(escape("a\r\nb\tc"), "a\\r\\nb\\tc");
        assert_eq!(escape("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(
            escape("x\u{2028}y\u{202e}z\u{85}"),
            "x\\u{2028}y\\u{202e}z\\u{85}"
        );
        assert!(!escape("\u{0}\u{7f}\u{9b}").chars().any(|c| c.is_control()));
    }
}
