//! What can go wrong reading an XML stream, classified so that the XMPP
//! layer can pick its stream error (`xmpp::StreamCondition::from`) without
//! this module knowing about XMPP.

use std::fmt;

/// The class of a reader error: what went wrong, in XML terms. The XMPP
/// layer maps each class to exactly one stream error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Not well-formed XML, namespace errors, invalid UTF-8 or characters
    /// XML 1.0 forbids.
    NotWellFormed,
    /// Well-formed but outside RFC 6120's subset: DTD, comment, processing
    /// instruction, or an entity other than the five predefined ones.
    RestrictedXml,
    /// A configured limit (stanza size, nesting depth) was exceeded.
    LimitExceeded,
    /// Well-formed XML that is not an XMPP stream: a root element not
    /// named `stream`, an empty one, text at the top level, anything after
    /// the stream ended.
    NotAStream,
    /// The root element is named `stream` but is not in the streams
    /// namespace.
    WrongStreamNamespace,
    /// Anything but UTF-8 was declared or signalled by a byte order mark.
    UnsupportedEncoding,
}

impl ErrorKind {
    /// A short name for log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotWellFormed => "not well-formed",
            ErrorKind::RestrictedXml => "restricted XML",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::NotAStream => "not an XML stream",
            ErrorKind::WrongStreamNamespace => "wrong stream namespace",
            ErrorKind::UnsupportedEncoding => "unsupported encoding",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fatal stream reading error: the stream cannot continue after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    detail: String,
    offset: u64,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error {
            kind,
            detail: detail.into(),
            offset: 0,
        }
    }

    pub(crate) fn at(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// What went wrong, for the caller to choose its answer.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A human-readable reason for the log line.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Byte offset in the stream (since the last reset) where the offending
    /// construct starts, for the log line.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.kind, self.offset, self.detail)
    }
}

impl std::error::Error for Error {}
