//! Errors and notices, each placed at a line, a column and a key path, so
//! that an operator can go straight to what needs fixing.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A position in the file, both 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// Line number, from 1.
    pub line: usize,
    /// Column number in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text` (clamped to the text).
    pub(super) fn at(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = text.get(..offset).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.bytes().filter(|&b| b == b'\n').count() + 1,
            column: before.get(line_start..).unwrap_or_default().chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What class of fault stopped the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text is not TOML.
    Syntax,
    /// A key the table does not have (often a typo).
    UnknownKey,
    /// A required key or table is absent.
    MissingKey,
    /// A value of the wrong type, out of range, or malformed.
    InvalidValue,
    /// Values fine on their own that contradict each other (duplicates,
    /// overlaps, a domain both local and a partner, ...).
    Conflict,
    /// A `[[partner]]` whose TLS/SASL/dialback combination cannot
    /// authenticate the partner (Lync's matrix).
    InvalidNegotiation,
}

/// Why a configuration was refused; `Display` gives
/// `line L, column C: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The class of fault.
    pub kind: ErrorKind,
    /// Where, when known (the TOML parser gives no position for a few limits).
    pub location: Option<Location>,
    /// The dotted key path without array indices, such as `partner.tls`;
    /// empty for the document itself.
    pub path: String,
    /// The reason, naming the key and its table.
    pub message: String,
}

impl ConfigError {
    /// The line, when known.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(at) => write!(f, "{at}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// How much a notice matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// For information: nothing is wrong with the file.
    Info,
    /// The file probably does not do what its author meant.
    Warning,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "info",
            Level::Warning => "warning",
        })
    }
}

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoticeKind {
    /// A key in [`INACTIVE_KEYS`](super::INACTIVE_KEYS): accepted, not acted on yet.
    NotActiveYet,
    /// A doubtful TLS/SASL/dialback combination (Lync's matrix).
    Negotiation,
    /// A setting that has no effect with the rest of the file.
    NoEffect,
    /// A dialback secret that is short or the documentation's example.
    WeakSecret,
    /// `sip.digest_algorithms` puts MD5 first or offers nothing else.
    WeakDigest,
}

/// Something the operator should hear about a file that loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Info or warning.
    pub level: Level,
    /// What it is about.
    pub kind: NoticeKind,
    /// Where, when known.
    pub location: Option<Location>,
    /// The dotted key path, as in [`ConfigError::path`].
    pub path: String,
    /// The explanation.
    pub message: String,
}

impl Notice {
    /// The line, when known.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(at) => write!(f, "{at}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Tables written `[[...]]`, for naming keys in messages.
pub(super) const ELEMENT_TABLES: &[&str] = &["partner", "block", "access", "sip.account"];

/// One step of a key path: a key, and whether the step went into an element
/// of an array of tables (`[[...]]`).
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub key: String,
    pub element: bool,
}

/// The dotted path of `steps`, without indices.
pub(super) fn dotted(steps: &[Step]) -> String {
    let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
    keys.join(".")
}

/// How a table is written in a header: `[a.b]`, `[[a.b]]`, or the top level.
pub(super) fn table_name(steps: &[Step]) -> String {
    match steps.last() {
        None => "the top level".to_owned(),
        Some(last) if last.element => format!("[[{}]]", dotted(steps)),
        Some(_) => format!("[{}]", dotted(steps)),
    }
}

/// `in [table]`, or `at the top level`.
fn in_table(steps: &[Step]) -> String {
    if steps.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in {}", table_name(steps))
    }
}

/// `'key' in [table]` for a path of at least one step.
pub(super) fn describe(steps: &[Step]) -> String {
    match steps.split_last() {
        Some((last, parent)) => format!("'{}' {}", last.key, in_table(parent)),
        None => "the document".to_owned(),
    }
}

/// `'a.b'` style for a static path such as `gateway.domains`, derived
/// from the same rules as [`describe`].
pub(super) fn describe_path(path: &str, element_tables: &[&str]) -> String {
    let mut steps = Vec::new();
    let mut so_far = String::new();
    for key in path.split('.') {
        if !so_far.is_empty() {
            so_far.push('.');
        }
        so_far.push_str(key);
        steps.push(Step {
            key: key.to_owned(),
            element: element_tables.contains(&so_far.as_str()),
        });
    }
    describe(&steps)
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// The path of the innermost key or table whose key, value or header
/// covers `offset`.
pub(super) fn locate(root: &DeTable<'_>, offset: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    if !find(root, offset, &mut steps) {
        steps.clear();
    }
    steps
}

fn find(table: &DeTable<'_>, offset: usize, steps: &mut Vec<Step>) -> bool {
    for (key, value) in table.iter() {
        steps.push(Step {
            key: key.get_ref().to_string(),
            element: false,
        });
        match value.get_ref() {
            DeValue::Table(inner) if find(inner, offset, steps) => return true,
            DeValue::Array(array) => {
                for item in array.iter() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        if let Some(last) = steps.last_mut() {
                            last.element = true;
                        }
                        if find(inner, offset, steps) || covers(&item.span(), offset) {
                            return true;
                        }
                    }
                }
                if let Some(last) = steps.last_mut() {
                    last.element = false;
                }
            }
            _ => {}
        }
        if covers(&key.span(), offset) || covers(&value.span(), offset) {
            return true;
        }
        steps.pop();
    }
    false
}

/// Every key set to a value other than a table, with the offset of its first
/// setting, in the order met; arrays of tables are entered, not reported.
pub(super) fn leaves(root: &DeTable<'_>) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    collect(root, "", &mut out);
    out
}

fn collect(table: &DeTable<'_>, prefix: &str, out: &mut Vec<(String, usize)>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        match value.get_ref() {
            DeValue::Table(inner) => collect(inner, &path, out),
            DeValue::Array(array)
                if !array.is_empty() && array.iter().all(|item| item.get_ref().is_table()) =>
            {
                for item in array.iter() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        collect(inner, &path, out);
                    }
                }
            }
            _ => out.push((path, key.span().start)),
        }
    }
}

/// Turns a TOML parser error into a [`ConfigError`].
pub(super) fn from_syntax(text: &str, error: &toml::de::Error) -> ConfigError {
    let mut message = format!("invalid TOML: {}", quoted(error.message()));
    if let Some(found) = error
        .span()
        .and_then(|s| text.get(s))
        .filter(|s| !s.is_empty() && s.len() <= 60 && !s.contains('\n'))
    {
        message.push_str(&format!(" ('{found}')"));
    }
    ConfigError {
        kind: ErrorKind::Syntax,
        location: error.span().map(|s| Location::at(text, s.start)),
        path: String::new(),
        message,
    }
}

/// Turns a deserialization error (unknown key, missing key, wrong type)
/// into a [`ConfigError`] naming the key and its table.
pub(super) fn from_serde(text: &str, root: &DeTable<'_>, error: &toml::de::Error) -> ConfigError {
    let span = error.span();
    let steps = span
        .as_ref()
        .map(|s| locate(root, s.start))
        .unwrap_or_default();
    let location = span.map(|s| Location::at(text, s.start));
    let raw = error.message();
    if let Some((key, rest)) = backticked(raw, "unknown field `") {
        let parent = steps.split_last().map_or(&steps[..], |(_, p)| p);
        let expected = rest.trim_start_matches(',').trim();
        return ConfigError {
            kind: ErrorKind::UnknownKey,
            location,
            path: dotted(&steps),
            message: format!(
                "unknown key '{key}' {} ({})",
                in_table(parent),
                quoted(expected)
            ),
        };
    }
    if let Some((key, _)) = backticked(raw, "missing field `") {
        let mut path = dotted(&steps);
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        return ConfigError {
            kind: ErrorKind::MissingKey,
            location,
            path,
            message: format!("missing key '{key}' in {}", table_name(&steps)),
        };
    }
    // `[[listen]]` for `[listen]`: serde reads the array as a struct's
    // fields and complains about whatever comes first; name the real fault.
    let misplaced = (0..steps.len())
        .filter(|&i| steps[i].element)
        .map(|i| dotted(&steps[..=i]))
        .find(|table| !ELEMENT_TABLES.contains(&table.as_str()));
    if let Some(table) = misplaced {
        return ConfigError {
            kind: ErrorKind::InvalidValue,
            location,
            message: format!("[[{table}]] is not an array of tables: write [{table}]"),
            path: table,
        };
    }
    let path = dotted(&steps);
    let mut message = format!(
        "invalid value for {}: {}",
        describe(&steps),
        quoted(raw)
            .replace("unknown variant", "unknown value")
            .replace("invalid type: map", "invalid type: table")
            .replace("expected a sequence", "expected an array")
    );
    if raw.starts_with("invalid type: map, expected a sequence")
        && ELEMENT_TABLES.contains(&path.as_str())
    {
        message.push_str(&format!(" (write [[{path}]] for each entry)"));
    }
    ConfigError {
        kind: ErrorKind::InvalidValue,
        location,
        path,
        message,
    }
}

/// Splits `` prefix`name`rest `` into `name` and `rest`.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    message.strip_prefix(prefix)?.split_once('`')
}

/// serde quotes names with backticks; the messages here use single quotes.
fn quoted(message: &str) -> String {
    message.replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let text = "a\nbé = 1\n";
        assert_eq!(Location::at(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::at(text, 2), Location { line: 2, column: 1 });
        // "é" is two bytes; offset 5 is the space after it, the third character.
        assert_eq!(Location::at(text, 5), Location { line: 2, column: 3 });
        // Inside a character, and past the end: clamped, no panic.
        assert_eq!(Location::at(text, 4), Location { line: 2, column: 2 });
        assert_eq!(Location::at(text, 999), Location { line: 3, column: 1 });
    }

    #[test]
    fn locate_finds_keys_in_arrays_of_tables() {
        let text = "[a]\nx = 1\n[[b.c]]\ny = 2\n[[b.c]]\nz = [1, 2]\n";
        let root = DeTable::parse(text).expect("valid TOML");
        let at = |needle: &str| text.find(needle).expect("present");
        let steps = locate(root.get_ref(), at("z ="));
        assert_eq!(dotted(&steps), "b.c.z");
        assert_eq!(describe(&steps), "'z' in [[b.c]]");
        let steps = locate(root.get_ref(), at("2]"));
        assert_eq!(dotted(&steps), "b.c.z");
        let steps = locate(root.get_ref(), at("x"));
        assert_eq!(describe(&steps), "'x' in [a]");
        let steps = locate(root.get_ref(), text.rfind("[[b.c]]").expect("present"));
        assert_eq!(table_name(&steps), "[[b.c]]");
        assert_eq!(
            describe_path("sip.account.user", &["sip.account"]),
            "'user' in [[sip.account]]"
        );
    }

    #[test]
    fn leaves_skip_tables_and_enter_arrays_of_tables() {
        let text = "[a]\nx = 1\nl = [1]\n[[b]]\ny = 2\n[[b]]\ny = 3\n[e]\n";
        let root = DeTable::parse(text).expect("valid TOML");
        let mut paths: Vec<String> = leaves(root.get_ref()).into_iter().map(|(p, _)| p).collect();
        paths.sort();
        assert_eq!(paths, ["a.l", "a.x", "b.y", "b.y"]);
    }
}
