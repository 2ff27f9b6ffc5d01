//! The SIP endpoint of the gateway role: SIP transports, transactions,
//! the built-in registrar (or the proxy link), access rules, and pager-mode
//! IM translated both ways.
//!
//! The gateway owns one and hands it SIP bytes and the
//! stanzas addressed to local users; the endpoint gives back stanzas for
//! XMPP (through [`Endpoint::poll_stanza`]) and learns from the gateway
//! whether each one reached an authenticated stream
//! ([`Endpoint::delivered`]), which is when a SIP MESSAGE gets its 202.

mod access;
mod arrived;
mod backpressure;
mod conns;
mod contacts;
mod im;
mod instances;
pub mod pager;
mod presence;
mod presence_proxy;
mod reconfigure;
mod requests;
mod subscribe;
mod transport;
mod upstream;
mod watchers;
mod watching;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ServerConfig};

use crate::config::{Config, SipMode, SipTransport, TrustedPeer};
use crate::event::{Event, Refusal};
use crate::ids::{ConnId, ConnIds, Listener};
use crate::jid::Jid;
use crate::log_budget::LogBudget;
use crate::output::Output;
use crate::registrar::bindings::{ContactParam, Policy, RegisterRequest};
use crate::registrar::digest::Digest;
use crate::registrar::{self, AuthRequest, Decision, Registrar};
use crate::rng::Rng;
use crate::sip::{
    self, Contact, ExpiresPolicy, Frame, Incoming, Message, Method, Request, Response, Scheme,
    SubscriptionConfig, SubscriptionTable, TransactionTable, TxId, Uri,
};
use crate::store::Persist;
use crate::tls::{self, PeerCert, TrustAnchors};
use crate::translate::{self, ChatState, ComposingState, ImError};
use crate::xml::Element;
use crate::xmpp::stanza::{self, ErrorType, Kind, StanzaCondition};

use crate::store::Stored;
pub use access::{glob, Access};
pub use pager::{message_request, sip_im_of};
pub use presence::PidfDoc;
pub use transport::{Dest, Expiry, Timeouts};
use transport::{PendingCheck, SipConn};

/// One call from the gateway: the time, and the gateway's allocator for
/// the ids of the connections the call opens (one allocator for XMPP and
/// SIP, so that ids never collide).
#[derive(Debug)]
pub struct Turn<'a> {
    /// Monotonic now.
    pub now: Instant,
    /// Wall-clock now, seconds since the Unix epoch.
    pub unix: u64,
    /// Where connection ids come from.
    pub ids: &'a mut ConnIds,
}

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
    /// Who is told if it fails (and, from another instance, if it
    /// succeeds).
    origin: Origin,
    /// The MESSAGE (Via added when sent, Request-URI set per target).
    request: Request,
    /// Where it goes: every live binding of the user (the request forks),
    /// or the next hop.
    targets: Vec<Target>,
    /// A chat state notification: failures are not reported back.
    chat_state: bool,
    /// When its stanza arrived (the XMPP -> SIP latency's start).
    arrived: Instant,
}

/// Where a MESSAGE toward a SIP user came from, which is told its
/// outcome.
#[derive(Debug)]
enum Origin {
    /// An XMPP stanza: an error reply when no branch succeeds.
    Stanza(arrived::Arrived),
    /// Another instance of the deployment (the user registered here):
    /// its server transaction gets the final answer, success included.
    Instance { tx: TxId, request: Request },
}

/// The MESSAGEs for one SIP user: waiting, in order, and how many are in
/// flight. Several go at once when every target is reliable, one at a
/// time otherwise (RFC 3428 section 7: over UDP a user agent may take
/// them out of order).
#[derive(Debug, Default)]
struct Lane {
    waiting: VecDeque<Outgoing>,
    /// MESSAGEs sent and not settled.
    in_flight: usize,
    /// Those of them with a target over UDP: while one is, no other goes.
    unreliable: usize,
}

/// A MESSAGE in flight to a SIP user, forked to one client transaction
/// per target. It is settled by the first 2xx, or by the best failure
/// once every branch has failed; branches still running then are left to
/// end on their own.
#[derive(Debug)]
struct InFlight {
    destination: String,
    /// Every target was reliable (counted as such in its [`Lane`]).
    reliable: bool,
    origin: Origin,
    chat_state: bool,
    /// When its stanza arrived.
    arrived: Instant,
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
    /// When the MESSAGE arrived (the SIP -> XMPP latency's start).
    arrived: Instant,
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
    /// Presence authorizations, approved and pending (`sip.max_watchers`
    /// per user, and pending per remote domain).
    pub watchers: usize,
    /// Presence publications of local users' devices.
    pub publications: usize,
    /// Subscription dialogs, both roles (`sip.max_subscriptions`).
    pub subscriptions: usize,
    /// Proxy mode: (local user, watcher) pairs xfed subscribes for at the
    /// SIP domain's presence server (`sip.max_subscriptions` in all,
    /// `sip.max_watchers` per remote domain).
    pub upstream: usize,
    /// XMPP messages waiting for SIP users (`sip.max_queued_messages`).
    pub queued_messages: usize,
    /// s2s streams left unread for full queues (backpressure).
    pub paused_streams: usize,
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
    /// Where each transaction's messages go.
    tx_dest: HashMap<TxId, Dest>,
    /// Connections REGISTERs came over, by (aor, contact): requests for the
    /// contact go back over them while they live (RFC 5626's flows, in
    /// spirit: the only way through NATs and firewalls).
    flows: HashMap<(String, String), ConnId>,
    /// XMPP → SIP: per destination, the MESSAGEs waiting their turn and
    /// those in flight.
    queues: HashMap<String, Lane>,
    /// The bounds of those queues, and the streams paused for them.
    backpressure: backpressure::Backpressure,
    /// MESSAGEs in flight, by their own number; `branches` maps each
    /// client transaction to its MESSAGE.
    in_flight: HashMap<u64, InFlight>,
    branches: HashMap<TxId, u64>,
    /// Contact presence forwarded to the instance holding the user's
    /// flow, by client transaction: what it was, for the log if it fails.
    presence_forwards: HashMap<TxId, String>,
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
    /// Registrar mode: what local users' devices published.
    publications: registrar::publication::Publications<PidfDoc>,
    /// Who may see local users' presence.
    watchers: watchers::Watchers,
    /// Log lines per remote domain for subscription decisions.
    presence_log: LogBudget<String>,
    /// Subscription dialogs: local users' SUBSCRIBEs to XMPP contacts
    /// (notifier), and in proxy mode ours for XMPP watchers (subscriber).
    subs: SubscriptionTable,
    /// What a SUBSCRIBE is granted: RFC 3856's policy, at most
    /// `gateway.subscription_refresh_interval` (Lync: a partner refreshes
    /// within it), so no dialog outlives it without a refresh.
    subscribe_expires: ExpiresPolicy,
    /// `gateway.subscription_refresh_interval`: a watched XMPP contact is
    /// probed again when a refresh comes this long after the last probe.
    reprobe_after: Duration,
    /// What those dialogs watch.
    watching: watching::Watching,
    /// Proxy mode: the subscriptions held for XMPP watchers.
    upstream: upstream::Upstream,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("mode", &self.mode)
            .field("conns", &self.conns.len())
            .field("flows", &self.flows.len())
            .field("tables", &self.tables())
            .field("messages_in_flight", &self.in_flight.len())
            .field("awaiting_xmpp", &self.awaiting.len())
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
        t: &mut Turn<'_>,
    ) -> Endpoint {
        let mut registrar = Registrar::new(
            &config.gateway.domains,
            &config.sip,
            Digest::new(digest_key, 300),
            Policy::default(),
        );
        registrar.bindings_mut().set_path(config.sip.path.clone());
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
            tx_dest: HashMap::new(),
            flows: HashMap::new(),
            queues: HashMap::new(),
            backpressure: backpressure::Backpressure::new(config.sip.queues),
            in_flight: HashMap::new(),
            branches: HashMap::new(),
            presence_forwards: HashMap::new(),
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
            publications: registrar::publication::Publications::with_path(
                Default::default(),
                config.sip.path.clone(),
            ),
            watchers: watchers::Watchers::new(
                usize::try_from(config.sip.max_watchers).unwrap_or(usize::MAX),
            ),
            presence_log: LogBudget::new(
                config.gateway.log_lines_per_source,
                LOG_WINDOW,
                LOG_SOURCES,
                t.now,
            ),
            subs: SubscriptionTable::new(SubscriptionConfig::new(
                usize::try_from(config.sip.max_subscriptions).unwrap_or(usize::MAX),
            )),
            watching: watching::Watching::default(),
            reprobe_after: config.gateway.subscription_refresh_interval,
            subscribe_expires: ExpiresPolicy::PRESENCE.capped(
                u32::try_from(config.gateway.subscription_refresh_interval.as_secs())
                    .unwrap_or(u32::MAX),
            ),
            upstream: upstream::Upstream::new(
                usize::try_from(config.sip.max_subscriptions).unwrap_or(usize::MAX),
                usize::try_from(config.sip.max_watchers).unwrap_or(usize::MAX),
            ),
        }
    }

    /// Loads what the store holds (at start).
    pub fn restore(&mut self, stored: Stored, t: &mut Turn<'_>) {
        let Stored {
            bindings,
            contacts,
            publications,
            authorizations,
            dialogs,
        } = stored;
        self.restore_presence(publications, authorizations, t);
        self.restore_dialogs(dialogs, t);
        if self.mode == SipMode::Proxy {
            self.restore_upstream(t);
        }
        let n = bindings.len();
        let expired = self.registrar.restore(bindings, t.unix);
        let forgotten = self.access.restore(contacts, t.unix);
        self.persist(forgotten);
        self.event(Event::BindingsRestored {
            restored: n - expired.len().min(n),
            expired: expired.len(),
        });
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
            watchers: self.watchers.len(),
            publications: self.publications.len(),
            subscriptions: self.subs.len(),
            upstream: self.upstream.len(),
            queued_messages: self.queues.values().map(|l| l.waiting.len()).sum(),
            paused_streams: self.backpressure.paused(),
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
            .chain(self.publication_deadline())
            .chain(self.subs.poll_timeout())
            .chain(self.upstream.next_retry())
            .chain(conns)
            .chain(self.backpressure.poll_timeout())
            .min()
    }

    /// Timers.
    pub fn handle_timeout(&mut self, t: &mut Turn<'_>) {
        self.table.handle_timeout(t.now);
        let expired = self.registrar.bindings_mut().expire(t.unix);
        if !expired.is_empty() {
            self.event(Event::BindingsExpired {
                count: expired.len(),
            });
            self.persist(expired);
            self.refresh_flows(t);
        }
        self.expire_publications(t);
        self.subs.handle_timeout(t.now);
        self.drain_subs(t);
        self.upstream_timeout(t);
        self.expire_conns(t);
        self.backpressure.handle_timeout(t.now, &mut self.out);
        self.drain_table(t);
    }

    /// A warning any peer can cause at will: logged within its source's
    /// budget, with the count of those suppressed before it.
    fn refused_limited(&mut self, peer: SocketAddr, now: Instant, detail: String) {
        let event = Event::SipRefused {
            peer,
            detail,
            warning: true,
        };
        self.event_limited(peer, event, now);
    }

    /// An event any peer can cause at will: reported within its source's
    /// budget, after the count of those suppressed before it.
    fn event_limited(&mut self, peer: SocketAddr, event: Event, now: Instant) {
        self.log_budget.report(peer.ip(), event, now, &mut self.out);
    }

    fn is_local(&self, domain: &str) -> bool {
        crate::config::is_local(&self.domains, domain)
    }

    fn persist(&mut self, changes: Vec<Persist>) {
        if !changes.is_empty() {
            self.out.push_back(Output::Persist(changes));
        }
    }

    fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    fn detail(&mut self, conn: Option<ConnId>, text: String) {
        self.event(Event::detail(conn, text));
    }

    /// A routine refusal of a SIP request (one a user agent may well
    /// send), reported at once.
    fn refused(&mut self, peer: SocketAddr, detail: String) {
        self.event(Event::SipRefused {
            peer,
            detail,
            warning: false,
        });
    }

    fn message_refused(&mut self, from: &Jid, to: &Jid, detail: &str) {
        self.event(Event::MessageRefused {
            from: from.to_string(),
            to: to.to_string(),
            detail: detail.to_owned(),
        });
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

impl Target {
    /// Whether it is reached over TCP or TLS (its own transport, or the
    /// flow it registered over while that lives): no loss, no reordering.
    fn reliable(&self, conns: &HashMap<ConnId, SipConn>) -> bool {
        self.flow.is_some_and(|c| conns.contains_key(&c)) || self.transport != SipTransport::Udp
    }
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
