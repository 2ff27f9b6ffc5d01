//! The SIP endpoint of the gateway role: SIP transports, transactions,
//! the built-in registrar (or the proxy link), access rules, and pager-mode
//! IM translated both ways.
//!
//! The [`crate::gateway::Gateway`] owns one and hands it SIP bytes and the
//! stanzas addressed to local users; the endpoint gives back stanzas for
//! XMPP (through [`Endpoint::poll_stanza`]) and learns from the gateway
//! whether each one reached an authenticated stream
//! ([`Endpoint::delivered`]), which is when a SIP MESSAGE gets its 202.

mod access;
pub mod pager;
mod transport;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ServerConfig};

use crate::config::{Config, SipMode, SipTransport, TrustedPeer};
use crate::gateway::{ConnId, Level, LogLine, Output};
use crate::jid::Jid;
use crate::log_budget::{self, LogBudget};
use crate::registrar::bindings::{Binding, ContactParam, Policy, RegisterRequest};
use crate::registrar::digest::Digest;
use crate::registrar::{AuthRequest, Decision, Registrar};
use crate::rng::Rng;
use crate::sip::{
    self, Contact, Frame, Incoming, Message, Method, Request, Response, Scheme, TransactionTable,
    TxId, Uri,
};
use crate::store::{Contacted, Persist};
use crate::tls::{self, PeerCert, TrustAnchors};
use crate::translate::{self, ChatState, ComposingState, ImError};
use crate::xml::Element;
use crate::xmpp::session::Time;
use crate::xmpp::stanza::{self, ErrorType, Kind, StanzaCondition};

pub use access::{glob, Access};
pub use pager::{message_request, sip_im_of};
pub use transport::{Dest, Expiry, Timeouts};
use transport::{PendingCheck, SipConn};

/// Most XMPP messages waiting for one SIP destination while an earlier
/// MESSAGE to it is pending (RFC 3428 allows one at a time).
pub const DESTINATION_QUEUE_LIMIT: usize = 100;

/// Outbound SIP connections get ids from their own range, so that the
/// gateway and the endpoint never hand out the same [`ConnId`].
const OUTBOUND_CONN_BASE: u64 = 1 << 62;

/// What the endpoint needs besides the configuration file.
#[derive(Clone)]
pub struct SipSettings {
    /// The UDP sockets the runtime listens on (requests we send over UDP
    /// leave from one of them).
    pub udp: Vec<SocketAddr>,
    /// TLS for SIP over TLS listeners (asks for a client certificate,
    /// which `sip.trusted` names may be proven by).
    pub tls_server: Option<Arc<ServerConfig>>,
    /// TLS toward a next hop over TLS (presents our certificate).
    pub tls_client: Option<Arc<ClientConfig>>,
    /// What peer certificates are checked against (`[tls] trust`).
    pub trust: Arc<TrustAnchors>,
    /// Proxy mode: where requests for local users go.
    pub next_hop: Option<NextHop>,
    /// `gateway.log_message_bodies` (Lync `EnableLoggingAllMessageBodies`):
    /// every message crossing the gateway is logged with its body.
    pub log_message_bodies: bool,
}

impl std::fmt::Debug for SipSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipSettings")
            .field("udp", &self.udp)
            .field("next_hop", &self.next_hop)
            .finish_non_exhaustive()
    }
}

/// Proxy mode's next hop, resolved at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// Where to send (the URI's `maddr`, else its host, resolved).
    pub addr: SocketAddr,
    /// How.
    pub transport: SipTransport,
    /// The URI's host: over TLS, the name its certificate must prove (and
    /// the SNI sent).
    pub name: String,
}

/// Where a request came from, and whether it is a `sip.trusted` peer.
#[derive(Clone, Copy, Debug)]
struct Source {
    addr: SocketAddr,
    trusted: bool,
}

/// An XMPP message on its way to a SIP user.
#[derive(Debug)]
struct Outgoing {
    /// The stanza it came from, for the error reply.
    stanza: Element,
    /// The MESSAGE (Via added when sent, Request-URI set per target).
    request: Request,
    /// Where it goes: every live binding of the user (the request forks),
    /// or the next hop.
    targets: Vec<Target>,
    /// A chat state notification: failures are not reported back.
    chat_state: bool,
}

/// A MESSAGE in flight to a SIP user, forked to one client transaction
/// per target. It is settled by the first 2xx, or by the best failure
/// once every branch has failed; branches still running then are left to
/// end on their own.
#[derive(Debug)]
struct InFlight {
    destination: String,
    stanza: Element,
    chat_state: bool,
    /// Branches not ended yet.
    running: usize,
    settled: bool,
    /// The failure to report if no branch succeeds (RFC 3261 section
    /// 16.7's choice, simplified: see [`failure_rank`]).
    best: Option<BranchFailure>,
}

/// How one branch of a MESSAGE failed.
#[derive(Debug, Clone)]
struct BranchFailure {
    status: u16,
    retry_after: bool,
    reason: String,
    /// No response: a timeout or a transport error.
    local: bool,
}

impl BranchFailure {
    /// Whether this failure says only that the user is missing or cannot
    /// be reached (no such user, not registered, nobody answered): such
    /// failures are all reported as [`CONCEALED`].
    fn conceals_existence(&self) -> bool {
        self.local || matches!(self.status, 404 | 410 | 480 | 484 | 604)
    }
}

/// Retry-After of that 503, in seconds.
const OVERLOAD_RETRY_AFTER: &str = "5";
/// Conversations whose composing state is tracked at once (only those
/// not idle are kept).
const MAX_COMPOSING: usize = 10_000;

/// The window of `gateway.log_lines_per_source`, and the sources tracked
/// one by one (the others share one budget).
const LOG_WINDOW: Duration = Duration::from_secs(60);
const LOG_SOURCES: usize = 1024;

/// What an XMPP sender learns when a local user does not exist or cannot
/// be reached: the same condition for both (RFC 6121 section 8.5.1 and
/// 8.5.2.2.1), so that no remote domain can list the accounts or see who
/// is online by writing to them. Presence authorization (issue 10's
/// subscriptions) is the only thing that may tell them apart later; until
/// presence exists, nobody holds it. What a device itself answered (486
/// Busy Here, 603 Decline, 415 ...) is still mapped per RFC 7247: a user
/// who answered exists to whoever wrote, as with any reply.
const CONCEALED: StanzaCondition = StanzaCondition::ServiceUnavailable;

/// Whether the stanza made from `im` could be larger than `max`: each
/// byte of its text becomes at most 6 in XML (`&quot;`), a byte of an
/// address at most 32 (XEP-0106 escaping, case mapping, an A-label read
/// as a U-label, then XML escaping), plus at most 1 KiB of markup. Text
/// counts at the address rate too, which keeps the bound simple and
/// still lets every message under 8 KB through unmeasured.
fn stanza_may_exceed(im: &translate::SipIm, max: usize) -> bool {
    let text = [
        im.body.len(),
        im.from.len(),
        im.to.len(),
        im.subject.as_ref().map_or(0, String::len),
        im.call_id.as_ref().map_or(0, String::len),
        im.language.as_ref().map_or(0, String::len),
        im.content_type.len(),
    ];
    let source: usize = text.iter().sum();
    source.saturating_mul(32).saturating_add(1024) > max
}

/// Which failure of a fork is reported (lower first): a 6xx ends the
/// search (RFC 3261 section 16.7), then what a device answered (4xx, then
/// 5xx), and last what no device said (a timeout, a dead transport).
fn failure_rank(f: &BranchFailure) -> u8 {
    match f.status {
        _ if f.local => 3,
        600..=699 => 0,
        400..=499 => 1,
        _ => 2,
    }
}

/// A SIP MESSAGE whose stanza is on its way to XMPP.
#[derive(Debug)]
struct Awaiting {
    tx: TxId,
    request: Request,
    /// The sender (local) and the recipient's bare JID: a contact to
    /// remember once the message reached the recipient's domain.
    contact: (String, String),
}

/// How full the SIP side's bounded tables are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipTables {
    /// SIP transactions, server and client (`sip.max_transactions`
    /// bounds the server ones).
    pub transactions: usize,
    /// Remembered contacts (at most 1,000 per user, 90 days each).
    pub contacts: usize,
    /// Conversations with a composing state (at most 10,000).
    pub chat_states: usize,
}

/// The SIP endpoint.
pub struct Endpoint {
    mode: SipMode,
    domains: Vec<String>,
    trusted: Vec<TrustedPeer>,
    /// `sip.trust_udp`: addresses are trusted over UDP too.
    trust_udp: bool,
    settings: SipSettings,
    /// Parser limits (`sip.max_message_size`).
    limits: sip::Limits,
    /// `gateway.max_stanza_size`: no stanza we make may be larger, since
    /// peers close a stream that carries one (their limit is as ours, by
    /// default what Prosody and ejabberd take).
    max_stanza_size: usize,
    registrar: Registrar,
    access: Access,
    rng: Rng,
    table: TransactionTable,
    conns: HashMap<ConnId, SipConn>,
    /// Most connections at once, in and out (`sip.connection_limit`).
    connection_limit: usize,
    /// When silent, half-finished and idle connections are closed.
    timeouts: Timeouts,
    next_conn: u64,
    /// Where each transaction's messages go.
    tx_dest: HashMap<TxId, Dest>,
    /// Connections REGISTERs came over, by (aor, contact): requests for the
    /// contact go back over them while they live (RFC 5626's flows, in
    /// spirit: the only way through NATs and firewalls).
    flows: HashMap<(String, String), ConnId>,
    /// XMPP → SIP: per destination, the MESSAGEs waiting their turn.
    queues: HashMap<String, VecDeque<Outgoing>>,
    /// MESSAGEs in flight, by their own number; `branches` maps each
    /// client transaction to its MESSAGE.
    in_flight: HashMap<u64, InFlight>,
    branches: HashMap<TxId, u64>,
    next_message: u64,
    /// SIP → XMPP: MESSAGEs waiting for their stanza's fate, by stanza id.
    awaiting: HashMap<String, Awaiting>,
    /// The last isComposing state sent per (XMPP sender, SIP destination).
    composing: HashMap<(String, String), ComposingState>,
    /// SIP destinations that answered an isComposing MESSAGE with 415:
    /// they get no more (RFC 3994 section 6, MUST).
    no_composing: HashSet<String>,
    to_xmpp: VecDeque<(Element, bool)>,
    out: VecDeque<Output>,
    /// Server transactions whose request authenticated (or came from a
    /// trusted peer): only these are answered statefully.
    authenticated: HashSet<TxId>,
    /// Log lines per source address for what any peer can cause at will:
    /// unparsable messages, failed digests, overload refusals.
    log_budget: LogBudget<IpAddr>,
    /// Monotonic and Unix time at start, to turn binding expiries into
    /// deadlines.
    anchor: (Instant, u64),
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("mode", &self.mode)
            .field("conns", &self.conns.len())
            .field("transactions", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The endpoint of `config`; `digest_key` keys the nonces (derive it
    /// from the dialback secret so every instance accepts them).
    pub fn new(
        config: &Config,
        settings: SipSettings,
        digest_key: &[u8],
        rng: Rng,
        t: Time,
    ) -> Endpoint {
        let registrar = Registrar::new(
            &config.gateway.domains,
            &config.sip,
            Digest::new(digest_key, 300),
            Policy::default(),
        );
        Endpoint {
            mode: config.sip.mode,
            domains: config.gateway.domains.clone(),
            trusted: config.sip.trusted.clone(),
            trust_udp: config.sip.trust_udp,
            settings,
            limits: sip::Limits {
                max_message_size: config.sip.max_message_size,
                ..sip::Limits::default()
            },
            max_stanza_size: config.gateway.max_stanza_size,
            registrar,
            access: Access::new(config),
            rng,
            table: TransactionTable::new(
                sip::Timers::default(),
                usize::try_from(config.sip.max_transactions).unwrap_or(usize::MAX),
            ),
            conns: HashMap::new(),
            connection_limit: usize::try_from(config.sip.connection_limit).unwrap_or(usize::MAX),
            timeouts: Timeouts {
                handshake: config.sip.handshake_timeout,
                request: config.sip.request_timeout,
                idle: config.sip.idle_timeout,
            },
            next_conn: OUTBOUND_CONN_BASE,
            tx_dest: HashMap::new(),
            flows: HashMap::new(),
            queues: HashMap::new(),
            in_flight: HashMap::new(),
            branches: HashMap::new(),
            next_message: 0,
            awaiting: HashMap::new(),
            composing: HashMap::new(),
            no_composing: HashSet::new(),
            to_xmpp: VecDeque::new(),
            out: VecDeque::new(),
            authenticated: HashSet::new(),
            log_budget: LogBudget::new(
                config.gateway.log_lines_per_source,
                LOG_WINDOW,
                LOG_SOURCES,
                t.now,
            ),
            anchor: (t.now, t.unix),
        }
    }

    /// Loads what the store holds (at start).
    pub fn restore(&mut self, bindings: Vec<Binding>, contacts: Vec<Contacted>, t: Time) {
        let n = bindings.len();
        let expired = self.registrar.restore(bindings, t.unix);
        let forgotten = self.access.restore(contacts, t.unix);
        self.persist(forgotten);
        self.log(
            Level::Info,
            None,
            format!(
                "registrar: {} binding(s) restored, {} expired",
                n - expired.len().min(n),
                expired.len()
            ),
        );
        self.persist(expired);
    }

    /// Whether `conn` is a SIP connection.
    pub fn owns(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Live SIP connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The sizes of the tables outsiders can make grow.
    pub fn tables(&self) -> SipTables {
        SipTables {
            transactions: self.table.len(),
            contacts: self.access.contacts(),
            chat_states: self.composing.len(),
        }
    }

    /// The next output for the runtime.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next stanza for XMPP; `true` when the gateway must report its
    /// fate through [`Endpoint::delivered`].
    pub fn poll_stanza(&mut self) -> Option<(Element, bool)> {
        self.to_xmpp.pop_front()
    }

    /// The earliest deadline: transactions, binding expiry and the
    /// connections' timeouts.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry =
            self.registrar.bindings().next_expiry().map(|unix| {
                self.anchor.0 + Duration::from_secs(unix.saturating_sub(self.anchor.1))
            });
        let conns = self
            .conns
            .values()
            .filter_map(|c| c.deadline(&self.timeouts))
            .map(|(at, _)| at);
        self.table
            .poll_timeout()
            .into_iter()
            .chain(expiry)
            .chain(conns)
            .min()
    }

    /// Timers.
    pub fn handle_timeout(&mut self, t: Time) {
        self.table.handle_timeout(t.now);
        let expired = self.registrar.bindings_mut().expire(t.unix);
        if !expired.is_empty() {
            self.log(
                Level::Debug,
                None,
                format!("registrar: {} binding(s) expired", expired.len()),
            );
            self.persist(expired);
            self.refresh_flows(t);
        }
        self.expire_conns(t);
        self.drain_table(t);
    }

    /// Closes the connections whose timeout ran out, each with a log line
    /// naming the timeout and the peer.
    fn expire_conns(&mut self, t: Time) {
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
                let line = format!(
                    "SIP {} connection {} {} closed: {} {:?} ({})",
                    if c.is_tls() { "TLS" } else { "TCP" },
                    if c.is_inbound() { "from" } else { "to" },
                    c.peer,
                    why.describe(c.is_inbound()),
                    why.duration(&self.timeouts),
                    why.key(),
                );
                let level = if why == Expiry::Idle {
                    Level::Info
                } else {
                    Level::Warn
                };
                self.log(level, Some(conn), line);
            }
            self.drop_conn(conn, t);
        }
    }

    /// Forgets the flows whose binding has ended, and tells every
    /// connection whether it carries a live binding: a flow stays open
    /// while its binding lives; the others follow the idle timeout.
    fn refresh_flows(&mut self, t: Time) {
        let bindings = self.registrar.bindings();
        self.flows
            .retain(|(aor, contact), _| bindings.is_live(aor, contact, t.unix));
        let flows: HashSet<ConnId> = self.flows.values().copied().collect();
        for (id, c) in &mut self.conns {
            c.set_flow(flows.contains(id), t.now);
        }
    }

    // ---- transports ----

    /// A peer connected to a SIP TCP or TLS listener; beyond
    /// `sip.connection_limit` it is closed at once.
    pub fn accept(&mut self, conn: ConnId, peer: SocketAddr, tls: bool, t: Time) {
        if self.conns.len() >= self.connection_limit {
            if let Some(suppressed) = self.log_budget.allow(peer.ip(), t.now) {
                let note = log_budget::suppressed_note(suppressed);
                let limit = self.connection_limit;
                self.log(
                    Level::Warn,
                    Some(conn),
                    format!("refusing SIP connection from {peer}: sip.connection_limit {limit} reached{note}"),
                );
            }
            return self.close(conn);
        }
        let config = if tls {
            match &self.settings.tls_server {
                Some(c) => Some(c.clone()),
                None => {
                    self.log(
                        Level::Warn,
                        Some(conn),
                        "SIP over TLS without a certificate".into(),
                    );
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
                self.log(
                    Level::Debug,
                    Some(conn),
                    format!(
                        "accepted SIP {} connection from {peer}",
                        if tls { "TLS" } else { "TCP" }
                    ),
                );
            }
            Err(e) => {
                self.log(
                    Level::Warn,
                    Some(conn),
                    format!("SIP connection from {peer}: {e}"),
                );
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    /// An outbound SIP connection is up.
    pub fn handle_connected(&mut self, conn: ConnId, t: Time) {
        if let Some(Err(e)) = self.conns.get_mut(&conn).map(|c| c.connected(t.now)) {
            self.log(Level::Warn, Some(conn), format!("SIP connection: {e}"));
            return self.drop_conn(conn, t);
        }
        self.flush_conn(conn);
        self.drain_table(t);
    }

    /// An outbound SIP connection could not be made.
    pub fn handle_connect_failed(&mut self, conn: ConnId, reason: &str, t: Time) {
        self.log(
            Level::Warn,
            Some(conn),
            format!("SIP connect failed: {reason}"),
        );
        self.handle_closed(conn, t);
    }

    /// A SIP connection closed: its transactions fail.
    pub fn handle_closed(&mut self, conn: ConnId, t: Time) {
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
    pub fn handle_bytes(&mut self, conn: ConnId, bytes: &[u8], t: Time) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Err(e) = c.receive(bytes, t.now) {
            self.log(Level::Warn, Some(conn), format!("SIP connection: {e}"));
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
    fn check_certificate(&mut self, conn: ConnId, t: Time) -> bool {
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
                let level = if proven.is_some() || chain.is_empty() {
                    Level::Debug
                } else {
                    Level::Info
                };
                self.log(level, Some(conn), line);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.judged(proven);
                }
                true
            }
            Some(PendingCheck::Server(name)) => {
                match tls::check_peer(chain, &self.settings.trust, t.unix, name) {
                    PeerCert::Trusted => {
                        let line = format!("SIP TLS to {name} at {peer}: certificate verified");
                        self.log(Level::Debug, Some(conn), line);
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
                        self.log(Level::Warn, Some(conn), line);
                        self.drop_conn(conn, t);
                        false
                    }
                }
            }
        }
    }

    /// A datagram on the UDP socket `local`.
    pub fn handle_datagram(&mut self, local: SocketAddr, peer: SocketAddr, bytes: &[u8], t: Time) {
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
    fn refuse(&mut self, e: &sip::ParseError, dest: Dest, peer: SocketAddr, t: Time) {
        let tag = sip::new_tag(&mut self.rng);
        match e.response(&tag) {
            Some(r) => {
                self.log_limited(
                    peer,
                    t,
                    format!("SIP from {peer}: {e}; answering {} {}", r.status, r.reason),
                );
                self.send_bytes(dest, &r.to_bytes());
            }
            None => self.log_limited(
                peer,
                t,
                format!("SIP from {peer}: {e}; dropped (no response possible)"),
            ),
        }
    }

    /// A warning any peer can cause at will: logged within its source's
    /// budget, with the count of those suppressed before it.
    fn log_limited(&mut self, peer: SocketAddr, t: Time, message: String) {
        if let Some(suppressed) = self.log_budget.allow(peer.ip(), t.now) {
            let note = log_budget::suppressed_note(suppressed);
            self.log(Level::Warn, None, format!("{message}{note}"));
        }
    }

    fn close(&mut self, conn: ConnId) {
        self.out.push_back(Output::Close { conn });
    }

    /// Closes a connection of ours: what it has to send goes out first,
    /// the runtime closes it, and it is forgotten at once (its
    /// transactions fail as if the peer had closed it), so it no longer
    /// counts against `sip.connection_limit`.
    fn drop_conn(&mut self, conn: ConnId, t: Time) {
        self.flush_conn(conn);
        self.close(conn);
        self.handle_closed(conn, t);
    }

    fn flush_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let bytes = c.take_output();
            if !bytes.is_empty() {
                self.out.push_back(Output::Transmit { conn, bytes });
            }
        }
    }

    fn send_bytes(&mut self, dest: Dest, bytes: &[u8]) -> bool {
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
    fn drain_table(&mut self, t: Time) {
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
                sip::Output::Final(response) => self.message_answered(id, Ok(response), t),
                sip::Output::Timeout => self.message_answered(id, Err(408), t),
                // RFC 3261 treats a transport failure as a 503, but the
                // server is fine: the user agent's connection is gone, so
                // the XMPP sender hears recipient-unavailable (as for 480).
                sip::Output::TransportError => self.message_answered(id, Err(480), t),
                sip::Output::Terminated => {
                    self.tx_dest.remove(&id);
                    self.authenticated.remove(&id);
                }
            }
        }
    }

    // ---- SIP requests and responses ----

    fn handle_message(&mut self, m: Message, dest: Dest, peer: SocketAddr, t: Time) {
        match m {
            Message::Response(r) => {
                if self.table.handle_response(r, t.now).is_none() {
                    self.log(
                        Level::Debug,
                        None,
                        format!("SIP from {peer}: stray response dropped"),
                    );
                }
            }
            Message::Request(r) => match self.table.handle_request(r, dest.reliable(), t.now) {
                Ok(Incoming::New(id, req)) => {
                    self.tx_dest.insert(id, dest);
                    let src = Source {
                        addr: peer,
                        trusted: self.is_trusted(peer, dest),
                    };
                    self.handle_request(id, req, src, t);
                }
                Ok(Incoming::Retransmission(_)) => {}
                Ok(Incoming::Overloaded(req)) => {
                    self.log_limited(
                        peer,
                        t,
                        format!(
                            "SIP {} from {peer}: {} transactions in progress; 503",
                            req.method,
                            self.table.servers()
                        ),
                    );
                    let tag = sip::new_tag(&mut self.rng);
                    let mut r = req.response(503, &tag);
                    r.headers.push("Retry-After", OVERLOAD_RETRY_AFTER);
                    self.send_bytes(dest, &r.to_bytes());
                }
                Ok(Incoming::Stateless(req)) => {
                    if req.method != Method::Ack {
                        self.log(
                            Level::Info,
                            None,
                            format!("SIP from {peer}: {} not supported; 501", req.method),
                        );
                        let tag = sip::new_tag(&mut self.rng);
                        let r = req.response(501, &tag);
                        self.send_bytes(dest, &r.to_bytes());
                    }
                }
                Err(e) => self.log(Level::Warn, None, format!("SIP from {peer}: {e}; dropped")),
            },
        }
    }

    /// Whether a request from `peer` over `dest` comes from a
    /// `sip.trusted` peer: its address is listed, or its TLS certificate
    /// proved a listed name.
    fn is_trusted(&self, peer: SocketAddr, dest: Dest) -> bool {
        let proven = match dest {
            Dest::Conn(conn) => self.conns.get(&conn).and_then(SipConn::proven),
            Dest::Udp { .. } => None,
        };
        let spoofable = matches!(dest, Dest::Udp { .. }) && !self.trust_udp;
        self.trusted.iter().any(|p| match p {
            TrustedPeer::Address(ip) => !spoofable && *ip == peer.ip(),
            TrustedPeer::Certificate(name) => proven == Some(name.as_str()),
        })
    }

    fn respond(&mut self, id: TxId, req: &Request, status: u16, reason: Option<&str>, t: Time) {
        let tag = sip::new_tag(&mut self.rng);
        let mut r = req.response(status, &tag);
        if let Some(reason) = reason {
            r = r.with_reason(reason);
        }
        self.respond_with(id, r, t);
    }

    /// Answers server transaction `id`: statefully when its request
    /// authenticated (retransmissions are absorbed, the request is never
    /// acted on twice), statelessly otherwise, so that requests anyone
    /// can send (no credentials, wrong ones, OPTIONS) keep nothing.
    fn respond_with(&mut self, id: TxId, r: Response, t: Time) {
        let sent = if self.authenticated.contains(&id) {
            self.table.respond(id, r, t.now)
        } else {
            self.table.respond_stateless(id, &r)
        };
        if let Err(e) = sent {
            self.log(Level::Debug, None, format!("SIP response not sent: {e}"));
        }
        self.drain_table(t);
    }

    fn handle_request(&mut self, id: TxId, req: Request, src: Source, t: Time) {
        let peer = src.addr;
        if req.headers.max_forwards().ok().flatten() == Some(0) && req.method != Method::Register {
            return self.respond(id, &req, 483, None, t);
        }
        match req.method {
            Method::Register => self.register(id, req, src, t),
            Method::Message => self.sip_message(id, req, src, t),
            Method::Options => {
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(200, &tag);
                r.headers.push("Allow", "REGISTER, MESSAGE, OPTIONS");
                r.headers
                    .push("Accept", translate::im::ACCEPTED_CONTENT_TYPES);
                self.respond_with(id, r, t);
            }
            _ => {
                self.log(
                    Level::Info,
                    None,
                    format!("SIP from {peer}: {} not supported; 405", req.method),
                );
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(405, &tag);
                r.headers.push("Allow", "REGISTER, MESSAGE, OPTIONS");
                self.respond_with(id, r, t);
            }
        }
    }

    /// Digest (or trusted source) for a request acting as `aor`; `None`
    /// when the request was answered.
    fn authenticate(
        &mut self,
        id: TxId,
        req: &Request,
        aor: &str,
        src: Source,
        t: Time,
    ) -> Option<String> {
        let register = req.method == Method::Register;
        let peer = src.addr;
        if self.mode == SipMode::Proxy {
            if src.trusted {
                self.authenticated.insert(id);
                return Some(aor.to_owned());
            }
            self.log_limited(
                peer,
                t,
                format!(
                    "SIP {} from {peer}: not a trusted peer in proxy mode; 403",
                    req.method
                ),
            );
            self.respond(id, req, 403, Some("Not A Trusted Peer"), t);
            return None;
        }
        let header = if register {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        let authorization: Vec<&str> = req.headers.get_all(header).collect();
        let uri = req.uri.to_string();
        let decision = self.registrar.authorize(
            &AuthRequest {
                trusted: src.trusted,
                method: req.method.as_str(),
                request_uri: &uri,
                aor,
                authorization: &authorization,
                source: peer.ip(),
            },
            t.unix,
        );
        match decision {
            Decision::Allow { user, domain, .. } => {
                self.authenticated.insert(id);
                Some(format!("{user}@{domain}"))
            }
            Decision::Challenge { realm, user, stale } => {
                let values = self
                    .registrar
                    .challenge(&realm, &user, stale, t.unix, &mut self.rng);
                let (status, name) = if register {
                    (401, "WWW-Authenticate")
                } else {
                    (407, "Proxy-Authenticate")
                };
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(status, &tag);
                for v in values {
                    r.headers.push(name, v);
                }
                self.respond_with(id, r, t);
                None
            }
            Decision::Backoff { retry_after } => {
                self.log_limited(
                    peer,
                    t,
                    format!(
                        "SIP {} from {peer} as {aor}: too many failed digests; 503 for {retry_after} s",
                        req.method
                    ),
                );
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req
                    .response(503, &tag)
                    .with_reason("Too Many Failed Attempts");
                r.headers.push("Retry-After", retry_after.to_string());
                self.respond_with(id, r, t);
                None
            }
            Decision::Reject { code, reason } => {
                self.log_limited(
                    peer,
                    t,
                    format!("SIP {} from {peer} as {aor}: {code} {reason}", req.method),
                );
                self.respond(id, req, code, Some(reason), t);
                None
            }
        }
    }

    fn register(&mut self, id: TxId, req: Request, src: Source, t: Time) {
        let peer = src.addr;
        if self.mode == SipMode::Proxy {
            return self.respond(id, &req, 405, Some("Registrar Not Enabled"), t);
        }
        let to = match req.headers.to() {
            Ok(to) => to,
            Err(e) => return self.respond(id, &req, 400, Some(&format!("Bad To: {e}")), t),
        };
        let Some(aor) = aor_of(to.uri()) else {
            return self.respond(id, &req, 404, Some("Invalid Address of Record"), t);
        };
        let Some(aor) = self.authenticate(id, &req, &aor, src, t) else {
            return;
        };
        let contacts = match req.headers.contacts() {
            Ok(c) => c,
            Err(e) => return self.respond(id, &req, 400, Some(&format!("Bad Contact: {e}")), t),
        };
        let (call_id, cseq, expires) = match (
            req.headers.call_id(),
            req.headers.cseq(),
            req.headers.expires(),
        ) {
            (Ok(c), Ok(s), Ok(e)) => (c.to_owned(), s.seq, e),
            _ => return self.respond(id, &req, 400, None, t),
        };
        let mut rr = RegisterRequest {
            call_id,
            cseq,
            expires_header: expires,
            ..RegisterRequest::default()
        };
        for c in &contacts {
            match c {
                Contact::Star => rr.star = true,
                Contact::Addr(a) => rr.contacts.push(ContactParam {
                    uri: a.uri().to_string(),
                    expires: a.expires(),
                    q: a.q().map(|q| f32::from(q) / 1000.0),
                    instance: a
                        .params()
                        .get("+sip.instance")
                        .flatten()
                        .map(|v| v.trim_matches('"').to_owned()),
                    reg_id: a
                        .params()
                        .get("reg-id")
                        .flatten()
                        .and_then(|v| v.parse().ok()),
                }),
            }
        }
        match self.registrar.register(&aor, &rr, t.unix) {
            Ok(outcome) => {
                if let Some(Dest::Conn(conn)) = self.tx_dest.get(&id).copied() {
                    for c in &rr.contacts {
                        self.flows.insert((aor.clone(), c.uri.clone()), conn);
                    }
                }
                self.refresh_flows(t);
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(200, &tag);
                for b in &outcome.bindings {
                    r.headers.push(
                        "Contact",
                        format!("<{}>;expires={}", b.contact, b.expires_in(t.unix)),
                    );
                }
                self.log(
                    Level::Info,
                    None,
                    format!(
                        "registrar: {aor} has {} binding(s) (from {peer})",
                        outcome.bindings.len()
                    ),
                );
                self.persist(outcome.changes);
                self.respond_with(id, r, t);
            }
            Err(e) => {
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(e.code, &tag).with_reason(e.reason);
                if let Some(min) = e.min_expires {
                    r.headers.push("Min-Expires", min.to_string());
                }
                self.respond_with(id, r, t);
            }
        }
    }

    /// A MESSAGE from a SIP user toward XMPP.
    fn sip_message(&mut self, id: TxId, req: Request, src: Source, t: Time) {
        let peer = src.addr;
        let from = match req.headers.from() {
            Ok(f) => f,
            Err(e) => return self.respond(id, &req, 400, Some(&format!("Bad From: {e}")), t),
        };
        let Some(from_aor) = aor_of(from.uri()).filter(|a| self.is_local(domain_of(a))) else {
            self.log_limited(
                peer,
                t,
                format!(
                    "SIP MESSAGE from {peer}: From {} is not a local user; 403",
                    from.uri()
                ),
            );
            return self.respond(id, &req, 403, Some("Not A Local User"), t);
        };
        let Some(sender) = self.authenticate(id, &req, &from_aor, src, t) else {
            return;
        };
        let im = match pager::sip_im_of(&req) {
            Ok(im) => im,
            Err((status, reason)) => {
                self.log(
                    Level::Info,
                    None,
                    format!("SIP MESSAGE from {sender}: {status} {reason}"),
                );
                return self.respond(id, &req, status, Some(reason), t);
            }
        };
        if !self.access.xmpp_allowed(&sender) {
            self.log(
                Level::Info,
                None,
                format!("{sender} has no XMPP access; 403"),
            );
            return self.respond(id, &req, 403, Some("No XMPP Access"), t);
        }
        let stanza_id = format!("sip-{}", self.rng.token());
        let stanza = match translate::sip_message_to_xmpp(&im, &stanza_id) {
            Ok(s) => s,
            Err(e) => {
                let status = e.sip_status();
                self.log(
                    Level::Info,
                    None,
                    format!("SIP MESSAGE from {sender}: {e:?}; {status}"),
                );
                let tag = sip::new_tag(&mut self.rng);
                let mut r = req.response(status, &tag);
                if status == 415 {
                    r.headers
                        .push("Accept", translate::im::ACCEPTED_CONTENT_TYPES);
                }
                return self.respond_with(id, r, t);
            }
        };
        let Some(to) = stanza.attr("to").and_then(|j| Jid::parse(j).ok()) else {
            return self.respond(id, &req, 400, None, t);
        };
        // Escaping can make a stanza several times its body (`<` is
        // `&lt;`); one over the limit would make the peer close the stream
        // and lose everything after it. Only a MESSAGE that could be over
        // it is serialized to measure (see `stanza_may_exceed`): the
        // stanza is serialized again when it is sent.
        let size = if stanza_may_exceed(&im, self.max_stanza_size) {
            stanza.to_bytes().len()
        } else {
            0
        };
        if size > self.max_stanza_size {
            self.log(
                Level::Info,
                None,
                format!(
                    "SIP MESSAGE from {sender}: {size} bytes as a stanza, over max_stanza_size {}; 413",
                    self.max_stanza_size
                ),
            );
            return self.respond(id, &req, 413, Some("Too Large For XMPP"), t);
        }
        // The stanza speaks as the user who authenticated, nobody else.
        let speaks_as = stanza.attr("from").and_then(|j| Jid::parse(j).ok());
        if speaks_as
            .as_ref()
            .map(|j| j.bare())
            .map(|b| b.as_str().to_owned())
            != Some(sender.clone())
        {
            self.log(
                Level::Warn,
                None,
                format!("SIP MESSAGE from {peer}: authenticated as {sender} but would speak as {speaks_as:?}; 403"),
            );
            return self.respond(id, &req, 403, Some("From Is Not The Authenticated User"), t);
        }
        if self.is_local(to.domain()) {
            return self.respond(id, &req, 404, Some("Not An XMPP Address"), t);
        }
        self.log(
            Level::Debug,
            None,
            format!("SIP MESSAGE {sender} -> {to} as stanza {stanza_id}"),
        );
        if self.settings.log_message_bodies {
            let body = &im.body;
            self.log(
                Level::Info,
                None,
                format!("message {sender} -> {to}: {body}"),
            );
        }
        self.awaiting.insert(
            stanza_id,
            Awaiting {
                tx: id,
                request: req,
                contact: (sender, to.bare().as_str().to_owned()),
            },
        );
        self.to_xmpp.push_back((stanza, true));
    }

    /// The gateway's word on a stanza made from a SIP MESSAGE: on an
    /// authenticated stream (202), or bounced (the mapped error).
    pub fn delivered(&mut self, stanza_id: &str, result: Result<(), StanzaCondition>, t: Time) {
        let Some(a) = self.awaiting.remove(stanza_id) else {
            return;
        };
        match result {
            Ok(()) => {
                // Remembered before the reply can come back: it is read
                // after this, on the same thread.
                let (local, remote) = &a.contact;
                let changes = self.access.remember(local, remote, t.unix);
                self.persist(changes);
                self.respond(a.tx, &a.request, 202, None, t)
            }
            Err(condition) => {
                // RFC 4320 section 4.1: no 408 to a non-INVITE (the
                // transaction would swallow it and the user agent wait out
                // Timer F); a gateway whose far side timed out says 504.
                let status = match translate::xmpp_to_sip(condition, false, false) {
                    408 => 504,
                    s => s,
                };
                self.log(
                    Level::Info,
                    None,
                    format!("stanza {stanza_id} bounced with {condition}; SIP {status}"),
                );
                self.respond(a.tx, &a.request, status, Some(condition.as_str()), t);
            }
        }
    }

    // ---- XMPP toward SIP ----

    /// A stanza for a local user (not the domain itself).
    pub fn from_xmpp(&mut self, stanza: Element, t: Time) {
        let Some(addr) = stanza::addressing(&stanza) else {
            return;
        };
        let (from, to) = (addr.from, addr.to);
        let local_user = to.bare().as_str().to_owned();
        if stanza::is_error(&stanza) {
            // An error about a message we sent, arriving after its 202.
            let cond =
                stanza::error_condition(&stanza).map_or("undefined-condition", |c| c.as_str());
            self.log(
                Level::Info,
                None,
                format!(
                    "{from} -> {to}: XMPP error {cond} for stanza {} (after its SIP answer)",
                    stanza.attr("id").unwrap_or("")
                ),
            );
            return;
        }
        if Kind::of(&stanza) != Some(Kind::Message) {
            return self.refuse_stanza(
                &stanza,
                StanzaCondition::ServiceUnavailable,
                "only messages reach SIP users",
            );
        }
        if !self.access.xmpp_allowed(&local_user) {
            self.log(
                Level::Info,
                None,
                format!("{from} -> {to}: no XMPP access; service-unavailable"),
            );
            return self.refuse_stanza(&stanza, StanzaCondition::ServiceUnavailable, "");
        }
        let remote = from.bare().as_str().to_owned();
        if !self.access.may_reach(&remote, &local_user, t.unix) {
            self.log(
                Level::Info,
                None,
                format!("{from} -> {to}: public-unverified partner, not contacted first; service-unavailable"),
            );
            return self.refuse_stanza(&stanza, StanzaCondition::ServiceUnavailable, "");
        }
        let (im, chat_state) = match translate::xmpp_message_to_sip(&stanza) {
            Ok(im) => (im, None),
            Err(ImError::ChatStateOnly(state)) => {
                match self.composing_update(&remote, &local_user, state) {
                    Some(c) => (pager::is_composing_im(&from, &to, c), Some(state)),
                    None => return,
                }
            }
            Err(ImError::NoBody) | Err(ImError::ErrorMessage) => {
                self.log(
                    Level::Debug,
                    None,
                    format!("{from} -> {to}: message without body or chat state not gatewayed"),
                );
                return;
            }
            Err(e) => {
                let cond = e.condition().unwrap_or(StanzaCondition::BadRequest);
                return self.refuse_stanza(&stanza, cond, "");
            }
        };
        if chat_state.is_none() {
            if self.settings.log_message_bodies {
                let body = &im.body;
                self.log(Level::Info, None, format!("message {from} -> {to}: {body}"));
            }
            // A message ends composing: idle is what no entry means.
            self.composing.remove(&(remote, local_user.clone()));
        }
        let targets = self.targets_for(&local_user, t);
        let Some(first) = targets.first() else {
            let why = if self.registrar_has_account(&local_user) {
                "no SIP contact"
            } else {
                "no such account"
            };
            self.log(
                Level::Info,
                None,
                format!("{from} -> {to}: {why}; {CONCEALED}"),
            );
            if chat_state.is_none() {
                self.refuse_stanza(&stanza, CONCEALED, "");
            }
            return;
        };
        let destination_key = local_user.clone();
        if chat_state.is_some() && self.no_composing.contains(&destination_key) {
            return;
        }
        let call_id = im
            .call_id
            .clone()
            .unwrap_or_else(|| sip::new_call_id(&mut self.rng));
        let tag = sip::new_tag(&mut self.rng);
        let request = match pager::message_request(&im, first, &call_id, &tag) {
            Ok(r) => r,
            Err(e) => {
                self.log(Level::Info, None, format!("{from} -> {to}: {e}"));
                return self.refuse_stanza(&stanza, StanzaCondition::JidMalformed, "");
            }
        };
        if request.to_bytes().len() > translate::im::PAGER_MODE_LIMIT && chat_state.is_none() {
            return self.refuse_stanza(
                &stanza,
                StanzaCondition::PolicyViolation,
                "too large for a SIP MESSAGE (RFC 3428: 1300 bytes)",
            );
        }
        let outgoing = Outgoing {
            stanza,
            request,
            targets,
            chat_state: chat_state.is_some(),
        };
        let busy = self
            .in_flight
            .values()
            .any(|f| !f.settled && f.destination == destination_key);
        let queue = self.queues.entry(destination_key.clone()).or_default();
        if queue.len() >= DESTINATION_QUEUE_LIMIT {
            let o = outgoing;
            return self.refuse_stanza(
                &o.stanza,
                StanzaCondition::ResourceConstraint,
                "too many messages waiting for this SIP user",
            );
        }
        queue.push_back(outgoing);
        if !busy {
            self.send_next(&destination_key, t);
        }
    }

    fn composing_update(
        &mut self,
        remote: &str,
        local: &str,
        state: ChatState,
    ) -> Option<ComposingState> {
        let key = (remote.to_owned(), local.to_owned());
        let last = self
            .composing
            .get(&key)
            .copied()
            .unwrap_or(ComposingState::Idle);
        let next = translate::next_is_composing(last, state)?;
        if next == ComposingState::Idle {
            self.composing.remove(&key);
        } else if self.composing.len() < MAX_COMPOSING || self.composing.contains_key(&key) {
            self.composing.insert(key, next);
        }
        // Beyond the bound a pair is not tracked: its states are sent
        // unfiltered, which costs a MESSAGE, not memory.
        Some(next)
    }

    /// Whether `aor` is an account of the built-in registrar (an
    /// unregistered account is unavailable, an unknown one not found).
    fn registrar_has_account(&self, aor: &str) -> bool {
        self.mode == SipMode::Registrar && self.registrar.has_account(aor)
    }

    /// Where a MESSAGE for `aor` goes: the next hop, or every live
    /// binding (by `q`, then contact) that can be reached. Empty when none.
    fn targets_for(&mut self, aor: &str, t: Time) -> Vec<Target> {
        match self.mode {
            SipMode::Proxy => {
                let Some(hop) = self.settings.next_hop.as_ref() else {
                    return Vec::new();
                };
                let Ok(uri) = Uri::parse(&format!("sip:{aor}")) else {
                    return Vec::new();
                };
                vec![Target {
                    uri,
                    to: format!("sip:{aor}"),
                    addr: hop.addr,
                    transport: hop.transport,
                    tls_name: Some(hop.name.clone()),
                    flow: None,
                }]
            }
            SipMode::Registrar => {
                let bindings = self.registrar.bindings().lookup(aor, t.unix);
                bindings
                    .iter()
                    .filter_map(|b| self.binding_target(aor, &b.contact))
                    .collect()
            }
        }
    }

    /// How to reach one contact of `aor`: its flow, else its own address
    /// (an IP: no DNS for SIP).
    fn binding_target(&mut self, aor: &str, contact: &str) -> Option<Target> {
        let uri = Uri::parse(contact).ok()?;
        let flow = self
            .flows
            .get(&(aor.to_owned(), contact.to_owned()))
            .copied()
            .filter(|c| self.conns.contains_key(c));
        let transport = match uri.transport() {
            Some(tr) if tr.eq_ignore_ascii_case("tcp") => SipTransport::Tcp,
            Some(tr) if tr.eq_ignore_ascii_case("tls") => SipTransport::Tls,
            _ if uri.scheme() == Scheme::Sips => SipTransport::Tls,
            _ => SipTransport::Udp,
        };
        let default_port = if transport == SipTransport::Tls {
            5061
        } else {
            5060
        };
        let ip = match uri.host()? {
            sip::Host::V4(ip) => IpAddr::V4(*ip),
            sip::Host::V6(ip) => IpAddr::V6(*ip),
            sip::Host::Domain(_) => {
                if flow.is_none() {
                    self.log(Level::Warn, None, format!("{aor}: contact {contact} names a host; only IP contacts (or the registering connection) are reachable"));
                    return None;
                }
                IpAddr::from([0, 0, 0, 0])
            }
        };
        let addr = SocketAddr::new(ip, uri.port().unwrap_or(default_port));
        Some(Target {
            uri,
            to: format!("sip:{aor}"),
            addr,
            transport,
            tls_name: None,
            flow,
        })
    }

    /// Sends the first queued MESSAGE for `destination`, forked to each of
    /// its targets; one that cannot start at all is refused and the next
    /// is tried.
    fn send_next(&mut self, destination: &str, t: Time) {
        loop {
            let Some(outgoing) = self
                .queues
                .get_mut(destination)
                .and_then(VecDeque::pop_front)
            else {
                self.queues.remove(destination);
                return;
            };
            let number = self.next_message;
            self.next_message += 1;
            let Outgoing {
                stanza,
                request,
                targets,
                chat_state,
            } = outgoing;
            let mut started = 0;
            // Every branch but the last gets a copy; the last takes the
            // request itself (the usual single-device case copies nothing).
            if let Some((last, others)) = targets.split_last() {
                for target in others {
                    started += usize::from(self.start_branch(request.clone(), target, number, t));
                }
                started += usize::from(self.start_branch(request, last, number, t));
            }
            if started == 0 {
                if !chat_state {
                    self.refuse_stanza(
                        &stanza,
                        StanzaCondition::RecipientUnavailable,
                        "the SIP user cannot be reached",
                    );
                }
                continue;
            }
            if started > 1 {
                self.log(
                    Level::Debug,
                    None,
                    format!("MESSAGE to {destination} forked to {started} contacts"),
                );
            }
            self.in_flight.insert(
                number,
                InFlight {
                    destination: destination.to_owned(),
                    stanza,
                    chat_state,
                    running: started,
                    settled: false,
                    best: None,
                },
            );
            self.drain_table(t);
            return;
        }
    }

    /// Starts one branch of MESSAGE `number`: `request` with `target`'s
    /// Request-URI and our Via, on `target`'s transport. `false` when it
    /// could not start.
    fn start_branch(
        &mut self,
        mut request: Request,
        target: &Target,
        number: u64,
        t: Time,
    ) -> bool {
        let Some((dest, via)) = self.dest_for(target, t.now) else {
            return false;
        };
        request.uri = target.uri.clone();
        let branch = sip::new_branch(&mut self.rng);
        request
            .headers
            .push_front("Via", format!("SIP/2.0/{via};branch={branch};rport"));
        match self.table.start_client(&request, dest.reliable(), t.now) {
            Ok(id) => {
                self.tx_dest.insert(id, dest);
                self.branches.insert(id, number);
                true
            }
            Err(e) => {
                self.log(Level::Warn, None, format!("SIP MESSAGE not sent: {e}"));
                false
            }
        }
    }

    /// The transport for a target, and the Via `transport sent-by` to use:
    /// the registering connection, a UDP socket of the right family, or a
    /// new TCP connection.
    fn dest_for(&mut self, target: &Target, now: Instant) -> Option<(Dest, String)> {
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
                let conn = self.connection_to(target.addr, None, now);
                Some((Dest::Conn(conn), format!("TCP {}", self.sent_by())))
            }
            SipTransport::Tls => {
                let (Some(name), Some(config)) =
                    (target.tls_name.clone(), self.settings.tls_client.clone())
                else {
                    self.log(
                        Level::Warn,
                        None,
                        format!(
                            "{}: SIP over TLS toward a user is only used on connections the user opened",
                            target.uri
                        ),
                    );
                    return None;
                };
                let conn = self.connection_to(target.addr, Some((config, name)), now);
                Some((Dest::Conn(conn), format!("TLS {}", self.sent_by())))
            }
        }
    }

    /// A connection to `addr`: over plain TCP, any open one (ours or the
    /// peer's); over TLS (`tls`: the client configuration and the name
    /// the server must prove), one we opened to that name. Else a new one,
    /// whose connection the runtime is asked for.
    fn connection_to(
        &mut self,
        addr: SocketAddr,
        tls: Option<(Arc<ClientConfig>, String)>,
        now: Instant,
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
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns
            .insert(conn, SipConn::outbound(addr, tls, self.limits, now));
        self.out.push_back(Output::Connect { conn, addr });
        conn
    }

    /// The host:port in the Via of requests on connections.
    fn sent_by(&self) -> String {
        match self.settings.udp.first() {
            Some(a) if !a.ip().is_unspecified() => a.to_string(),
            _ => self.domains.first().cloned().unwrap_or_default(),
        }
    }

    /// A client transaction ended: the response (or the failure) of one
    /// branch of a MESSAGE toward SIP. The first 2xx settles it; when
    /// every branch failed, the best failure goes back to the XMPP sender.
    /// Once settled, the next MESSAGE to the user goes out.
    fn message_answered(&mut self, id: TxId, result: Result<Response, u16>, t: Time) {
        let Some(number) = self.branches.remove(&id) else {
            return;
        };
        let Some(f) = self.in_flight.get_mut(&number) else {
            return;
        };
        f.running -= 1;
        if f.settled {
            // A late branch of a message already settled: ignored.
            if f.running == 0 {
                self.in_flight.remove(&number);
            }
            return;
        }
        let destination = f.destination.clone();
        let failure = match result {
            Ok(r) if (200..300).contains(&r.status) => {
                f.settled = true;
                if f.running == 0 {
                    self.in_flight.remove(&number);
                }
                self.log(
                    Level::Debug,
                    None,
                    format!("MESSAGE to {destination} answered {}", r.status),
                );
                return self.send_next(&destination, t);
            }
            Ok(r) => BranchFailure {
                status: r.status,
                retry_after: r.headers.contains("Retry-After"),
                reason: r.reason,
                local: false,
            },
            Err(code) => BranchFailure {
                status: code,
                retry_after: false,
                reason: sip::reason_phrase(code).to_owned(),
                local: true,
            },
        };
        let refused_composing = f.chat_state && failure.status == 415;
        if f.best
            .as_ref()
            .is_none_or(|b| failure_rank(&failure) < failure_rank(b))
        {
            f.best = Some(failure);
        }
        let running = f.running;
        if refused_composing {
            self.no_composing.insert(destination.clone());
            self.log(
                Level::Debug,
                None,
                format!("{destination} refused isComposing (415): no more sent to it"),
            );
        }
        if running > 0 {
            return;
        }
        let Some(f) = self.in_flight.remove(&number) else {
            return;
        };
        if let (false, Some(best)) = (f.chat_state, f.best) {
            let (condition, error_type, text) = if best.conceals_existence() {
                (CONCEALED, ErrorType::Cancel, None)
            } else {
                let (c, ty) = translate::sip_to_xmpp(best.status, best.retry_after);
                (c, ty, Some(best.reason.as_str()))
            };
            self.log(
                Level::Info,
                None,
                format!(
                    "MESSAGE to {destination} answered {} {}: {condition} to the XMPP sender",
                    best.status, best.reason
                ),
            );
            if let Some(mut reply) = stanza::error_reply(&f.stanza, condition, text) {
                if let Some(e) = reply.child_mut(crate::xml::ns::SERVER, "error") {
                    e.set_attr("type", error_type.as_str());
                }
                self.to_xmpp.push_back((reply, false));
            }
        }
        self.send_next(&destination, t);
    }

    /// Answers an XMPP stanza with an error.
    fn refuse_stanza(&mut self, stanza: &Element, condition: StanzaCondition, text: &str) {
        let text = (!text.is_empty()).then_some(text);
        if let Some(reply) = stanza::error_reply(stanza, condition, text) {
            self.to_xmpp.push_back((reply, false));
        }
    }

    fn is_local(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    fn persist(&mut self, changes: Vec<Persist>) {
        if !changes.is_empty() {
            self.out.push_back(Output::Persist(changes));
        }
    }

    fn log(&mut self, level: Level, conn: Option<ConnId>, message: String) {
        self.out.push_back(Output::Log(LogLine {
            level,
            conn,
            message,
        }));
    }
}

/// Where a MESSAGE toward a SIP user goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// The Request-URI.
    pub uri: Uri,
    /// The To URI.
    pub to: String,
    /// The address to send to (unused with a flow).
    pub addr: SocketAddr,
    /// The transport to the address.
    pub transport: SipTransport,
    /// Over TLS, the name the server's certificate must prove (only the
    /// next hop has one: user agents are reached over TLS only through
    /// their own flows).
    pub tls_name: Option<String>,
    /// The connection the user registered over, if still open.
    pub flow: Option<ConnId>,
}

/// `user@domain` of a SIP URI, domain lowercased.
/// The canonical address of record of a URI ([`translate::canonical_aor`]):
/// the one form in which local users are compared; `None` when no XMPP
/// address can name the user.
fn aor_of(uri: &Uri) -> Option<String> {
    let user = uri.user().filter(|u| !u.is_empty())?;
    let host = match uri.host()? {
        sip::Host::Domain(d) => d,
        _ => return None,
    };
    translate::canonical_aor(user, host).ok()
}

fn domain_of(aor: &str) -> &str {
    aor.rsplit_once('@').map_or(aor, |(_, d)| d)
}
