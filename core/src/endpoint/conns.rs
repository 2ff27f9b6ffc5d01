//! SIP transport: TCP and TLS connections (limits, timeouts, certificate
//! checks, flows), UDP datagrams, and the transaction table's traffic.

use super::*;
use crate::capacity::{release_sparse, release_sparse_set};

impl Endpoint {
    /// Closes the connections whose timeout ran out, each with a log line
    /// naming the timeout and the peer.
    pub(super) fn expire_conns(&mut self, t: &mut Turn<'_>) {
        let due: Vec<(ConnId, Expiry)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| match c.deadline(&self.timeouts) {
                Some((at, why)) if at <= t.now => Some((*id, why)),
                _ => None,
            })
            .collect();
        for (conn, why) in due {
            if let Some(c) = self.conns.get(&conn) {
                let event = Event::SipConnectionExpired {
                    conn,
                    peer: c.peer,
                    tls: c.is_tls(),
                    inbound: c.is_inbound(),
                    key: why.key(),
                    what: why.describe(c.is_inbound()),
                    after_secs: why.duration(&self.timeouts).as_secs(),
                    routine: why == Expiry::Idle,
                };
                self.event(event);
            }
            self.drop_conn(conn, t);
        }
    }

    /// Forgets the flows whose binding has ended, and tells every
    /// connection whether it carries a live binding: a flow stays open
    /// while its binding lives; the others follow the idle timeout.
    pub(super) fn refresh_flows(&mut self, t: &mut Turn<'_>) {
        let bindings = self.registrar.bindings();
        self.flows
            .retain(|(aor, contact), _| bindings.is_live(aor, contact, t.unix));
        let flows: HashSet<ConnId> = self.flows.values().copied().collect();
        for (id, c) in &mut self.conns {
            c.set_flow(flows.contains(id), t.now);
        }
    }

    /// A peer connected to a SIP TCP or TLS listener; beyond
    /// `sip.connection_limit` it is closed at once.
    pub fn accept(&mut self, conn: ConnId, peer: SocketAddr, tls: bool, t: &mut Turn<'_>) {
        if self.conns.len() >= self.connection_limit {
            let refusal = Refusal::Limit {
                key: "sip.connection_limit",
                limit: self.connection_limit,
            };
            let event = Event::ConnectionRefused {
                conn,
                peer,
                refusal,
            };
            self.event_limited(peer, event, t.now);
            return self.close(conn);
        }
        let config = if tls {
            match &self.settings.tls_server {
                Some(c) => Some(c.clone()),
                None => {
                    self.event(Event::SipConnectionFailed {
                        conn,
                        reason: "SIP over TLS without a certificate".into(),
                    });
                    self.out.push_back(Output::Close { conn });
                    return;
                }
            }
        } else {
            None
        };
        match SipConn::accepted(peer, config, self.limits, t.now) {
            Ok(c) => {
                self.conns.insert(conn, c);
                let listener = if tls {
                    Listener::SipTls
                } else {
                    Listener::SipTcp
                };
                self.event(Event::Accepted {
                    conn,
                    listener,
                    peer,
                });
            }
            Err(e) => {
                self.event(Event::SipConnectionFailed {
                    conn,
                    reason: format!("from {peer}: {e}"),
                });
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    /// An outbound SIP connection is up.
    pub fn handle_connected(&mut self, conn: ConnId, t: &mut Turn<'_>) {
        if let Some(Err(e)) = self.conns.get_mut(&conn).map(|c| c.connected(t.now)) {
            self.event(Event::SipConnectionFailed {
                conn,
                reason: e.to_string(),
            });
            return self.drop_conn(conn, t);
        }
        self.flush_conn(conn);
        self.drain_table(t);
    }

    /// An outbound SIP connection could not be made.
    pub fn handle_connect_failed(&mut self, conn: ConnId, reason: &str, t: &mut Turn<'_>) {
        self.event(Event::ConnectFailed {
            conn,
            reason: format!("SIP: {reason}"),
        });
        self.handle_closed(conn, t);
    }

    /// A SIP connection closed: its transactions fail.
    pub fn handle_closed(&mut self, conn: ConnId, t: &mut Turn<'_>) {
        if self.conns.remove(&conn).is_none() {
            return;
        }
        self.flows.retain(|_, c| *c != conn);
        let failed: Vec<TxId> = self
            .tx_dest
            .iter()
            .filter(|(_, d)| **d == Dest::Conn(conn))
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            self.table.handle_transport_error(id);
        }
        self.drain_table(t);
    }

    /// Bytes on a SIP connection.
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], t: &mut Turn<'_>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Err(e) = c.receive(bytes, t.now) {
            self.event(Event::SipConnectionFailed {
                conn,
                reason: e.to_string(),
            });
            return self.drop_conn(conn, t);
        }
        if !self.check_certificate(conn, t) {
            return;
        }
        while let Some(c) = self.conns.get_mut(&conn) {
            let peer = c.peer;
            match c.poll(t.now) {
                None => break,
                Some(Ok(Frame::Message(m))) => self.handle_message(m, Dest::Conn(conn), peer, t),
                Some(Ok(Frame::Ping)) => {
                    // RFC 5626 section 3.5.1: a double CRLF gets a CRLF.
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.send(b"\r\n");
                    }
                }
                Some(Ok(Frame::Pong)) => {}
                Some(Err(e)) => {
                    let fatal = e.is_fatal();
                    self.refuse(&e, Dest::Conn(conn), peer, t);
                    if fatal {
                        return self.drop_conn(conn, t);
                    }
                }
            }
        }
        self.flush_conn(conn);
        self.drain_table(t);
    }

    /// Judges the peer's certificate once a TLS handshake has ended: a
    /// client of our listener may prove a `sip.trusted` name; a server we
    /// opened TLS to must prove its name, else the connection closes
    /// (its transactions fail). `false` when the connection is gone.
    pub(super) fn check_certificate(&mut self, conn: ConnId, t: &mut Turn<'_>) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        let chain = c.peer_certificates();
        let peer = c.peer;
        match c.pending_check() {
            None => true,
            Some(PendingCheck::Client) => {
                let mut proven = None;
                let mut refused = None;
                if !chain.is_empty() {
                    for peer_name in &self.trusted {
                        let TrustedPeer::Certificate(name) = peer_name else {
                            continue;
                        };
                        match tls::check_peer(chain, &self.settings.trust, t.unix, name) {
                            PeerCert::Trusted => {
                                proven = Some(name.clone());
                                break;
                            }
                            PeerCert::Untrusted { reason } => {
                                refused.get_or_insert(reason);
                            }
                            PeerCert::None => {}
                        }
                    }
                }
                let line = match (&proven, &refused, chain.is_empty()) {
                    (Some(name), _, _) => {
                        format!("SIP TLS client {peer}: certificate proves trusted peer {name}")
                    }
                    (None, _, true) => format!("SIP TLS client {peer}: no client certificate"),
                    (None, Some(reason), false) => format!(
                        "SIP TLS client {peer}: certificate proves no trusted name ({reason})"
                    ),
                    (None, None, false) => format!(
                        "SIP TLS client {peer}: certificate not checked (no host name in sip.trusted)"
                    ),
                };
                let event = Event::SipCertificate {
                    conn,
                    outcome: line,
                    accepted: true,
                    proven: proven.is_some() || chain.is_empty(),
                };
                self.event(event);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.judged(proven);
                }
                true
            }
            Some(PendingCheck::Server(name)) => {
                match tls::check_peer(chain, &self.settings.trust, t.unix, name) {
                    PeerCert::Trusted => {
                        let line = format!("SIP TLS to {name} at {peer}: certificate verified");
                        self.event(Event::SipCertificate {
                            conn,
                            outcome: line,
                            accepted: true,
                            proven: true,
                        });
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.verified();
                        }
                        self.flush_conn(conn);
                        true
                    }
                    verdict => {
                        let why = match verdict {
                            PeerCert::Untrusted { reason } => reason.to_string(),
                            _ => "no certificate".to_owned(),
                        };
                        let line = format!(
                            "SIP TLS to {name} at {peer}: {why}; connection closed, its requests fail"
                        );
                        self.event(Event::SipCertificate {
                            conn,
                            outcome: line,
                            accepted: false,
                            proven: false,
                        });
                        self.drop_conn(conn, t);
                        false
                    }
                }
            }
        }
    }

    /// A datagram on the UDP socket `local`.
    pub fn handle_datagram(
        &mut self,
        local: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
        t: &mut Turn<'_>,
    ) {
        if sip::is_keepalive(bytes) {
            return;
        }
        let dest = Dest::Udp { local, peer };
        match sip::parse_datagram(bytes, &self.limits) {
            Ok(m) => self.handle_message(m, dest, peer, t),
            Err(e) => self.refuse(&e, dest, peer, t),
        }
        self.drain_table(t);
    }

    /// Answers (or drops, when no answer can be built) what did not parse.
    pub(super) fn refuse(
        &mut self,
        e: &sip::ParseError,
        dest: Dest,
        peer: SocketAddr,
        t: &mut Turn<'_>,
    ) {
        let tag = sip::new_tag(&mut self.rng);
        match e.response(&tag) {
            Some(r) => {
                self.refused_limited(
                    peer,
                    t.now,
                    format!("SIP from {peer}: {e}; answering {} {}", r.status, r.reason),
                );
                self.send_bytes(dest, &r.to_bytes());
            }
            None => self.refused_limited(
                peer,
                t.now,
                format!("SIP from {peer}: {e}; dropped (no response possible)"),
            ),
        }
    }

    pub(super) fn close(&mut self, conn: ConnId) {
        self.out.push_back(Output::Close { conn });
    }

    /// Closes a connection of ours: what it has to send goes out first,
    /// the runtime closes it, and it is forgotten at once (its
    /// transactions fail as if the peer had closed it), so it no longer
    /// counts against `sip.connection_limit`.
    pub(super) fn drop_conn(&mut self, conn: ConnId, t: &mut Turn<'_>) {
        self.flush_conn(conn);
        self.close(conn);
        self.handle_closed(conn, t);
    }

    pub(super) fn flush_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let bytes = c.take_output();
            if !bytes.is_empty() {
                self.out.push_back(Output::Transmit { conn, bytes });
            }
        }
    }

    pub(super) fn send_bytes(&mut self, dest: Dest, bytes: &[u8]) -> bool {
        match dest {
            Dest::Udp { local, peer } => {
                self.out.push_back(Output::Datagram {
                    local,
                    peer,
                    bytes: bytes.to_vec(),
                });
                true
            }
            Dest::Conn(conn) => match self.conns.get_mut(&conn) {
                Some(c) => {
                    c.send(bytes);
                    self.flush_conn(conn);
                    true
                }
                None => false,
            },
        }
    }

    /// Carries out what the transactions want.
    pub(super) fn drain_table(&mut self, t: &mut Turn<'_>) {
        while let Some((id, output)) = self.table.poll_output() {
            match output {
                sip::Output::Transmit(bytes) => {
                    let sent = match self.tx_dest.get(&id).copied() {
                        Some(dest) => self.send_bytes(dest, &bytes),
                        None => false,
                    };
                    if !sent {
                        self.table.handle_transport_error(id);
                    }
                }
                sip::Output::Provisional(_) => {}
                sip::Output::Final(response) => self.client_answered(id, Ok(response), t),
                sip::Output::Timeout => self.client_answered(id, Err(408), t),
                // RFC 3261 treats a transport failure as a 503, but the
                // server is fine: the user agent's connection is gone, so
                // the XMPP sender hears recipient-unavailable (as for 480).
                sip::Output::TransportError => self.client_answered(id, Err(480), t),
                sip::Output::Terminated => {
                    self.tx_dest.remove(&id);
                    self.authenticated.remove(&id);
                    release_sparse(&mut self.tx_dest);
                    release_sparse_set(&mut self.authenticated);
                }
            }
        }
    }

    /// The transport for a target, and the Via `transport sent-by` to use:
    /// the registering connection, a UDP socket of the right family, or a
    /// new TCP connection.
    pub(super) fn dest_for(&mut self, target: &Target, t: &mut Turn<'_>) -> Option<(Dest, String)> {
        if let Some(conn) = target.flow.filter(|c| self.conns.contains_key(c)) {
            let tls = self.conns.get(&conn).is_some_and(SipConn::is_tls);
            let via = format!("{} {}", if tls { "TLS" } else { "TCP" }, self.sent_by());
            return Some((Dest::Conn(conn), via));
        }
        match target.transport {
            SipTransport::Udp => {
                let local = *self
                    .settings
                    .udp
                    .iter()
                    .find(|l| l.is_ipv4() == target.addr.is_ipv4())?;
                Some((
                    Dest::Udp {
                        local,
                        peer: target.addr,
                    },
                    format!("UDP {local}"),
                ))
            }
            SipTransport::Tcp => {
                let conn = self.connection_to(target.addr, None, t);
                Some((Dest::Conn(conn), format!("TCP {}", self.sent_by())))
            }
            SipTransport::Tls => {
                let (Some(name), Some(config)) =
                    (target.tls_name.clone(), self.settings.tls_client.clone())
                else {
                    self.detail(
                        None,
                        format!(
                            "{}: SIP over TLS toward a user is only used on connections the user opened",
                            target.uri
                        ),
                    );
                    return None;
                };
                let conn = self.connection_to(target.addr, Some((config, name)), t);
                Some((Dest::Conn(conn), format!("TLS {}", self.sent_by())))
            }
        }
    }

    /// A connection to `addr`: over plain TCP, any open one (ours or the
    /// peer's); over TLS (`tls`: the client configuration and the name
    /// the server must prove), one we opened to that name. Else a new one,
    /// whose connection the runtime is asked for.
    pub(super) fn connection_to(
        &mut self,
        addr: SocketAddr,
        tls: Option<(Arc<ClientConfig>, String)>,
        t: &mut Turn<'_>,
    ) -> ConnId {
        let name = tls.as_ref().map(|(_, n)| n.as_str());
        let existing = self
            .conns
            .iter()
            .find(|(_, c)| c.peer == addr && c.is_tls() == name.is_some() && c.opened_to() == name)
            .map(|(id, _)| *id);
        if let Some(conn) = existing {
            return conn;
        }
        let conn = t.ids.allocate();
        self.conns
            .insert(conn, SipConn::outbound(addr, tls, self.limits, t.now));
        self.out.push_back(Output::Connect { conn, addr });
        conn
    }

    /// The host:port in the Via of requests on connections.
    pub(super) fn sent_by(&self) -> String {
        match self.settings.udp.first() {
            Some(a) if !a.ip().is_unspecified() => a.to_string(),
            _ => self.domains.first().cloned().unwrap_or_default(),
        }
    }
}
