//! SIP (RFC 3261): messages, framing, transactions.
//!
//! [`parse_datagram`] reads one UDP datagram and [`StreamFramer`] turns a
//! TCP or TLS byte stream, in any chunking, into messages and CRLF
//! keepalives. Both are strict about syntax and mandatory headers and
//! classify every refusal by the response it deserves ([`ParseError`]).
//! Messages keep their headers as written, in order; typed accessors on
//! [`Headers`] read Via, From, To, Call-ID, CSeq, Contact and the rest.
//! [`Message::to_bytes`] writes them back with a correct Content-Length.
//! [`TransactionTable`] runs non-INVITE transactions (RFC 3261 section 17
//! with RFC 4320) on the caller's clock.
//!
//! Events (RFC 6665, RFC 3903): [`Event`], [`SubscriptionState`] and the
//! accessors [`Headers::event`], [`Headers::subscription_state`],
//! [`Headers::allow_events`], [`Headers::sip_etag`],
//! [`Headers::sip_if_match`] and [`Headers::min_expires`];
//! [`ExpiresPolicy`] turns a requested Expires into the one granted (or
//! 423). [`SubscriptionTable`] ([`subscription`]) holds the notification
//! dialogs of both roles, bounded, with their timers, rate limits and the
//! meaning of every response.

mod error;
mod event;
mod framer;
mod headers;
mod ids;
mod message;
mod method;
mod params;
mod parse;
pub mod subscription;
mod syntax;
mod table;
mod transaction;
mod uri;
mod values;

pub use error::{ErrorKind, ParseError};
pub use event::{Event, ExpiresPolicy, Reason, SubState, SubscriptionState, TooBrief};
pub use framer::{Frame, StreamFramer};
pub use headers::{full_name, same_name, Header, Headers};
pub use ids::{new_branch, new_call_id, new_tag, MAGIC_COOKIE};
pub use message::{reason_phrase, Message, Request, Response};
pub use method::Method;
pub use params::Params;
pub use parse::{is_keepalive, parse_datagram, Limits};
pub use subscription::{DialogId, SubId, SubscriptionConfig, SubscriptionTable};
pub(crate) use syntax::{encode, is_param_char, is_user_char};
pub use syntax::{percent_decode, percent_decode_checked};
pub use table::{Incoming, TransactionTable, TxId};
pub use transaction::{
    ClientKey, ClientTransaction, Output, ServerKey, ServerTransaction, State, Timers,
    TransactionError,
};
pub use uri::{Host, Scheme, Uri, UriError, UriFault};
pub use values::{CSeq, Contact, HeaderError, NameAddr, Via};
