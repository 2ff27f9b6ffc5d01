//! Pure XMPP <-> SIP mappings: addresses (RFC 7247), IM (RFC 7572), errors (RFC 7247 tables), chat states (XEP-0085 <-> RFC 3994).
