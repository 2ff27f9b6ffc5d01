//! What can go wrong reading an XML stream, classified by the stream error
//! the XMPP layer answers with.

use std::fmt;

use crate::xmpp::StreamCondition;

/// The class of a reader error; each maps to exactly one stream error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Not well-formed XML, namespace errors, invalid UTF-8 or characters
    /// XML 1.0 forbids.
    NotWellFormed,
    /// Well-formed but outside RFC 6120's subset: DTD, comment, processing
    /// instruction, or an entity other than the five predefined ones.
    RestrictedXml,
    /// A configured limit (stanza size, nesting depth) was exceeded.
    PolicyViolation,
    /// Well-formed XML that is not an XMPP stream: text at the top level,
    /// an empty stream element, anything after the stream ended.
    BadFormat,
    /// The root element is not `stream` in the streams namespace.
    InvalidNamespace,
    /// Anything but UTF-8 was declared or signalled by a byte order mark.
    UnsupportedEncoding,
}

impl ErrorKind {
    /// The stream error condition RFC 6120 section 4.9.3 assigns.
    pub fn condition(self) -> StreamCondition {
        match self {
            ErrorKind::NotWellFormed => StreamCondition::NotWellFormed,
            ErrorKind::RestrictedXml => StreamCondition::RestrictedXml,
            ErrorKind::PolicyViolation => StreamCondition::PolicyViolation,
            ErrorKind::BadFormat => StreamCondition::BadFormat,
            ErrorKind::InvalidNamespace => StreamCondition::InvalidNamespace,
            ErrorKind::UnsupportedEncoding => StreamCondition::UnsupportedEncoding,
        }
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

    /// Which stream error this is answered with.
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
        write!(
            f,
            "{} at byte {}: {}",
            self.kind.condition(),
            self.offset,
            self.detail
        )
    }
}

impl std::error::Error for Error {}
