//! xfed-core: every protocol state machine of xfed, with no I/O.
//!
//! Bytes, time and DNS answers come in through method calls; bytes to send
//! and events come out. Nothing here touches a socket, a clock, a thread or
//! a file (the `host` feature aside, which no protocol module uses).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod dns;
pub mod endpoint;
pub mod gateway;
pub mod jid;
pub mod log_budget;
pub mod logtext;
pub mod registrar;
pub mod rng;
#[cfg(feature = "test-ca")]
pub mod sim;
pub mod sip;
pub mod store;
pub mod tls;
pub mod translate;
pub mod xml;
pub mod xmpp;

#[cfg(feature = "host")]
pub mod host;
