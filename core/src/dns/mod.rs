//! DNS for outbound s2s, sans-IO: SRV queries built and answers read here.
