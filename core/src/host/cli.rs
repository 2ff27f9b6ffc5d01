//! The command line, identical for `xfed` and `xfed-async-std`.

use std::net::SocketAddr;

use clap::Parser;

/// xfed: XMPP federation gateway for SIP domains.
///
/// Today it serves the XMPP server-to-server port on loopback and answers
/// every stream with the stream error RFC 6120 prescribes: federation and
/// SIP translation are not built yet.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Address of the s2s listener (STARTTLS port).
    #[arg(long, default_value = "127.0.0.1:5269")]
    pub listen: SocketAddr,
    /// The local domain streams are answered for.
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Largest stanza accepted, in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    pub max_stanza_size: usize,
}

impl Cli {
    /// Parses the process arguments, exiting with usage on error.
    pub fn from_env() -> Self {
        Cli::parse()
    }
}
