//! A sans-IO responder that reads an inbound stream's header and closes it
//! with a stream error, the way RFC 6120 section 4.9.1.2 requires when the
//! error comes before any negotiation: a response header first, then the
//! error, then the closing tag, in one write. It is what xfed runs on its
//! s2s listener until federation is configured, and it answers malformed
//! input with the reader's precise condition.

use std::time::{Duration, Instant};

use crate::xml::{Event, Limits, Reader, Scope, StreamHeader};

use super::{StreamCondition, StreamError};

/// What happened on a refused stream, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The peer's header arrived and was answered with `error`.
    Answered {
        /// `from` of the peer's header.
        from: Option<String>,
        /// `to` of the peer's header.
        to: Option<String>,
        /// What the peer was sent.
        error: StreamError,
    },
    /// The peer sent bad XML before or in its header.
    Malformed(StreamError),
    /// The peer closed its stream before sending a header.
    Closed,
    /// No header arrived in time.
    TimedOut,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Answered { from, to, error } => write!(
                f,
                "stream from {} to {} refused: {error}",
                from.as_deref().unwrap_or("(no from)"),
                to.as_deref().unwrap_or("(no to)")
            ),
            Refusal::Malformed(error) => write!(f, "bad input, stream closed: {error}"),
            Refusal::Closed => f.write_str("peer closed before its stream header"),
            Refusal::TimedOut => f.write_str("no stream header in time"),
        }
    }
}

/// Reads one inbound stream and refuses it.
#[derive(Debug)]
pub struct Refuser {
    reader: Reader,
    domain: String,
    refusal: StreamError,
    stream_id: String,
    out: Vec<u8>,
    outcome: Option<Refusal>,
    deadline: Instant,
}

impl Refuser {
    /// `domain` is the local domain answered for; `refusal` is sent to
    /// peers whose header was fine; `stream_id` must be unpredictable; a
    /// peer that sends no header within `timeout` of `now` is closed with
    /// `connection-timeout`.
    pub fn new(
        domain: &str,
        refusal: StreamError,
        stream_id: String,
        limits: Limits,
        now: Instant,
        timeout: Duration,
    ) -> Self {
        Refuser {
            reader: Reader::new(limits),
            domain: domain.to_owned(),
            refusal,
            stream_id,
            out: Vec::new(),
            outcome: None,
            deadline: now + timeout,
        }
    }

    /// When [`Refuser::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline)
    }

    /// Time passed; closes a silent peer's stream once the deadline is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_none() && now >= self.deadline {
            let error = StreamError::new(
                StreamCondition::ConnectionTimeout,
                "no stream header received in time",
            );
            self.close_with(None, &error);
            self.outcome = Some(Refusal::TimedOut);
        }
    }

    /// Bytes from the peer.
    pub fn handle_bytes(&mut self, mut bytes: &[u8]) {
        while self.outcome.is_none() && !bytes.is_empty() {
            let n = self.reader.feed(bytes);
            bytes = &bytes[n..];
            while let Some(ev) = self.reader.poll() {
                if self.outcome.is_none() {
                    self.on_event(ev);
                }
            }
        }
    }

    fn on_event(&mut self, ev: Result<Event, crate::xml::Error>) {
        match ev {
            Ok(Event::Header(h)) => {
                let error = match h.to() {
                    Some(to) if to.eq_ignore_ascii_case(&self.domain) => self.refusal.clone(),
                    _ => StreamError::new(
                        StreamCondition::HostUnknown,
                        format!("this server only serves {}", self.domain),
                    ),
                };
                self.close_with(h.from(), &error);
                self.outcome = Some(Refusal::Answered {
                    from: h.from().map(str::to_owned),
                    to: h.to().map(str::to_owned),
                    error,
                });
            }
            Ok(Event::Stanza(_)) | Ok(Event::End) => {
                // Only reachable before a header in fragment mode; treat as closed.
                self.outcome = Some(Refusal::Closed);
            }
            Err(e) => {
                let error = StreamError::new(e.kind().condition(), e.to_string());
                self.close_with(None, &error);
                self.outcome = Some(Refusal::Malformed(error));
            }
        }
    }

    fn close_with(&mut self, peer: Option<&str>, error: &StreamError) {
        let scope = Scope::server();
        let mut header = StreamHeader::new(scope.clone())
            .with_attr("from", self.domain.clone())
            .with_attr("id", self.stream_id.clone())
            .with_attr("version", "1.0");
        if let Some(peer) = peer {
            header = header.with_attr("to", peer.to_owned());
        }
        header.write(&mut self.out);
        error.to_element().write(&scope, &mut self.out);
        header.write_end(&mut self.out);
    }

    /// Bytes to send to the peer, once.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// How the stream was refused, once it has been.
    pub fn outcome(&self) -> Option<&Refusal> {
        self.outcome.as_ref()
    }

    /// True once the closing tag has been produced: the runtime sends what
    /// is left and closes the connection.
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuser() -> Refuser {
        Refuser::new(
            "gw.example",
            StreamError::new(StreamCondition::PolicyViolation, "no federation"),
            "id1".into(),
            Limits::default(),
            Instant::now(),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn silent_peer_times_out() {
        let mut r = refuser();
        let deadline = r.poll_timeout().unwrap();
        r.handle_timeout(deadline - Duration::from_millis(1));
        assert!(!r.is_done());
        r.handle_timeout(deadline);
        assert_eq!(r.outcome(), Some(&Refusal::TimedOut));
        assert!(String::from_utf8(r.poll_transmit().unwrap())
            .unwrap()
            .contains("<connection-timeout "));
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn good_header_gets_response_header_error_and_close() {
        let mut r = refuser();
        r.handle_bytes(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='peer.example' to='gw.example' version='1.0'>");
        assert!(r.is_done());
        let out = String::from_utf8(r.poll_transmit().unwrap()).unwrap();
        assert!(
            out.starts_with("<?xml version='1.0'?><stream:stream "),
            "{out}"
        );
        assert!(
            out.contains("from='gw.example'")
                && out.contains("to='peer.example'")
                && out.contains("id='id1'")
        );
        assert!(out.contains("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"));
        assert!(out.ends_with("</stream:stream>"));
        let mut reader = Reader::new(Limits::default());
        reader.feed_all(out.as_bytes());
        let events: Vec<_> = std::iter::from_fn(|| reader.poll()).collect();
        assert_eq!(events.len(), 3, "{events:?}");
        let Some(Ok(Event::Stanza(e))) = events.get(1) else {
            panic!()
        };
        assert_eq!(
            StreamError::from_element(e).unwrap().condition,
            StreamCondition::PolicyViolation
        );
    }

    #[test]
    fn unknown_domain_and_bad_xml() {
        let mut r = refuser();
        r.handle_bytes(
            b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='other.example'>",
        );
        assert!(
            matches!(r.outcome(), Some(Refusal::Answered { error, .. }) if error.condition == StreamCondition::HostUnknown)
        );
        let mut r = refuser();
        r.handle_bytes(b"<!DOCTYPE x><stream:stream>");
        assert!(
            matches!(r.outcome(), Some(Refusal::Malformed(e)) if e.condition == StreamCondition::RestrictedXml)
        );
        assert!(String::from_utf8(r.poll_transmit().unwrap())
            .unwrap()
            .contains("<restricted-xml "));
    }
}
