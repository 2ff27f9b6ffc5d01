//! The little HTTP/1.1 the metrics listener speaks: one request head
//! read within [`MAX_REQUEST`] bytes, one answer, then the connection
//! closes. Only `GET /metrics` (the exposition) and `GET /` (the status
//! page) are served; anything else gets a status.

use memchr::memmem;

/// Most bytes of a request head; a longer one is refused (431).
pub const MAX_REQUEST: usize = 8 * 1024;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What to answer a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the exposition.
    Metrics,
    /// 200 with the status page.
    Page,
    /// 503: the gateway did not give its report in time.
    Unavailable,
    /// 400: not an HTTP/1.x request line.
    BadRequest,
    /// 404: another path.
    NotFound,
    /// 405: another method.
    MethodNotAllowed,
    /// 431: no end of the head within [`MAX_REQUEST`] bytes.
    TooLarge,
}

impl Answer {
    /// What `head` (the bytes read so far) asks, or `None` while its end
    /// (an empty line) has not come and it is within bounds.
    pub fn of(head: &[u8]) -> Option<Answer> {
        let end = memmem::find(head, b"\r\n\r\n").or_else(|| memmem::find(head, b"\n\n"));
        match end {
            Some(end) if end <= MAX_REQUEST => Some(Self::of_line(&head[..end])),
            _ if head.len() >= MAX_REQUEST => Some(Answer::TooLarge),
            _ => None,
        }
    }

    fn of_line(head: &[u8]) -> Answer {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            return Answer::BadRequest;
        };
        let mut parts = line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Answer::BadRequest;
        };
        let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
        if !token(method) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
            return Answer::BadRequest;
        }
        if method != "GET" {
            return Answer::MethodNotAllowed;
        }
        let path = target.split('?').next().unwrap_or_default();
        match path {
            "/metrics" => Answer::Metrics,
            "/" => Answer::Page,
            _ => Answer::NotFound,
        }
    }

    /// The whole response; `body` (the exposition or the page) is only
    /// asked for a 200.
    pub fn response(self, body: impl FnOnce() -> String) -> Vec<u8> {
        let (status, body, content_type) = match self {
            Answer::Metrics => ("200 OK", body(), CONTENT_TYPE),
            Answer::Page => ("200 OK", body(), super::page::CONTENT_TYPE),
            Answer::Unavailable => (
                "503 Service Unavailable",
                "no answer from the gateway\n".into(),
                "text/plain",
            ),
            Answer::BadRequest => ("400 Bad Request", "bad request\n".into(), "text/plain"),
            Answer::NotFound => ("404 Not Found", "try / or /metrics\n".into(), "text/plain"),
            Answer::MethodNotAllowed => {
                ("405 Method Not Allowed", "only GET\n".into(), "text/plain")
            }
            Answer::TooLarge => (
                "431 Request Header Fields Too Large",
                "request too large\n".into(),
                "text/plain",
            ),
        };
        let allow = if self == Answer::MethodNotAllowed {
            "Allow: GET\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_request_line() {
        let a = |s: &str| Answer::of(s.as_bytes());
        let get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(a(get), Some(Answer::Metrics));
        assert_eq!(a("GET /metrics?x=1 HTTP/1.0\n\n"), Some(Answer::Metrics));
        assert_eq!(a("GET / HTTP/1.1\r\n\r\n"), Some(Answer::Page));
        assert_eq!(a("GET /?x HTTP/1.1\r\n\r\n"), Some(Answer::Page));
        assert_eq!(a("GET /other HTTP/1.1\r\n\r\n"), Some(Answer::NotFound));
        assert_eq!(
            a("POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Answer::MethodNotAllowed)
        );
        assert_eq!(a("hello\r\n\r\n"), Some(Answer::BadRequest));
        assert_eq!(a("GET /metrics HTTP/2\r\n\r\n"), Some(Answer::BadRequest));
        assert_eq!(
            a("GET  /metrics HTTP/1.1\r\n\r\n"),
            Some(Answer::BadRequest)
        );
        assert_eq!(
            a("G\u{e9}T /metrics HTTP/1.1\r\n\r\n"),
            Some(Answer::BadRequest)
        );
        assert_eq!(a("\u{ff}\r\n\r\n"), Some(Answer::BadRequest));
        // Not complete yet.
        assert_eq!(a("GET /metrics HTTP/1.1\r\n"), None);
        assert_eq!(a(""), None);
    }

    #[test]
    fn a_head_without_end_is_refused_at_the_bound() {
        let long = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(MAX_REQUEST));
        assert_eq!(Answer::of(long.as_bytes()), Some(Answer::TooLarge));
        let under = "a".repeat(MAX_REQUEST - 1);
        assert_eq!(Answer::of(under.as_bytes()), None);
    }

    #[test]
    fn responses_carry_length_and_close() {
        let r = String::from_utf8(Answer::Metrics.response(|| "# EOF\n".into())).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
        assert!(r.contains("Content-Length: 6\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\n# EOF\n"));
        let r = Answer::MethodNotAllowed.response(|| unreachable!());
        assert!(String::from_utf8(r).unwrap().contains("Allow: GET\r\n"));
    }
}
