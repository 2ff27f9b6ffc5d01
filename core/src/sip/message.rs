//! Requests, responses, and writing them.

use std::fmt::Write as _;

use super::headers::Headers;
use super::method::Method;
use super::syntax::is_token;
use super::uri::Uri;

/// A SIP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub method: Method,
    /// The Request-URI: where the request goes.
    pub uri: Uri,
    /// Header lines in order (Content-Length excluded: see [`Headers`]).
    pub headers: Headers,
    /// The body, as bytes: SIP does not promise text.
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// 100..=699 for anything that is to be read back.
    pub status: u16,
    /// Control characters are written as spaces.
    pub reason: String,
    /// Header lines in order (Content-Length excluded: see [`Headers`]).
    pub headers: Headers,
    /// The body, as bytes.
    pub body: Vec<u8>,
}

/// Either kind of message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Self {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// The Content-Length this request is written with.
    pub fn content_length(&self) -> usize {
        self.body.len()
    }

    /// A response to this request as RFC 3261 section 8.2.6.2 builds it:
    /// Via (all, in order), From, To, Call-ID and CSeq copied, `;tag=to_tag`
    /// added to To when it has none (not on 100, which never carries one),
    /// Timestamp copied into a 100 (section 8.2.6.1). The reason is the
    /// default phrase of `status`.
    pub fn response(&self, status: u16, to_tag: &str) -> Response {
        response_from(&self.headers, status, to_tag)
    }

    /// Appends the wire form to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(64);
        let _ = write!(line, "{} {} SIP/2.0\r\n", self.method, self.uri);
        out.extend_from_slice(line.as_bytes());
        write_rest(&self.headers, &self.body, out);
    }

    /// The wire form, as [`Request::write`] appends it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        self.write(&mut out);
        out
    }
}

/// The response to a request whose headers are `headers`; see
/// [`Request::response`].
pub(crate) fn response_from(headers: &Headers, status: u16, to_tag: &str) -> Response {
    let mut r = Response::new(status);
    let tag: String = to_tag
        .bytes()
        .filter(|&b| is_token(b))
        .map(char::from)
        .collect();
    let add_tag = status != 100 && !tag.is_empty() && headers.to().is_ok_and(|t| t.tag().is_none());
    for h in headers {
        let copy = ["Via", "From", "Call-ID", "CSeq"].iter().any(|n| h.is(n))
            || (status == 100 && h.is("Timestamp"));
        if copy {
            r.headers.push_header(h);
        } else if h.is("To") {
            if add_tag {
                r.headers.push(h.name(), format!("{};tag={tag}", h.value()));
            } else {
                r.headers.push_header(h);
            }
        }
    }
    r
}

impl Response {
    /// A response with the default reason phrase, no headers, no body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            reason: reason_phrase(status).to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// The same response with another reason phrase.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// The Content-Length this response is written with.
    pub fn content_length(&self) -> usize {
        self.body.len()
    }

    /// Appends the wire form to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(32 + self.reason.len());
        let _ = write!(line, "SIP/2.0 {:03} ", self.status);
        line.extend(
            self.reason
                .chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c }),
        );
        line.push_str("\r\n");
        out.extend_from_slice(line.as_bytes());
        write_rest(&self.headers, &self.body, out);
    }

    /// The wire form, as [`Response::write`] appends it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        self.write(&mut out);
        out
    }
}

/// Headers in order, Content-Length last and always, blank line, body.
fn write_rest(headers: &Headers, body: &[u8], out: &mut Vec<u8>) {
    for h in headers.iter().filter(|h| !h.is("Content-Length")) {
        out.extend_from_slice(h.name().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

impl Message {
    /// Either kind's header lines, for what both carry (Via, Call-ID, CSeq).
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// Either kind's body.
    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// Whether it is a request.
    pub fn is_request(&self) -> bool {
        matches!(self, Message::Request(_))
    }

    /// Appends the wire form: CRLF line endings, headers in order, a
    /// correct Content-Length always (last), then the body.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.write(out),
            Message::Response(r) => r.write(out),
        }
    }

    /// The wire form, as [`Message::write`] appends it.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

/// The RFC 3261 (and extensions') reason phrase for a status code; the
/// class name for codes without one.
pub fn reason_phrase(status: u16) -> &'static str {
    known_reason(status).unwrap_or(match status {
        100..=199 => "Provisional",
        200..=299 => "Success",
        300..=399 => "Redirection",
        400..=499 => "Client Error",
        500..=599 => "Server Error",
        _ => "Global Failure",
    })
}

fn known_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        429 => "Provide Referrer Identity",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Host;

    fn request() -> Request {
        let mut r = Request::new(
            Method::Message,
            Uri::sip(Some("bob"), Host::parse("b.test").unwrap()),
        );
        let h = &mut r.headers;
        h.push("Via", "SIP/2.0/UDP a.test;branch=z9hG4bK1");
        h.push("v", "SIP/2.0/UDP p.test;branch=z9hG4bK0");
        h.push("Max-Forwards", "70");
        h.push("From", "<sip:alice@a.test>;tag=aa");
        h.push("t", "<sip:bob@b.test>");
        h.push("Call-ID", "c1");
        h.push("CSeq", "1 MESSAGE");
        h.push("Timestamp", "54");
        h.push("Content-Type", "text/plain");
        r.body = b"hi".to_vec();
        r
    }

    #[test]
    fn writes_crlf_and_content_length() {
        let bytes = request().to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(
            "MESSAGE sip:bob@b.test SIP/2.0\r\nVia: SIP/2.0/UDP a.test;branch=z9hG4bK1\r\nv: "
        ));
        assert!(text.ends_with("Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"));
        let r = Response::new(202).with_reason("Acc\r\nepted");
        assert!(r
            .to_bytes()
            .starts_with(b"SIP/2.0 202 Acc  epted\r\nContent-Length: 0\r\n\r\n"));
    }

    #[test]
    fn responses_copy_what_rfc_3261_says() {
        let req = request();
        let r = req.response(202, "xyz");
        assert_eq!(r.reason, "Accepted");
        let lines: Vec<_> = r.headers.iter().map(|h| (h.name(), h.value())).collect();
        assert_eq!(
            lines,
            [
                ("Via", "SIP/2.0/UDP a.test;branch=z9hG4bK1"),
                ("v", "SIP/2.0/UDP p.test;branch=z9hG4bK0"),
                ("From", "<sip:alice@a.test>;tag=aa"),
                ("t", "<sip:bob@b.test>;tag=xyz"),
                ("Call-ID", "c1"),
                ("CSeq", "1 MESSAGE"),
            ]
        );
        let trying = req.response(100, "xyz");
        assert_eq!(trying.headers.to().unwrap().tag(), None);
        assert_eq!(trying.headers.get("Timestamp"), Some("54"));
        // In a dialog To already has a tag: kept.
        let mut req2 = req.clone();
        req2.headers.set("To", "<sip:bob@b.test>;tag=old");
        assert_eq!(
            req2.response(200, "new").headers.to().unwrap().tag(),
            Some("old")
        );
    }
}
