//! The incremental stream reader (framer).
//!
//! A byte-level scanner finds where each top-level construct ends, keeping
//! only the construct in progress (bounded by the stanza size limit), and
//! refuses DTDs, comments and processing instructions as soon as it sees
//! them. A complete construct is then validated as UTF-8 and XML characters
//! and handed to [`super::parse`]. The scanner only ever looks at ASCII
//! bytes, which never occur inside a multi-byte UTF-8 sequence, so chunk
//! boundaries anywhere (inside a character included) change nothing.

use std::collections::VecDeque;
use std::sync::Arc;

use super::element::Element;
use super::error::{Error, ErrorKind};
use super::header::StreamHeader;
use super::parse;
use super::scan;
use super::scope::Scope;
use super::stanza::Stanza;

/// Resource limits of one stream; hostile input hits these, not memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one stanza (or of the stream header), from `<` to `>`.
    pub max_stanza_size: usize,
    /// Element nesting, the stanza itself being depth 1.
    pub max_depth: u32,
    /// Attributes of one element, namespace declarations included.
    pub max_attributes: usize,
}

impl Default for Limits {
    /// 256 KiB is what Prosody and ejabberd allow on s2s by default; 32
    /// levels is three times the deepest stanza seen in practice (pubsub
    /// items carrying Atom with XHTML content nest about 10); no stanza
    /// of any XEP carries more than a dozen attributes on one element, so
    /// 64 leaves room and keeps namespace lookups short.
    fn default() -> Self {
        Limits {
            max_stanza_size: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
        }
    }
}

/// What a stream yields; `S` is what the reader makes of each top-level
/// element (see [`Form`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<S = Element> {
    /// The peer's stream header.
    Header(StreamHeader),
    /// One complete top-level element (stanza or negotiation element).
    Stanza(S),
    /// `</stream:stream>`: the peer closed its stream.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the stream header; the XML declaration is still allowed while
    /// `decl_allowed`.
    Prolog { decl_allowed: bool },
    /// Inside the stream.
    Open,
    /// After the stream end; only whitespace may follow.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// Between top-level constructs.
    Idle,
    /// A non-ASCII byte at the top level, waiting for the rest of its character.
    TopChar,
    /// Character data inside an element.
    Text,
    /// Just after `<`.
    Open,
    /// Inside a start tag, maybe inside a quoted attribute value.
    StartTag { quote: Option<u8> },
    /// Inside an end tag.
    EndTag,
    /// After `<!`, until it is known to be CDATA.
    Bang,
    /// Inside a CDATA section whose content starts at this buffer offset.
    CData { start: usize },
    /// Inside `<?`, which may only be the XML declaration.
    Decl,
}

/// What a reader makes of a complete top-level element: its tree
/// ([`Element`]), or its checked text ([`Stanza`]) where routing needs no
/// more. Both check it by the same rules.
pub trait Form: Sized {
    /// Checks `text`, one whole element, against the stream's bindings.
    fn read(text: &str, scope: &Arc<Scope>, max_attributes: usize) -> Result<Self, Error>;
}

impl Form for Element {
    fn read(text: &str, scope: &Arc<Scope>, max_attributes: usize) -> Result<Self, Error> {
        scan::element(text, scope, max_attributes)
    }
}

impl Form for Stanza {
    fn read(text: &str, scope: &Arc<Scope>, max_attributes: usize) -> Result<Self, Error> {
        Stanza::parse(text, scope.clone(), max_attributes)
    }
}

/// Capacity above which the construct buffer is released once a construct
/// completes, so that one large stanza does not pin memory on an idle stream.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Incremental XMPP stream reader: bytes in, [`Event`]s out, each
/// top-level element as an [`Element`] tree or, from [`Reader::raw`], as
/// a [`Stanza`].
#[derive(Debug)]
pub struct Reader<S = Element> {
    limits: Limits,
    phase: Phase,
    scan: Scan,
    buf: Vec<u8>,
    /// Length of the prefix of `buf` already validated.
    checked: usize,
    depth: u32,
    scope: Arc<Scope>,
    qname: String,
    offset: u64,
    events: VecDeque<Event<S>>,
    error: Option<Error>,
    failed: bool,
}

impl Reader {
    /// A reader for a new stream (or a restarted one).
    pub fn new(limits: Limits) -> Self {
        Reader::with_form(limits)
    }

    /// A reader of bare top-level elements without a stream header.
    pub fn fragment(limits: Limits) -> Self {
        Reader {
            phase: Phase::Open,
            ..Reader::new(limits)
        }
    }
}

impl Reader<Stanza> {
    /// A reader that yields each top-level element as a [`Stanza`]:
    /// checked by the same rules, without building its tree.
    pub fn raw(limits: Limits) -> Self {
        Reader::with_form(limits)
    }
}

impl<S: Form> Reader<S> {
    /// A reader for a new stream that makes each top-level element an `S`.
    pub fn with_form(limits: Limits) -> Self {
        Reader {
            limits,
            phase: Phase::Prolog { decl_allowed: true },
            scan: Scan::Idle,
            buf: Vec::new(),
            checked: 0,
            depth: 0,
            scope: Arc::default(),
            qname: String::new(),
            offset: 0,
            events: VecDeque::new(),
            error: None,
            failed: false,
        }
    }

    /// Forgets the stream, as RFC 6120 requires after STARTTLS and SASL:
    /// the next bytes start a new stream header.
    pub fn reset(&mut self) {
        *self = Reader::with_form(self.limits);
    }

    /// Consumes bytes until an event completes or `input` is used up, and
    /// returns how many were consumed; the caller polls, then feeds the rest.
    /// Stopping at each event lets a caller reset the reader (or switch to
    /// TLS) exactly where the peer's stream restarts. After an error all
    /// input is consumed and ignored.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        if self.failed || self.error.is_some() {
            return input.len();
        }
        let queued = self.events.len();
        let mut used = 0;
        while used < input.len() && self.events.len() == queued {
            match self.step(&input[used..]) {
                Ok(n) => {
                    used += n;
                    self.offset += n as u64;
                }
                Err(e) => {
                    self.error = Some(e.at(self.offset));
                    self.buf = Vec::new();
                    return input.len();
                }
            }
        }
        used
    }

    /// Feeds all of `input`, queueing every event it completes.
    pub fn feed_all(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            let n = self.feed(input);
            input = &input[n..];
        }
    }

    /// The next event, then the error that stopped the stream, if any.
    pub fn poll(&mut self) -> Option<Result<Event<S>, Error>> {
        if let Some(ev) = self.events.pop_front() {
            return Some(Ok(ev));
        }
        let err = self.error.take()?;
        self.failed = true;
        Some(Err(err))
    }

    /// Gives back what an idle stream needs no longer: the construct
    /// buffer when no construct is in progress, and the event queue when
    /// empty. Called once a read is handled, so an idle link holds neither
    /// while the stanzas of one read still share them.
    pub fn release_idle(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
    }

    /// True between constructs with nothing queued: no partial input held.
    pub fn is_idle(&self) -> bool {
        self.scan == Scan::Idle && self.events.is_empty() && self.error.is_none() && !self.failed
    }

    /// Bytes held for the construct in progress (capacity), for memory accounting.
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends to the construct buffer within the size limit; the buffer's
    /// capacity never exceeds the limit either.
    fn take(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let needed = self.buf.len() + bytes.len();
        if needed > self.limits.max_stanza_size {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "element larger than the {} byte limit",
                    self.limits.max_stanza_size
                ),
            ));
        }
        if needed > self.buf.capacity() {
            let target = (self.buf.capacity() * 2)
                .max(needed)
                .max(64)
                .min(self.limits.max_stanza_size);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Takes `input` up to and including `end` (if found) and returns the
    /// count consumed and whether `end` was reached.
    fn take_until(&mut self, input: &[u8], end: Option<usize>) -> Result<(usize, bool), Error> {
        match end {
            Some(i) => {
                self.take(&input[..=i])?;
                Ok((i + 1, true))
            }
            None => {
                self.take(input)?;
                Ok((input.len(), false))
            }
        }
    }

    /// Consumes at least one byte of `input` (which is not empty).
    fn step(&mut self, input: &[u8]) -> Result<usize, Error> {
        let b = input[0];
        match self.scan {
            Scan::Idle => self.idle(input),
            Scan::TopChar => {
                self.take(&input[..1])?;
                match std::str::from_utf8(&self.buf) {
                    Ok("\u{FEFF}") if self.offset == 2 => {
                        // A byte order mark opening the stream: tolerated.
                        self.buf.clear();
                        self.scan = Scan::Idle;
                        Ok(1)
                    }
                    Ok(_) => Err(self.top_text()),
                    Err(e) if e.error_len().is_some() => Err(invalid_utf8()),
                    Err(_) => Ok(1),
                }
            }
            Scan::Text => {
                let (n, found) = self.take_until(input, memchr::memchr(b'<', input))?;
                if found {
                    self.check_new()?;
                    self.scan = Scan::Open;
                }
                Ok(n)
            }
            Scan::Open => {
                let prolog = matches!(self.phase, Phase::Prolog { .. });
                self.scan = match b {
                    b'/' => Scan::EndTag,
                    b'!' => Scan::Bang,
                    b'?' if self.phase == (Phase::Prolog { decl_allowed: true }) => Scan::Decl,
                    b'?' => {
                        return Err(Error::new(
                            ErrorKind::RestrictedXml,
                            "processing instruction",
                        ))
                    }
                    b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':' | 0x80.. => {
                        Scan::StartTag { quote: None }
                    }
                    _ => return Err(malformed("'<' not followed by a name")),
                };
                if prolog && self.scan != Scan::Decl {
                    // The XML declaration may only come first.
                    self.phase = Phase::Prolog {
                        decl_allowed: false,
                    };
                }
                self.take(&input[..1])?;
                Ok(1)
            }
            Scan::StartTag { quote: Some(q) } => {
                let (n, found) = self.take_until(input, memchr::memchr(q, input))?;
                if found {
                    self.scan = Scan::StartTag { quote: None };
                }
                Ok(n)
            }
            Scan::StartTag { quote: None } => {
                let at = memchr::memchr3(b'>', b'\'', b'"', input);
                let (n, found) = self.take_until(input, at)?;
                if found {
                    match input[n - 1] {
                        b'>' => {
                            self.check_new()?;
                            self.start_tag()?
                        }
                        q => self.scan = Scan::StartTag { quote: Some(q) },
                    }
                }
                Ok(n)
            }
            Scan::EndTag => {
                let (n, found) = self.take_until(input, memchr::memchr(b'>', input))?;
                if found {
                    self.check_new()?;
                    self.end_tag()?;
                }
                Ok(n)
            }
            Scan::Bang => {
                self.take(&input[..1])?;
                const CDATA: &[u8] = b"<![CDATA[";
                if self.bang_len() == 3 {
                    match b {
                        b'-' => return Err(Error::new(ErrorKind::RestrictedXml, "comment")),
                        b'A'..=b'Z' => {
                            return Err(Error::new(ErrorKind::RestrictedXml, "DTD declaration"))
                        }
                        _ => {}
                    }
                }
                if !CDATA.starts_with(&self.buf[self.buf.len() - self.bang_len()..]) {
                    return Err(malformed("malformed CDATA section"));
                }
                if self.bang_len() == CDATA.len() {
                    if self.depth == 0 {
                        return Err(malformed("CDATA outside an element"));
                    }
                    self.scan = Scan::CData {
                        start: self.buf.len(),
                    };
                }
                Ok(1)
            }
            Scan::CData { start } => {
                let (n, found) = self.take_until(input, memchr::memchr(b'>', input))?;
                if found {
                    self.check_new()?;
                    if self.buf.ends_with(b"]]>") && self.buf.len() >= start + 3 {
                        self.scan = Scan::Text;
                    }
                }
                Ok(n)
            }
            Scan::Decl => {
                let (n, found) = self.take_until(input, memchr::memchr(b'>', input))?;
                if found {
                    // Only the XML declaration passes here, and it holds no '>'.
                    if !self.buf.ends_with(b"?>") {
                        return Err(malformed("malformed XML declaration"));
                    }
                    let text = validate(&self.buf)?;
                    parse::declaration(text)?;
                    self.phase = Phase::Prolog {
                        decl_allowed: false,
                    };
                    self.finish_construct();
                }
                Ok(n)
            }
        }
    }

    /// Bytes of the `<!...` construct in progress.
    fn bang_len(&self) -> usize {
        // Within a stanza the buffer holds everything since the stanza
        // started; the construct began at the last '<'.
        let start = self.buf.iter().rposition(|&c| c == b'<').unwrap_or(0);
        self.buf.len() - start
    }

    fn idle(&mut self, input: &[u8]) -> Result<usize, Error> {
        let b = input[0];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => Ok(input
                .iter()
                .take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
                .count()),
            b'<' if self.phase == Phase::Closed => Err(Error::new(
                ErrorKind::NotWellFormed,
                "markup after the stream ended",
            )),
            b'<' => {
                self.buf.clear();
                self.checked = 0;
                self.take(&input[..1])?;
                self.scan = Scan::Open;
                Ok(1)
            }
            0xFE | 0xFF if self.offset == 0 => Err(Error::new(
                ErrorKind::UnsupportedEncoding,
                "UTF-16 byte order mark: only UTF-8 is supported",
            )),
            0x80..=0xC1 | 0xF5..=0xFF => Err(invalid_utf8()),
            0x80.. => {
                self.buf.clear();
                self.checked = 0;
                self.take(&input[..1])?;
                self.scan = Scan::TopChar;
                Ok(1)
            }
            0x00..0x20 | 0x7F => Err(malformed(format!(
                "control character U+{b:04X} between elements"
            ))),
            _ => Err(self.top_text()),
        }
    }

    fn top_text(&self) -> Error {
        let what = match self.phase {
            Phase::Closed => "data after the stream ended",
            Phase::Prolog { .. } => "text before the stream header",
            Phase::Open => "text between top-level elements",
        };
        Error::new(ErrorKind::NotAStream, what)
    }

    fn start_tag(&mut self) -> Result<(), Error> {
        let empty = self.buf.ends_with(b"/>");
        match self.phase {
            Phase::Prolog { .. } => {
                let header = parse::header(validate(&self.buf)?, self.limits.max_attributes)?;
                self.scope = Arc::new(header.scope().clone());
                self.qname = header.qname().to_owned();
                self.phase = Phase::Open;
                self.events.push_back(Event::Header(header));
                self.finish_construct();
            }
            Phase::Open | Phase::Closed if empty => {
                if self.depth == 0 {
                    self.stanza()?;
                } else {
                    self.scan = Scan::Text;
                }
            }
            Phase::Open | Phase::Closed => {
                self.depth += 1;
                if self.depth > self.limits.max_depth {
                    return Err(Error::new(
                        ErrorKind::LimitExceeded,
                        format!("elements nested deeper than {}", self.limits.max_depth),
                    ));
                }
                self.scan = Scan::Text;
            }
        }
        Ok(())
    }

    fn end_tag(&mut self) -> Result<(), Error> {
        if self.depth > 1 {
            self.depth -= 1;
            self.scan = Scan::Text;
            return Ok(());
        }
        if self.depth == 1 {
            self.depth = 0;
            return self.stanza();
        }
        let text = validate(&self.buf)?;
        let name = text
            .strip_prefix("</")
            .and_then(|t| t.strip_suffix('>'))
            .map(|t| t.trim_end_matches([' ', '\t', '\r', '\n']));
        if self.phase != Phase::Open || self.qname.is_empty() || name != Some(&self.qname) {
            return Err(malformed(format!("unexpected end tag '{text}'")));
        }
        self.phase = Phase::Closed;
        self.events.push_back(Event::End);
        self.finish_construct();
        Ok(())
    }

    fn stanza(&mut self) -> Result<(), Error> {
        // Every tag was checked as it completed; the last one ends the buffer.
        let text = std::str::from_utf8(&self.buf).map_err(|_| invalid_utf8())?;
        let stanza = S::read(text, &self.scope, self.limits.max_attributes)?;
        self.events.push_back(Event::Stanza(stanza));
        self.finish_construct();
        Ok(())
    }

    /// Validates what arrived since the last check; called at each '<' and
    /// '>' of markup, which are always character boundaries, so bad input is
    /// refused where it is rather than at the stanza's end.
    fn check_new(&mut self) -> Result<(), Error> {
        validate(&self.buf[self.checked..])?;
        self.checked = self.buf.len();
        Ok(())
    }

    fn finish_construct(&mut self) {
        self.scan = Scan::Idle;
        self.checked = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotWellFormed, detail)
}

fn invalid_utf8() -> Error {
    malformed("invalid UTF-8")
}

/// Checks a complete construct: UTF-8, and only characters XML 1.0 allows.
fn validate(bytes: &[u8]) -> Result<&str, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| invalid_utf8())?;
    // Most text holds neither controls nor the lead byte of U+FFFE/U+FFFF:
    // a test of whole blocks without branches finds that out quickly.
    let suspect = |block: &[u8]| {
        block.iter().fold(false, |seen, &b| {
            seen | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0xEF)
        })
    };
    if !bytes.chunks(64).any(suspect) {
        return Ok(text);
    }
    for (i, &b) in bytes.iter().enumerate() {
        if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
            return Err(malformed(format!("control character U+{b:04X}")));
        }
        if b == 0xEF
            && bytes.get(i + 1) == Some(&0xBF)
            && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
        {
            return Err(malformed("U+FFFE or U+FFFF is not an XML character"));
        }
    }
    Ok(text)
}
