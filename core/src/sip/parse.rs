//! Reading messages: the header-section scanner shared by datagrams and
//! streams, then the strict checks of RFC 3261 sections 7 and 8.1.1.
//!
//! Three levels, so that a stream knows whether it can go on: the scanner
//! refuses bad line endings, NUL and oversized input as the bytes arrive;
//! splitting the header section refuses bad header lines; both lose the
//! framing (fatal on a stream). Checks of the start line and of header
//! values come last and leave the stream usable.

use super::error::{ErrorKind, ParseError};
use super::headers::Headers;
use super::message::{Message, Request, Response};
use super::method::Method;
use super::syntax::{is_token_str, short};
use super::uri::{Uri, UriError};

/// Resource limits of message reading; hostile input hits these, not
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a whole message, header section and body. The default, 64
    /// KiB, holds the largest UDP datagram (RFC 3261 section 18.1.1).
    pub max_message_size: usize,
    /// Header fields (lines not counting continuations).
    pub max_headers: usize,
    /// Bytes of one line, and of one header field once unfolded.
    pub max_line_length: usize,
}

impl Default for Limits {
    /// 100 headers is about five times what a request through a few
    /// proxies carries; 8 KiB per line holds long Route sets and
    /// authentication headers.
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_headers: 100,
            max_line_length: 8 * 1024,
        }
    }
}

fn bad(detail: impl Into<String>) -> ParseError {
    ParseError::new(ErrorKind::BadRequest, detail)
}

fn too_large(detail: impl Into<String>) -> ParseError {
    ParseError::new(ErrorKind::MessageTooLarge, detail)
}

/// Finds the end of a header section in input arriving in pieces, refusing
/// bare CR or LF, NUL and oversized lines, header counts and sections as
/// soon as the offending byte arrives.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeadScanner {
    /// Bytes of the current line (CRLF excluded).
    line_len: usize,
    /// The last byte was a CR.
    cr: bool,
    /// Lines completed; 0 while in the start line.
    lines: usize,
    fields: usize,
    total: usize,
}

impl HeadScanner {
    /// Scans the next piece of the header section; `Some(n)` when it ends
    /// (after the empty line) `n` bytes into `input`.
    pub(crate) fn scan(
        &mut self,
        input: &[u8],
        limits: &Limits,
    ) -> Result<Option<usize>, ParseError> {
        let mut i = 0;
        let result = loop {
            if i >= input.len() {
                break Ok(None);
            }
            if self.cr {
                if input[i] != b'\n' {
                    break Err(bad("CR without LF in the header section"));
                }
                self.cr = false;
                i += 1;
                if self.line_len == 0 {
                    if self.lines == 0 {
                        break Err(bad("Empty start line"));
                    }
                    break Ok(Some(i));
                }
                self.lines += 1;
                self.line_len = 0;
                continue;
            }
            if self.line_len == 0 && self.lines > 0 && !matches!(input[i], b'\r' | b' ' | b'\t') {
                self.fields += 1;
                if self.fields > limits.max_headers {
                    break Err(too_large(format!(
                        "More than {} header fields",
                        limits.max_headers
                    )));
                }
            }
            let rest = &input[i..];
            let (run, stop) = match memchr::memchr3(b'\r', b'\n', 0, rest) {
                Some(n) => (n, Some(rest[n])),
                None => (rest.len(), None),
            };
            self.line_len += run;
            if self.line_len > limits.max_line_length {
                break Err(too_large(format!(
                    "Line longer than {} bytes",
                    limits.max_line_length
                )));
            }
            i += run;
            match stop {
                None => {}
                Some(b'\r') => {
                    self.cr = true;
                    i += 1;
                }
                Some(b'\n') => break Err(bad("Bare LF in the header section")),
                Some(_) => break Err(bad("NUL byte in the header section")),
            }
        };
        let used = match result {
            Ok(Some(n)) => n,
            _ => i,
        };
        self.total += used;
        if self.total > limits.max_message_size {
            return Err(too_large(format!(
                "Header section larger than {} bytes",
                limits.max_message_size
            )));
        }
        result
    }
}

/// A header section split into its start line and header fields.
pub(crate) struct Head {
    pub(crate) start: String,
    pub(crate) headers: Headers,
}

/// Splits a complete header section (ending with the empty line, which the
/// scanner found): UTF-8, no control characters but tab, `name: value`
/// lines, continuation lines unfolded into one space.
pub(crate) fn split_head(head: &[u8], limits: &Limits) -> Result<Head, ParseError> {
    let text = std::str::from_utf8(head).map_err(|_| bad("Header section is not UTF-8"))?;
    if let Some(c) = text
        .bytes()
        .find(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7F)
    {
        return Err(bad(format!(
            "Control character 0x{c:02X} in the header section"
        )));
    }
    let text = text.strip_suffix("\r\n\r\n").unwrap_or(text);
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or("").to_owned();
    // One buffer for every value: they are never longer than the section.
    let mut headers = Headers::with_capacity(text.len());
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let Some(len) = headers.fold_into_last(line.trim_matches([' ', '\t'])) else {
                return Err(bad("Continuation line before any header"));
            };
            if len > limits.max_line_length {
                return Err(too_large(format!(
                    "Header field longer than {} bytes",
                    limits.max_line_length
                )));
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("Header line without ':' ({})", short(line))));
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token_str(name) {
            return Err(bad(format!("Bad header name '{}'", short(name))));
        }
        headers.push_parsed(name, value.trim_matches([' ', '\t']));
    }
    Ok(Head { start, headers })
}

/// True for a datagram of only CR, LF and spaces: a keepalive (RFC 5626
/// uses STUN over UDP, but CRLF datagrams are common), not a message.
pub fn is_keepalive(datagram: &[u8]) -> bool {
    !datagram.is_empty() && datagram.iter().all(|&b| matches!(b, b'\r' | b'\n' | b' '))
}

/// Parses one UDP datagram (RFC 3261 section 18.3): Content-Length is
/// optional (the body then runs to the end) and, when present, may not
/// exceed what the datagram holds; bytes beyond it are discarded. CRLFs
/// before the start line are skipped.
pub fn parse_datagram(datagram: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    let mut input = datagram;
    while let Some(rest) = input.strip_prefix(b"\r\n") {
        input = rest;
    }
    if input.is_empty() {
        return Err(bad("Empty datagram"));
    }
    // The scanner stops at the size limit, so an oversized datagram is
    // answered (513) when its header section is readable.
    let scanned = HeadScanner::default().scan(input, limits);
    if datagram.len() > limits.max_message_size {
        let e = too_large(format!(
            "Datagram larger than {} bytes",
            limits.max_message_size
        ));
        return Err(match scanned.ok().flatten() {
            Some(end) => match split_head(&input[..end], limits) {
                Ok(Head { start, headers }) => with_origin(e, looks_like_request(&start), &headers),
                Err(_) => e,
            },
            None => e,
        });
    }
    let end = scanned?.ok_or_else(|| bad("Header section not terminated by an empty line"))?;
    let Head { start, mut headers } = split_head(&input[..end], limits)?;
    let request = looks_like_request(&start);
    let rest = &input[end..];
    let body = match headers.content_length() {
        Err(e) => return Err(with_origin(bad(e.to_string()), request, &headers)),
        Ok(None) => rest,
        Ok(Some(n)) if n > rest.len() => {
            return Err(with_origin(
                bad("Content-Length larger than the body"),
                request,
                &headers,
            ))
        }
        Ok(Some(n)) => &rest[..n],
    };
    headers.remove("Content-Length");
    build(&start, headers, body.to_vec())
}

/// Marks an error with what the start line was, for the response decision.
pub(crate) fn with_origin(e: ParseError, request: bool, headers: &Headers) -> ParseError {
    if request {
        e.for_request(headers)
    } else {
        e
    }
}

/// A request line: `Method SP Request-URI SP SIP-Version`, the version
/// being `SIP/digits.digits`. Only then is an error answered.
pub(crate) fn looks_like_request(start: &str) -> bool {
    request_parts(start).is_some()
}

fn request_parts(start: &str) -> Option<(&str, &str, &str)> {
    let mut parts = start.splitn(3, ' ');
    let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = is_token_str(method) && !uri.is_empty() && !uri.contains('\t') && sip_version(version);
    ok.then_some((method, uri, version))
}

/// `"SIP" "/" 1*DIGIT "." 1*DIGIT` ("SIP" case-insensitive, as ABNF strings are).
fn sip_version(v: &str) -> bool {
    let Some(num) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .map(|_| &v[4..])
    else {
        return false;
    };
    let Some((a, b)) = num.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    digits(a) && digits(b)
}

fn is_v2(v: &str) -> bool {
    v.eq_ignore_ascii_case("SIP/2.0")
}

/// Checks the start line and the mandatory headers and assembles the
/// message. Errors here leave a stream's framing intact.
pub(crate) fn build(start: &str, headers: Headers, body: Vec<u8>) -> Result<Message, ParseError> {
    let sip_prefix = start
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    if sip_prefix && !looks_like_request(start) {
        return build_response(start, headers, body).map(Message::Response);
    }
    let Some((method, uri, version)) = request_parts(start) else {
        return Err(bad(format!("Bad start line '{}'", short(start))));
    };
    let fail = |e: ParseError| e.for_request(&headers);
    if !is_v2(version) {
        return Err(fail(ParseError::new(
            ErrorKind::VersionNotSupported,
            format!("Version {} not supported", short(version)),
        )));
    }
    let method = Method::parse(method).ok_or_else(|| fail(bad("Bad method")))?;
    let uri = match Uri::parse(uri) {
        Ok(u) => u,
        Err(UriError::UnsupportedScheme(s)) => {
            return Err(fail(ParseError::new(
                ErrorKind::UnsupportedUriScheme,
                format!("Unsupported URI scheme {}", short(&s)),
            )))
        }
        Err(UriError::Malformed { detail: d, .. }) => {
            return Err(fail(bad(format!("Bad Request-URI: {d}"))));
        }
    };
    let mandatory = || -> Result<(), String> {
        headers.via().map_err(|e| e.to_string())?;
        headers.from().map_err(|e| e.to_string())?;
        headers.to().map_err(|e| e.to_string())?;
        headers.call_id().map_err(|e| e.to_string())?;
        let cseq = headers.cseq().map_err(|e| e.to_string())?;
        match headers.max_forwards() {
            Ok(Some(_)) => {}
            Ok(None) => return Err("Missing Max-Forwards header field".into()),
            Err(e) => return Err(e.to_string()),
        }
        if cseq.method != method {
            return Err("CSeq method does not match the request method".into());
        }
        Ok(())
    };
    mandatory().map_err(|d| fail(bad(d)))?;
    Ok(Message::Request(Request {
        method,
        uri,
        headers,
        body,
    }))
}

/// `SIP-Version SP Status-Code SP Reason-Phrase`; a response without a
/// reason (and without the space) is tolerated since it is only read.
fn build_response(start: &str, headers: Headers, body: Vec<u8>) -> Result<Response, ParseError> {
    let (version, rest) = start.split_once(' ').unwrap_or((start, ""));
    if !is_v2(version) {
        return Err(ParseError::new(
            ErrorKind::VersionNotSupported,
            format!("Version {} not supported", short(version)),
        ));
    }
    let (code, reason) = match rest.split_once(' ') {
        Some((c, r)) => (c, r),
        None => (rest, ""),
    };
    let status = Some(code)
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|s| (100..=699).contains(s))
        .ok_or_else(|| bad(format!("Bad status code '{}'", short(code))))?;
    let check = || -> Result<(), String> {
        headers.via().map_err(|e| e.to_string())?;
        headers.from().map_err(|e| e.to_string())?;
        headers.to().map_err(|e| e.to_string())?;
        headers.call_id().map_err(|e| e.to_string())?;
        headers.cseq().map_err(|e| e.to_string())?;
        headers.max_forwards().map_err(|e| e.to_string())?;
        Ok(())
    };
    check().map_err(bad)?;
    Ok(Response {
        status,
        reason: reason.to_owned(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "MESSAGE sip:bob@gw.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-1-0\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:sipp@sip.test>;tag=1SIPpTag001\r\n\
        To: <sip:bob@gw.test>\r\n\
        Call-ID: 1-1@127.0.0.1\r\n\
        CSeq: 1 MESSAGE\r\n\
        Content-Type: text/plain\r\n\
        Content-Length: 5\r\n\
        \r\n\
        hello";

    fn parse(s: &str) -> Result<Message, ParseError> {
        parse_datagram(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn a_sipp_message() {
        let Message::Request(r) = parse(MESSAGE).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Message);
        assert_eq!(r.uri.to_string(), "sip:bob@gw.test");
        assert_eq!(r.body, b"hello");
        assert!(!r.headers.contains("Content-Length"));
        assert_eq!(r.headers.len(), 7);
        assert_eq!(
            parse(&String::from_utf8(r.to_bytes()).unwrap()),
            Ok(Message::Request(r))
        );
    }

    #[test]
    fn datagram_content_length_rules() {
        // Absent: the body is the rest.
        let no_cl = MESSAGE.replace("Content-Length: 5\r\n", "");
        assert_eq!(parse(&no_cl).unwrap().body(), b"hello");
        // Shorter: extra bytes dropped.
        let short = MESSAGE.replace("Content-Length: 5", "Content-Length: 3");
        assert_eq!(parse(&short).unwrap().body(), b"hel");
        // Longer than the datagram: 400, answerable.
        let long = MESSAGE.replace("Content-Length: 5", "Content-Length: 6");
        let e = parse(&long).unwrap_err();
        assert_eq!(e.response_code(), Some(400));
        assert!(e.can_reply());
        let r = e.response("t").unwrap();
        assert_eq!(r.reason, "Content-Length larger than the body");
        assert_eq!(r.headers.to().unwrap().tag(), Some("t"));
        assert_eq!(r.headers.cseq().unwrap().seq, 1);
    }

    #[test]
    fn folding_and_compact_forms() {
        let folded = MESSAGE
            .replace(
                "Via: SIP/2.0/UDP 127.0.0.1:5071;",
                "v: SIP/2.0/UDP 127.0.0.1:5071 \r\n\t ;",
            )
            .replace("Content-Type: text/plain", "c:text/plain");
        let m = parse(&folded).unwrap();
        assert_eq!(
            m.headers().get("Via"),
            Some("SIP/2.0/UDP 127.0.0.1:5071 ;branch=z9hG4bK-1-0")
        );
        assert_eq!(m.headers().iter().next().unwrap().name(), "v");
        assert!(m.headers().content_type_is("text/plain"));
    }

    #[test]
    fn leading_crlf_and_keepalives() {
        assert!(parse(&format!("\r\n\r\n{MESSAGE}")).is_ok());
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(!is_keepalive(b""));
        assert!(!is_keepalive(MESSAGE.as_bytes()));
        assert_eq!(parse("\r\n\r\n").unwrap_err().response_code(), None);
    }

    #[test]
    fn start_lines() {
        let with = |line: &str| MESSAGE.replacen("MESSAGE sip:bob@gw.test SIP/2.0", line, 1);
        let code = |line: &str| {
            parse(&with(line))
                .map(|_| ())
                .map_err(|e| e.response_code())
        };
        assert_eq!(code("MESSAGE sip:bob@gw.test SIP/3.0"), Err(Some(505)));
        assert_eq!(code("MESSAGE im:bob@gw.test SIP/2.0"), Err(Some(416)));
        assert_eq!(code("MESSAGE sip:bob@ SIP/2.0"), Err(Some(400)));
        assert_eq!(code("MESSAGE sip:bob@gw.test sip/2.0"), Ok(()));
        assert_eq!(code("INVITE sip:bob@gw.test SIP/2.0"), Err(Some(400)));
        assert_eq!(code("MESSAGE  sip:bob@gw.test SIP/2.0"), Err(None));
        assert_eq!(code("MESSAGE sip:bob@gw.test"), Err(None));
        assert_eq!(code("garbage"), Err(None));
        assert_eq!(code("SIPé"), Err(None));
        assert_eq!(code("SIP/é 200"), Err(None));
        assert_eq!(code("é"), Err(None));
        assert_eq!(code("SIP/2.0 200 OK"), Ok(()));
        assert_eq!(code("SIP/2.0 200"), Ok(()));
        assert_eq!(code("SIP/2.0 700 Nope"), Err(None));
        assert_eq!(code("SIP/2.0 20 Nope"), Err(None));
        assert_eq!(code("SIP/1.0 200 OK"), Err(None));
        let Message::Response(r) = parse(&with("SIP/2.0 404 Not  Here ")).unwrap() else {
            panic!()
        };
        assert_eq!((r.status, r.reason.as_str()), (404, "Not  Here "));
    }

    #[test]
    fn mandatory_headers() {
        for (name, line) in [
            (
                "Via",
                "Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-1-0\r\n",
            ),
            ("Max-Forwards", "Max-Forwards: 70\r\n"),
            ("From", "From: <sip:sipp@sip.test>;tag=1SIPpTag001\r\n"),
            ("To", "To: <sip:bob@gw.test>\r\n"),
            ("Call-ID", "Call-ID: 1-1@127.0.0.1\r\n"),
            ("CSeq", "CSeq: 1 MESSAGE\r\n"),
        ] {
            let e = parse(&MESSAGE.replace(line, "")).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest);
            assert_eq!(e.detail(), format!("Missing {name} header field"));
            assert_eq!(e.response_code(), Some(400));
            // Max-Forwards is not needed to reply; the others are.
            assert_eq!(e.can_reply(), name == "Max-Forwards", "{name}");
        }
        let e = parse(&MESSAGE.replace("CSeq: 1 MESSAGE", "CSeq: 1 OPTIONS")).unwrap_err();
        assert_eq!(e.detail(), "CSeq method does not match the request method");
        assert!(e.can_reply());
        let e = parse(&MESSAGE.replace("Call-ID: 1-1@127.0.0.1\r\n", "Call-ID: a\r\ni: b\r\n"))
            .unwrap_err();
        assert!(e.detail().contains("more than once"));
        // A response without Max-Forwards is fine, without Call-ID it is dropped.
        let resp = MESSAGE
            .replacen("MESSAGE sip:bob@gw.test SIP/2.0", "SIP/2.0 200 OK", 1)
            .replace("Max-Forwards: 70\r\n", "");
        assert!(parse(&resp).is_ok());
        let e = parse(&resp.replace("Call-ID: 1-1@127.0.0.1\r\n", "")).unwrap_err();
        assert_eq!(e.response_code(), None);
        assert!(!e.can_reply());
    }
}
