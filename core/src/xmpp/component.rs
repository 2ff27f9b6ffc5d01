//! The component protocol (XEP-0114), both sides. Connecting: xfed
//! attached to an XMPP server an organisation already runs, as the
//! component of a SIP subdomain (plain TCP, as Prosody's and ejabberd's
//! component ports are), or a gateway attached to its edges over the
//! internal link (inside TLS). Accepting: an edge taking gateways on
//! `[listen] internal` (inside TLS). The connecting side sends its header
//! in `jabber:component:accept` to its domain, the accepting side answers
//! with a stream id, the connecting side sends `<handshake>` (hex SHA-1 of
//! the id and the shared secret), the accepting side `<handshake/>`, then
//! stanzas flow both ways. Stanzas cross in the gateway's `jabber:server`
//! namespace; the link renames them on the wire. Sans-IO: bytes in,
//! events and bytes out; the TLS certificates are judged by the caller
//! ([`ComponentEvent::Secured`]).

use std::collections::VecDeque;
use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::CertificateDer;

use super::input::{Input, Read, Reading};
use super::pipe::Pipe;
use crate::xml::{ns, Element, Event, Limits, Scope, Stanza, StreamHeader};
use crate::xmpp::{StreamCondition, StreamError};

/// What the link tells the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentEvent {
    /// The TLS handshake is done: the caller judges
    /// [`Component::peer_certificates`] before anything else is trusted.
    Secured,
    /// The handshake succeeded (ours accepted, or the peer's checked):
    /// stanzas may flow; with the domain the connecting side named.
    Up {
        /// The `to` of the connecting side's header.
        domain: String,
    },
    /// A stanza from the server, in `jabber:server`.
    Stanza(Element),
    /// A stanza from a gateway to an edge as it came, checked, with no
    /// tree (the accepting side reads them so): for an s2s stream as it
    /// is when [`Stanza::self_contained`].
    Relay(Stanza),
    /// The stream ended (ours or theirs), and why.
    Closed {
        /// Why, for the log.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting: our header sent, waiting for the server's; accepting:
    /// waiting for the peer's.
    Header,
    /// Connecting: our handshake sent, waiting for the answer; accepting:
    /// waiting for the peer's handshake.
    Handshake,
    /// Stanzas flow.
    Up,
    /// Ended.
    Closed,
}

/// Which side of the protocol.
#[derive(Debug)]
enum Side {
    /// We connect, as the component of `domain`.
    Connecting,
    /// We accept components of these domains, under this stream id.
    Accepting { domains: Vec<String>, id: String },
}

/// One component stream.
#[derive(Debug)]
pub struct Component {
    side: Side,
    domain: String,
    secret: String,
    pipe: Pipe,
    reader: Input,
    phase: Phase,
    secured: bool,
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
    /// A new plain stream for `domain` with the server's `secret`; our
    /// header is ready to transmit.
    pub fn new(domain: &str, secret: &str, limits: Limits) -> Component {
        let mut c = Component::with(Side::Connecting, domain, secret, limits);
        c.send_header(domain, None);
        c
    }

    /// A new stream for `domain` inside TLS (the internal link), naming
    /// `domain` in SNI; the header waits for the TLS handshake.
    pub fn connect_tls(
        domain: &str,
        secret: &str,
        limits: Limits,
        tls: Arc<ClientConfig>,
    ) -> Result<Component, String> {
        let mut c = Component::with(Side::Connecting, domain, secret, limits);
        c.pipe.start_client(tls, domain).map_err(|e| e.0)?;
        c.send_header(domain, None);
        Ok(c)
    }

    /// A stream a connecting side opened to us inside TLS, for one of
    /// `domains`, under stream id `id` (unpredictable: the handshake
    /// digest depends on it).
    pub fn accept_tls(
        domains: Vec<String>,
        id: String,
        secret: &str,
        limits: Limits,
        tls: Arc<ServerConfig>,
    ) -> Result<Component, String> {
        let mut c = Component::with(Side::Accepting { domains, id }, "", secret, limits);
        // An edge writes a gateway's stanzas on to s2s as they came.
        c.reader = Input::new(limits, Reading::Stanzas, ns::COMPONENT);
        c.pipe.start_server(tls).map_err(|e| e.0)?;
        Ok(c)
    }

    fn with(side: Side, domain: &str, secret: &str, limits: Limits) -> Component {
        Component {
            side,
            domain: domain.to_owned(),
            secret: secret.to_owned(),
            pipe: Pipe::default(),
            reader: Input::new(limits, Reading::Trees, ns::COMPONENT),
            phase: Phase::Header,
            secured: false,
            events: VecDeque::new(),
        }
    }

    fn send_header(&mut self, to: &str, id: Option<&str>) {
        let mut header = StreamHeader::new(scope());
        header = match id {
            None => header.with_attr("to", to),
            Some(id) => header.with_attr("from", to).with_attr("id", id),
        };
        let mut out = Vec::new();
        header.write(&mut out);
        self.pipe.send(&out);
    }

    fn send_element(&mut self, e: &Element) {
        let mut out = Vec::new();
        e.write(&scope(), &mut out);
        self.pipe.send(&out);
    }

    /// The peer's TLS certificate chain, once the handshake is done.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.pipe.peer_certificates()
    }

    /// The TLS version, if any.
    pub fn tls_version(&self) -> Option<&'static str> {
        self.pipe.tls_version()
    }

    /// Ends the stream because the caller refused the peer's certificate.
    pub fn refuse(&mut self, why: &str) {
        self.fail(StreamError::new(StreamCondition::NotAuthorized, why));
    }

    /// Whether stanzas may be sent.
    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up
    }

    /// Whether the stream ended.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes from the peer.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Err(e) = self.pipe.receive(bytes) {
            return self.finish(format!("TLS failed: {}", e.0));
        }
        if !self.secured && self.pipe.is_tls() && !self.pipe.is_handshaking() {
            self.secured = true;
            self.events.push_back(ComponentEvent::Secured);
        }
        let plain = self.pipe.take_plain();
        let mut rest = &plain[..];
        while !rest.is_empty() && self.phase != Phase::Closed {
            let n = self.reader.feed(rest);
            rest = &rest[n..];
            while self.phase != Phase::Closed {
                match self.reader.poll() {
                    None => break,
                    Some(Ok(Read::Xml(ev))) => self.on_event(ev),
                    Some(Ok(Read::Relay(stanza))) => self.on_relay(stanza),
                    Some(Err(e)) => {
                        let cond = StreamCondition::from(e.kind());
                        self.fail(StreamError::new(cond, e.to_string()));
                    }
                }
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        if let Side::Accepting { .. } = self.side {
            return self.on_accepting(ev);
        }
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
                self.send_element(&Element::new(ns::COMPONENT, "handshake").with_text(&digest));
                self.phase = Phase::Handshake;
            }
            (Phase::Handshake, Event::Stanza(e)) if e.is(ns::COMPONENT, "handshake") => {
                self.phase = Phase::Up;
                let domain = self.domain.clone();
                self.events.push_back(ComponentEvent::Up { domain });
            }
            (_, ev) => self.common(ev),
        }
    }

    /// The accepting side: the peer's header, then its handshake, then
    /// stanzas.
    fn on_accepting(&mut self, ev: Event) {
        let Side::Accepting { domains, id } = &self.side else {
            return;
        };
        match (self.phase, ev) {
            (Phase::Header, Event::Header(h)) => {
                if h.default_ns() != ns::COMPONENT {
                    return self.fail(StreamError::new(
                        StreamCondition::InvalidNamespace,
                        "expected jabber:component:accept",
                    ));
                }
                let to = h.to().unwrap_or_default().to_ascii_lowercase();
                if !domains.contains(&to) {
                    let why = format!("{to} is not served here");
                    return self.fail(StreamError::new(StreamCondition::HostUnknown, why));
                }
                let id = id.clone();
                self.send_header(&to, Some(&id));
                self.domain = to;
                self.phase = Phase::Handshake;
            }
            (Phase::Handshake, Event::Stanza(e)) if e.is(ns::COMPONENT, "handshake") => {
                if !self.secured {
                    return self.refuse("TLS first");
                }
                if e.text() != handshake(id, &self.secret) {
                    return self.refuse("handshake refused: not the deployment's secret");
                }
                self.send_element(&Element::new(ns::COMPONENT, "handshake"));
                self.phase = Phase::Up;
                let domain = self.domain.clone();
                self.events.push_back(ComponentEvent::Up { domain });
            }
            (_, ev) => self.common(ev),
        }
    }

    /// What both sides do alike: stanzas once up, the peer's stream
    /// error or close, and anything out of turn.
    fn common(&mut self, ev: Event) {
        match (self.phase, ev) {
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
                let connecting = matches!(self.side, Side::Connecting);
                let reason = if connecting
                    && self.phase == Phase::Handshake
                    && what == "not-authorized"
                {
                    format!(
                        "the server refused the handshake for {} (not-authorized: check component.secret)",
                        self.domain
                    )
                } else {
                    format!("the peer sent stream error {what}")
                };
                self.finish(reason);
            }
            (_, Event::End) => self.finish("the peer closed the stream".into()),
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

    /// A stanza read as text: passed on as it came once the link is up
    /// and when it is in the link's namespace; anything else takes the
    /// tree path, which answers it.
    fn on_relay(&mut self, stanza: Stanza) {
        if self.phase == Phase::Up && stanza.ns() == ns::COMPONENT {
            self.events.push_back(ComponentEvent::Relay(stanza));
            return;
        }
        match stanza.element() {
            Ok(e) => self.on_event(Event::Stanza(e)),
            Err(e) => {
                let cond = StreamCondition::from(e.kind());
                self.fail(StreamError::new(cond, e.to_string()));
            }
        }
    }

    /// Sends a stanza (in `jabber:server`) once the link is up.
    pub fn send_stanza(&mut self, stanza: &Element) {
        if self.phase != Phase::Up {
            return;
        }
        let mut e = stanza.clone();
        e.move_ns(ns::SERVER, ns::COMPONENT);
        self.send_element(&e);
    }

    /// Sends a partner's stanza as it came over s2s, unread. Its text
    /// must be self-contained ([`Stanza::self_contained`]): its unprefixed
    /// names then take this stream's content namespace, as
    /// [`Self::send_stanza`] moves them there.
    pub fn send_raw(&mut self, stanza: &Stanza) {
        if self.phase != Phase::Up || !stanza.self_contained() {
            return;
        }
        self.pipe.send(stanza.text().as_bytes());
    }

    /// Closes our side with `</stream:stream>`.
    pub fn close(&mut self, why: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.pipe.send(b"</stream:stream>");
        self.pipe.close();
        self.finish(format!("closed: {why}"));
    }

    fn fail(&mut self, error: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        let mut out = Vec::new();
        error.to_element().write(&scope(), &mut out);
        out.extend_from_slice(b"</stream:stream>");
        self.pipe.send(&out);
        self.pipe.close();
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
        self.pipe.has_output().then(|| self.pipe.take_output())
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
        assert_eq!(
            c.poll_event(),
            Some(ComponentEvent::Up {
                domain: "sip.example.com".into()
            })
        );
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
