//! SIP (RFC 3261): messages, framing, transactions.
