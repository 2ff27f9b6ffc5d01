//! What both runtimes need that is not protocol logic: the command line,
//! logging set-up, and randomness from the operating system. Blocking and
//! I/O-doing; compiled only with the `host` feature, which no protocol
//! module uses and the fuzz build leaves off.

pub mod admin_edit;
pub mod admin_socket;
pub mod bind;
pub mod cli;
pub mod dns_exchange;
pub mod driver;
pub mod metrics_listener;
pub mod plan;
pub mod runtime;
pub mod setup;
pub mod store_postgres;
pub mod store_sqlite;
pub mod store_watch;
pub mod store_worker;

/// Installs the tracing subscriber both binaries log through; `RUST_LOG`
/// overrides the default level (`info`). Colour only on a terminal (and
/// never with `NO_COLOR` set), so that files and journals get plain text;
/// `json` is one object per line for log collectors.
pub fn init_logging(format: cli::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        cli::LogFormat::Text => {
            let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            lines.with_ansi(ansi).try_init()
        }
        cli::LogFormat::Json => lines.json().with_ansi(false).try_init(),
    };
}

/// An unpredictable token (hex) from the operating system's generator, for
/// stream ids, which dialback keys depend on.
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
