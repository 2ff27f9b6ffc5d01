//! The gateway as a component of an XMPP server (`role = "gateway"` with
//! `[component]`): one link (XEP-0114, [`Component`]) replaces s2s. Every
//! stanza for a remote domain goes to the server, which routes it (to its
//! own users, or federates); every stanza the server sends is for the
//! component's domain and is delivered locally. The link is kept up:
//! connected at start, and again after a failure, one to thirty seconds
//! later. Stanzas wait for the handshake (at most [`ROUTE_QUEUE_LIMIT`]);
//! while the link is down they bounce with `remote-server-timeout`, as
//! those of an s2s route that fails, so a SIP sender gets its answer.

use super::*;
use crate::xmpp::component::{Component, ComponentEvent};

/// Where and as what the link connects: `[component]` with the server's
/// address resolved by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSetup {
    /// The server's component port.
    pub addr: SocketAddr,
    /// The component's domain.
    pub domain: String,
    /// The shared secret.
    pub secret: String,
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
    /// Whether `conn` is the component link's connection.
    pub(super) fn is_component(&self, conn: ConnId) -> bool {
        self.component
            .as_ref()
            .is_some_and(|l| l.conn() == Some(conn))
    }

    /// A stanza for a remote domain, in component mode: sent, queued
    /// while the link opens, or bounced while it is down.
    pub(super) fn component_send(&mut self, stanza: Element, t: Time) {
        let Some(link) = self.component.as_mut() else {
            return;
        };
        match &mut link.state {
            LinkState::Up { conn, session } => {
                session.send_stanza(&stanza);
                let conn = *conn;
                self.settle(&stanza, Ok(()), t);
                self.component_flush(conn);
            }
            LinkState::Opening { .. } if link.queue.len() < ROUTE_QUEUE_LIMIT => {
                link.queue.push_back(stanza);
            }
            LinkState::Opening { .. } => self.bounce(
                &stanza,
                StanzaCondition::ResourceConstraint,
                "too many stanzas waiting for the XMPP server",
                t,
            ),
            LinkState::Down { .. } => self.bounce(
                &stanza,
                StanzaCondition::RemoteServerTimeout,
                "the link to the XMPP server is down",
                t,
            ),
        }
    }

    /// Time passed: connects when an attempt is due, gives up on a
    /// negotiation that took too long.
    pub(super) fn component_timeout(&mut self, t: Time) {
        let timeout = self.settings.establishment_timeout;
        let conn = self.component.as_ref().and_then(|l| match &l.state {
            LinkState::Opening { conn, by, .. } if *by <= t.now => Some(Err(*conn)),
            LinkState::Down { retry_at } if *retry_at <= t.now => Some(Ok(())),
            _ => None,
        });
        match conn {
            Some(Ok(())) => {
                let conn = self.new_conn();
                let Some(link) = self.component.as_mut() else {
                    return;
                };
                link.state = LinkState::Opening {
                    conn,
                    session: None,
                    by: t.now + timeout,
                };
                let addr = link.setup.addr;
                self.out.push_back(Output::Connect { conn, addr });
            }
            Some(Err(conn)) => {
                self.out.push_back(Output::Close { conn });
                self.component_down("the XMPP server did not complete the handshake in time", t);
            }
            None => {}
        }
    }

    /// The link's TCP connection is up: our header goes out.
    pub(super) fn component_connected(&mut self, conn: ConnId) {
        let limits = self.settings.limits;
        if let Some(link) = self.component.as_mut() {
            if let LinkState::Opening { session, .. } = &mut link.state {
                *session = Some(Component::new(
                    &link.setup.domain,
                    &link.setup.secret,
                    limits,
                ));
            }
        }
        self.component_flush(conn);
    }

    /// Bytes from the server.
    pub(super) fn component_bytes(&mut self, conn: ConnId, bytes: &[u8], t: Time) {
        let Some(link) = self.component.as_mut() else {
            return;
        };
        match &mut link.state {
            LinkState::Opening {
                session: Some(s), ..
            }
            | LinkState::Up { session: s, .. } => s.handle_bytes(bytes),
            _ => return,
        }
        self.component_flush(conn);
        self.component_events(conn, t);
    }

    /// The connection failed or the server closed it.
    pub(super) fn component_gone(&mut self, reason: &str, t: Time) {
        self.component_down(&format!("connection lost: {reason}"), t);
    }

    /// What the session produced: the link up (queue sent), stanzas
    /// delivered, or its end.
    fn component_events(&mut self, conn: ConnId, t: Time) {
        loop {
            let event = match self.component.as_mut().map(|l| &mut l.state) {
                Some(LinkState::Opening {
                    session: Some(s), ..
                })
                | Some(LinkState::Up { session: s, .. }) => s.poll_event(),
                _ => None,
            };
            let Some(event) = event else {
                return;
            };
            match event {
                ComponentEvent::Up => self.component_up(conn, t),
                ComponentEvent::Stanza(e) => match stanza::addressing(&e) {
                    Some(a) if self.settings.is_local(a.to.domain()) => {
                        self.deliver_local(e, None, t);
                    }
                    _ => self.detail(
                        Some(conn),
                        "component: a stanza not for the component's domain dropped".into(),
                    ),
                },
                ComponentEvent::Closed { reason } => {
                    self.component_flush(conn);
                    self.out.push_back(Output::Close { conn });
                    return self.component_down(&reason, t);
                }
            }
        }
    }

    fn component_up(&mut self, conn: ConnId, t: Time) {
        let Some(link) = self.component.as_mut() else {
            return;
        };
        let LinkState::Opening {
            session: Some(session),
            ..
        } = std::mem::replace(&mut link.state, LinkState::Down { retry_at: t.now })
        else {
            return;
        };
        link.state = LinkState::Up { conn, session };
        link.backoff = RETRY_FIRST;
        let detail = format!(
            "{} is a component of {}",
            link.setup.domain, link.setup.addr
        );
        let waiting: Vec<Element> = link.queue.drain(..).collect();
        self.event(Event::ComponentLink { up: true, detail });
        for stanza in waiting {
            self.component_send(stanza, t);
        }
    }

    /// The link is down: what waited bounces, the next attempt is
    /// scheduled.
    fn component_down(&mut self, reason: &str, t: Time) {
        let Some(link) = self.component.as_mut() else {
            return;
        };
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

    /// Bytes the session has for the server.
    fn component_flush(&mut self, conn: ConnId) {
        let bytes = match self.component.as_mut().map(|l| &mut l.state) {
            Some(LinkState::Opening {
                session: Some(s), ..
            })
            | Some(LinkState::Up { session: s, .. }) => s.poll_transmit(),
            _ => None,
        };
        if let Some(bytes) = bytes {
            self.out.push_back(Output::Transmit { conn, bytes });
        }
    }
}
