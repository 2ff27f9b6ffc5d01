//! The edge's side of the internal link (`role = "edge"`): gateways
//! attach on `[listen] internal` (Lync's port 23456) inside TLS, each side
//! presenting a certificate for a local domain under `[tls] trust`, then
//! the XEP-0114 handshake keyed by the deployment's dialback secret. The
//! edge runs the s2s side alone: stanzas a gateway sends go out over s2s
//! as the local side's do; stanzas for local users go to the first gateway
//! link that is up (the others take over when it goes), and bounce with
//! `service-unavailable` while none is. What an outsider can hold here is
//! bounded: [`MAX_LINKS`] links, each closed unless up within
//! `stream_establishment_timeout`.

use super::*;
use crate::jid::Jid;
use crate::tls::{check_peer, PeerCert};
use crate::xmpp::component::{Component, ComponentEvent};

/// Gateway links an edge holds at once, attached or attaching.
pub const MAX_LINKS: usize = 64;

/// One gateway's link.
#[derive(Debug)]
struct GatewayLink {
    session: Component,
    /// Until it is up: when it is given up.
    by: Option<Instant>,
}

/// The gateways attached to an edge.
#[derive(Debug, Default)]
pub(super) struct Edge {
    links: BTreeMap<ConnId, GatewayLink>,
}

impl Edge {
    /// One line per link, for `xfed status`.
    pub(super) fn describe(&self) -> Vec<String> {
        self.links
            .iter()
            .map(|(conn, l)| {
                let state = if l.by.is_none() { "up" } else { "opening" };
                format!(
                    "gateway link {} {state} tls={}",
                    conn.0,
                    l.session.tls_version().unwrap_or("none")
                )
            })
            .collect()
    }

    /// When a link still opening is given up.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.links.values().filter_map(|l| l.by).min()
    }
}

impl Gateway {
    /// Whether `conn` is a gateway's link to this edge.
    pub(super) fn is_internal(&self, conn: ConnId) -> bool {
        self.edge
            .as_ref()
            .is_some_and(|e| e.links.contains_key(&conn))
    }

    /// A connection on `[listen] internal`: TLS first; refused beyond
    /// [`MAX_LINKS`], or without a certificate to present.
    pub(super) fn internal_accept(&mut self, conn: ConnId, peer: SocketAddr, t: Time) {
        let full = self
            .edge
            .as_ref()
            .is_none_or(|e| e.links.len() >= MAX_LINKS);
        let made = match (&self.settings.tls_server, full) {
            (_, true) => Err(format!("{MAX_LINKS} gateway links already")),
            (None, _) => Err("no certificate: the internal link needs one".into()),
            (Some(tls), false) => Component::accept_tls(
                self.settings.local_domains.clone(),
                self.rng.token(),
                &self.settings.dialback_secret,
                self.settings.limits,
                Arc::clone(tls),
            ),
        };
        match made {
            Ok(session) => {
                let by = Some(t.now + self.settings.establishment_timeout);
                if let Some(edge) = self.edge.as_mut() {
                    edge.links.insert(conn, GatewayLink { session, by });
                }
                self.event(Event::Accepted {
                    conn,
                    listener: Listener::Internal,
                    peer,
                });
            }
            Err(why) => {
                self.detail(
                    Some(conn),
                    format!("internal link from {peer} refused: {why}"),
                );
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    /// Bytes from a gateway.
    pub(super) fn internal_bytes(&mut self, conn: ConnId, bytes: &[u8], t: Time) {
        if let Some(l) = self.internal_link(conn) {
            l.session.handle_bytes(bytes);
        }
        self.internal_events(conn, t);
        self.internal_flush(conn);
    }

    /// A gateway's connection ended.
    pub(super) fn internal_gone(&mut self, conn: ConnId, reason: &str, _t: Time) {
        let Some(link) = self.edge.as_mut().and_then(|e| e.links.remove(&conn)) else {
            return;
        };
        if link.by.is_none() {
            let detail = format!("gateway link {} lost: {reason}", conn.0);
            self.event(Event::ComponentLink { up: false, detail });
        }
    }

    /// Gives up on links not up in time.
    pub(super) fn internal_timeout(&mut self, t: Time) {
        let late: Vec<ConnId> = self.edge.as_ref().map_or_else(Vec::new, |e| {
            e.links
                .iter()
                .filter(|(_, l)| l.by.is_some_and(|by| by <= t.now))
                .map(|(c, _)| *c)
                .collect()
        });
        for conn in late {
            if let Some(l) = self.internal_link(conn) {
                l.session.close("not attached in time");
            }
            self.internal_flush(conn);
            self.out.push_back(Output::Close { conn });
            self.internal_gone(conn, "not attached in time", t);
        }
    }

    /// A stanza for a local user, on an edge: to the first gateway up.
    pub(super) fn internal_deliver(&mut self, stanza: Element, t: Time) {
        let up = self.gateway_up();
        let Some(conn) = up else {
            return self.bounce(
                &stanza,
                StanzaCondition::ServiceUnavailable,
                "no gateway is attached to this edge",
                t,
            );
        };
        if let Some(l) = self.internal_link(conn) {
            l.session.send_stanza(&stanza);
        }
        self.internal_flush(conn);
    }

    /// A partner's stanza on an edge, as it came: written on to the first
    /// gateway up without being read, when it goes to a local user, its
    /// stream is not paused and its text means the same on the link;
    /// otherwise the tree path takes it (and bounces what it must).
    pub(super) fn relay(&mut self, stanza: Stanza, source: ConnId, t: Time) {
        let to_user = stanza
            .to()
            .and_then(|to| Jid::parse(to).ok())
            .is_some_and(|to| !to.is_domain() && self.settings.is_local(to.domain()));
        let held = self.held.contains_key(&source);
        // A gateway's message for a SIP user: translated from its text.
        // (A held stream's stanzas wait their turn as trees.)
        let message = Kind::named(stanza.ns(), stanza.name()) == Some(Kind::Message);
        if to_user && message && !held && self.edge.is_none() && self.sip.is_some() {
            self.stanzas.translated_unread += 1;
            self.with_sip(t, |ep, turn| {
                ep.message_text_from_xmpp(stanza, Some(source), turn)
            });
            return;
        }
        let up = self.gateway_up();
        let unread = to_user && stanza.self_contained() && !held;
        if let (true, Some(conn)) = (unread, up) {
            if let Some(l) = self.internal_link(conn) {
                l.session.send_raw(&stanza);
            }
            self.stanzas.relayed_unread += 1;
            return self.internal_flush(conn);
        }
        match stanza.element() {
            Ok(e) => self.forward(e, Some(source), t),
            Err(e) => self.detail(
                Some(source),
                format!("a checked stanza did not read again, dropped: {e}"),
            ),
        }
    }

    /// A gateway's stanza as it came over the link: written on unread to
    /// the partner's stream when it is from a local domain to a partner
    /// and a stream that can take it is up and not congested; anything
    /// else (a route to set up, a refusal) takes the tree path.
    pub(super) fn relay_out(&mut self, stanza: Stanza, t: Time) {
        let addr = stanza::addressing_of(stanza.from(), stanza.to());
        let ready = match addr.as_ref().map(|a| (a.from.domain(), a.to.domain())) {
            Some((from, to))
                if self.settings.is_local(from) && self.settings.policy(to).is_some() =>
            {
                (self.sessions.iter())
                    .find(|(_, s)| s.can_send(from, to))
                    .map(|(c, _)| *c)
                    .filter(|c| !self.congested.contains(c))
            }
            _ => None,
        };
        if let Some(conn) = ready {
            let sent = self
                .sessions
                .get_mut(&conn)
                .is_some_and(|s| s.send_raw(&stanza, t));
            if sent {
                self.stanzas.sent += 1;
                self.stanzas.relayed_out_unread += 1;
                self.drain(conn);
                return;
            }
        }
        match stanza.element() {
            Ok(mut e) => {
                e.move_ns(ns::COMPONENT, ns::SERVER);
                self.forward(e, None, t)
            }
            Err(e) => self.detail(
                None,
                format!("a gateway's checked stanza did not read again, dropped: {e}"),
            ),
        }
    }

    /// The first gateway link up (attached, not waiting on its handshake).
    fn gateway_up(&self) -> Option<ConnId> {
        let links = &self.edge.as_ref()?.links;
        links.iter().find(|(_, l)| l.by.is_none()).map(|(c, _)| *c)
    }

    fn internal_link(&mut self, conn: ConnId) -> Option<&mut GatewayLink> {
        self.edge.as_mut()?.links.get_mut(&conn)
    }

    fn internal_events(&mut self, conn: ConnId, t: Time) {
        while let Some(event) = self
            .internal_link(conn)
            .and_then(|l| l.session.poll_event())
        {
            match event {
                ComponentEvent::Secured => {
                    let trust = Arc::clone(&self.settings.trust);
                    let domains = self.settings.local_domains.clone();
                    let Some(l) = self.internal_link(conn) else {
                        return;
                    };
                    let trusted = l.session.peer_certificates().is_some_and(|chain| {
                        domains.iter().any(|d| {
                            matches!(check_peer(chain, &trust, t.unix, d), PeerCert::Trusted)
                        })
                    });
                    if !trusted {
                        l.session
                            .refuse("the gateway's certificate is not trusted for a local domain");
                    }
                }
                ComponentEvent::Up { domain } => {
                    if let Some(l) = self.internal_link(conn) {
                        l.by = None;
                    }
                    let detail = format!("gateway link {} up for {domain}", conn.0);
                    self.event(Event::ComponentLink { up: true, detail });
                }
                ComponentEvent::Stanza(e) => self.route(e),
                ComponentEvent::Relay(s) => self.work.push_back(Work::RelayOut(s)),
                ComponentEvent::Closed { reason } => {
                    self.internal_flush(conn);
                    self.out.push_back(Output::Close { conn });
                    return self.internal_gone(conn, &reason, t);
                }
            }
        }
    }

    fn internal_flush(&mut self, conn: ConnId) {
        if let Some(bytes) = self
            .internal_link(conn)
            .and_then(|l| l.session.poll_transmit())
        {
            self.out.push_back(Output::Transmit { conn, bytes });
        }
    }
}
