//! XMPP stream-level vocabulary shared by the reader and the s2s sessions.

pub mod dialback_key;
mod refuse;
mod stream_error;

pub use refuse::{Refusal, Refuser};
pub use stream_error::{StreamCondition, StreamError};
