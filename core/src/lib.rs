//! xfed-core: every protocol state machine of xfed, with no I/O.
//!
//! xfed joins a SIP domain to the XMPP federation: partners' servers reach
//! it over s2s streams, the domain's users over SIP, and it translates
//! between the two. This crate is all of that logic, sans-IO: bytes, time
//! and DNS answers come in through method calls; bytes to send and what
//! happened come out. Nothing here touches a socket, a clock, a thread or a
//! file (the `host` feature aside, which no protocol module uses). The
//! runtimes (`xfed-tokio`, `xfed-async-std`) only move bytes.
//!
//! # The one type: [`Gateway`]
//!
//! [`Gateway::new`] builds it from the loaded [`config::Config`] and a
//! [`gateway::Setup`] (what the host read from files or bound: certificate,
//! trust anchors, dialback secret, hosts table, SIP UDP sockets, what the
//! store kept), a random seed and the time.
//!
//! **Inputs**, each stamped with the time it happened:
//!
//! | call | when |
//! |---|---|
//! | [`accept`](Gateway::accept) | a peer connected to a listener; returns its [`ConnId`] |
//! | [`handle_connected`](Gateway::handle_connected), [`handle_connect_failed`](Gateway::handle_connect_failed) | an [`Output::Connect`] succeeded or failed |
//! | [`handle_bytes`](Gateway::handle_bytes), [`handle_closed`](Gateway::handle_closed) | bytes arrived on a connection, or it ended |
//! | [`handle_datagram`](Gateway::handle_datagram) | a SIP datagram arrived on a UDP socket |
//! | [`handle_dns`](Gateway::handle_dns) | the answer to an [`Output::DnsQuery`] |
//! | [`handle_timeout`](Gateway::handle_timeout) | the time of [`poll_timeout`](Gateway::poll_timeout) came |
//! | [`send`](Gateway::send), [`shutdown`](Gateway::shutdown) | a stanza from the local side; SIGTERM |
//!
//! **Outputs**: [`poll_output`](Gateway::poll_output) gives each [`Output`]
//! in the order things happened: bytes to write ([`Output::Transmit`],
//! [`Output::Datagram`]), connections to open or close, DNS queries,
//! changes for the store ([`Output::Persist`], which comes before any
//! `Transmit` that depends on it), and [`Event`]s: typed reports of what
//! happened (a stream authenticated, a route failed, a message refused with
//! its error...) that the runtime logs and that tests match on.
//! [`poll_timeout`](Gateway::poll_timeout) says when the gateway next needs
//! the time.
//!
//! **The drain contract**: after every input, call `poll_output` until it
//! returns `None` and carry the outputs out in that order; then sleep until
//! `poll_timeout` (or the next input) and call `handle_timeout` with the
//! time you woke.
//!
//! **Time** comes in only as the `now: Instant` of each call; the wall
//! clock (certificate validity, binding expiry) is anchored once, by the
//! `unix_now` given to `Gateway::new` at its `now`. The same inputs at the
//! same instants give the same outputs: the simulation tests rely on it.
//!
//! # A run loop
//!
//! A partner's server connects to the STARTTLS port and opens its stream;
//! the gateway answers with its features, and closes the stream when it
//! has not authenticated within `gateway.stream_establishment_timeout`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use xfed_core::dns::HostsTable;
//! use xfed_core::gateway::Setup;
//! use xfed_core::tls::TrustAnchors;
//! use xfed_core::{config, Gateway, Listener, Output};
//!
//! let config = config::parse(
//!     r#"
//!     [gateway]
//!     domains = ["sip.example"]
//!     dialback_secret = "the same on every instance"
//!
//!     [[partner]]
//!     domain = "xmpp.example"
//!     tls = "not-supported" # this example has no certificate
//!     "#,
//! )
//! .expect("a valid configuration")
//! .config;
//! let setup = Setup {
//!     identity: None, // a real host passes its certificate here
//!     trust: TrustAnchors::empty(),
//!     dialback_secret: "the same on every instance".into(),
//!     hosts: HostsTable::default(),
//!     sip_udp: Vec::new(),
//!     next_hop: None,
//!     stored: Default::default(), // what the store kept
//!     links: Vec::new(),          // role = "gateway": its XMPP server or edges
//! };
//! let start = Instant::now();
//! let mut gw = Gateway::new(Arc::new(config), setup, [7; 32], start, 1_767_225_600);
//!
//! let conn = gw.accept(Listener::S2s, "192.0.2.7:40123".parse().unwrap(), start);
//! gw.handle_bytes(
//!     conn,
//!     b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
//!       xmlns:db='jabber:server:dialback' from='xmpp.example' to='sip.example' version='1.0'>",
//!     start,
//! );
//!
//! // The drain: every output, in order, carried out.
//! let mut wrote = Vec::new();
//! let mut closed = false;
//! let mut drain = |gw: &mut Gateway| {
//!     while let Some(output) = gw.poll_output() {
//!         match output {
//!             Output::Transmit { bytes, .. } => wrote.extend(bytes), // write to the socket
//!             Output::Close { .. } => closed = true,                 // close it once written
//!             Output::Event(event) => println!("{}: {event}", event.kind()), // log it
//!             _ => {} // connect, datagrams, DNS, the store, stanzas for the local side
//!         }
//!     }
//! };
//! drain(&mut gw);
//!
//! // Then sleep until the gateway needs the time, and tell it when we woke.
//! let mut now = start;
//! while let Some(wake) = gw.poll_timeout().filter(|w| *w <= start + Duration::from_secs(61)) {
//!     now = wake;
//!     gw.handle_timeout(now);
//!     drain(&mut gw);
//! }
//! drop(drain);
//! assert!(String::from_utf8_lossy(&wrote).contains("<stream:features"));
//! assert!(closed, "the unauthenticated stream was closed by {now:?}");
//! ```
//!
//! # Where things are
//!
//! [`gateway`] drives everything below it: [`xmpp`] (one s2s session per
//! connection: TLS, SASL EXTERNAL, dialback, bidi), routing by domain and
//! DNS ([`dns`]), and [`endpoint`], the SIP side (transport, registrar,
//! pager-mode IM), which uses [`sip`], [`registrar`] and [`translate`]
//! (the pure XMPP <-> SIP mappings). [`xml`], [`jid`] and [`tls`] are the
//! building blocks; [`config`] the TOML contract; [`store`] the records
//! the host persists; [`admin`] the operator's requests to a running
//! instance; [`ids`], [`output`], [`event`] and [`time`] the vocabulary
//! all of them share.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
mod capacity;
pub mod config;
pub mod dns;
pub mod endpoint;
pub mod event;
pub mod gateway;
pub mod ids;
pub mod jid;
pub mod log_budget;
pub mod logtext;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod registrar;
pub mod rng;
#[cfg(feature = "test-ca")]
pub mod sim;
pub mod sip;
pub mod store;
#[cfg(feature = "test-ca")]
pub mod store_suite;
pub mod time;
pub mod tls;
pub mod translate;
pub mod xml;
pub mod xmpp;

#[cfg(feature = "host")]
pub mod host;

pub use event::{Event, Level};
pub use gateway::Gateway;
pub use ids::{ConnId, Listener, QueryId};
pub use output::Output;
