//! TLS for s2s streams: rustls configurations and peer certificate checks.
