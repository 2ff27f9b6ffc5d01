//! XMPP stream-level vocabulary shared by the reader and the s2s sessions.

mod stream_error;

pub use stream_error::StreamCondition;
