//! XMPP stream-level vocabulary shared by the reader and the s2s sessions.

mod refuse;
mod stream_error;

pub use refuse::{Refusal, Refuser};
pub use stream_error::{StreamCondition, StreamError};
