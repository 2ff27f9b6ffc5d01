//! Server Dialback keys (XEP-0185).
