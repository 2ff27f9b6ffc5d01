//! The command line, identical for `xfed` and `xfed-async-std`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// xfed: XMPP federation gateway for SIP domains.
///
/// Without a command it runs the embedded default: loopback listeners,
/// domain `localhost`, a self-signed certificate made on first start in
/// ./xfed-data.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do; nothing runs the embedded default.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How log lines are written: `text` for people, `json` (one object
    /// per line) for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a deployment.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a deployment just long enough to ping a remote domain (XEP-0199)
    /// from the first local domain, print the round trip, and exit: the
    /// quickest proof that federation works both ways.
    Ping {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The remote domain.
        #[arg(long)]
        to: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Validate a configuration file and exit.
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the firewall rules, certificate names and DNS records this
    /// deployment needs (the planning document's three summaries); with
    /// `--check`, verify each live.
    Plan(super::plan::Args),
    /// Show the running instance's streams (direction, domains,
    /// authentication, TLS version), routes and latest failures (through
    /// its admin socket, beside the store).
    Status {
        /// The running instance's configuration file; none for the
        /// embedded default.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Make the running instance read its configuration file again and
    /// apply it (as SIGHUP does); prints what changed, or why the running
    /// configuration stays.
    Reload {
        /// The running instance's configuration file; none for the
        /// embedded default.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Show or remove a local user's contacts in the running instance
    /// (through its admin socket, beside the store).
    Contact {
        /// The running instance's configuration file; none for the
        /// embedded default.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        action: ContactAction,
    },
    /// List, show, add, change or remove XMPP partners in the
    /// configuration file, then have the running instance reload (Lync's
    /// *-CsXmppAllowedPartner).
    Partner {
        /// The configuration file to read or change.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        action: super::admin_edit::PartnerAction,
    },
    /// List, add or remove `[[access]]` rules (who may federate) in the
    /// configuration file, then have the running instance reload.
    Access {
        /// The configuration file to read or change.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        action: super::admin_edit::AccessAction,
    },
    /// Show or change `[gateway]` in the configuration file, then have the
    /// running instance reload (Lync's Set-CsXmppGatewayConfiguration).
    Gateway {
        /// The configuration file to read or change.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        action: super::admin_edit::GatewayAction,
    },
    /// Turn the Format-List output of Lync's Get-CsXmppAllowedPartner and
    /// Get-CsXmppGatewayConfiguration into xfed's TOML.
    ImportLync(super::admin_edit::ImportLync),
}

/// `xfed contact ...`.
#[derive(Debug, Subcommand)]
pub enum ContactAction {
    /// The user's watchers (approved or pending), the XMPP contacts the
    /// user's devices watch, and the contacts the user wrote to.
    List {
        /// The local user, user@domain.
        user: String,
    },
    /// Removes everything between the user and a remote address: its
    /// presence authorization (it gets `unsubscribed`), the user's
    /// subscription to it (`unsubscribe`), the remembered contact.
    Remove {
        /// The local user, user@domain.
        user: String,
        /// The remote XMPP address, user@domain.
        remote: String,
    },
}

impl ContactAction {
    /// The admin request it makes.
    pub fn request(&self) -> Result<crate::admin::Request, String> {
        let line = match self {
            ContactAction::List { user } => format!("contact list {user}"),
            ContactAction::Remove { user, remote } => format!("contact remove {user} {remote}"),
        };
        crate::admin::Request::parse(&line)
    }
}

impl Cli {
    /// Parses the process arguments, exiting with usage on error.
    pub fn from_env() -> Self {
        Cli::parse()
    }
}
