//! Message framing on TCP and TLS (RFC 3261 section 18.3): bytes in any
//! chunking, whole messages out, Content-Length required, CRLF keepalives
//! (RFC 5626 section 3.5.1) between messages.

use std::collections::VecDeque;

use super::error::{ErrorKind, ParseError};
use super::headers::Headers;
use super::message::Message;
use super::parse::{build, looks_like_request, split_head, with_origin, Head, HeadScanner, Limits};

/// What a stream yields.
// Nearly every frame is a message, taken at once: boxing it would cost an
// allocation per message to save stack on the rare ping.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message, body included.
    Message(Message),
    /// A CRLF completing a double CRLF between messages: RFC 5626's ping.
    /// Answer with a single CRLF.
    Ping,
    /// A CRLF between messages that does not complete a ping: RFC 5626's
    /// pong (or the first half of a ping). It proves the peer alive.
    Pong,
}

#[derive(Debug)]
enum State {
    /// Between messages, after `crlfs` CRLFs (0 or 1) of a keepalive.
    Idle {
        crlfs: u8,
    },
    /// A CR between messages.
    IdleCr {
        crlfs: u8,
    },
    Head(HeadScanner),
    Body {
        remaining: usize,
    },
    Failed,
}

/// Capacity above which the header buffer is released after a message, so
/// that one large message does not pin memory on an idle connection.
const KEEP_CAPACITY: usize = 8 * 1024;

/// Incremental reader of one TCP or TLS connection.
#[derive(Debug)]
pub struct StreamFramer {
    limits: Limits,
    state: State,
    /// The header section in progress.
    head: Vec<u8>,
    /// The parsed header section while its body arrives.
    pending: Option<(String, Headers)>,
    body: Vec<u8>,
    out: VecDeque<Result<Frame, ParseError>>,
}

impl StreamFramer {
    /// A framer for a new connection; `limits` bound what one peer can make it buffer.
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            limits,
            state: State::Idle { crlfs: 0 },
            head: Vec::new(),
            pending: None,
            body: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// Consumes all of `input`, queueing what it completes. After a fatal
    /// error everything is ignored: the connection must close.
    pub fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            let used = match &mut self.state {
                State::Failed => return,
                State::Idle { crlfs } => match input[0] {
                    b'\r' => {
                        self.state = State::IdleCr { crlfs: *crlfs };
                        1
                    }
                    b'\n' => {
                        self.fail(ParseError::new(
                            ErrorKind::BadRequest,
                            "Bare LF between messages",
                        ));
                        return;
                    }
                    _ => {
                        self.state = State::Head(HeadScanner::default());
                        0
                    }
                },
                State::IdleCr { crlfs } => {
                    if input[0] != b'\n' {
                        self.fail(ParseError::new(
                            ErrorKind::BadRequest,
                            "CR without LF between messages",
                        ));
                        return;
                    }
                    let (frame, next) = if *crlfs == 1 {
                        (Frame::Ping, 0)
                    } else {
                        (Frame::Pong, 1)
                    };
                    self.out.push_back(Ok(frame));
                    self.state = State::Idle { crlfs: next };
                    1
                }
                State::Head(scanner) => match scanner.scan(input, &self.limits) {
                    Err(e) => {
                        self.fail(e);
                        return;
                    }
                    Ok(None) => {
                        self.take_head(input);
                        input.len()
                    }
                    Ok(Some(n)) => {
                        self.take_head(&input[..n]);
                        self.head_done();
                        n
                    }
                },
                State::Body { remaining } => {
                    let n = (*remaining).min(input.len());
                    *remaining -= n;
                    let done = *remaining == 0;
                    self.body.extend_from_slice(&input[..n]);
                    if done {
                        self.finish();
                    }
                    n
                }
            };
            input = &input[used..];
        }
    }

    /// The next frame, or error; a fatal error is the last thing returned.
    pub fn poll(&mut self) -> Option<Result<Frame, ParseError>> {
        self.out.pop_front()
    }

    /// True between messages with nothing queued and no partial input.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle { .. }) && self.out.is_empty()
    }

    /// True while a message (or the CR of a keepalive) has started and
    /// not finished.
    pub fn mid_message(&self) -> bool {
        matches!(
            self.state,
            State::IdleCr { .. } | State::Head(_) | State::Body { .. }
        )
    }

    /// True when frames (or an error) wait for [`StreamFramer::poll`].
    pub fn has_frames(&self) -> bool {
        !self.out.is_empty()
    }

    /// True after a fatal error.
    pub fn has_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// Bytes held for the message in progress (capacity), for memory
    /// accounting; never more than the message size limit.
    pub fn buffered(&self) -> usize {
        self.head.capacity() + self.body.capacity()
    }

    /// Appends header bytes; the scanner has checked the total against the
    /// limit, and the capacity stays within it too.
    fn take_head(&mut self, bytes: &[u8]) {
        let needed = self.head.len() + bytes.len();
        if needed > self.head.capacity() {
            let target = (self.head.capacity() * 2)
                .max(needed)
                .max(256)
                .min(self.limits.max_message_size.max(needed));
            self.head.reserve_exact(target - self.head.len());
        }
        self.head.extend_from_slice(bytes);
    }

    fn head_done(&mut self) {
        let head_len = self.head.len();
        let parsed = split_head(&self.head, &self.limits);
        self.release_head();
        let Head { start, mut headers } = match parsed {
            Ok(h) => h,
            Err(e) => return self.fail(e),
        };
        let request = looks_like_request(&start);
        let length = match headers.content_length() {
            Ok(Some(n)) => n,
            Ok(None) => {
                let e = ParseError::new(
                    ErrorKind::BadRequest,
                    "Missing Content-Length header field (required on streams)",
                );
                return self.fail(with_origin(e, request, &headers));
            }
            Err(e) => {
                let e = ParseError::new(ErrorKind::BadRequest, e.to_string());
                return self.fail(with_origin(e, request, &headers));
            }
        };
        if length > self.limits.max_message_size.saturating_sub(head_len) {
            let e = ParseError::new(
                ErrorKind::EntityTooLarge,
                format!(
                    "Body would take the message past {} bytes",
                    self.limits.max_message_size
                ),
            );
            return self.fail(with_origin(e, request, &headers));
        }
        headers.remove("Content-Length");
        self.pending = Some((start, headers));
        self.body = Vec::with_capacity(length);
        self.state = State::Body { remaining: length };
        if length == 0 {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.state = State::Idle { crlfs: 0 };
        if let Some((start, headers)) = self.pending.take() {
            let body = std::mem::take(&mut self.body);
            self.out
                .push_back(build(&start, headers, body).map(Frame::Message));
        }
    }

    fn release_head(&mut self) {
        if self.head.capacity() > KEEP_CAPACITY {
            self.head = Vec::new();
        } else {
            self.head.clear();
        }
    }

    fn fail(&mut self, e: ParseError) {
        self.out.push_back(Err(e.fatal()));
        self.state = State::Failed;
        self.head = Vec::new();
        self.body = Vec::new();
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:gw.test SIP/2.0\r\n\
        Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bK-2\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:a@sip.test>;tag=9\r\n\
        To: <sip:gw.test>\r\n\
        Call-ID: x\r\n\
        CSeq: 2 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    fn run(framer: &mut StreamFramer, input: &[u8]) -> Vec<Result<Frame, ParseError>> {
        framer.feed(input);
        std::iter::from_fn(|| framer.poll()).collect()
    }

    #[test]
    fn keepalives_between_messages() {
        let mut f = StreamFramer::new(Limits::default());
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(OPTIONS);
        input.extend_from_slice(b"\r\n");
        let out = run(&mut f, &input);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], Ok(Frame::Pong));
        assert_eq!(out[1], Ok(Frame::Ping));
        assert!(matches!(out[2], Ok(Frame::Message(_))));
        assert_eq!(out[3], Ok(Frame::Pong));
        assert!(f.is_idle());
    }

    #[test]
    fn content_length_is_required() {
        let mut f = StreamFramer::new(Limits::default());
        let input = String::from_utf8_lossy(OPTIONS).replace("Content-Length: 0\r\n", "");
        let out = run(&mut f, input.as_bytes());
        let e = out[0].clone().unwrap_err();
        assert!(e.is_fatal());
        assert_eq!(e.response_code(), Some(400));
        assert!(e.can_reply());
        assert!(f.has_failed());
        assert!(run(&mut f, OPTIONS).is_empty());
    }

    #[test]
    fn a_bad_message_with_good_framing_is_skipped() {
        let mut f = StreamFramer::new(Limits::default());
        let bad = String::from_utf8_lossy(OPTIONS).replace("Max-Forwards: 70\r\n", "");
        let mut input = bad.into_bytes();
        input.extend_from_slice(OPTIONS);
        let out = run(&mut f, &input);
        assert_eq!(out.len(), 2);
        let e = out[0].clone().unwrap_err();
        assert!(!e.is_fatal());
        assert!(e.can_reply());
        assert!(matches!(out[1], Ok(Frame::Message(_))));
    }
}
