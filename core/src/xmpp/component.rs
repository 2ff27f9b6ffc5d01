//! The component link (XEP-0114): xfed attached to an XMPP server an
//! organisation already runs, as the component of a SIP subdomain. One
//! plain stream (the server listens on loopback or a trusted network, as
//! Prosody's and ejabberd's component ports do): our header in
//! `jabber:component:accept` to our domain, the server's header with a
//! stream id, our `<handshake>` (hex SHA-1 of the id and the shared
//! secret), its empty `<handshake/>`, then stanzas both ways. Stanzas
//! cross in the gateway's `jabber:server` namespace; the link renames
//! them on the wire. Sans-IO: bytes in, events and bytes out.

use std::collections::VecDeque;

use crate::xml::{ns, Element, Event, Limits, Reader, Scope, StreamHeader};
use crate::xmpp::{StreamCondition, StreamError};

/// What the link tells the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentEvent {
    /// The server accepted our handshake: stanzas may flow.
    Up,
    /// A stanza from the server, in `jabber:server`.
    Stanza(Element),
    /// The stream ended (ours or theirs), and why.
    Closed {
        /// Why, for the log.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Our header sent; waiting for the server's.
    Header,
    /// Our handshake sent; waiting for the server's answer.
    Handshake,
    /// Stanzas flow.
    Up,
    /// Ended.
    Closed,
}

/// One component stream.
#[derive(Debug)]
pub struct Component {
    domain: String,
    secret: String,
    reader: Reader,
    phase: Phase,
    out: Vec<u8>,
    events: VecDeque<ComponentEvent>,
}

/// The handshake value (XEP-0114 section 3): lowercase hex of
/// SHA-1(stream id ‖ secret).
pub fn handshake(stream_id: &str, secret: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(stream_id.as_bytes());
    ctx.update(secret.as_bytes());
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Component {
    /// A new stream for `domain` with the server's `secret`; our header is
    /// ready to transmit.
    pub fn new(domain: &str, secret: &str, limits: Limits) -> Component {
        let mut out = Vec::new();
        StreamHeader::new(scope())
            .with_attr("to", domain)
            .write(&mut out);
        Component {
            domain: domain.to_owned(),
            secret: secret.to_owned(),
            reader: Reader::new(limits),
            phase: Phase::Header,
            out,
            events: VecDeque::new(),
        }
    }

    /// Whether stanzas may be sent.
    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up
    }

    /// Whether the stream ended.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes from the server.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        self.reader.feed_all(bytes);
        while self.phase != Phase::Closed {
            match self.reader.poll() {
                None => break,
                Some(Ok(ev)) => self.on_event(ev),
                Some(Err(e)) => {
                    let cond = StreamCondition::from(e.kind());
                    self.fail(StreamError::new(cond, e.to_string()));
                }
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        match (self.phase, ev) {
            (Phase::Header, Event::Header(h)) => {
                if h.default_ns() != ns::COMPONENT {
                    return self.fail(StreamError::new(
                        StreamCondition::InvalidNamespace,
                        format!(
                            "content namespace '{}' is not jabber:component:accept",
                            h.default_ns()
                        ),
                    ));
                }
                let Some(id) = h.id() else {
                    return self.fail(StreamError::new(
                        StreamCondition::InvalidXml,
                        "the server's stream header has no id",
                    ));
                };
                let digest = handshake(id, &self.secret);
                Element::new(ns::COMPONENT, "handshake")
                    .with_text(&digest)
                    .write(&scope(), &mut self.out);
                self.phase = Phase::Handshake;
            }
            (Phase::Handshake, Event::Stanza(e)) if e.is(ns::COMPONENT, "handshake") => {
                self.phase = Phase::Up;
                self.events.push_back(ComponentEvent::Up);
            }
            (Phase::Up, Event::Stanza(mut e))
                if e.ns() == ns::COMPONENT && matches!(e.name(), "message" | "presence" | "iq") =>
            {
                e.move_ns(ns::COMPONENT, ns::SERVER);
                self.events.push_back(ComponentEvent::Stanza(e));
            }
            (_, Event::Stanza(e)) if e.is(ns::STREAM, "error") => {
                let what = e
                    .children()
                    .find(|c| c.ns() == ns::STREAMS && c.name() != "text")
                    .map_or("unknown", |c| c.name())
                    .to_owned();
                let reason = if self.phase == Phase::Handshake && what == "not-authorized" {
                    format!(
                        "the server refused the handshake for {} (not-authorized: check component.secret)",
                        self.domain
                    )
                } else {
                    format!("the server sent stream error {what}")
                };
                self.finish(reason);
            }
            (_, Event::End) => self.finish("the server closed the stream".into()),
            (phase, Event::Stanza(e)) => self.fail(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
                format!("<{}/> in {} is not expected {phase:?}", e.name(), e.ns()),
            )),
            (_, Event::Header(_)) => self.fail(StreamError::new(
                StreamCondition::InvalidXml,
                "a second stream header",
            )),
        }
    }

    /// Sends a stanza (in `jabber:server`) once the link is up.
    pub fn send_stanza(&mut self, stanza: &Element) {
        if self.phase != Phase::Up {
            return;
        }
        let mut e = stanza.clone();
        e.move_ns(ns::SERVER, ns::COMPONENT);
        e.write(&scope(), &mut self.out);
    }

    /// Closes our side with `</stream:stream>`.
    pub fn close(&mut self, why: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.out.extend_from_slice(b"</stream:stream>");
        self.finish(format!("closed: {why}"));
    }

    fn fail(&mut self, error: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        error.to_element().write(&scope(), &mut self.out);
        self.out.extend_from_slice(b"</stream:stream>");
        self.finish(format!("stream error sent: {error}"));
    }

    fn finish(&mut self, reason: String) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(ComponentEvent::Closed { reason });
        }
    }

    /// Bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ComponentEvent> {
        self.events.pop_front()
    }
}

fn scope() -> Scope {
    Scope::new(ns::COMPONENT).with_prefix("stream", ns::STREAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_header(id: &str) -> Vec<u8> {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' from='sip.example.com' id='{id}'>"
        )
        .into_bytes()
    }

    fn sent(c: &mut Component) -> String {
        String::from_utf8(c.poll_transmit().unwrap_or_default()).unwrap()
    }

    #[test]
    fn the_handshake_is_the_hex_sha1_of_id_and_secret() {
        // Python's hashlib.sha1(b"3BF96D32sesame").hexdigest().
        assert_eq!(
            handshake("3BF96D32", "sesame"),
            "7a98dc4c9e92493d7fd66a25364c862637789c45"
        );
    }

    #[test]
    fn a_link_comes_up_and_carries_stanzas_both_ways() {
        let mut c = Component::new("sip.example.com", "s3cr3t", Limits::default());
        let header = sent(&mut c);
        assert!(
            header.contains("xmlns='jabber:component:accept'"),
            "{header}"
        );
        assert!(header.contains("to='sip.example.com'"), "{header}");
        c.handle_bytes(&server_header("abc"));
        let hs = sent(&mut c);
        assert_eq!(
            hs,
            format!("<handshake>{}</handshake>", handshake("abc", "s3cr3t"))
        );
        assert!(!c.is_up());
        c.handle_bytes(b"<handshake/>");
        assert_eq!(c.poll_event(), Some(ComponentEvent::Up));
        c.handle_bytes(
            b"<message from='juliet@example.com/balcony' to='romeo@sip.example.com' type='chat'><body>hi</body></message>",
        );
        match c.poll_event() {
            Some(ComponentEvent::Stanza(e)) => {
                assert!(e.is(ns::SERVER, "message"));
                assert_eq!(
                    e.child(ns::SERVER, "body").map(|b| b.text().into_owned()),
                    Some("hi".into())
                );
            }
            other => panic!("{other:?}"),
        }
        let reply = Element::new(ns::SERVER, "message")
            .with_attr("to", "juliet@example.com")
            .with_child(Element::new(ns::SERVER, "body").with_text("hello"));
        c.send_stanza(&reply);
        let out = sent(&mut c);
        assert_eq!(
            out,
            "<message to='juliet@example.com'><body>hello</body></message>"
        );
    }

    #[test]
    fn a_refused_secret_and_a_wrong_namespace_end_the_link() {
        let mut c = Component::new("sip.example.com", "wrong", Limits::default());
        c.handle_bytes(&server_header("abc"));
        c.handle_bytes(
            b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
        );
        match c.poll_event() {
            Some(ComponentEvent::Closed { reason }) => {
                assert!(reason.contains("component.secret"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let mut c = Component::new("sip.example.com", "s", Limits::default());
        c.handle_bytes(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x'>",
        );
        assert!(c.is_closed());
        assert!(sent(&mut c).contains("invalid-namespace"));
    }

    #[test]
    fn stanzas_before_the_handshake_or_garbage_close_the_link() {
        let mut c = Component::new("sip.example.com", "s", Limits::default());
        c.handle_bytes(&server_header("abc"));
        c.handle_bytes(b"<message to='a@sip.example.com'/>");
        assert!(c.is_closed());
        let mut c = Component::new("sip.example.com", "s", Limits::default());
        c.handle_bytes(b"\x00\x01garbage");
        assert!(c.is_closed());
    }
}
