//! xfed on async-std: accepts connections and moves bytes between them and
//! the sans-IO core; every protocol decision is the core's. Written against
//! the futures-io traits so that it stays small.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_signal::{Signal, Signals};
use async_std::net::{TcpListener, TcpStream};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt, StreamExt};
use tracing::{error, info, warn};
use xfed_core::host::{self, cli::Cli};
use xfed_core::xml::Limits;
use xfed_core::xmpp::{Refuser, StreamCondition, StreamError};

/// How long a peer may take to send its stream header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the peer's close after ours.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    host::init_logging();
    let cli = Cli::from_env();
    async_std::task::block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let listener = match TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!("cannot listen on {}: {e}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    info!(
        "xfed (async-std) listening for XMPP s2s on {} for domain {}; federation is not built yet, so every stream is refused with a stream error",
        listener.local_addr().map_or(cli.listen, |a| a),
        cli.domain
    );
    let limits = Limits {
        max_stanza_size: cli.max_stanza_size,
        ..Limits::default()
    };
    let mut signals = match Signals::new([Signal::Term, Signal::Int]) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        let accept = async { Some(listener.accept().await) };
        let signal = async {
            signals.next().await;
            None
        };
        match future::or(accept, signal).await {
            Some(Ok((sock, peer))) => {
                let domain = cli.domain.clone();
                async_std::task::spawn(async move {
                    if let Err(e) = serve(sock, &domain, limits).await {
                        warn!(%peer, "connection failed: {e}");
                    }
                });
            }
            Some(Err(e)) => warn!("accept failed: {e}"),
            None => {
                info!("signal received: stopping");
                return ExitCode::SUCCESS;
            }
        }
    }
}

enum Wake {
    Read(std::io::Result<usize>),
    Timer,
}

async fn serve(mut sock: TcpStream, domain: &str, limits: Limits) -> std::io::Result<()> {
    let peer = sock.peer_addr()?;
    let refusal = StreamError::new(
        StreamCondition::PolicyViolation,
        "this xfed build does not federate yet",
    );
    let mut core = Refuser::new(
        domain,
        refusal,
        host::random_token()?,
        limits,
        Instant::now(),
        HEADER_TIMEOUT,
    );
    let mut buf = vec![0u8; 16 * 1024];
    while !core.is_done() {
        let wait = core.poll_timeout().map_or(HEADER_TIMEOUT, |t| {
            t.saturating_duration_since(Instant::now())
        });
        let read = async { Wake::Read(sock.read(&mut buf).await) };
        let timer = async {
            async_std::task::sleep(wait).await;
            Wake::Timer
        };
        match future::or(read, timer).await {
            Wake::Read(r) => match r? {
                0 => return Ok(()),
                n => core.handle_bytes(&buf[..n]),
            },
            Wake::Timer => core.handle_timeout(Instant::now()),
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
    sock.shutdown(std::net::Shutdown::Write)?;
    let drain = async {
        while sock.read(&mut buf).await? > 0 {}
        Ok(())
    };
    let linger = async {
        async_std::task::sleep(CLOSE_LINGER).await;
        Ok(())
    };
    future::or(drain, linger).await
}
