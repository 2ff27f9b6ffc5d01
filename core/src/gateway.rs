//! The one type the runtimes drive: every connection's session, routing
//! by domain, the local domain's own answers, and limits.
//!
//! Runtimes feed it accepted and connected sockets, bytes, DNS replies and
//! time, and carry out what [`Gateway::poll_output`] returns.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::dns::{
    Candidate, Connect, HostsTable, Query, Resolution, ResolveError, ResolveOptions, Transport,
};
use crate::endpoint::{Endpoint, SipSettings, SipTables};
use crate::log_budget::{self, LogBudget};
use crate::registrar::bindings::Binding;
use crate::rng::Rng;
use crate::store::{Contacted, Persist};
use crate::xml::{ns, Element};
use crate::xmpp::session::{Direction, Session, SessionEvent, Settings, Time};
use crate::xmpp::stanza::{self, Kind, StanzaCondition};
use crate::xmpp::{StreamCondition, StreamError};

/// A connection, as the gateway and the runtime name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A DNS query in flight, as the gateway and the runtime name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// Which listener accepted a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The STARTTLS port (5269).
    S2s,
    /// The direct TLS port (XEP-0368, 5270).
    S2sDirectTls,
    /// SIP over TCP (5060).
    SipTcp,
    /// SIP over TLS (5061).
    SipTls,
}

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send bytes on a connection.
    Transmit {
        /// Which.
        conn: ConnId,
        /// What.
        bytes: Vec<u8>,
    },
    /// Send a UDP datagram from our SIP socket `local`.
    Datagram {
        /// Which of our sockets.
        local: SocketAddr,
        /// To whom.
        peer: SocketAddr,
        /// What.
        bytes: Vec<u8>,
    },
    /// Open a TCP connection; answer with `handle_connected` or
    /// `handle_connect_failed`.
    Connect {
        /// The id the connection will have.
        conn: ConnId,
        /// Where.
        addr: SocketAddr,
    },
    /// Close a connection once what was transmitted is sent.
    Close {
        /// Which.
        conn: ConnId,
    },
    /// Send a DNS query to the resolver (one UDP datagram from a fresh
    /// socket, or over TCP with 2-byte length framing when `tcp`); answer
    /// with [`Gateway::handle_dns`].
    DnsQuery {
        /// Which query.
        query: QueryId,
        /// The DNS message, unframed.
        bytes: Vec<u8>,
        /// Send over TCP (after a truncated UDP answer).
        tcp: bool,
        /// Give up after this: the core no longer waits for the reply.
        timeout: Duration,
    },
    /// A stanza for a local user, for the gateway role (translation to
    /// SIP). Until that exists, only replies land here (iq results and
    /// errors); requests are answered `service-unavailable` by the core.
    Stanza(Element),
    /// Changes for the store, to apply in order.
    Persist(Vec<Persist>),
    /// Something worth a log line.
    Log(LogLine),
}

/// Log severity, mapped by the runtime onto its logger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Normal operation.
    Info,
    /// Refused or hostile input, failed routes.
    Warn,
    /// Protocol detail.
    Debug,
}

/// A log line from the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: Level,
    /// The connection it is about, if any.
    pub conn: Option<ConnId>,
    /// Text.
    pub message: String,
}

/// Most stanzas queued for one route while it is being set up.
pub const ROUTE_QUEUE_LIMIT: usize = 1000;

/// The window of `gateway.log_lines_per_source` for warnings about
/// refusals, per stream (or per bound reached), and the streams tracked
/// one by one (the others share one budget).
const LOG_WINDOW: Duration = Duration::from_secs(60);
const LOG_SOURCES: usize = 1024;

/// (local domain, remote domain).
type RouteKey = (String, String);

/// Whose warnings share a log budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LogSource {
    /// Refusals of what one stream asked for.
    Stream(ConnId),
    /// A bound reached by the local side (stanzas), or by everyone (DNS).
    Bound(&'static str),
}

#[derive(Debug)]
enum RouteState {
    /// Resolving the remote domain; `waiting_since` when a query of it
    /// waits in `Gateway::dns_waiting` for a slot.
    Resolving {
        resolution: Resolution,
        waiting_since: Option<Instant>,
    },
    /// A stream on `conn` (connecting, negotiating, or ready); `rest` are
    /// the candidates still to try if it fails before it is ready.
    Streaming {
        conn: ConnId,
        rest: VecDeque<Candidate>,
        ready: bool,
    },
}

/// How stanzas from one local domain reach one remote domain.
#[derive(Debug)]
struct Route {
    state: RouteState,
    queue: VecDeque<Element>,
    /// Dialback verifications to send once the stream is usable.
    verifies: Vec<PendingVerify>,
}

/// A DNS query out: the runtime holds a socket for it until its reply or
/// its deadline, so it counts against `gateway.max_dns_queries` until then,
/// even when the route that sent it is gone.
#[derive(Debug)]
struct QueryOut {
    route: RouteKey,
    /// The DNS message id.
    id: u16,
    deadline: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingVerify {
    /// The inbound connection that asked.
    inbound: ConnId,
    receiving: String,
    originating: String,
    stream_id: String,
    key: String,
}

/// The gateway.
pub struct Gateway {
    settings: Settings,
    rng: Rng,
    next_conn: u64,
    next_query: u64,
    sessions: BTreeMap<ConnId, Session>,
    /// (local, remote) → route.
    routes: HashMap<(String, String), Route>,
    /// Outbound connection → its route key.
    route_of: HashMap<ConnId, (String, String)>,
    /// DNS queries out.
    queries: HashMap<QueryId, QueryOut>,
    /// Routes with a query waiting for one of the `max_dns_queries` slots,
    /// first come first served, one query per turn.
    dns_waiting: VecDeque<RouteKey>,
    /// How long a route may wait for a DNS slot: as long as a lookup the
    /// resolver never answers takes to fail (every send timed out).
    dns_wait_limit: Duration,
    /// Verifications sent on an outbound connection, by the inbound
    /// connection that needs the answer.
    verifying: Vec<(ConnId, PendingVerify)>,
    /// Verifications pending (queued on a route or sent) per originating
    /// domain: what `max_pending_dialback_per_domain` bounds.
    pending_by_domain: HashMap<String, usize>,
    /// Warnings about refusals, bounded per stream and per bound.
    log_budget: LogBudget<LogSource>,
    out: VecDeque<Output>,
    /// Wall clock anchor: Unix seconds at `anchor`.
    anchor: (Instant, u64),
    shutting_down: bool,
    /// Most s2s connections at once, in and out (`gateway.connection_limit`;
    /// SIP connections have their own limit, kept by the endpoint).
    connection_limit: usize,
    /// The SIP side, when the gateway role runs.
    sip: Option<Endpoint>,
    /// Ids of stanzas from the SIP side whose fate it waits for.
    tracked: HashSet<String>,
    /// Local names and addresses, used before DNS.
    hosts: Arc<HostsTable>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("sessions", &self.sessions.len())
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway; `seed` comes from the operating system (or a test), and
    /// `unix_now` is the wall clock at `now`, for certificate validity.
    pub fn new(
        settings: Settings,
        seed: [u8; 32],
        now: Instant,
        unix_now: u64,
        connection_limit: usize,
    ) -> Gateway {
        let dns = ResolveOptions::default();
        let log_lines = settings.bounds.log_lines_per_source;
        Gateway {
            settings,
            rng: Rng::new(seed),
            next_conn: 1,
            next_query: 1,
            sessions: BTreeMap::new(),
            routes: HashMap::new(),
            route_of: HashMap::new(),
            queries: HashMap::new(),
            dns_waiting: VecDeque::new(),
            dns_wait_limit: dns.query_timeout * (dns.retries + 1),
            verifying: Vec::new(),
            pending_by_domain: HashMap::new(),
            log_budget: LogBudget::new(log_lines, LOG_WINDOW, LOG_SOURCES, now),
            out: VecDeque::new(),
            anchor: (now, unix_now),
            shutting_down: false,
            connection_limit,
            sip: None,
            tracked: HashSet::new(),
            hosts: Arc::default(),
        }
    }

    /// Uses `hosts` (the runtime's `/etc/hosts`) for the addresses of the
    /// names it lists, before DNS.
    pub fn set_hosts(&mut self, hosts: HostsTable) {
        self.hosts = Arc::new(hosts);
    }

    /// Turns the gateway role on: SIP transports, registrar or proxy link,
    /// and translation for the local domains. `digest_key` keys the
    /// registrar's nonces.
    pub fn enable_sip(
        &mut self,
        config: &Config,
        settings: SipSettings,
        digest_key: &[u8],
        now: Instant,
    ) {
        let t = self.time(now);
        let rng = self.rng.fork();
        self.sip = Some(Endpoint::new(config, settings, digest_key, rng, t));
    }

    /// Loads the registrar's bindings and the remembered contacts from the
    /// store (at start).
    pub fn restore(&mut self, bindings: Vec<Binding>, contacts: Vec<Contacted>, now: Instant) {
        let t = self.time(now);
        if let Some(ep) = &mut self.sip {
            ep.restore(bindings, contacts, t);
        }
        self.pump_sip(t);
    }

    /// Routes what the SIP side has for XMPP.
    fn pump_sip(&mut self, t: Time) {
        while let Some((stanza, tracked)) = self.sip.as_mut().and_then(Endpoint::poll_stanza) {
            if tracked {
                if let Some(id) = stanza.attr("id") {
                    self.tracked.insert(id.to_owned());
                }
            }
            self.route(stanza, t);
        }
    }

    /// Tells the SIP side what became of a stanza it sent, if it asked.
    fn settle(&mut self, stanza: &Element, result: Result<(), StanzaCondition>, t: Time) -> bool {
        let Some(id) = stanza.attr("id") else {
            return false;
        };
        let from_local =
            stanza::addressing(stanza).is_some_and(|a| self.settings.is_local(a.from.domain()));
        if !from_local || !self.tracked.remove(id) {
            return false;
        }
        if let Some(ep) = &mut self.sip {
            ep.delivered(id, result, t);
        }
        true
    }

    /// The settings every session uses.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn time(&self, now: Instant) -> Time {
        let unix = self.anchor.1 + now.saturating_duration_since(self.anchor.0).as_secs();
        self.settings.clock.set(unix);
        Time { now, unix }
    }

    fn log(&mut self, level: Level, conn: Option<ConnId>, message: String) {
        self.out.push_back(Output::Log(LogLine {
            level,
            conn,
            message,
        }));
    }

    /// A warning, unless `source` has used up its lines for now.
    fn warn_limited(
        &mut self,
        source: LogSource,
        conn: Option<ConnId>,
        message: String,
        now: Instant,
    ) {
        if let Some(suppressed) = self.log_budget.allow(source, now) {
            let note = log_budget::suppressed_note(suppressed);
            self.log(Level::Warn, conn, format!("{message}{note}"));
        }
    }

    fn new_conn(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    /// Number of live connections, XMPP and SIP.
    pub fn connections(&self) -> usize {
        self.s2s_connections() + self.sip_connections()
    }

    /// Number of live s2s connections, in and out: what
    /// `gateway.connection_limit` bounds.
    pub fn s2s_connections(&self) -> usize {
        self.sessions.len()
    }

    /// Number of live SIP TCP and TLS connections, in and out: what
    /// `sip.connection_limit` bounds.
    pub fn sip_connections(&self) -> usize {
        self.sip.as_ref().map_or(0, Endpoint::connections)
    }

    /// The sizes of the SIP side's tables that outsiders can make grow,
    /// for tests and the operator's figures.
    pub fn sip_tables(&self) -> SipTables {
        self.sip.as_ref().map(Endpoint::tables).unwrap_or_default()
    }

    /// Dialback verifications waiting for an authoritative server (queued
    /// on a route or sent): what `gateway.max_pending_dialback_per_stream`
    /// and `max_pending_dialback_per_domain` bound.
    pub fn pending_dialback(&self) -> usize {
        self.verifying.len()
            + self
                .routes
                .values()
                .map(|r| r.verifies.len())
                .sum::<usize>()
    }

    /// Outbound routes being set up or up: what `gateway.max_routes`
    /// bounds.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    /// DNS queries the runtime is asked to hold open: what
    /// `gateway.max_dns_queries` bounds.
    pub fn dns_queries(&self) -> usize {
        self.queries.len()
    }

    /// A UDP datagram on one of our SIP sockets.
    pub fn handle_datagram(
        &mut self,
        local: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) {
        let t = self.time(now);
        if let Some(ep) = &mut self.sip {
            ep.handle_datagram(local, peer, bytes, t);
        }
        self.pump_sip(t);
    }

    fn sip_conn(&mut self, conn: ConnId) -> Option<&mut Endpoint> {
        self.sip.as_mut().filter(|ep| ep.owns(conn))
    }

    /// A peer connected to one of our listeners. Each kind has its own
    /// limit: s2s connections `gateway.connection_limit`, SIP ones
    /// `sip.connection_limit` (checked by the endpoint); a newcomer beyond
    /// its kind's limit is closed at once and the other kind is unaffected.
    pub fn accept(&mut self, listener: Listener, peer: SocketAddr, now: Instant) -> ConnId {
        let t = self.time(now);
        let conn = self.new_conn();
        if self.shutting_down {
            self.log(
                Level::Info,
                Some(conn),
                format!("refusing connection from {peer}: shutting down"),
            );
            self.out.push_back(Output::Close { conn });
            return conn;
        }
        if matches!(listener, Listener::SipTcp | Listener::SipTls) {
            match &mut self.sip {
                Some(ep) => ep.accept(conn, peer, listener == Listener::SipTls, t),
                None => self.out.push_back(Output::Close { conn }),
            }
            return conn;
        }
        if self.s2s_connections() >= self.connection_limit {
            // A connection flood is many refusals: lines within a budget.
            let message = format!(
                "refusing s2s connection from {peer}: gateway.connection_limit {} reached",
                self.connection_limit
            );
            self.warn_limited(
                LogSource::Bound("connection_limit"),
                Some(conn),
                message,
                now,
            );
            self.out.push_back(Output::Close { conn });
            return conn;
        }
        let rng = self.rng.fork();
        let session = Session::inbound(listener == Listener::S2sDirectTls, &self.settings, rng, t);
        self.sessions.insert(conn, session);
        self.log(
            Level::Debug,
            Some(conn),
            format!("accepted {listener:?} connection from {peer}"),
        );
        self.drain(conn, t);
        conn
    }

    /// An outbound TCP connection is up.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        let t = self.time(now);
        if let Some(ep) = self.sip_conn(conn) {
            ep.handle_connected(conn, t);
            return self.pump_sip(t);
        }
        match self.sessions.get_mut(&conn) {
            Some(s) => s.handle_connected(&self.settings, t),
            // Given up on while it connected (a timeout): not wanted now.
            None => return self.out.push_back(Output::Close { conn }),
        }
        self.drain(conn, t);
    }

    /// An outbound TCP connection could not be made.
    pub fn handle_connect_failed(&mut self, conn: ConnId, reason: &str, now: Instant) {
        let t = self.time(now);
        if let Some(ep) = self.sip_conn(conn) {
            ep.handle_connect_failed(conn, reason, t);
            return self.pump_sip(t);
        }
        self.log(Level::Warn, Some(conn), format!("connect failed: {reason}"));
        self.sessions.remove(&conn);
        let key = self.route_of.remove(&conn);
        self.reclaim_verifies(conn, key.as_ref(), t);
        if let Some(key) = key {
            self.fail_route(key, StanzaCondition::RemoteServerTimeout, reason, t);
        }
    }

    /// Bytes arrived on a connection.
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        let t = self.time(now);
        if let Some(ep) = self.sip_conn(conn) {
            ep.handle_bytes(conn, bytes, t);
            return self.pump_sip(t);
        }
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.handle_bytes(bytes, &self.settings, t);
        }
        self.drain(conn, t);
    }

    /// The peer closed the TCP connection (or it broke).
    pub fn handle_closed(&mut self, conn: ConnId, now: Instant) {
        let t = self.time(now);
        if let Some(ep) = self.sip_conn(conn) {
            ep.handle_closed(conn, t);
            return self.pump_sip(t);
        }
        if self.sessions.contains_key(&conn) {
            self.log(Level::Debug, Some(conn), "connection closed by peer".into());
            self.connection_gone(
                conn,
                StanzaCondition::RemoteServerTimeout,
                "connection closed",
                t,
            );
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let t = self.time(now);
        let due: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.poll_timeout(&self.settings).is_some_and(|d| d <= now))
            .map(|(c, _)| *c)
            .collect();
        for conn in due {
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.handle_timeout(&self.settings, t);
            }
            self.drain(conn, t);
        }
        // The runtime drops a query at its deadline: its slot is free.
        self.queries.retain(|_, q| q.deadline > now);
        let keys: Vec<RouteKey> = self
            .routes
            .iter()
            .filter(|(_, r)| matches!(&r.state, RouteState::Resolving { resolution, .. } if resolution.poll_timeout().is_some_and(|d| d <= now)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(Route {
                state: RouteState::Resolving { resolution, .. },
                ..
            }) = self.routes.get_mut(&key)
            {
                resolution.handle_timeout(now);
            }
            self.advance_resolution(key, t);
        }
        self.expire_dns_waits(t);
        self.pump_dns(t);
        if let Some(ep) = &mut self.sip {
            if ep.poll_timeout().is_some_and(|d| d <= now) {
                ep.handle_timeout(t);
            }
        }
        self.pump_sip(t);
    }

    /// The earliest time [`Gateway::handle_timeout`] is needed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sessions = self
            .sessions
            .values()
            .filter_map(|s| s.poll_timeout(&self.settings));
        let wait = self.dns_wait_limit;
        let dns = self.routes.values().filter_map(|r| match &r.state {
            RouteState::Resolving {
                resolution,
                waiting_since,
            } => {
                let gives_up = waiting_since.map(|since| since + wait);
                resolution.poll_timeout().into_iter().chain(gives_up).min()
            }
            _ => None,
        });
        let dropped = self.queries.values().map(|q| q.deadline);
        let sip = self.sip.as_ref().and_then(Endpoint::poll_timeout);
        sessions.chain(dns).chain(dropped).chain(sip).min()
    }

    /// The next thing for the runtime to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out
            .pop_front()
            .or_else(|| self.sip.as_mut().and_then(Endpoint::poll_output))
    }

    /// A DNS reply for `query`.
    pub fn handle_dns(&mut self, query: QueryId, bytes: &[u8], now: Instant) {
        let t = self.time(now);
        let Some(q) = self.queries.remove(&query) else {
            return;
        };
        if let Some(Route {
            state: RouteState::Resolving { resolution, .. },
            ..
        }) = self.routes.get_mut(&q.route)
        {
            resolution.handle_response(q.id, bytes);
        }
        // Also when the route is gone: the slot it freed serves another.
        self.advance_resolution(q.route, t);
    }

    /// Stops accepting, and closes every stream with `</stream:stream>`
    /// (SIGTERM). Connections end as peers close or time out.
    pub fn shutdown(&mut self, now: Instant) {
        let t = self.time(now);
        self.shutting_down = true;
        let conns: Vec<ConnId> = self.sessions.keys().copied().collect();
        for conn in conns {
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.close_gracefully("shutting down", t.now);
            }
            self.drain(conn, t);
        }
    }

    /// Whether shutdown has finished: no XMPP stream left (SIP
    /// connections carry no closing handshake and are simply dropped).
    pub fn is_idle(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A stanza from the local side (the gateway role, tests) for a remote
    /// XMPP domain. Errors come back as error stanzas through the same
    /// delivery path as everything else addressed to local users.
    pub fn send(&mut self, stanza: Element, now: Instant) {
        let t = self.time(now);
        self.route(stanza, t);
    }

    /// Moves a session's output and events into the gateway's.
    fn drain(&mut self, conn: ConnId, t: Time) {
        let mut events = Vec::new();
        if let Some(s) = self.sessions.get_mut(&conn) {
            if let Some(bytes) = s.poll_transmit() {
                self.out.push_back(Output::Transmit { conn, bytes });
            }
            while let Some(ev) = s.poll_event() {
                events.push(ev);
            }
        }
        for ev in events {
            self.on_session_event(conn, ev, t);
        }
        // Events may have produced more output on this or other sessions.
        if let Some(s) = self.sessions.get_mut(&conn) {
            if let Some(bytes) = s.poll_transmit() {
                self.out.push_back(Output::Transmit { conn, bytes });
            }
            if s.is_closed() {
                self.sessions.remove(&conn);
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    fn on_session_event(&mut self, conn: ConnId, ev: SessionEvent, t: Time) {
        match ev {
            SessionEvent::InboundAuthorized { from, to, method } => {
                self.log(
                    Level::Info,
                    Some(conn),
                    format!("inbound stream authenticated: {from} -> {to} by {method:?}"),
                );
                let same = self
                    .sessions
                    .values()
                    .filter(|s| {
                        s.direction() == &Direction::Inbound && s.pairs().any(|(f, _)| *f == from)
                    })
                    .count();
                if same > self.settings.connection_limit_for(&from) {
                    self.log(
                        Level::Warn,
                        Some(conn),
                        format!("{from} exceeds the per-partner connection limit"),
                    );
                    if let Some(s) = self.sessions.get_mut(&conn) {
                        s.close_with(
                            &self.settings,
                            StreamError::new(
                                StreamCondition::ResourceConstraint,
                                "too many connections from your domain",
                            ),
                        );
                    }
                }
            }
            SessionEvent::OutboundReady {
                local,
                remote,
                method,
            } => {
                self.log(
                    Level::Info,
                    Some(conn),
                    format!("outbound stream ready: {local} -> {remote} by {method:?}"),
                );
                let key = (local, remote);
                if let Some(Route {
                    state: RouteState::Streaming { ready, .. },
                    ..
                }) = self.routes.get_mut(&key)
                {
                    *ready = true;
                }
                self.flush_route(&key, conn, t);
            }
            SessionEvent::OutboundFailed { condition, reason } => {
                self.log(
                    Level::Warn,
                    Some(conn),
                    format!("outbound stream failed: {reason}"),
                );
                let key = self.route_of.remove(&conn);
                self.reclaim_verifies(conn, key.as_ref(), t);
                if let Some(key) = key {
                    self.fail_route(key, condition, &reason, t);
                }
            }
            SessionEvent::Stanza(e) => self.route(e, t),
            SessionEvent::VerifyNeeded {
                receiving,
                originating,
                stream_id,
                key,
            } => {
                let v = PendingVerify {
                    inbound: conn,
                    receiving,
                    originating: originating.clone(),
                    stream_id,
                    key,
                };
                let most = self.settings.bounds.max_pending_dialback_per_domain;
                if self
                    .pending_by_domain
                    .get(&originating)
                    .copied()
                    .unwrap_or(0)
                    >= most
                {
                    let why = format!(
                        "{most} verifications of {originating} already pending (gateway.max_pending_dialback_per_domain)"
                    );
                    return self.refuse_verify(v, &why, t);
                }
                *self
                    .pending_by_domain
                    .entry(originating.clone())
                    .or_default() += 1;
                self.log(
                    Level::Debug,
                    Some(conn),
                    format!(
                        "verifying dialback key of {originating} with its authoritative server"
                    ),
                );
                self.request_verify(v, t);
            }
            SessionEvent::VerifyAnswered {
                receiving,
                originating,
                stream_id,
                valid,
            } => {
                let Some(i) = self.verifying.iter().position(|(c, v)| {
                    *c == conn
                        && v.receiving == receiving
                        && v.originating == originating
                        && v.stream_id == stream_id
                }) else {
                    return;
                };
                let (_, v) = self.verifying.remove(i);
                let result = valid.ok_or(StanzaCondition::RemoteServerNotFound);
                self.finish_verify(v, result, t);
            }
            SessionEvent::DialbackRefused {
                sender,
                target,
                condition,
                reason,
            } => self.warn_limited(
                LogSource::Stream(conn),
                Some(conn),
                format!("dialback from {sender} to {target} refused with {condition}: {reason}"),
                t.now,
            ),
            SessionEvent::Notice(message) => self.log(Level::Debug, Some(conn), message),
            SessionEvent::Closed { reason } => {
                self.log(
                    Level::Info,
                    Some(conn),
                    format!("connection finished: {reason}"),
                );
                self.connection_gone(conn, StanzaCondition::RemoteServerTimeout, &reason, t);
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    /// Forgets a connection: the verifications it asked for, its route
    /// (bouncing what waits), and the verifications that depended on it.
    fn connection_gone(&mut self, conn: ConnId, condition: StanzaCondition, reason: &str, t: Time) {
        self.sessions.remove(&conn);
        self.forget_verifies_of(conn);
        let suppressed = self.log_budget.forget(&LogSource::Stream(conn));
        if suppressed > 0 {
            self.log(
                Level::Warn,
                Some(conn),
                format!("{suppressed} more refusals on this stream were not logged"),
            );
        }
        let key = self.route_of.remove(&conn);
        self.reclaim_verifies(conn, key.as_ref(), t);
        if let Some(key) = key {
            let ready = matches!(
                self.routes.get(&key),
                Some(Route {
                    state: RouteState::Streaming { ready: true, .. },
                    ..
                })
            );
            if ready {
                // A working stream ended: the next stanza opens a new one.
                if let Some(route) = self.drop_route(&key) {
                    for stanza in route.queue {
                        self.route(stanza, t);
                    }
                }
            } else {
                self.fail_route(key, condition, reason, t);
            }
        }
    }

    /// Takes back the verifications sent on `conn`, which will never answer
    /// them now. On a route still being set up (`key`) they wait again, so
    /// the next candidate carries them or the route's failure fails them;
    /// otherwise they fail at once.
    fn reclaim_verifies(&mut self, conn: ConnId, key: Option<&(String, String)>, t: Time) {
        let (orphans, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.verifying)
            .into_iter()
            .partition(|(c, _)| *c == conn);
        self.verifying = kept;
        let setting_up = key
            .and_then(|k| self.routes.get_mut(k))
            .filter(|r| matches!(r.state, RouteState::Streaming { ready: false, .. }));
        match setting_up {
            Some(route) => route.verifies.extend(orphans.into_iter().map(|(_, v)| v)),
            None => {
                for (_, v) in orphans {
                    self.verify_failed(v, StanzaCondition::RemoteServerTimeout, t);
                }
            }
        }
    }

    /// Drops the verifications `inbound` asked for, since nobody can hear
    /// their answers now, and the routes being set up only for them
    /// (XEP-0220 section 2.1.2: a late answer is dropped anyway).
    fn forget_verifies_of(&mut self, inbound: ConnId) {
        let mut forgotten: Vec<PendingVerify> = Vec::new();
        self.verifying.retain(|(_, v)| {
            let mine = v.inbound == inbound;
            if mine {
                forgotten.push(v.clone());
            }
            !mine
        });
        for route in self.routes.values_mut() {
            route.verifies.retain(|v| {
                let mine = v.inbound == inbound;
                if mine {
                    forgotten.push(v.clone());
                }
                !mine
            });
        }
        if forgotten.is_empty() {
            return;
        }
        self.log(
            Level::Debug,
            Some(inbound),
            format!(
                "stream gone: {} dialback verification(s) it asked for forgotten",
                forgotten.len()
            ),
        );
        let mut keys: Vec<RouteKey> = Vec::new();
        for v in &forgotten {
            self.untrack_verify(v);
            let key = (v.receiving.clone(), v.originating.clone());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in keys {
            self.abandon_if_unused(&key);
        }
    }

    /// Drops a route still being set up that nothing waits for any more
    /// (no stanza, no verification queued or sent on its stream), and its
    /// stream; a route that is up stays, for the next stanza.
    fn abandon_if_unused(&mut self, key: &RouteKey) {
        let unused = match self.routes.get(key) {
            Some(r) if r.queue.is_empty() && r.verifies.is_empty() => match r.state {
                RouteState::Resolving { .. } => true,
                RouteState::Streaming {
                    conn, ready: false, ..
                } => !self.verifying.iter().any(|(c, _)| *c == conn),
                RouteState::Streaming { ready: true, .. } => false,
            },
            _ => false,
        };
        if !unused {
            return;
        }
        let Some(route) = self.drop_route(key) else {
            return;
        };
        self.log(
            Level::Debug,
            None,
            format!(
                "route {} -> {} abandoned: nothing waits for it any more",
                key.0, key.1
            ),
        );
        if let RouteState::Streaming { conn, .. } = route.state {
            if self.sessions.remove(&conn).is_some() {
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    /// Removes a route, and its place in the DNS queue.
    fn drop_route(&mut self, key: &RouteKey) -> Option<Route> {
        let route = self.routes.remove(key)?;
        match route.state {
            RouteState::Resolving {
                waiting_since: Some(_),
                ..
            } => self.dns_waiting.retain(|k| k != key),
            RouteState::Streaming { conn, .. } => {
                self.route_of.remove(&conn);
            }
            RouteState::Resolving { .. } => {}
        }
        Some(route)
    }

    fn verify_failed(&mut self, v: PendingVerify, cond: StanzaCondition, t: Time) {
        self.finish_verify(v, Err(cond), t);
    }

    /// A pending verification ends: its result goes to the stream that
    /// asked, and it no longer counts against its domain's bound.
    fn finish_verify(&mut self, v: PendingVerify, result: Result<bool, StanzaCondition>, t: Time) {
        self.untrack_verify(&v);
        self.answer_verify(&v, result, t);
    }

    /// A verification refused before it started (a bound reached).
    fn refuse_verify(&mut self, v: PendingVerify, why: &str, t: Time) {
        self.warn_limited(
            LogSource::Stream(v.inbound),
            Some(v.inbound),
            format!(
                "dialback from {} to {} refused with resource-constraint: {why}",
                v.originating, v.receiving
            ),
            t.now,
        );
        self.answer_verify(&v, Err(StanzaCondition::ResourceConstraint), t);
    }

    fn answer_verify(&mut self, v: &PendingVerify, result: Result<bool, StanzaCondition>, t: Time) {
        if let Some(s) = self.sessions.get_mut(&v.inbound) {
            s.dialback_verified(&v.receiving, &v.originating, result, &self.settings, t);
        }
        self.drain(v.inbound, t);
    }

    fn untrack_verify(&mut self, v: &PendingVerify) {
        if let Some(n) = self.pending_by_domain.get_mut(&v.originating) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_by_domain.remove(&v.originating);
            }
        }
    }

    // ---- routing ----

    fn route(&mut self, stanza: Element, t: Time) {
        let Some(addr) = stanza::addressing(&stanza) else {
            self.log(
                Level::Warn,
                None,
                "dropping stanza without valid from/to from the local side".into(),
            );
            return;
        };
        let (from_domain, to_domain) = (addr.from.domain().to_owned(), addr.to.domain().to_owned());
        if self.settings.is_local(&to_domain) {
            return self.deliver_local(stanza, t);
        }
        if !self.settings.is_local(&from_domain) {
            // Not ours to send: an inbound stanza for another domain is
            // refused by the session before it gets here.
            return self.bounce(
                &stanza,
                StanzaCondition::NotAllowed,
                "not from a local domain",
                t,
            );
        }
        if self.settings.policy(&to_domain).is_none() {
            return self.bounce(
                &stanza,
                StanzaCondition::RemoteServerNotFound,
                "domain is not a federation partner",
                t,
            );
        }
        let key = (from_domain, to_domain);
        // An authenticated stream: ours, or the peer's with bidi.
        let ready = self
            .sessions
            .iter()
            .find(|(_, s)| s.can_send(&key.0, &key.1))
            .map(|(c, _)| *c);
        if let Some(conn) = ready {
            if let Some(s) = self.sessions.get_mut(&conn) {
                s.send_stanza(&stanza, t);
            }
            self.settle(&stanza, Ok(()), t);
            self.drain(conn, t);
            return;
        }
        let Some((route, new)) = self.route_entry(&key) else {
            let why = self.routes_full();
            self.warn_limited(
                LogSource::Bound("gateway.max_routes"),
                None,
                format!(
                    "{} -> {}: stanza bounced with resource-constraint: {why}",
                    key.0, key.1
                ),
                t.now,
            );
            return self.bounce(&stanza, StanzaCondition::ResourceConstraint, &why, t);
        };
        if route.queue.len() >= ROUTE_QUEUE_LIMIT {
            return self.bounce(
                &stanza,
                StanzaCondition::ResourceConstraint,
                "too many stanzas waiting for this domain",
                t,
            );
        }
        route.queue.push_back(stanza);
        if new {
            self.advance_resolution(key, t);
        }
    }

    /// Why a new route is refused.
    fn routes_full(&self) -> String {
        format!(
            "{} routes already up or being set up (gateway.max_routes)",
            self.settings.bounds.max_routes
        )
    }

    /// The route for `key` and whether it is new, or `None` when it would
    /// be new and `gateway.max_routes` routes exist. A new route is set in
    /// motion by [`Gateway::advance_resolution`] once what waits for it is
    /// queued, since its resolution may end at once.
    fn route_entry(&mut self, key: &RouteKey) -> Option<(&mut Route, bool)> {
        let new = !self.routes.contains_key(key);
        if new {
            if self.routes.len() >= self.settings.bounds.max_routes {
                return None;
            }
            let remote = key.1.clone();
            let options = ResolveOptions {
                direct_tls: self.settings.direct_tls_to(&remote),
                connect: self
                    .settings
                    .connect_for(&remote)
                    .map(|(host, port)| Connect {
                        host,
                        port,
                        direct_tls: false,
                    }),
                hosts: self.hosts.clone(),
                ..ResolveOptions::default()
            };
            let resolution = Resolution::new(&remote, &options, self.rng.next_u64());
            self.routes.insert(
                key.clone(),
                Route {
                    state: RouteState::Resolving {
                        resolution,
                        waiting_since: None,
                    },
                    queue: VecDeque::new(),
                    verifies: Vec::new(),
                },
            );
            self.log(
                Level::Debug,
                None,
                format!("new route {} -> {}", key.0, key.1),
            );
        }
        self.routes.get_mut(key).map(|r| (r, new))
    }

    /// Moves a resolution on: its queries wait their turn for a DNS slot,
    /// and its outcome, if it has one, starts the stream or fails the
    /// route.
    fn advance_resolution(&mut self, key: RouteKey, t: Time) {
        self.queue_for_dns(&key, t);
        self.pump_dns(t);
        self.take_outcome(key, t);
    }

    /// Puts a route with a query to send at the back of the DNS queue.
    fn queue_for_dns(&mut self, key: &RouteKey, t: Time) {
        if let Some(Route {
            state:
                RouteState::Resolving {
                    resolution,
                    waiting_since: waiting_since @ None,
                },
            ..
        }) = self.routes.get_mut(key)
        {
            if resolution.wants_query() {
                *waiting_since = Some(t.now);
                self.dns_waiting.push_back(key.clone());
            }
        }
    }

    /// Sends waiting queries, one route at a time in turn, while fewer than
    /// `gateway.max_dns_queries` are out.
    fn pump_dns(&mut self, t: Time) {
        let most = self.settings.bounds.max_dns_queries;
        let mut served = Vec::new();
        while self.queries.len() < most {
            let Some(key) = self.dns_waiting.pop_front() else {
                break;
            };
            let Some(Route {
                state:
                    RouteState::Resolving {
                        resolution,
                        waiting_since,
                    },
                ..
            }) = self.routes.get_mut(&key)
            else {
                continue;
            };
            let Some(since) = waiting_since.take() else {
                continue;
            };
            let query = resolution.poll_query(t.now);
            if query.is_some() && resolution.wants_query() {
                // Its other queries keep waiting, at the back, since then.
                *waiting_since = Some(since);
                self.dns_waiting.push_back(key.clone());
            }
            if let Some(q) = query {
                self.send_query(&key, q, t);
            }
            served.push(key);
        }
        if !self.dns_waiting.is_empty() {
            let waiting = self.dns_waiting.len();
            self.warn_limited(
                LogSource::Bound("gateway.max_dns_queries"),
                None,
                format!("{most} DNS queries in flight (gateway.max_dns_queries): {waiting} resolution(s) wait their turn"),
                t.now,
            );
        }
        for key in served {
            self.take_outcome(key, t);
        }
    }

    fn send_query(&mut self, key: &RouteKey, q: Query, t: Time) {
        let query = QueryId(self.next_query);
        self.next_query += 1;
        // The runtime drops the query then (`Output::DnsQuery::timeout`).
        let deadline = t.now + q.timeout;
        self.queries.insert(
            query,
            QueryOut {
                route: key.clone(),
                id: q.id,
                deadline,
            },
        );
        self.out.push_back(Output::DnsQuery {
            query,
            bytes: q.message,
            tcp: q.transport == Transport::Tcp,
            timeout: q.timeout,
        });
    }

    /// Fails the routes that waited longer than `dns_wait_limit` for a DNS
    /// slot, as a resolver that does not answer would have: the resolver
    /// is busy with `max_dns_queries` others.
    fn expire_dns_waits(&mut self, t: Time) {
        let limit = self.dns_wait_limit;
        let late: Vec<RouteKey> = self
            .routes
            .iter()
            .filter(|(_, r)| {
                matches!(r.state, RouteState::Resolving { waiting_since: Some(since), .. } if since + limit <= t.now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let why = format!(
            "no DNS query slot for {}s (gateway.max_dns_queries {} in flight)",
            limit.as_secs(),
            self.settings.bounds.max_dns_queries
        );
        for key in late {
            self.routes_fail(key, StanzaCondition::RemoteServerTimeout, &why, t);
        }
    }

    /// The outcome of a route's resolution, when it has one.
    fn take_outcome(&mut self, key: RouteKey, t: Time) {
        let outcome = match self.routes.get_mut(&key) {
            Some(Route {
                state: RouteState::Resolving { resolution, .. },
                ..
            }) => resolution.poll_outcome(),
            _ => return,
        };
        // Its queries were all answered or timed out: none is left to count.
        let Some(outcome) = outcome else {
            return;
        };
        match outcome {
            Ok(list) => {
                let rest: VecDeque<Candidate> = list.into_iter().collect();
                self.log(
                    Level::Debug,
                    None,
                    format!("{}: {} candidate address(es)", key.1, rest.len()),
                );
                if let Some(route) = self.routes.get_mut(&key) {
                    route.state = RouteState::Streaming {
                        conn: ConnId(0),
                        rest,
                        ready: false,
                    };
                }
                self.next_candidate(key, t);
            }
            Err(ResolveError::NotFound) => self.routes_fail(
                key,
                StanzaCondition::RemoteServerNotFound,
                "no DNS records",
                t,
            ),
            Err(ResolveError::Unavailable) => self.routes_fail(
                key,
                StanzaCondition::RemoteServerNotFound,
                "the domain publishes no XMPP service",
                t,
            ),
            Err(ResolveError::Timeout) => self.routes_fail(
                key,
                StanzaCondition::RemoteServerTimeout,
                "DNS did not answer",
                t,
            ),
        }
    }

    /// Tries the next candidate address of a route, or fails the route.
    fn next_candidate(&mut self, key: (String, String), t: Time) {
        let next = match self.routes.get_mut(&key) {
            Some(Route {
                state:
                    RouteState::Streaming {
                        rest, ready: false, ..
                    },
                ..
            }) => rest.pop_front(),
            _ => return,
        };
        let Some(candidate) = next else {
            self.routes_fail(
                key,
                StanzaCondition::RemoteServerTimeout,
                "no candidate address accepted a stream",
                t,
            );
            return;
        };
        let conn = self.new_conn();
        let rng = self.rng.fork();
        let session =
            Session::outbound(&key.0, &key.1, candidate.direct_tls, &self.settings, rng, t);
        self.sessions.insert(conn, session);
        self.route_of.insert(conn, key.clone());
        if let Some(Route {
            state: RouteState::Streaming { conn: c, .. },
            ..
        }) = self.routes.get_mut(&key)
        {
            *c = conn;
        }
        let how = if candidate.direct_tls {
            "direct TLS"
        } else {
            "STARTTLS"
        };
        self.log(
            Level::Debug,
            Some(conn),
            format!("connecting to {} at {} ({how})", key.1, candidate.addr),
        );
        self.out.push_back(Output::Connect {
            conn,
            addr: candidate.addr,
        });
        // Verifications waiting for this route go on the new stream.
        let pending = self
            .routes
            .get_mut(&key)
            .map(|r| std::mem::take(&mut r.verifies))
            .unwrap_or_default();
        for v in pending {
            self.send_verify(conn, v, t);
        }
    }

    fn flush_route(&mut self, key: &(String, String), conn: ConnId, t: Time) {
        let queued = match self.routes.get_mut(key) {
            Some(r) => std::mem::take(&mut r.queue),
            None => VecDeque::new(),
        };
        if let Some(s) = self.sessions.get_mut(&conn) {
            for stanza in &queued {
                s.send_stanza(stanza, t);
            }
        }
        for stanza in &queued {
            self.settle(stanza, Ok(()), t);
        }
        self.drain(conn, t);
    }

    /// A stream attempt failed: the next candidate if the route was never
    /// ready and has one, else the route fails.
    fn fail_route(
        &mut self,
        key: (String, String),
        condition: StanzaCondition,
        reason: &str,
        t: Time,
    ) {
        let retry = matches!(
            self.routes.get(&key),
            Some(Route { state: RouteState::Streaming { rest, ready: false, .. }, .. }) if !rest.is_empty()
        );
        if retry {
            self.log(
                Level::Debug,
                None,
                format!(
                    "{}: attempt failed ({reason}); trying the next address",
                    key.1
                ),
            );
            return self.next_candidate(key, t);
        }
        self.routes_fail(key, condition, reason, t);
    }

    /// Removes a route, bouncing every stanza that waited for it.
    fn routes_fail(
        &mut self,
        key: (String, String),
        condition: StanzaCondition,
        reason: &str,
        t: Time,
    ) {
        let Some(route) = self.drop_route(&key) else {
            return;
        };
        let (local, remote) = (&key.0, &key.1);
        if !route.queue.is_empty() || route.verifies.is_empty() {
            self.log(
                Level::Warn,
                None,
                format!(
                    "route {local} -> {remote} failed ({reason}): bouncing {} stanza(s) with {condition}",
                    route.queue.len()
                ),
            );
        }
        for stanza in route.queue {
            self.bounce(&stanza, condition, reason, t);
        }
        for v in route.verifies {
            // A route only verifications wanted (which a peer can ask for
            // by the thousand) is logged within the asking stream's budget.
            let line = format!(
                "dialback from {remote} to {local} failed with {condition}: route failed ({reason})"
            );
            self.warn_limited(LogSource::Stream(v.inbound), Some(v.inbound), line, t.now);
            self.verify_failed(v, condition, t);
        }
    }

    fn bounce(&mut self, stanza: &Element, condition: StanzaCondition, reason: &str, t: Time) {
        if self.settle(stanza, Err(condition), t) {
            return;
        }
        if let Some(reply) = stanza::error_reply(stanza, condition, Some(reason)) {
            self.route(reply, t);
        }
    }

    fn request_verify(&mut self, v: PendingVerify, t: Time) {
        let key = (v.receiving.clone(), v.originating.clone());
        let usable = self
            .route_conn(&key)
            .filter(|c| self.sessions.get(c).is_some_and(|s| !s.is_closed()));
        if let Some(conn) = usable {
            return self.send_verify(conn, v, t);
        }
        let Some((route, new)) = self.route_entry(&key) else {
            let why = self.routes_full();
            self.untrack_verify(&v);
            return self.refuse_verify(v, &why, t);
        };
        match route.state {
            RouteState::Streaming { conn, .. } => self.send_verify(conn, v, t),
            RouteState::Resolving { .. } => route.verifies.push(v),
        }
        if new {
            self.advance_resolution(key, t);
        }
    }

    fn route_conn(&self, key: &(String, String)) -> Option<ConnId> {
        match self.routes.get(key)?.state {
            RouteState::Streaming { conn, .. } => Some(conn),
            _ => None,
        }
    }

    fn send_verify(&mut self, conn: ConnId, v: PendingVerify, t: Time) {
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.request_verify(&v.receiving, &v.originating, &v.stream_id, &v.key, t);
        }
        self.verifying.push((conn, v));
        self.drain(conn, t);
    }

    // ---- the local domain ----

    /// A stanza for a local address. Stanzas for users go to the SIP side
    /// when it runs; the domain answers ping and disco#info itself; every
    /// other request gets `service-unavailable` (never silence).
    fn deliver_local(&mut self, stanza: Element, t: Time) {
        let Some(addr) = stanza::addressing(&stanza) else {
            return;
        };
        if !addr.to.is_domain() {
            if let Some(ep) = &mut self.sip {
                ep.from_xmpp(stanza, t);
                return self.pump_sip(t);
            }
        }
        let is_reply = stanza::is_error(&stanza)
            || (Kind::of(&stanza) == Some(Kind::Iq) && stanza.attr("type") == Some("result"));
        if is_reply {
            self.log(
                Level::Debug,
                None,
                format!("reply for {} from {}", addr.to, addr.from),
            );
            self.out.push_back(Output::Stanza(stanza));
            return;
        }
        let to_domain = addr.to.is_domain();
        if to_domain && stanza::is_iq_request(&stanza) && stanza.attr("type") == Some("get") {
            let query = stanza.children().next();
            let reply = match query.map(|q| (q.ns(), q.name())) {
                Some((ns::PING, "ping")) => Some(Element::new(ns::SERVER, "iq")),
                Some((ns::DISCO_INFO, "query"))
                    if query.is_some_and(|q| q.attr("node").is_none()) =>
                {
                    Some(
                        Element::new(ns::SERVER, "iq").with_child(
                            Element::new(ns::DISCO_INFO, "query")
                                .with_child(
                                    Element::new(ns::DISCO_INFO, "identity")
                                        .with_attr("category", "gateway")
                                        .with_attr("type", "simple")
                                        .with_attr("name", "xfed XMPP-SIP gateway"),
                                )
                                .with_child(
                                    Element::new(ns::DISCO_INFO, "feature")
                                        .with_attr("var", ns::DISCO_INFO),
                                )
                                .with_child(
                                    Element::new(ns::DISCO_INFO, "feature")
                                        .with_attr("var", ns::PING),
                                ),
                        ),
                    )
                }
                _ => None,
            };
            if let Some(mut reply) = reply {
                reply.set_attr("type", "result");
                reply.set_attr("from", addr.to.to_string());
                reply.set_attr("to", addr.from.to_string());
                if let Some(id) = stanza.attr("id") {
                    reply.set_attr("id", id.to_owned());
                }
                return self.route(reply, t);
            }
        }
        if Kind::of(&stanza) == Some(Kind::Presence)
            && stanza.attr("type").is_some_and(|ty| ty == "unavailable")
        {
            // Nothing to answer: there is no session it could end.
            return;
        }
        self.log(
            Level::Info,
            None,
            format!(
                "{} -> {}: no local delivery yet, answering service-unavailable",
                addr.from, addr.to
            ),
        );
        self.bounce(
            &stanza,
            StanzaCondition::ServiceUnavailable,
            "this gateway does not deliver to local users yet",
            t,
        );
    }
}

/// Whether `host` is an IP literal (no DNS needed).
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}
