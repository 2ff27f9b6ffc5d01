//! Where to connect for an outbound s2s stream: RFC 6120 section 3.2 with
//! RFC 2782 ordering and XEP-0368 direct TLS, as a sans-IO state machine.
//!
//! Stages:
//!
//! 1. A configured `connect` host skips SRV: its AAAA and A records are
//!    looked up (nothing at all when it is an IP literal). A domain that is an
//!    IP literal is used as it is, on port 5269.
//! 2. Otherwise `_xmpp-server._tcp.<domain>` and, when XEP-0368 is on,
//!    `_xmpps-server._tcp.<domain>` are asked in parallel, `<domain>` in its
//!    A-label form.
//!    - Usable records from either: ordered (below), and their targets looked
//!      up. No A/AAAA fallback on the domain ever follows, whatever happens
//!      to the targets (RFC 6120 section 3.2.1, XEP-0368).
//!    - A service whose only record has target `.` is decidedly not offered.
//!      `_xmpps-server` `.` just means no direct TLS; `.` on `_xmpp-server`
//!      with no usable `_xmpps-server` record, or `.` on both, ends in
//!      [`ResolveError::Unavailable`]; `.` on one and nothing on the other
//!      too, since XEP-0368 forbids the A/AAAA fallback once an operator has
//!      spoken through SRV. A `.` record among others is ignored.
//!    - Neither service has records (NXDOMAIN or NODATA): A/AAAA of the
//!      domain itself on port 5269, STARTTLS (RFC 6120 section 3.2.2).
//!    - No records and a lookup that failed (no reply, SERVFAIL, ...):
//!      [`ResolveError::Timeout`], not the fallback, which could bypass an
//!      SRV record the resolver failed to deliver.
//! 3. Every target is resolved, AAAA and A, all in parallel (a name the
//!    local [`HostsTable`] lists takes its addresses from there, with no
//!    query, as the C library does; at most
//!    [`MAX_IN_FLIGHT`] datagrams out at once); the candidates are produced
//!    all at once when every lookup has ended. That costs one round trip
//!    after the SRV answer rather than one per target, and keeps the
//!    candidate list a plain value the caller walks in order.
//!
//! Order of candidates: SRV records by ascending priority; at equal priority,
//! `_xmpps-server` records before `_xmpp-server` ones when
//! [`ResolveOptions::prefer_direct_tls`] is set (the default; see below);
//! within a group, the RFC 2782 weighted random order from the seeded RNG.
//! For each target, its IPv6 addresses then its IPv4 ones, in the order of
//! the answers (the runtime may race them, Happy Eyeballs style; the order
//! here says which to try first). Duplicate (address, port, TLS mode) pairs
//! are dropped. Bounds: [`MAX_SRV_RECORDS`] records, [`MAX_CANDIDATES`]
//! candidates, [`MAX_CNAME_HOPS`](super::MAX_CNAME_HOPS) per answer.
//!
//! XEP-0368 (v1.1.0, "Requirements" rule 1) says both record kinds SHOULD be
//! treated as one set, priorities and weights mixed, and that a client MAY
//! prefer one kind. `prefer_direct_tls` is that MAY: priorities still rule
//! across kinds (a lower-priority `_xmpps-server` record comes after a
//! better `_xmpp-server` one), but at equal priority the direct TLS records
//! come first, weighted among themselves, since direct TLS saves round trips
//! and cannot be stripped. With it off, equal-priority records of both kinds
//! are one weighted pool, exactly as the XEP's SHOULD.
//!
//! Every reply is checked against the id and question of the query it claims
//! to answer; anything else is dropped without ending the lookup, so a
//! spoofed datagram can at worst be ignored. The ids come from the seeded RNG:
//! the runtime seeds each resolution from the OS, and sends each query from
//! its own fresh UDP socket (random source port) connected to the resolver.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::codec::{self, host_string, parse_answer, to_name, Answer, DnsError, RecordType, Srv};
use super::hosts::HostsTable;
use super::rng::Rng;

/// SRV records considered per resolution (both services together), the best
/// priorities kept.
pub const MAX_SRV_RECORDS: usize = 16;
/// Candidates handed out at most.
pub const MAX_CANDIDATES: usize = 32;
/// Queries sent and not yet answered, at most, per resolution.
pub const MAX_IN_FLIGHT: usize = 8;
/// Upper bound on [`ResolveOptions::retries`].
pub const MAX_RETRIES: u32 = 5;
/// Upper bound on [`ResolveOptions::query_timeout`].
pub const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// The s2s port of the A/AAAA fallback (RFC 6120 section 3.2.2).
pub const DEFAULT_PORT: u16 = 5269;

/// A fixed address for a peer (a partner's `connect = "host:port"`),
/// replacing the SRV lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// A host name, or an IP literal (IPv6 with or without brackets).
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Open with TLS at once (XEP-0368) rather than STARTTLS.
    pub direct_tls: bool,
}

impl Connect {
    /// Reads `host`, `host:port`, `192.0.2.1:5269`, `[2001:db8::1]:5269` or
    /// a bare IPv6 address; the port defaults to 5269. `None` for an empty
    /// host or a bad or zero port. STARTTLS unless `direct_tls` is set after.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0);
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            host.parse::<Ipv6Addr>().ok()?;
            match after {
                "" => (host, DEFAULT_PORT),
                _ => (host, port(after.strip_prefix(':')?)?),
            }
        } else if s.parse::<Ipv6Addr>().is_ok() {
            (s, DEFAULT_PORT)
        } else {
            match s.rsplit_once(':') {
                Some((host, p)) => (host, port(p)?),
                None => (s, DEFAULT_PORT),
            }
        };
        if host.is_empty() || host.contains(['[', ']']) {
            return None;
        }
        Some(Self {
            host: host.to_owned(),
            port,
            direct_tls: false,
        })
    }
}

/// How to resolve a peer domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Also ask `_xmpps-server` (XEP-0368 direct TLS).
    pub direct_tls: bool,
    /// At equal SRV priority, direct TLS records first (see the module doc).
    pub prefer_direct_tls: bool,
    /// A fixed host and port instead of SRV.
    pub connect: Option<Connect>,
    /// How long to wait for each reply (capped at [`MAX_QUERY_TIMEOUT`]).
    pub query_timeout: Duration,
    /// Sends after the first, on timeout or an error code such as SERVFAIL
    /// (capped at [`MAX_RETRIES`]); a switch to TCP starts a fresh count.
    pub retries: u32,
    /// Addresses of the local hosts table, used instead of A/AAAA queries
    /// for the names it lists.
    pub hosts: Arc<HostsTable>,
}

impl Default for ResolveOptions {
    /// XEP-0368 on and preferred; 5 s and one retry, glibc's defaults, so a
    /// dead resolver costs 10 s per stage, within a 60 s stream set-up.
    fn default() -> Self {
        Self {
            direct_tls: true,
            prefer_direct_tls: true,
            connect: None,
            query_timeout: Duration::from_secs(5),
            retries: 1,
            hosts: Arc::default(),
        }
    }
}

/// One address to try, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Start TLS at once (XEP-0368; SNI and certificate name are still the
    /// peer domain) rather than STARTTLS.
    pub direct_tls: bool,
    /// The host this address came from (SRV target, `connect` host or the
    /// domain), for logs. Never the certificate reference identity, which is
    /// the peer domain (RFC 6120 section 13.7.2.1).
    pub host: String,
}

/// Why no candidate came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveError {
    /// No SRV records and no address: `remote-server-not-found`.
    NotFound,
    /// SRV says the service is decidedly not offered (target `.`):
    /// `remote-server-not-found`, with no A/AAAA fallback.
    Unavailable,
    /// The resolver did not give a usable answer (no reply, or only errors
    /// such as SERVFAIL) after the retries.
    Timeout,
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotFound => "no XMPP server found for the domain",
            Self::Unavailable => "the domain decidedly offers no XMPP server-to-server service",
            Self::Timeout => "the DNS resolver gave no usable answer",
        })
    }
}

impl std::error::Error for ResolveError {}

/// How a query is to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One datagram to the resolver, port 53; the reply is one datagram.
    Udp,
    /// Over a TCP connection to the resolver, port 53, framed with
    /// [`tcp_frame`](super::tcp_frame); the reply is unframed with
    /// [`tcp_unframe`](super::tcp_unframe). Asked after a truncated reply.
    Tcp,
}

/// A query for the runtime to send. Its reply goes back through
/// [`Resolution::handle_response`] with the same `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Message id, which the reply must carry.
    pub id: u16,
    /// The DNS message, unframed.
    pub message: Vec<u8>,
    /// UDP, or TCP after truncation.
    pub transport: Transport,
    /// How long the resolution waits for the reply; after that a runtime
    /// drops the query (and its socket), as nothing will read the answer.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    SrvStartTls,
    SrvDirectTls,
    Addr,
}

#[derive(Debug)]
enum Found {
    Srv(Vec<Srv>),
    Addrs(Vec<IpAddr>),
    Nothing,
    Failed,
}

#[derive(Debug)]
enum State {
    Queued,
    InFlight { deadline: Instant },
    Done(Found),
}

#[derive(Debug)]
struct Lookup {
    name: String,
    rtype: RecordType,
    kind: Kind,
    state: State,
    tcp: bool,
    sends_left: u32,
    /// Ids of every send so far: a late reply to an earlier send is as good.
    ids: Vec<u16>,
}

#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    direct_tls: bool,
}

#[derive(Debug)]
enum Stage {
    Srv,
    Addrs(Vec<Target>),
    Done,
}

/// The resolution of one peer domain. Drive it like every core machine:
///
/// ```text
/// let mut r = Resolution::new(domain, &options, seed);
/// loop {
///     while let Some(q) = r.poll_query(now) { /* send q (UDP or TCP) */ }
///     if let Some(result) = r.poll_outcome() { break result }
///     /* wait for a reply (then r.handle_response(id, &bytes)) or until
///        r.poll_timeout() (then r.handle_timeout(now)) */
/// }
/// ```
///
/// Drain `poll_query` after every `handle_*` call: an answer can start the
/// next stage, whose queries are then waiting.
#[derive(Debug)]
pub struct Resolution {
    domain: String,
    prefer_direct_tls: bool,
    timeout: Duration,
    sends: u32,
    rng: Rng,
    stage: Stage,
    lookups: Vec<Lookup>,
    outcome: Option<Result<Vec<Candidate>, ResolveError>>,
    ttl: Option<u32>,
    hosts: Arc<HostsTable>,
}

impl Resolution {
    /// Starts resolving `domain` (a JID domainpart, U-label or A-label form).
    /// `seed` drives the query ids and the weighted order; give a fresh
    /// random one each time outside tests. A domain that is not a valid DNS
    /// name ends at once in [`ResolveError::NotFound`].
    pub fn new(domain: &str, options: &ResolveOptions, seed: u64) -> Self {
        let mut r = Self {
            domain: String::new(),
            prefer_direct_tls: options.prefer_direct_tls,
            timeout: options.query_timeout.min(MAX_QUERY_TIMEOUT),
            sends: options.retries.min(MAX_RETRIES) + 1,
            rng: Rng::new(seed),
            stage: Stage::Srv,
            lookups: Vec::new(),
            outcome: None,
            ttl: None,
            hosts: options.hosts.clone(),
        };
        if let Some(c) = &options.connect {
            let target = Target {
                host: c.host.clone(),
                port: c.port,
                direct_tls: c.direct_tls,
            };
            r.start_addrs(vec![target]);
        } else if let Some(ip) = ip_literal(domain) {
            r.finish(Ok(vec![Candidate {
                addr: SocketAddr::new(ip, DEFAULT_PORT),
                direct_tls: false,
                host: domain.to_owned(),
            }]));
        } else {
            match to_name(domain) {
                Ok(name) => {
                    r.domain = host_string(&name);
                    if options.direct_tls {
                        r.push_lookup(
                            format!("_xmpps-server._tcp.{}", r.domain),
                            RecordType::Srv,
                            Kind::SrvDirectTls,
                        );
                    }
                    r.push_lookup(
                        format!("_xmpp-server._tcp.{}", r.domain),
                        RecordType::Srv,
                        Kind::SrvStartTls,
                    );
                }
                Err(_) => r.finish(Err(ResolveError::NotFound)),
            }
        }
        r
    }

    /// The next query to send, if any. `now` starts its timeout.
    pub fn poll_query(&mut self, now: Instant) -> Option<Query> {
        if matches!(self.stage, Stage::Done) {
            return None;
        }
        let in_flight = self
            .lookups
            .iter()
            .filter(|l| matches!(l.state, State::InFlight { .. }))
            .count();
        if in_flight >= MAX_IN_FLIGHT {
            return None;
        }
        let i = self
            .lookups
            .iter()
            .position(|l| matches!(l.state, State::Queued))?;
        let id = self.fresh_id();
        let deadline = now.checked_add(self.timeout).unwrap_or(now);
        let lookup = &mut self.lookups[i];
        match codec::query(id, &lookup.name, lookup.rtype) {
            Ok(message) => {
                lookup.state = State::InFlight { deadline };
                lookup.sends_left = lookup.sends_left.saturating_sub(1);
                lookup.ids.push(id);
                let transport = if lookup.tcp {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                Some(Query {
                    id,
                    message,
                    transport,
                    timeout: self.timeout,
                })
            }
            Err(_) => {
                // Names are checked when lookups are made; be safe anyway.
                lookup.state = State::Done(Found::Nothing);
                self.advance();
                self.poll_query(now)
            }
        }
    }

    /// A reply to the query `id` (over UDP, or unframed from TCP). Replies
    /// that do not match an open query, or whose id or question differ, or
    /// that are not well-formed, are ignored: the query keeps waiting.
    pub fn handle_response(&mut self, id: u16, bytes: &[u8]) {
        let Some(lookup) = self
            .lookups
            .iter_mut()
            .find(|l| !matches!(l.state, State::Done(_)) && l.ids.contains(&id))
        else {
            return;
        };
        let (found, ttl) = match parse_answer(bytes, id, &lookup.name, lookup.rtype) {
            Err(
                DnsError::IdMismatch
                | DnsError::NotAResponse
                | DnsError::QuestionMismatch
                | DnsError::Malformed
                | DnsError::InvalidName,
            ) => return,
            Err(DnsError::ResponseCode(_)) => {
                lookup.state = if lookup.sends_left > 0 {
                    State::Queued
                } else {
                    State::Done(Found::Failed)
                };
                self.advance();
                return;
            }
            Err(DnsError::CnameChainTooLong) => (Found::Nothing, None),
            Ok(Answer::Truncated) => {
                if lookup.tcp {
                    lookup.state = State::Done(Found::Failed);
                } else {
                    lookup.tcp = true;
                    lookup.sends_left = self.sends;
                    lookup.state = State::Queued;
                }
                self.advance();
                return;
            }
            Ok(Answer::NxDomain { ttl } | Answer::NoRecords { ttl }) => (Found::Nothing, Some(ttl)),
            Ok(Answer::Srv { ttl, records }) => (Found::Srv(records), Some(ttl)),
            Ok(Answer::Addrs { ttl, addrs }) => (Found::Addrs(addrs), Some(ttl)),
        };
        lookup.state = State::Done(found);
        if let Some(ttl) = ttl {
            self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
        }
        self.advance();
    }

    /// Moves time on: queries past their deadline are sent again, or fail
    /// once their sends are spent.
    pub fn handle_timeout(&mut self, now: Instant) {
        for lookup in &mut self.lookups {
            if let State::InFlight { deadline } = lookup.state {
                if deadline <= now {
                    lookup.state = if lookup.sends_left > 0 {
                        State::Queued
                    } else {
                        State::Done(Found::Failed)
                    };
                }
            }
        }
        self.advance();
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lookups
            .iter()
            .filter_map(|l| match l.state {
                State::InFlight { deadline } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Whether [`poll_query`](Self::poll_query) has a query to hand out
    /// now: a caller that bounds the queries in flight across resolutions
    /// polls only when it has room, and this says who is waiting for it.
    pub fn wants_query(&self) -> bool {
        let in_flight = self
            .lookups
            .iter()
            .filter(|l| matches!(l.state, State::InFlight { .. }))
            .count();
        !matches!(self.stage, Stage::Done)
            && in_flight < MAX_IN_FLIGHT
            && self
                .lookups
                .iter()
                .any(|l| matches!(l.state, State::Queued))
    }

    /// The result, once: a non-empty ordered candidate list, or why there is
    /// none. Afterwards the resolution is inert.
    pub fn poll_outcome(&mut self) -> Option<Result<Vec<Candidate>, ResolveError>> {
        self.outcome.take()
    }

    /// Whether the resolution has ended (its outcome may already be taken).
    pub fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    /// The lowest TTL, in seconds, of the answers (positive or negative) the
    /// outcome rests on, for a cache; `None` when it rests on none.
    pub fn ttl(&self) -> Option<u32> {
        self.ttl
    }

    fn push_lookup(&mut self, name: String, rtype: RecordType, kind: Kind) {
        self.lookups.push(Lookup {
            name,
            rtype,
            kind,
            state: State::Queued,
            tcp: false,
            sends_left: self.sends,
            ids: Vec::new(),
        });
    }

    /// An id no open query uses. A few draws at most in practice; bounded
    /// anyway, a clash being harmless but for one ignored reply.
    fn fresh_id(&mut self) -> u16 {
        let mut id = self.rng.next_u16();
        for _ in 0..16 {
            let used = self
                .lookups
                .iter()
                .any(|l| !matches!(l.state, State::Done(_)) && l.ids.contains(&id));
            if !used {
                break;
            }
            id = self.rng.next_u16();
        }
        id
    }

    fn finish(&mut self, result: Result<Vec<Candidate>, ResolveError>) {
        self.stage = Stage::Done;
        self.lookups.clear();
        self.outcome = Some(result);
    }

    /// Address lookups (AAAA, then A) for each target, in target order, one
    /// pair per distinct host; an IP literal needs none.
    fn start_addrs(&mut self, targets: Vec<Target>) {
        self.lookups.clear();
        let mut kept = Vec::with_capacity(targets.len());
        for mut t in targets {
            if ip_literal(&t.host).is_some() {
                kept.push(t);
                continue;
            }
            let Ok(name) = to_name(&t.host) else { continue };
            t.host = host_string(&name);
            if self.hosts.lookup(&t.host).is_empty()
                && !self.lookups.iter().any(|l| l.name == t.host)
            {
                self.push_lookup(t.host.clone(), RecordType::Aaaa, Kind::Addr);
                self.push_lookup(t.host.clone(), RecordType::A, Kind::Addr);
            }
            kept.push(t);
        }
        if kept.is_empty() {
            self.finish(Err(ResolveError::NotFound));
        } else {
            self.stage = Stage::Addrs(kept);
            self.advance();
        }
    }

    fn advance(&mut self) {
        if !self
            .lookups
            .iter()
            .all(|l| matches!(l.state, State::Done(_)))
        {
            return;
        }
        match self.stage {
            Stage::Srv => self.srv_done(),
            Stage::Addrs(_) => {
                if let Stage::Addrs(targets) = std::mem::replace(&mut self.stage, Stage::Done) {
                    self.addrs_done(&targets);
                }
            }
            Stage::Done => {}
        }
    }

    fn srv_done(&mut self) {
        let mut records = Vec::new();
        let (mut dot, mut failed) = (false, false);
        for lookup in &self.lookups {
            let direct_tls = lookup.kind == Kind::SrvDirectTls;
            match &lookup.state {
                State::Done(Found::Srv(rrs)) if rrs.iter().all(Srv::is_unavailable) => dot = true,
                State::Done(Found::Srv(rrs)) => records.extend(
                    rrs.iter()
                        .filter(|r| !r.is_unavailable())
                        .map(|r| (r.clone(), direct_tls)),
                ),
                State::Done(Found::Failed) => failed = true,
                _ => {}
            }
        }
        if !records.is_empty() {
            let ordered = order_srv(records, self.prefer_direct_tls, &mut self.rng);
            let targets = ordered
                .into_iter()
                .map(|(r, direct_tls)| Target {
                    host: r.target,
                    port: r.port,
                    direct_tls,
                })
                .collect();
            self.start_addrs(targets);
        } else if dot {
            self.finish(Err(ResolveError::Unavailable));
        } else if failed {
            self.finish(Err(ResolveError::Timeout));
        } else {
            let fallback = Target {
                host: self.domain.clone(),
                port: DEFAULT_PORT,
                direct_tls: false,
            };
            self.start_addrs(vec![fallback]);
        }
    }

    fn addrs_done(&mut self, targets: &[Target]) {
        let mut out: Vec<Candidate> = Vec::new();
        let mut failed = false;
        'targets: for t in targets {
            let addrs: Vec<IpAddr> = match ip_literal(&t.host) {
                Some(ip) => vec![ip],
                None => match self.hosts.lookup(&t.host) {
                    [] => {
                        let mut addrs = Vec::new();
                        for rtype in [RecordType::Aaaa, RecordType::A] {
                            let found = self
                                .lookups
                                .iter()
                                .find(|l| l.rtype == rtype && l.name == t.host)
                                .map(|l| &l.state);
                            match found {
                                Some(State::Done(Found::Addrs(a))) => addrs.extend_from_slice(a),
                                Some(State::Done(Found::Failed)) => failed = true,
                                _ => {}
                            }
                        }
                        addrs
                    }
                    listed => listed.to_vec(),
                },
            };
            for ip in addrs {
                let c = Candidate {
                    addr: SocketAddr::new(ip, t.port),
                    direct_tls: t.direct_tls,
                    host: t.host.clone(),
                };
                if out
                    .iter()
                    .any(|o| o.addr == c.addr && o.direct_tls == c.direct_tls)
                {
                    continue;
                }
                out.push(c);
                if out.len() >= MAX_CANDIDATES {
                    break 'targets;
                }
            }
        }
        self.finish(if !out.is_empty() {
            Ok(out)
        } else if failed {
            Err(ResolveError::Timeout)
        } else {
            Err(ResolveError::NotFound)
        });
    }
}

/// An IPv4 address, or an IPv6 one with or without brackets.
fn ip_literal(s: &str) -> Option<IpAddr> {
    let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
    match bare {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => s.parse().ok(),
    }
}

/// RFC 2782 order, with XEP-0368 direct TLS records first at equal priority
/// when `prefer_direct_tls`: sorted by (priority, kind), cut to
/// [`MAX_SRV_RECORDS`], then each group in weighted random order: weight-0
/// records first, running sums, `r` uniform in `[0, sum]`, the first record
/// whose running sum reaches `r` is taken; repeat.
pub(crate) fn order_srv(
    mut records: Vec<(Srv, bool)>,
    prefer_direct_tls: bool,
    rng: &mut Rng,
) -> Vec<(Srv, bool)> {
    let key = |(r, direct_tls): &(Srv, bool)| (r.priority, prefer_direct_tls && !direct_tls);
    records.sort_by_key(key);
    records.truncate(MAX_SRV_RECORDS);
    let mut out = Vec::with_capacity(records.len());
    for group in records.chunk_by(|a, b| key(a) == key(b)) {
        let mut pool = group.to_vec();
        pool.sort_by_key(|(r, _)| r.weight != 0);
        while !pool.is_empty() {
            let sum: u64 = pool.iter().map(|(r, _)| u64::from(r.weight)).sum();
            let pick = rng.below(sum + 1);
            let mut running = 0;
            let i = pool
                .iter()
                .position(|(r, _)| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(pool.remove(i));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5269,
            target: target.to_owned(),
        }
    }

    #[test]
    fn weighted_order_statistics() {
        // RFC 2782: with weights 10 and 90, r in [0, 100] (101 values); the
        // light record is first when r <= 10, 11 times in 101.
        let mut rng = Rng::new(0x5eed);
        let mut light_first = 0;
        const DRAWS: u32 = 10_000;
        for _ in 0..DRAWS {
            let order = order_srv(
                vec![(srv(0, 10, "light"), false), (srv(0, 90, "heavy"), false)],
                false,
                &mut rng,
            );
            assert_eq!(order.len(), 2);
            if order[0].0.target == "light" {
                light_first += 1;
            }
        }
        let share = f64::from(light_first) / f64::from(DRAWS);
        assert!((0.099..0.119).contains(&share), "light first {share}");
    }

    #[test]
    fn three_weights_share_first_place_proportionally() {
        let mut rng = Rng::new(1);
        let mut first = [0u32; 3];
        for _ in 0..30_000 {
            let order = order_srv(
                vec![
                    (srv(5, 20, "a"), false),
                    (srv(5, 30, "b"), false),
                    (srv(5, 50, "c"), false),
                ],
                false,
                &mut rng,
            );
            let i = ["a", "b", "c"]
                .iter()
                .position(|t| *t == order[0].0.target)
                .unwrap();
            first[i] += 1;
        }
        for (count, expect) in first.iter().zip([0.2, 0.3, 0.5]) {
            let share = f64::from(*count) / 30_000.0;
            assert!((share - expect).abs() < 0.02, "{first:?}");
        }
    }

    #[test]
    fn zero_weights_rarely_first_and_order_kept_when_all_zero() {
        let mut rng = Rng::new(2);
        let mut zero_first = 0;
        for _ in 0..10_000 {
            let order = order_srv(
                vec![(srv(0, 100, "w"), false), (srv(0, 0, "z"), false)],
                false,
                &mut rng,
            );
            if order[0].0.target == "z" {
                zero_first += 1;
            }
        }
        // Picked first only when r == 0: 1 time in 101.
        assert!((50..150).contains(&zero_first), "{zero_first}");

        let order = order_srv(
            vec![
                (srv(0, 0, "a"), false),
                (srv(0, 0, "b"), false),
                (srv(0, 0, "c"), false),
            ],
            false,
            &mut rng,
        );
        let targets: Vec<_> = order.iter().map(|(r, _)| r.target.as_str()).collect();
        assert_eq!(targets, ["a", "b", "c"]);
    }

    #[test]
    fn priorities_then_direct_tls_first() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let order = order_srv(
                vec![
                    (srv(20, 50, "p20-starttls"), false),
                    (srv(10, 1, "p10-starttls"), false),
                    (srv(20, 50, "p20-direct"), true),
                    (srv(10, 99, "p10-direct"), true),
                    (srv(5, 0, "p5-starttls"), false),
                ],
                true,
                &mut rng,
            );
            let targets: Vec<_> = order.iter().map(|(r, _)| r.target.as_str()).collect();
            assert_eq!(
                targets,
                [
                    "p5-starttls",
                    "p10-direct",
                    "p10-starttls",
                    "p20-direct",
                    "p20-starttls"
                ]
            );
        }
    }

    #[test]
    fn mixed_pool_without_preference() {
        let mut rng = Rng::new(4);
        let mut direct_first = 0;
        for _ in 0..10_000 {
            let order = order_srv(
                vec![
                    (srv(0, 90, "starttls"), false),
                    (srv(0, 10, "direct"), true),
                ],
                false,
                &mut rng,
            );
            if order[0].1 {
                direct_first += 1;
            }
        }
        assert!((900..1200).contains(&direct_first), "{direct_first}");
    }

    #[test]
    fn srv_records_bounded_best_priorities_kept() {
        let mut rng = Rng::new(5);
        let records: Vec<_> = (0..40u16)
            .rev()
            .map(|p| (srv(p, 1, &format!("t{p}")), false))
            .collect();
        let order = order_srv(records, true, &mut rng);
        assert_eq!(order.len(), MAX_SRV_RECORDS);
        assert!(order
            .iter()
            .all(|(r, _)| usize::from(r.priority) < MAX_SRV_RECORDS));
    }

    #[test]
    fn connect_parse() {
        let c = |host: &str, port| {
            Some(Connect {
                host: host.into(),
                port,
                direct_tls: false,
            })
        };
        assert_eq!(
            Connect::parse("xmpp.jabber.org:5269"),
            c("xmpp.jabber.org", 5269)
        );
        assert_eq!(
            Connect::parse("xmpp.jabber.org"),
            c("xmpp.jabber.org", 5269)
        );
        assert_eq!(Connect::parse("192.0.2.1:5270"), c("192.0.2.1", 5270));
        assert_eq!(Connect::parse("[2001:db8::1]:5270"), c("2001:db8::1", 5270));
        assert_eq!(Connect::parse("[2001:db8::1]"), c("2001:db8::1", 5269));
        assert_eq!(Connect::parse("2001:db8::1"), c("2001:db8::1", 5269));
        for bad in [
            "",
            ":5269",
            "host:",
            "host:0",
            "host:70000",
            "[::1",
            "[nothost]:1",
            "[::1]5269",
            "a:b:c",
        ] {
            assert_eq!(Connect::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ip_literals() {
        assert!(ip_literal("192.0.2.1").is_some());
        assert!(ip_literal("[::1]").is_some());
        assert!(ip_literal("::1").is_some());
        assert!(ip_literal("[192.0.2.1]").is_none());
        assert!(ip_literal("example.com").is_none());
    }
}
