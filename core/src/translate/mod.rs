//! Pure XMPP <-> SIP mappings: addresses (RFC 7247), IM (RFC 7572), errors (RFC 7247 tables), chat states (XEP-0085 <-> RFC 3994), presence (RFC 8048: PIDF and RPID).
//!
//! Every function here is a pure mapping: no I/O, no state, no panics on
//! input. State the mappings need (thread <-> Call-ID maps, the last
//! isComposing sent, the 415 that turns isComposing off) belongs to the
//! caller.

pub mod address;
pub mod chatstate;
pub mod error;
pub mod im;
pub mod presence;

pub use address::{canonical_aor, jid_to_sip, sip_to_jid, AddressError};
pub use chatstate::{
    is_composing_xml, next_is_composing, parse_is_composing, ChatState, ComposingState,
    IsComposing, IsComposingError,
};
pub use error::{sip_to_xmpp, xmpp_to_sip};
pub use im::{sip_message_to_xmpp, xmpp_message_to_sip, xmpp_stanza_to_sip, ImError, SipIm};
pub use presence::{
    parse_pidf, parse_pidf_with_language, pidf_body, pidf_document, pidf_to_xmpp,
    presentity_from_xmpp, presentity_to_xmpp, xmpp_to_pidf, Availability, Disclosure, Note,
    PidfError, PidfLimits, PresenceError, Presentity, Priority, ResourcePresence, Show,
};
