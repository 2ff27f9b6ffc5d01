//! The one type the runtimes drive: every connection's session, routing
//! by domain, the local domain's own answers, and limits.
//!
//! Runtimes feed it accepted and connected sockets, bytes, DNS replies and
//! time, and carry out what [`Gateway::poll_output`] returns.

mod build;
mod component;
mod dialback;
mod inputs;
mod internal;
mod local;
mod reload;
pub mod report;
mod routing;
mod sip;
mod status;
mod streams;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admin;
use crate::dns::{
    Candidate, Connect, HostsTable, Query, Resolution, ResolveError, ResolveOptions, Transport,
};
use crate::endpoint::{Endpoint, SipTables, Turn};
use crate::event::{Event, Refusal};
use crate::ids::{ConnId, ConnIds, Listener, QueryId};
use crate::log_budget::LogBudget;
use crate::output::Output;
use crate::rng::Rng;
use crate::time::Time;
use crate::xml::{ns, Element, Stanza};
use crate::xmpp::session::{AuthMethod, Direction, Session, SessionEvent, Settings};
use crate::xmpp::stanza::{self, Kind, StanzaCondition};
use crate::xmpp::{StreamCondition, StreamError};

pub use build::Setup;
pub use component::ComponentSetup;
use dialback::PendingVerify;
pub use reload::Reload;
pub use report::Report;
pub use routing::ROUTE_QUEUE_LIMIT;
use routing::{QueryOut, Route, RouteKey, RouteState};
pub use status::RECENT_FAILURES;

/// The window of `gateway.log_lines_per_source` for warnings about
/// refusals, per stream (or per bound reached), and the streams tracked
/// one by one (the others share one budget).
const LOG_WINDOW: Duration = Duration::from_secs(60);
const LOG_SOURCES: usize = 1024;

/// Whose warnings share a log budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LogSource {
    /// Refusals of what one stream asked for.
    Stream(ConnId),
    /// A bound reached by the local side (stanzas), or by everyone (DNS).
    Bound(&'static str),
}

/// What an input set in motion and is still to be done in its turn: the
/// steps that would otherwise call each other back (a stanza routed to a
/// session whose output bounces another stanza, ...), done in order.
#[derive(Debug)]
enum Work {
    /// Deliver, answer or send a stanza toward its domain; with the
    /// inbound stream it came over, which backpressure may pause.
    Route(Element, Option<ConnId>),
    /// The same for a stanza that came unread over an edge's stream.
    Relay(Stanza, ConnId),
    /// A gateway's stanza that came unread over an edge's link from it.
    RelayOut(Stanza),
    /// Take what a session produced: bytes, events, its end.
    Drain(ConnId),
}

/// The gateway.
pub struct Gateway {
    settings: Settings,
    rng: Rng,
    ids: ConnIds,
    next_query: u64,
    /// Boxed: a map node holds eleven entries, and a session is 2 KB.
    sessions: BTreeMap<ConnId, Box<Session>>,
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
    /// What is left to do in this turn.
    work: VecDeque<Work>,
    /// Inbound streams the SIP side paused (backpressure), with the
    /// stanzas read from them before the runtime stopped reading: held,
    /// in order, until the stream resumes, so that no queue takes more
    /// than its bound. At most what the runtime had read and not handed
    /// in (its input queue).
    held: HashMap<ConnId, VecDeque<Element>>,
    /// Wall clock anchor: Unix seconds at `anchor`.
    anchor: (Instant, u64),
    /// What `xfed status` needs beyond the tables.
    status: status::StatusLog,
    shutting_down: bool,
    /// Most s2s connections at once, in and out (`gateway.connection_limit`;
    /// SIP connections have their own limit, kept by the endpoint).
    connection_limit: usize,
    /// The SIP side, when the gateway role runs.
    sip: Option<Endpoint>,
    /// Ids of stanzas from the SIP side whose fate it waits for.
    tracked: HashSet<String>,
    /// s2s connections whose peer reads slower than we send (the host's
    /// send queue over half its bound): messages from SIP users for them
    /// are answered 503 with Retry-After until the queue drains, rather
    /// than piled up until the connection is dropped with them. At most
    /// the live sessions.
    congested: HashSet<ConnId>,
    /// Local names and addresses, used before DNS.
    hosts: Arc<HostsTable>,
    /// `role = "gateway"`: the links (to the XMPP server xfed is a
    /// component of, or to the edges) that replace s2s.
    links: Vec<component::Link>,
    /// `role = "edge"`: the gateways attached on `[listen] internal`.
    edge: Option<internal::Edge>,
    /// Stanzas read from s2s streams and written to them, ever: the
    /// status page's rates.
    stanzas: StanzaCounts,
}

/// Stanzas over s2s streams since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StanzaCounts {
    /// Read from streams.
    pub received: u64,
    /// Written to streams.
    pub sent: u64,
    /// Of those read, passed on to a gateway unread (an edge's relay).
    pub relayed_unread: u64,
    /// Of those written, a gateway's stanzas passed on unread (an edge's
    /// relay the other way).
    pub relayed_out_unread: u64,
    /// Of those read, messages for SIP users translated from their text,
    /// with no element tree.
    pub translated_unread: u64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What an operator asks first: who is served, what is held.
        f.debug_struct("Gateway")
            .field("domains", &self.settings.local_domains)
            .field("s2s_connections", &self.sessions.len())
            .field("routes", &self.routes.len())
            .field("pending_dialback", &self.pending_dialback())
            .field("dns_queries", &self.queries.len())
            .field("shutting_down", &self.shutting_down)
            .field("sip", &self.sip)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway of the s2s side alone, from settings made elsewhere (the
    /// simulation); [`Gateway::new`] is the way in.
    pub(crate) fn with_settings(
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
            ids: ConnIds::default(),
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
            work: VecDeque::new(),
            held: HashMap::new(),
            anchor: (now, unix_now),
            status: status::StatusLog::default(),
            shutting_down: false,
            connection_limit,
            sip: None,
            tracked: HashSet::new(),
            congested: HashSet::new(),
            hosts: Arc::default(),
            links: Vec::new(),
            edge: None,
            stanzas: StanzaCounts::default(),
        }
    }

    /// The settings every session uses.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One input: the time it happened, what it does, then everything it
    /// set in motion (the work queue), in order.
    fn turn<R>(&mut self, now: Instant, input: impl FnOnce(&mut Gateway, Time) -> R) -> R {
        let t = self.time(now);
        let result = input(self, t);
        self.run(t);
        result
    }

    /// Does the queued work until none is left.
    fn run(&mut self, t: Time) {
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::Route(stanza, source) => self.forward(stanza, source, t),
                Work::Relay(stanza, source) => self.relay(stanza, source, t),
                Work::RelayOut(stanza) => self.relay_out(stanza, t),
                Work::Drain(conn) => self.take_session(conn, t),
            }
        }
    }

    /// Queues a stanza for routing.
    fn route(&mut self, stanza: Element) {
        self.work.push_back(Work::Route(stanza, None));
    }

    /// Queues a stanza that came over stream `conn` for routing.
    fn route_from(&mut self, stanza: Element, conn: ConnId) {
        self.work.push_back(Work::Route(stanza, Some(conn)));
    }

    /// Queues taking what session `conn` produced.
    fn drain(&mut self, conn: ConnId) {
        self.work.push_back(Work::Drain(conn));
    }

    fn time(&self, now: Instant) -> Time {
        let unix = self.anchor.1 + now.saturating_duration_since(self.anchor.0).as_secs();
        self.settings.clock.set(unix);
        Time { now, unix }
    }

    fn event(&mut self, event: Event) {
        self.note(&event);
        self.out.push_back(Output::Event(event));
    }

    fn detail(&mut self, conn: Option<ConnId>, text: String) {
        self.event(Event::detail(conn, text));
    }

    /// An event any peer can cause at will, unless `source` has used up
    /// its budget for now; the count of those suppressed comes first.
    fn event_limited(&mut self, source: LogSource, event: Event, now: Instant) {
        self.log_budget.report(source, event, now, &mut self.out);
    }

    fn new_conn(&mut self) -> ConnId {
        self.ids.allocate()
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

    /// Stanzas read from and written to s2s streams since start.
    pub fn stanza_counts(&self) -> StanzaCounts {
        self.stanzas
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
        self.turn(now, |gw, t| gw.on_datagram(local, peer, bytes, t))
    }

    /// A peer connected to one of our listeners. Each kind has its own
    /// limit: s2s connections `gateway.connection_limit`, SIP ones
    /// `sip.connection_limit` (checked by the endpoint); a newcomer beyond
    /// its kind's limit is closed at once and the other kind is unaffected.
    pub fn accept(&mut self, listener: Listener, peer: SocketAddr, now: Instant) -> ConnId {
        self.turn(now, |gw, t| gw.on_accept(listener, peer, t))
    }

    /// An outbound TCP connection is up.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        self.turn(now, |gw, t| gw.on_connected(conn, t))
    }

    /// An outbound TCP connection could not be made.
    pub fn handle_connect_failed(&mut self, conn: ConnId, reason: &str, now: Instant) {
        self.turn(now, |gw, t| gw.on_connect_failed(conn, reason, t))
    }

    /// Bytes arrived on a connection.
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        self.turn(now, |gw, t| gw.on_bytes(conn, bytes, t))
    }

    /// The peer closed the TCP connection (or it broke).
    pub fn handle_closed(&mut self, conn: ConnId, now: Instant) {
        self.turn(now, |gw, t| gw.on_closed(conn, t))
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.turn(now, |gw, t| gw.on_timeout(t))
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
        let link = self
            .links
            .iter()
            .filter_map(component::Link::poll_timeout)
            .chain(self.edge.as_ref().and_then(internal::Edge::poll_timeout));
        sessions
            .chain(dns)
            .chain(dropped)
            .chain(sip)
            .chain(link)
            .min()
    }

    /// The next thing for the runtime to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// A DNS reply for `query`.
    pub fn handle_dns(&mut self, query: QueryId, bytes: &[u8], now: Instant) {
        self.turn(now, |gw, t| gw.on_dns(query, bytes, t))
    }

    /// Stops accepting, and closes every stream with `</stream:stream>`
    /// (SIGTERM). Connections end as peers close or time out.
    pub fn shutdown(&mut self, now: Instant) {
        self.turn(now, |gw, t| gw.on_shutdown(t))
    }

    /// Whether shutdown has finished: no XMPP stream left (SIP
    /// connections carry no closing handshake and are simply dropped).
    pub fn is_idle(&self) -> bool {
        self.sessions.is_empty()
    }

    /// An operator's request (the admin socket): answered at once; what
    /// it sets in motion (stanzas, NOTIFYs, store changes) comes out as
    /// outputs like any input's.
    pub fn admin(&mut self, request: &admin::Request, now: Instant) -> admin::Reply {
        self.turn(now, |gw, t| {
            if *request == admin::Request::Status {
                return admin::Reply::ok(gw.report(t.now).lines());
            }
            let mut reply = None;
            gw.with_sip(t, |ep, turn| reply = Some(ep.admin(request, turn)));
            reply.unwrap_or_else(|| admin::Reply::error("the SIP side is not running"))
        })
    }

    /// The host's send queue of `conn` went over half its bound
    /// (`congested`), or back under a quarter of it.
    pub fn handle_congestion(&mut self, conn: ConnId, congested: bool, now: Instant) {
        self.turn(now, |gw, t| {
            if !gw.sessions.contains_key(&conn) {
                return;
            }
            if !congested {
                if gw.congested.remove(&conn) {
                    gw.detail(Some(conn), "the peer reads again: messages from SIP accepted".into());
                }
                return;
            }
            let sessions = &gw.sessions;
            gw.congested.retain(|c| sessions.contains_key(c));
            if gw.congested.insert(conn) {
                let event = Event::LimitReached {
                    conn: Some(conn),
                    key: "gateway.max_stanza_size",
                    detail: "the peer reads slower than we send (over half of twice gateway.max_stanza_size waits): messages from SIP users for it get 503 with Retry-After until it catches up".into(),
                };
                gw.event_limited(LogSource::Stream(conn), event, t.now);
            }
        })
    }

    /// What the shared store now holds of a user's rows (another
    /// instance of the deployment changed them).
    pub fn shared(&mut self, rows: crate::store::Shared, now: Instant) {
        self.turn(now, |gw, t| {
            gw.with_sip(t, |ep, turn| ep.shared(rows, turn));
        })
    }

    /// A stanza from the local side (the gateway role, tests) for a remote
    /// XMPP domain. Errors come back as error stanzas through the same
    /// delivery path as everything else addressed to local users.
    pub fn send(&mut self, stanza: Element, now: Instant) {
        self.turn(now, |gw, _| gw.route(stanza))
    }
}

/// Whether `host` is an IP literal (no DNS needed).
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}
