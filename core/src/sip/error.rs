//! What can go wrong reading a SIP message, classified by the response a
//! request gets (responses and unrecognizable input get none).

use std::fmt;

use super::headers::Headers;
use super::message::{reason_phrase, response_from, Response};

/// The class of a parse error; each maps to one response status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: syntax, a missing or invalid mandatory header, a bad
    /// Content-Length, a CSeq method that is not the request's.
    BadRequest,
    /// 413: the body would take the message past the size limit.
    EntityTooLarge,
    /// 416: a Request-URI of a scheme other than sip, sips, tel.
    UnsupportedUriScheme,
    /// 505: a SIP version other than 2.0.
    VersionNotSupported,
    /// 513: the header section is over a limit (size, line length, count).
    MessageTooLarge,
}

impl ErrorKind {
    /// The response status RFC 3261 gives this class.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::EntityTooLarge => 413,
            ErrorKind::UnsupportedUriScheme => 416,
            ErrorKind::VersionNotSupported => 505,
            ErrorKind::MessageTooLarge => 513,
        }
    }
}

/// A message that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    kind: ErrorKind,
    detail: String,
    /// The start line was a request line.
    request: bool,
    /// On a stream: framing is lost, the connection must close.
    fatal: bool,
    /// Via, From, To, Call-ID, CSeq of a request, all readable: enough
    /// to build a response. Boxed to keep the error small.
    reply: Option<Box<Headers>>,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ParseError {
            kind,
            detail: detail.into(),
            request: false,
            fatal: false,
            reply: None,
        }
    }

    pub(crate) fn fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// Marks the error as one of a request, keeping what a response needs
    /// if all of it is readable.
    pub(crate) fn for_request(mut self, headers: &Headers) -> Self {
        self.request = true;
        self.reply = reply_headers(headers).map(Box::new);
        self
    }

    /// The class of the refusal, which decides the response sent.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A human-readable reason, worded for a 400 reason phrase and the log.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The status to answer with: `Some` for a request, `None` for a
    /// response or input not recognizable as a request (RFC 3261 sections
    /// 16 and 18: those are dropped, with a log line).
    pub fn response_code(&self) -> Option<u16> {
        self.request.then(|| self.kind.status())
    }

    /// True when a response can be built: a request whose Via, From, To,
    /// Call-ID and CSeq could all be read.
    pub fn can_reply(&self) -> bool {
        self.reply.is_some()
    }

    /// True when the stream this came from cannot continue (framing is
    /// lost); close it after sending the response, if any. Always false
    /// for datagrams.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// The error response, when [`ParseError::can_reply`]: for 400 the
    /// reason phrase names the problem (RFC 3261 section 21.4.1).
    pub fn response(&self, to_tag: &str) -> Option<Response> {
        let headers = self.reply.as_deref()?;
        let status = self.kind.status();
        let r = response_from(headers, status, to_tag);
        Some(if status == 400 {
            r.with_reason(self.detail.clone())
        } else {
            r
        })
    }
}

/// The headers a response copies, when each is readable.
fn reply_headers(h: &Headers) -> Option<Headers> {
    h.via().ok()?;
    h.from().ok()?;
    h.to().ok()?;
    h.call_id().ok()?;
    h.cseq().ok()?;
    let mut out = Headers::new();
    for line in h {
        if ["Via", "From", "To", "Call-ID", "CSeq"]
            .iter()
            .any(|n| line.is(n))
        {
            out.push_header(line);
        }
    }
    Some(out)
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.kind.status(),
            reason_phrase(self.kind.status()),
            self.detail
        )
    }
}

impl std::error::Error for ParseError {}
