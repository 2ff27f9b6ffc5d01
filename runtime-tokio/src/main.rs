//! xfed on tokio: accepts connections and moves bytes between them and the
//! sans-IO core; every protocol decision is the core's.

use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{error, info, warn};
use xfed_core::host::{self, cli::Cli};
use xfed_core::xml::Limits;
use xfed_core::xmpp::{Refuser, StreamCondition, StreamError};

/// How long a peer may take to send its stream header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the peer's close after ours.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    host::init_logging();
    let cli = Cli::from_env();
    let listener = match TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!("cannot listen on {}: {e}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    info!(
        "xfed (tokio) listening for XMPP s2s on {} for domain {}; federation is not built yet, so every stream is refused with a stream error",
        listener.local_addr().map_or(cli.listen, |a| a),
        cli.domain
    );
    let limits = Limits {
        max_stanza_size: cli.max_stanza_size,
        ..Limits::default()
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let domain = cli.domain.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve(sock, &domain, limits).await {
                            warn!(%peer, "connection failed: {e}");
                        }
                    });
                }
                Err(e) => warn!("accept failed: {e}"),
            },
            _ = term.recv() => {
                info!("SIGTERM: stopping");
                return ExitCode::SUCCESS;
            }
            _ = tokio::signal::ctrl_c() => {
                info!("interrupted: stopping");
                return ExitCode::SUCCESS;
            }
        }
    }
}

async fn serve(mut sock: TcpStream, domain: &str, limits: Limits) -> std::io::Result<()> {
    let peer = sock.peer_addr()?;
    let refusal = StreamError::new(
        StreamCondition::PolicyViolation,
        "this xfed build does not federate yet",
    );
    let start = Instant::now();
    let mut core = Refuser::new(
        domain,
        refusal,
        host::random_token()?,
        limits,
        start.into_std(),
        HEADER_TIMEOUT,
    );
    let mut buf = vec![0u8; 16 * 1024];
    while !core.is_done() {
        let deadline = core
            .poll_timeout()
            .map_or(start + HEADER_TIMEOUT, Instant::from_std);
        tokio::select! {
            read = sock.read(&mut buf) => match read? {
                0 => return Ok(()),
                n => core.handle_bytes(&buf[..n]),
            },
            _ = tokio::time::sleep_until(deadline) => core.handle_timeout(Instant::now().into_std()),
        }
        if let Some(bytes) = core.poll_transmit() {
            sock.write_all(&bytes).await?;
        }
    }
    if let Some(outcome) = core.outcome() {
        info!(%peer, "{outcome}");
    }
    // Our stream is closed; wait for the peer to close its side (RFC 6120
    // section 4.4), discarding what it still sends, so that unread input
    // does not reset the connection before our error reaches it.
    sock.shutdown().await?;
    let linger = tokio::time::sleep(CLOSE_LINGER);
    tokio::pin!(linger);
    loop {
        tokio::select! {
            read = sock.read(&mut buf) => if read? == 0 { return Ok(()) },
            _ = &mut linger => return Ok(()),
        }
    }
}
