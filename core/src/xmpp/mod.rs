//! XMPP stream-level vocabulary shared by the reader and the s2s sessions.

pub mod component;
pub mod dialback_key;
pub(crate) mod input;
pub mod ping;
mod pipe;
pub mod session;
pub mod stanza;
mod stream_error;

pub use pipe::{Pipe, TlsFailure};
pub use stream_error::{StreamCondition, StreamError};
