//! Memory the core holds per presence subscription (issue 10: at most 300
//! bytes each with 100,000 of them), measured by a counting global
//! allocator around the real `Gateway`: live heap bytes after the
//! subscriptions minus before, divided by their number.
//!
//! The bench plays every peer itself, with no sockets: a SIP user agent
//! at a `sip.trusted` UDP address (no digest) for 1,000 local users, and
//! the server of the federated partner `remote.test` on one inbound and
//! one outbound s2s stream (dialback, no TLS). Two tables are measured
//! apart, each from its own baseline:
//!
//! - **SIP subscriptions**: each user SUBSCRIBEs to 100 XMPP contacts
//!   (100,000 notifier dialogs); each gets 200, a `pending` NOTIFY (the
//!   bench answers 200) and `<presence type='subscribe'/>` to the contact,
//!   who answers `subscribed` and one availability presence, so every
//!   dialog is `active` and remembers a resource. Then the clock moves
//!   past the transactions' timers (Timer J and K): what is left is what a
//!   subscription keeps while it lives.
//! - **XMPP watchers**: 100 `remote.test` users subscribe to each local
//!   user (100,000 approved presence authorizations), each answered
//!   `subscribed` and the user's presence.
//!
//! The SIP figure includes what a subscription makes the user remember
//! (the contact, which lets that contact's own `subscribe` in, kept 90
//! days and bounded per user); requested bytes are counted, not the
//! allocator's headers (the live allocations are counted apart). Both
//! are then ended (the dialogs expire, the watchers unsubscribe) and what
//! is left over the baseline is reported: for the SIP side the
//! remembered contacts, else nothing.
//! Run with `cargo bench -p xfed-core --bench presence_memory`
//! (`XFED_PRESENCE_MEMORY_N` sets the count, 100,000 by default).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xfed_core::dns::HostsTable;
use xfed_core::gateway::Setup;
use xfed_core::sip::{parse_datagram, Limits, Message};
use xfed_core::tls::TrustAnchors;
use xfed_core::{config, ConnId, Gateway, Listener, Output};

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

const USERS: usize = 1_000;
/// Time between two subscriptions: 200 a second, so that transactions
/// end as they would (Timer J holds a SUBSCRIBE's for 32 s) and the
/// transaction table stays within the default `sip.max_transactions`.
const PACE: Duration = Duration::from_millis(5);
const SIP_SOCKET: &str = "192.0.2.1:5060";
const UA: &str = "192.0.2.10:5060";
const REMOTE_S2S: &str = "192.0.2.20:5269";
const REMOTE_PEER: &str = "192.0.2.20:40001";

fn config_text(max: usize) -> String {
    format!(
        r#"
[gateway]
domains = ["xfed.test"]
dialback_secret = "a dialback secret long enough for the bench"
stream_inactivity_timeout = "24h"
keepalive_interval = "24h"

[sip]
mode = "registrar"
trusted = ["192.0.2.10"]
trust_udp = true
max_subscriptions = {max}

[[partner]]
domain = "remote.test"
type = "federated"
tls = "not-supported"
sasl = "not-supported"
dialback = true
connect = "{REMOTE_S2S}"
"#
    )
}

/// The gateway and the bench's peers: the user agent, and remote.test's
/// server on its two streams.
struct Bench {
    gw: Gateway,
    now: Instant,
    /// remote.test connecting to us.
    inbound: ConnId,
    /// Us connecting to remote.test.
    outbound: Option<ConnId>,
    inbound_up: bool,
    outbound_up: bool,
    /// What the user agent got: SIP responses by status, NOTIFYs.
    statuses: [u64; 7],
    notifies: u64,
    /// Stanzas the gateway sent to remote.test (bytes, counted only).
    s2s_bytes: u64,
    events: u64,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("an address")
}

impl Bench {
    fn new(max: usize) -> Bench {
        let config = config::parse(&config_text(max))
            .expect("the bench's configuration")
            .config;
        let setup = Setup {
            identity: None,
            trust: TrustAnchors::empty(),
            dialback_secret: "a dialback secret long enough for the bench".into(),
            hosts: HostsTable::default(),
            sip_udp: vec![addr(SIP_SOCKET)],
            next_hop: None,
            stored: Default::default(),
            links: Vec::new(),
        };
        let now = Instant::now();
        let mut gw = Gateway::new(Arc::new(config), setup, [7; 32], now, 1_800_000_000);
        let inbound = gw.accept(Listener::S2s, addr(REMOTE_PEER), now);
        let mut b = Bench {
            gw,
            now,
            inbound,
            outbound: None,
            inbound_up: false,
            outbound_up: false,
            statuses: [0; 7],
            notifies: 0,
            s2s_bytes: 0,
            events: 0,
        };
        b.drain();
        b.inbound_bytes(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
             from='remote.test' to='xfed.test' version='1.0'>",
        );
        b.inbound_bytes(
            "<db:result from='remote.test' to='xfed.test'>a key remote.test made</db:result>",
        );
        assert!(b.inbound_up && b.outbound_up, "both streams authenticated");
        b
    }

    fn inbound_bytes(&mut self, s: &str) {
        self.gw.handle_bytes(self.inbound, s.as_bytes(), self.now);
        self.drain();
    }

    /// Carries out every output: answers the s2s handshakes and the
    /// NOTIFYs, counts the rest.
    fn drain(&mut self) {
        while let Some(out) = self.gw.poll_output() {
            match out {
                Output::Connect { conn, .. } => {
                    self.outbound = Some(conn);
                    self.gw.handle_connected(conn, self.now);
                }
                Output::Transmit { conn, bytes } if Some(conn) == self.outbound => {
                    self.on_outbound(conn, &bytes);
                }
                Output::Transmit { conn, bytes } if conn == self.inbound => {
                    if !self.inbound_up && contains(&bytes, b"type='valid'") {
                        self.inbound_up = true;
                    }
                    self.s2s_bytes += bytes.len() as u64;
                }
                Output::Datagram { bytes, .. } => self.at_ua(&bytes),
                Output::Event(_) => self.events += 1,
                Output::Close { conn } => panic!("closed {conn:?}"),
                _ => {}
            }
        }
    }

    /// remote.test's side of our outbound stream: its header and
    /// features, dialback answers.
    fn on_outbound(&mut self, conn: ConnId, bytes: &[u8]) {
        self.s2s_bytes += bytes.len() as u64;
        if self.outbound_up && !contains(bytes, b"<db:verify") {
            return;
        }
        let text = String::from_utf8_lossy(bytes).into_owned();
        let mut reply = String::new();
        if text.contains("<stream:stream") {
            reply.push_str(
                "<stream:stream xmlns='jabber:server' \
                 xmlns:stream='http://etherx.jabber.org/streams' \
                 xmlns:db='jabber:server:dialback' from='remote.test' to='xfed.test' \
                 id='remote-stream-1' version='1.0'><stream:features>\
                 <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>\
                 </stream:features>",
            );
        }
        if let Some(id) = attr_after(&text, "<db:verify", "id") {
            reply.push_str(&format!(
                "<db:verify from='remote.test' to='xfed.test' id='{id}' type='valid'/>"
            ));
        }
        if text.contains("<db:result") {
            reply.push_str("<db:result from='remote.test' to='xfed.test' type='valid'/>");
            self.outbound_up = true;
        }
        if !reply.is_empty() {
            self.gw.handle_bytes(conn, reply.as_bytes(), self.now);
        }
    }

    /// The user agent: responses counted, NOTIFYs answered 200.
    fn at_ua(&mut self, bytes: &[u8]) {
        match parse_datagram(bytes, &Limits::default()) {
            Ok(Message::Response(r)) => {
                let class = usize::from(r.status / 100).min(6);
                self.statuses[class] += 1;
            }
            Ok(Message::Request(req)) => {
                self.notifies += 1;
                let ok = req.response(200, "ua").to_bytes();
                self.gw
                    .handle_datagram(addr(SIP_SOCKET), addr(UA), &ok, self.now);
            }
            Err(e) => panic!("unparsable datagram: {e:?}"),
        }
    }

    fn sip(&mut self, bytes: &[u8]) {
        self.gw
            .handle_datagram(addr(SIP_SOCKET), addr(UA), bytes, self.now);
        self.drain();
    }

    /// Moves the clock by `d`, running the timers as they come due.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.gw.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.gw.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The value of `name` in the first element starting with `start`.
fn attr_after(text: &str, start: &str, name: &str) -> Option<String> {
    let rest = &text[text.find(start)?..];
    let tag = &rest[..rest.find('>')?];
    let key = format!("{name}='");
    let from = tag.find(&key)? + key.len();
    Some(tag[from..from + tag[from..].find('\'')?].to_owned())
}

/// The local user `i` and the XMPP contact `k` of user `i`.
fn user(i: usize) -> String {
    format!("user{i}@xfed.test")
}

fn contact(i: usize, k: usize) -> String {
    format!("contact{k}.{i}@remote.test")
}

/// A SUBSCRIBE of user `i` to contact `k`, as a user agent writes one:
/// a 32-character Call-ID, a 10-character tag.
fn subscribe(i: usize, k: usize) -> Vec<u8> {
    let n = i * 1000 + k;
    let (user, contact) = (user(i), contact(i, k));
    format!(
        "SUBSCRIBE sip:{contact} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {UA};branch=z9hG4bK{n:016x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}>;tag={:010x}\r\n\
         To: <sip:{contact}>\r\n\
         Call-ID: {:032x}\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:user{i}@{UA}>\r\n\
         Event: presence\r\n\
         Accept: application/pidf+xml\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n",
        n * 7919,
        (n as u128) * 0x9e37_79b9_7f4a_7c15_f39c,
    )
    .into_bytes()
}

/// A row of the table.
struct Row {
    what: &'static str,
    count: usize,
    bytes: i64,
    allocations: i64,
    left: i64,
}

fn print(rows: &[Row]) {
    println!(
        "{:<48} {:>8} {:>12} {:>10} {:>10} {:>14}",
        "table", "count", "live bytes", "bytes/sub", "allocs/sub", "left after end"
    );
    for r in rows {
        println!(
            "{:<48} {:>8} {:>12} {:>10.1} {:>10.2} {:>14}",
            r.what,
            r.count,
            r.bytes,
            r.bytes as f64 / r.count as f64,
            r.allocations as f64 / r.count as f64,
            r.left
        );
    }
}

fn sip_subscriptions(n: usize) -> Row {
    let per_user = n.div_ceil(USERS);
    let mut b = Bench::new(n);
    let before = common::live_bytes();
    let allocs_before = common::live_allocations();
    let mut made = 0;
    'all: for k in 0..per_user {
        for i in 0..USERS {
            if made == n {
                break 'all;
            }
            b.advance(PACE);
            b.sip(&subscribe(i, k));
            let (u, c) = (user(i), contact(i, k));
            b.inbound_bytes(&format!(
                "<presence from='{c}' to='{u}' type='subscribed'/>\
                 <presence from='{c}/phone' to='{u}'><show>away</show></presence>"
            ));
            made += 1;
        }
    }
    // The transactions end (Timer J 32 s, K 5 s); the NOTIFYs of the
    // availability presences, held by the rate limit, go out.
    b.advance(Duration::from_secs(40));
    let tables = b.gw.sip_tables();
    assert_eq!(tables.subscriptions, n, "{tables:?}");
    assert_eq!(tables.transactions, 0, "{tables:?}");
    let bytes = common::live_bytes() - before;
    let allocations = common::live_allocations() - allocs_before;
    assert_eq!(b.statuses[2] as usize, n, "a 200 each: {:?}", b.statuses);
    assert!(b.notifies as usize >= 3 * n, "pending, active, PIDF each");
    // They expire; the final NOTIFYs are answered.
    b.advance(Duration::from_secs(3600));
    let tables = b.gw.sip_tables();
    assert_eq!(tables.subscriptions, 0, "{tables:?}");
    let left = common::live_bytes() - before;
    println!(
        "SIP subscriptions: {} NOTIFYs answered, {} s2s bytes, {} events; at the end {tables:?}",
        b.notifies, b.s2s_bytes, b.events
    );
    Row {
        what: "SIP SUBSCRIBE dialogs to XMPP contacts (active)",
        count: n,
        bytes,
        allocations,
        left,
    }
}

fn xmpp_watchers(n: usize) -> Row {
    let per_user = n.div_ceil(USERS);
    let mut b = Bench::new(n);
    // The local users exist: each has published once (or, with an
    // account, would exist from the configuration).
    for i in 0..USERS {
        b.sip(&publish(i));
    }
    b.advance(Duration::from_secs(40));
    let before = common::live_bytes();
    let allocs_before = common::live_allocations();
    let mut made = 0;
    'all: for k in 0..per_user {
        for i in 0..USERS {
            if made == n {
                break 'all;
            }
            let (u, w) = (user(i), watcher(i, k));
            b.advance(PACE);
            b.inbound_bytes(&format!("<presence from='{w}' to='{u}' type='subscribe'/>"));
            made += 1;
        }
    }
    b.advance(Duration::from_secs(40));
    let tables = b.gw.sip_tables();
    assert_eq!(tables.watchers, n, "{tables:?}");
    let bytes = common::live_bytes() - before;
    let allocations = common::live_allocations() - allocs_before;
    for k in 0..per_user {
        for i in 0..USERS {
            let (u, w) = (user(i), watcher(i, k));
            b.inbound_bytes(&format!(
                "<presence from='{w}' to='{u}' type='unsubscribe'/>"
            ));
        }
    }
    b.advance(Duration::from_secs(40));
    let tables = b.gw.sip_tables();
    assert_eq!(tables.watchers, 0, "{tables:?}");
    let left = common::live_bytes() - before;
    println!(
        "XMPP watchers: {} s2s bytes, {} events; at the end {tables:?}",
        b.s2s_bytes, b.events
    );
    Row {
        what: "XMPP watchers of local users (approved)",
        count: n,
        bytes,
        allocations,
        left,
    }
}

fn watcher(i: usize, k: usize) -> String {
    format!("watcher{k}.{i}@remote.test")
}

/// A PUBLISH of user `i`: open, away, with a note.
fn publish(i: usize) -> Vec<u8> {
    let user = user(i);
    let body = format!(
        "<?xml version='1.0' encoding='UTF-8'?>\
         <presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:{user}'>\
         <tuple id='t1'><status><basic>open</basic></status></tuple></presence>"
    );
    format!(
        "PUBLISH sip:{user} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {UA};branch=z9hG4bKpub{i}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}>;tag=p{i}\r\n\
         To: <sip:{user}>\r\n\
         Call-ID: pub-{i}\r\n\
         CSeq: 1 PUBLISH\r\n\
         Event: presence\r\n\
         Expires: 7200\r\n\
         Content-Type: application/pidf+xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn main() {
    let n = std::env::var("XFED_PRESENCE_MEMORY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let t = Instant::now();
    let rows = [sip_subscriptions(n), xmpp_watchers(n)];
    print(&rows);
    println!("({:.1} s)", t.elapsed().as_secs_f64());
}
