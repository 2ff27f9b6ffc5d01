//! The gateway's links when it does not federate itself (`role =
//! "gateway"`): to an XMPP server as its component (`[component]`, one
//! plain link), or to its edges (`[internal] connect`, one link per edge,
//! inside mutually authenticated TLS). Each is an XEP-0114 stream
//! ([`Component`]) and they replace s2s: every stanza for a remote domain
//! goes to the first link that is up, which routes it; every stanza a
//! link brings is for a local domain and is delivered locally. Links are
//! kept up: connected at start, and again after a failure, one to thirty
//! seconds later. Stanzas wait for a handshake (at most
//! [`ROUTE_QUEUE_LIMIT`]); while no link is up they bounce with
//! `remote-server-timeout`, as those of an s2s route that fails, so a SIP
//! sender gets its answer.

use super::*;
use crate::tls::{check_peer, PeerCert};
use crate::xmpp::component::{Component, ComponentEvent};

/// Where and as what a link connects: `[component]`, or one edge of
/// `[internal] connect`, its address resolved by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSetup {
    /// The server's component port, or the edge's internal port.
    pub addr: SocketAddr,
    /// The domain the link is for (the component's; an edge's link is
    /// for every local domain and names the first).
    pub domain: String,
    /// The shared secret (`component.secret`; the deployment's dialback
    /// secret on the internal link).
    pub secret: String,
    /// Inside TLS, the edge's certificate checked against `[tls] trust`
    /// for `domain`, ours presented (the internal link).
    pub tls: bool,
}

/// The first wait before connecting again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum LinkState {
    /// Not connected; the next attempt at `retry_at`.
    Down { retry_at: Instant },
    /// TCP connecting, or the stream negotiating, until `by`.
    Opening {
        conn: ConnId,
        session: Option<Component>,
        by: Instant,
    },
    /// Stanzas flow.
    Up { conn: ConnId, session: Component },
}

/// The link and what waits for it.
#[derive(Debug)]
pub(super) struct Link {
    setup: ComponentSetup,
    state: LinkState,
    queue: VecDeque<Element>,
    backoff: Duration,
}

impl Link {
    /// A link to connect at `now`.
    pub(super) fn new(setup: ComponentSetup, now: Instant) -> Link {
        Link {
            setup,
            state: LinkState::Down { retry_at: now },
            queue: VecDeque::new(),
            backoff: RETRY_FIRST,
        }
    }

    fn conn(&self) -> Option<ConnId> {
        match &self.state {
            LinkState::Down { .. } => None,
            LinkState::Opening { conn, .. } | LinkState::Up { conn, .. } => Some(*conn),
        }
    }

    /// When the link needs time: its next attempt, or the end of its
    /// negotiation.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            LinkState::Down { retry_at } => Some(*retry_at),
            LinkState::Opening { by, .. } => Some(*by),
            LinkState::Up { .. } => None,
        }
    }

    /// Whether the link is up (for `xfed status`).
    pub(super) fn describe(&self) -> String {
        let state = match &self.state {
            LinkState::Down { .. } => "down",
            LinkState::Opening { .. } => "opening",
            LinkState::Up { .. } => "up",
        };
        format!(
            "component {} at {} {state} queued={}",
            self.setup.domain,
            self.setup.addr,
            self.queue.len()
        )
    }
}

impl Gateway {
    /// Which link `conn` is, if one.
    fn link_of(&self, conn: ConnId) -> Option<usize> {
        self.links.iter().position(|l| l.conn() == Some(conn))
    }

    /// Whether `conn` is one of the links' connections.
    pub(super) fn is_component(&self, conn: ConnId) -> bool {
        self.link_of(conn).is_some()
    }

    /// A stanza for a remote domain, without s2s: sent on the first link
    /// up, queued on one that opens, or bounced while none can take it.
    pub(super) fn component_send(&mut self, stanza: Element, t: Time) {
        let up = self
            .links
            .iter()
            .position(|l| matches!(l.state, LinkState::Up { .. }));
        if let Some(i) = up {
            let link = &mut self.links[i];
            if let LinkState::Up { conn, session } = &mut link.state {
                session.send_stanza(&stanza);
                let conn = *conn;
                self.settle(&stanza, Ok(()), t);
                self.component_flush(i, conn);
            }
            return;
        }
        let opening = self
            .links
            .iter()
            .position(|l| matches!(l.state, LinkState::Opening { .. }));
        match opening {
            Some(i) if self.links[i].queue.len() < ROUTE_QUEUE_LIMIT => {
                self.links[i].queue.push_back(stanza);
            }
            Some(_) => self.bounce(
                &stanza,
                StanzaCondition::ResourceConstraint,
                "too many stanzas waiting for the XMPP server",
                t,
            ),
            None => self.bounce(
                &stanza,
                StanzaCondition::RemoteServerTimeout,
                "the link to the XMPP server is down",
                t,
            ),
        }
    }

    /// Time passed: connects the links whose attempt is due, gives up on
    /// negotiations that took too long.
    pub(super) fn component_timeout(&mut self, t: Time) {
        for i in 0..self.links.len() {
            let due = match &self.links[i].state {
                LinkState::Opening { conn, by, .. } if *by <= t.now => Some(Err(*conn)),
                LinkState::Down { retry_at } if *retry_at <= t.now => Some(Ok(())),
                _ => None,
            };
            match due {
                Some(Ok(())) => {
                    let conn = self.new_conn();
                    let by = t.now + self.settings.establishment_timeout;
                    let link = &mut self.links[i];
                    link.state = LinkState::Opening {
                        conn,
                        session: None,
                        by,
                    };
                    let addr = link.setup.addr;
                    self.out.push_back(Output::Connect { conn, addr });
                }
                Some(Err(conn)) => {
                    self.out.push_back(Output::Close { conn });
                    self.component_down(i, "the handshake did not complete in time", t);
                }
                None => {}
            }
        }
    }

    /// A link's TCP connection is up: TLS (the internal link) or our
    /// header goes out.
    pub(super) fn component_connected(&mut self, conn: ConnId, t: Time) {
        let Some(i) = self.link_of(conn) else {
            return;
        };
        let limits = self.settings.limits;
        let tls = self.settings.tls_client.clone();
        let link = &mut self.links[i];
        let setup = &link.setup;
        let made = if setup.tls {
            match tls {
                Some(config) => {
                    Component::connect_tls(&setup.domain, &setup.secret, limits, config)
                }
                None => Err("no certificate: the internal link needs one".into()),
            }
        } else {
            Ok(Component::new(&setup.domain, &setup.secret, limits))
        };
        match made {
            Ok(c) => {
                if let LinkState::Opening { session, .. } = &mut link.state {
                    *session = Some(c);
                }
                self.component_flush(i, conn);
            }
            Err(e) => {
                self.out.push_back(Output::Close { conn });
                self.component_down(i, &e, t);
            }
        }
    }

    /// Bytes from a link's peer.
    pub(super) fn component_bytes(&mut self, conn: ConnId, bytes: &[u8], t: Time) {
        let Some(i) = self.link_of(conn) else {
            return;
        };
        match &mut self.links[i].state {
            LinkState::Opening {
                session: Some(s), ..
            }
            | LinkState::Up { session: s, .. } => s.handle_bytes(bytes),
            _ => return,
        }
        self.component_events(i, conn, t);
        self.component_flush(i, conn);
    }

    /// A link's connection failed or its peer closed it.
    pub(super) fn component_gone(&mut self, conn: ConnId, reason: &str, t: Time) {
        if let Some(i) = self.link_of(conn) {
            self.component_down(i, &format!("connection lost: {reason}"), t);
        }
    }

    fn session(&mut self, i: usize) -> Option<&mut Component> {
        match &mut self.links[i].state {
            LinkState::Opening {
                session: Some(s), ..
            }
            | LinkState::Up { session: s, .. } => Some(s),
            _ => None,
        }
    }

    /// What a link's session produced: TLS up (the edge's certificate
    /// judged), the link up (queue sent), stanzas delivered, or its end.
    fn component_events(&mut self, i: usize, conn: ConnId, t: Time) {
        while let Some(event) = self.session(i).and_then(Component::poll_event) {
            match event {
                ComponentEvent::Secured => {
                    let domain = self.links[i].setup.domain.clone();
                    let trust = Arc::clone(&self.settings.trust);
                    let judged = self.session(i).and_then(|s| {
                        s.peer_certificates()
                            .map(|c| check_peer(c, &trust, t.unix, &domain))
                    });
                    if !matches!(judged, Some(PeerCert::Trusted)) {
                        let why = format!(
                            "the edge's certificate is not trusted for {domain}: {judged:?}"
                        );
                        if let Some(s) = self.session(i) {
                            s.refuse(&why);
                        }
                    }
                }
                ComponentEvent::Up { .. } => self.component_up(i, conn, t),
                ComponentEvent::Stanza(e) => self.component_stanza(e, conn, t),
                // Only an edge's accepting side reads stanzas unread; a
                // connecting link's would be read as trees all the same.
                ComponentEvent::Relay(s) => match s.element() {
                    Ok(mut e) => {
                        e.move_ns(crate::xml::ns::COMPONENT, crate::xml::ns::SERVER);
                        self.component_stanza(e, conn, t)
                    }
                    Err(e) => self.detail(Some(conn), format!("component: unreadable stanza: {e}")),
                },
                ComponentEvent::Closed { reason } => {
                    self.component_flush(i, conn);
                    self.out.push_back(Output::Close { conn });
                    return self.component_down(i, &reason, t);
                }
            }
        }
    }

    /// A stanza the server sent over a link: delivered when it is for a
    /// local domain.
    fn component_stanza(&mut self, e: Element, conn: ConnId, t: Time) {
        match stanza::addressing(&e) {
            Some(a) if self.settings.is_local(a.to.domain()) => self.deliver_local(e, None, t),
            _ => self.detail(
                Some(conn),
                "component: a stanza not for a local domain dropped".into(),
            ),
        }
    }

    fn component_up(&mut self, i: usize, conn: ConnId, t: Time) {
        let link = &mut self.links[i];
        let LinkState::Opening {
            session: Some(session),
            ..
        } = std::mem::replace(&mut link.state, LinkState::Down { retry_at: t.now })
        else {
            return;
        };
        let tls = session
            .tls_version()
            .map_or(String::new(), |v| format!(" over {v}"));
        link.state = LinkState::Up { conn, session };
        link.backoff = RETRY_FIRST;
        let detail = format!(
            "{} is a component of {}{tls}",
            link.setup.domain, link.setup.addr
        );
        let waiting: Vec<Element> = link.queue.drain(..).collect();
        self.event(Event::ComponentLink { up: true, detail });
        for stanza in waiting {
            self.component_send(stanza, t);
        }
    }

    /// A link is down: what waited on it bounces, its next attempt is
    /// scheduled.
    fn component_down(&mut self, i: usize, reason: &str, t: Time) {
        let link = &mut self.links[i];
        let wait = link.backoff;
        link.backoff = (wait * 2).min(RETRY_MAX);
        link.state = LinkState::Down {
            retry_at: t.now + wait,
        };
        let waiting: Vec<Element> = link.queue.drain(..).collect();
        let detail = format!(
            "{} at {}: {reason}; {} stanza(s) bounced; next attempt in {}s",
            link.setup.domain,
            link.setup.addr,
            waiting.len(),
            wait.as_secs()
        );
        self.event(Event::ComponentLink { up: false, detail });
        for stanza in waiting {
            self.bounce(
                &stanza,
                StanzaCondition::RemoteServerTimeout,
                "the link to the XMPP server is down",
                t,
            );
        }
    }

    /// Bytes a link's session has for its peer.
    fn component_flush(&mut self, i: usize, conn: ConnId) {
        if let Some(bytes) = self.session(i).and_then(Component::poll_transmit) {
            self.out.push_back(Output::Transmit { conn, bytes });
        }
    }
}
