//! DNS for outbound s2s, sans-IO: SRV queries built and answers read here.
//!
//! # Why sans-IO
//!
//! DNS must behave the same on both runtimes, and hickory-resolver no longer
//! supports async-std (hickory-dns PR #2867). So resolution stays in the
//! core like every other protocol: queries are built and answers read here
//! with `hickory-proto`'s message codec (no default features: no std, no
//! tokio, no async code), and the runtime only sends each query to the
//! recursive resolver named in `/etc/resolv.conf` and hands the reply bytes
//! back. One implementation of the RFC 6120 / RFC 2782 / XEP-0368 rules,
//! tested with a simulated clock, whatever the executor.
//!
//! - [`codec`]: [`query`] and [`parse_answer`], with the spoofing checks (id
//!   and question), the CNAME chain and the TTLs; [`tcp_frame`] /
//!   [`tcp_unframe`] for the TCP retry a truncated answer asks for.
//! - [`hosts`]: [`HostsTable`], `/etc/hosts` read for addresses before DNS.
//! - [`resolve`]: [`Resolution`], the procedure from a peer domain to an
//!   ordered list of [`Candidate`] addresses, or the reason there is none.
//! - `rng`: the seeded SplitMix64 generator behind message ids and the SRV
//!   weighted order (crate-visible, for reuse).
//!
//! The runtime's part: for each [`Query`], a fresh UDP socket connected to
//! the resolver (random source port; the id is the other half of the
//! defence against off-path spoofing), or a TCP connection when
//! [`Query::transport`] says so, with a receive buffer of at least
//! [`MAX_UDP_PAYLOAD`] bytes; replies go to
//! [`Resolution::handle_response`] with the query's id.

pub mod codec;
pub mod hosts;
pub mod resolve;
pub(crate) mod rng;

pub use codec::{
    parse_answer, query, reply_id, tcp_frame, tcp_unframe, Answer, DnsError, RecordType, Srv,
    MAX_CNAME_HOPS, MAX_UDP_PAYLOAD,
};
pub use hosts::HostsTable;
pub use resolve::{
    Candidate, Connect, Query, Resolution, ResolveError, ResolveOptions, Transport, DEFAULT_PORT,
    MAX_CANDIDATES, MAX_IN_FLIGHT, MAX_QUERY_TIMEOUT, MAX_RETRIES, MAX_SRV_RECORDS,
};
