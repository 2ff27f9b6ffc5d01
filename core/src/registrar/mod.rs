//! The built-in SIP registrar: digest authentication (RFC 8760) and bindings.
