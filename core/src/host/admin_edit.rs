//! `xfed partner|access|gateway` and `xfed import-lync`: the equivalents
//! of Lync's `*-CsXmppAllowedPartner`, `Set-CsXmppGatewayConfiguration`
//! and external access policies. The TOML file stays the one source of
//! truth: a change is made to its text ([`crate::config::edit`]), checked
//! as `xfed check` checks a file, written atomically with the file's
//! permissions, and then the running instance is asked to reload through
//! its admin socket. `list` and `show` print tables of the effective
//! values, defaults included.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{admin_socket, setup};
use crate::config::edit::{self, Setting};
use crate::config::{lync, Config, Partner, Verdict};

/// A struct of `--key VALUE` options, one per configuration key (the
/// field's name with `-` for `_`), and the [`Setting`]s given.
macro_rules! keys {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident => $key:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default, Args)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: Option<String>,)+
        }

        impl $name {
            /// The configuration keys, in option order.
            pub const KEYS: &'static [&'static str] = &[$($key),+];

            /// The keys given, with their values.
            pub fn settings(&self) -> Vec<Setting<'_>> {
                let mut given = Vec::new();
                $(if let Some(v) = &self.$field {
                    given.push(($key, v.as_str()));
                })+
                given
            }
        }
    };
}

keys!(
    /// `[[partner]]` keys (an empty value removes the key: its default
    /// applies).
    PartnerKeys {
        /// `additional_domains` (Lync AdditionalDomains), comma-separated;
        /// replaces the list.
        #[arg(long)]
        additional_domains => "additional_domains",
        /// Adds to `additional_domains` (Lync's @{Add=...}), comma-separated.
        #[arg(long)]
        add_additional_domains => "additional_domains+",
        /// Removes from `additional_domains` (Lync's @{Remove=...}).
        #[arg(long)]
        remove_additional_domains => "additional_domains-",
        /// `type` (Lync PartnerType): federated, public-verified,
        /// public-unverified (Lync's spellings accepted).
        #[arg(long = "type", visible_alias = "partner-type")]
        partner_type => "type",
        /// `tls` (Lync TlsNegotiation): required, optional, not-supported.
        #[arg(long)]
        tls => "tls",
        /// `sasl` (Lync SaslNegotiation): required, optional, not-supported.
        #[arg(long)]
        sasl => "sasl",
        /// `dialback` (Lync SupportDialbackNegotiation): true or false.
        #[arg(long)]
        dialback => "dialback",
        /// `keepalive` (Lync EnableKeepAlive): true or false.
        #[arg(long)]
        keepalive => "keepalive",
        /// `connect` (Lync ProxyFqdn): host[:port] instead of DNS SRV.
        #[arg(long)]
        connect => "connect",
        /// `connection_limit` (Lync ConnectionLimit).
        #[arg(long)]
        connection_limit => "connection_limit",
        /// `description` (Lync Description).
        #[arg(long)]
        description => "description",
    }
);

keys!(
    /// `[gateway]` keys (an empty value removes the key: its default
    /// applies).
    GatewayKeys {
        /// `domains`, comma-separated: the local domains.
        #[arg(long)]
        domains => "domains",
        /// `dialback_secret` (Lync DialbackPassphrase).
        #[arg(long)]
        dialback_secret => "dialback_secret",
        /// `connection_limit` (Lync ConnectionLimit).
        #[arg(long)]
        connection_limit => "connection_limit",
        /// `partner_connection_limit` (Lync PartnerConnectionLimit).
        #[arg(long)]
        partner_connection_limit => "partner_connection_limit",
        /// `stream_establishment_timeout` (Lync StreamEstablishmentTimeout), such as 60s.
        #[arg(long)]
        stream_establishment_timeout => "stream_establishment_timeout",
        /// `stream_inactivity_timeout` (Lync StreamInactivityTimeout), such as 10m.
        #[arg(long)]
        stream_inactivity_timeout => "stream_inactivity_timeout",
        /// `keepalive_interval` (Lync KeepAliveInterval), such as 5m.
        #[arg(long)]
        keepalive_interval => "keepalive_interval",
        /// `subscription_refresh_interval` (Lync SubscriptionRefreshInterval), such as 8h.
        #[arg(long)]
        subscription_refresh_interval => "subscription_refresh_interval",
        /// `log_message_bodies` (Lync EnableLoggingAllMessageBodies): true or false.
        #[arg(long)]
        log_message_bodies => "log_message_bodies",
        /// `max_stanza_size`: bytes, or such as 256KiB.
        #[arg(long)]
        max_stanza_size => "max_stanza_size",
        /// `log_lines_per_source`.
        #[arg(long)]
        log_lines_per_source => "log_lines_per_source",
        /// `federation`: allow-list, open, deny-list.
        #[arg(long)]
        federation => "federation",
        /// `max_pending_dialback_per_stream`.
        #[arg(long)]
        max_pending_dialback_per_stream => "max_pending_dialback_per_stream",
        /// `max_pending_dialback_per_domain`.
        #[arg(long)]
        max_pending_dialback_per_domain => "max_pending_dialback_per_domain",
        /// `max_routes`.
        #[arg(long)]
        max_routes => "max_routes",
        /// `max_dns_queries`.
        #[arg(long)]
        max_dns_queries => "max_dns_queries",
    }
);

/// `xfed partner ...`.
#[derive(Debug, Subcommand)]
pub enum PartnerAction {
    /// Every partner and its policy (Get-CsXmppAllowedPartner).
    List,
    /// One partner, every key with its effective value.
    Show {
        /// The partner's domain.
        #[arg(long)]
        domain: String,
    },
    /// A new partner (New-CsXmppAllowedPartner).
    Add {
        /// The partner's primary domain.
        #[arg(long)]
        domain: String,
        /// The keys to set.
        #[command(flatten)]
        keys: Box<PartnerKeys>,
    },
    /// Changes a partner (Set-CsXmppAllowedPartner).
    Set {
        /// The partner's primary domain.
        #[arg(long)]
        domain: String,
        /// The keys to set.
        #[command(flatten)]
        keys: Box<PartnerKeys>,
    },
    /// Removes a partner (Remove-CsXmppAllowedPartner).
    Remove {
        /// The partner's primary domain.
        #[arg(long)]
        domain: String,
    },
}

/// `xfed access ...`: the `[[access]]` rules, first match wins.
#[derive(Debug, Subcommand)]
pub enum AccessAction {
    /// The rules, numbered.
    List,
    /// A new rule (Lync's EnableXmppAccess of an external access policy).
    Add {
        /// `users`: comma-separated globs such as *@example.com.
        #[arg(long)]
        users: String,
        /// `xmpp`: true or false (default false, as Lync's).
        #[arg(long)]
        xmpp: Option<String>,
        /// Its number among the rules (from 1); after the last without.
        #[arg(long)]
        position: Option<usize>,
    },
    /// Removes rule NUMBER (as `xfed access list` numbers them).
    Remove {
        /// The rule's number.
        number: usize,
    },
}

/// `xfed gateway ...`.
#[derive(Debug, Subcommand)]
pub enum GatewayAction {
    /// Every `[gateway]` key with its effective value
    /// (Get-CsXmppGatewayConfiguration).
    Show,
    /// Changes `[gateway]` keys (Set-CsXmppGatewayConfiguration).
    Set(Box<GatewayKeys>),
}

/// `xfed import-lync`'s arguments.
#[derive(Debug, Args)]
pub struct ImportLync {
    /// The saved output of `Get-CsXmppAllowedPartner | Format-List` and/or
    /// `Get-CsXmppGatewayConfiguration | Format-List` (and, for the local
    /// domains, `Get-CsSipDomain | Format-List`); UTF-8 or UTF-16.
    pub file: PathBuf,
    /// Where to write the configuration (a new file); stdout without.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The local SIP domains, comma-separated, when the file has no
    /// Get-CsSipDomain output.
    #[arg(long)]
    pub domains: Option<String>,
}

/// Runs `command` on the configuration file, which the editors need
/// (they have no embedded default), printing its error.
fn on_file(
    config: Option<&Path>,
    command: impl FnOnce(&Path) -> Result<ExitCode, String>,
) -> ExitCode {
    let Some(path) = config else {
        eprintln!("--config FILE is required: the configuration file is what changes");
        return ExitCode::FAILURE;
    };
    command(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })
}

/// `xfed partner ...`.
pub fn partner(config: Option<&Path>, action: PartnerAction) -> ExitCode {
    on_file(config, |path| match action {
        PartnerAction::List => setup::check(path).map(|(c, _)| {
            print!("{}", partner_table(&c));
            ExitCode::SUCCESS
        }),
        PartnerAction::Show { domain } => setup::check(path).and_then(|(c, _)| {
            let wanted = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            let p = c
                .partners
                .iter()
                .find(|p| p.domain == wanted)
                .ok_or_else(|| format!("{domain} is no partner of {}", path.display()))?;
            print!("{}", partner_detail(p));
            Ok(ExitCode::SUCCESS)
        }),
        PartnerAction::Add { domain, keys } => Ok(change(path, |text| {
            edit::add_partner(text, &domain, &keys.settings())
        })),
        PartnerAction::Set { domain, keys } => {
            let settings = keys.settings();
            if settings.is_empty() {
                Err("nothing to set: give at least one --key VALUE".to_owned())
            } else {
                Ok(change(path, |text| {
                    edit::set_partner(text, &domain, &settings)
                }))
            }
        }
        PartnerAction::Remove { domain } => {
            Ok(change(path, |text| edit::remove_partner(text, &domain)))
        }
    })
}

/// `xfed access ...`.
pub fn access(config: Option<&Path>, action: AccessAction) -> ExitCode {
    on_file(config, |path| match action {
        AccessAction::List => setup::check(path).map(|(c, _)| {
            let rows: Vec<Vec<String>> = c
                .access
                .iter()
                .enumerate()
                .map(|(i, r)| vec![(i + 1).to_string(), r.users.join(", "), r.xmpp.to_string()])
                .collect();
            print!("{}", table(&["#", "USERS", "XMPP"], &rows));
            if rows.is_empty() {
                println!("no rule: every local user may federate over XMPP");
            } else {
                println!("the first rule a user matches decides");
            }
            ExitCode::SUCCESS
        }),
        AccessAction::Add {
            users,
            xmpp,
            position,
        } => Ok(change(path, |text| {
            edit::add_access(text, &users, xmpp.as_deref(), position)
        })),
        AccessAction::Remove { number } => {
            Ok(change(path, |text| edit::remove_access(text, number)))
        }
    })
}

/// `xfed gateway ...`.
pub fn gateway(config: Option<&Path>, action: GatewayAction) -> ExitCode {
    on_file(config, |path| match action {
        GatewayAction::Show => setup::check(path).map(|(c, _)| {
            print!("{}", gateway_detail(&c));
            ExitCode::SUCCESS
        }),
        GatewayAction::Set(keys) => {
            let settings = keys.settings();
            if settings.is_empty() {
                Err("nothing to set: give at least one --key VALUE".to_owned())
            } else {
                Ok(change(path, |text| edit::set_gateway(text, &settings)))
            }
        }
    })
}

/// `xfed import-lync`.
pub fn import_lync(args: ImportLync) -> ExitCode {
    use std::os::unix::fs::OpenOptionsExt;
    let domains: Vec<String> = args
        .domains
        .iter()
        .flat_map(|d| d.split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let imported = std::fs::read(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))
        .and_then(|bytes| lync::decode(&bytes))
        .and_then(|text| lync::import(&text, &domains))
        .map_err(|e| format!("{}: {e}", args.file.display()));
    let imported = match imported {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let written = match &args.output {
        None => std::io::stdout()
            .write_all(imported.toml.as_bytes())
            .map_err(|e| format!("stdout: {e}")),
        // Not readable by everyone: it may hold the dialback secret.
        Some(out) => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(out)
            .and_then(|mut f| f.write_all(imported.toml.as_bytes()))
            .map_err(|e| {
                format!(
                    "cannot write {} (it must be a new file): {e}",
                    out.display()
                )
            }),
    };
    if let Err(e) = written {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "imported {} partner(s); {} setting(s) not carried over, each a comment in the file",
        imported.partners,
        imported.skipped.len()
    );
    ExitCode::SUCCESS
}

/// Applies `edit` to the file at `path`: checks the result as `xfed
/// check` does, writes it atomically, asks the running instance to
/// reload. Nothing is written when the result is invalid.
fn change(path: &Path, edit: impl FnOnce(&str) -> Result<String, String>) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let unchanged = |why: String| {
        eprintln!("refused: {why}\n{} is unchanged", path.display());
        ExitCode::FAILURE
    };
    let new = match edit(&text) {
        Ok(new) => new,
        Err(e) => return unchanged(e),
    };
    if new == text {
        println!("{}: nothing changed", path.display());
        return ExitCode::SUCCESS;
    }
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match setup::check_deployment_text(path, &new, unix_now) {
        Ok((_, notices)) => notices.iter().for_each(|n| println!("{n}")),
        Err(e) => return unchanged(format!("the result would not pass `xfed check`: {e}")),
    }
    if let Err(e) = write_atomically(path, &text, &new) {
        return unchanged(e);
    }
    println!("{}: written", path.display());
    reload(path)
}

/// Replaces the file at `path` (through a symbolic link, the file it
/// names), which held `old`, by `text`: a temporary file beside it with
/// the same mode (and owner, when we may), synced, renamed over it, so
/// that a reader sees the old file or the new one, never half of one. A
/// file changed since it was read (another editor) is left alone.
fn write_atomically(path: &Path, old: &str, text: &str) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let err = |p: &Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
    let target = std::fs::canonicalize(path).map_err(|e| err(path, e))?;
    let meta = std::fs::metadata(&target).map_err(|e| err(&target, e))?;
    let dir = target.parent().unwrap_or(Path::new("/"));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.xfed-edit-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        f.write_all(text.as_bytes())?;
        // As root, keep the service's ownership; as its owner, it is ours.
        let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
        f.set_permissions(meta.permissions())?;
        f.sync_all()?;
        if std::fs::read_to_string(&target)? != old {
            return Err(std::io::Error::other(
                "it changed while being edited; run the command again",
            ));
        }
        std::fs::rename(&temporary, &target)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&temporary);
        err(&target, e)
    })
}

/// Asks the instance running `path` to reload, after a change.
fn reload(path: &Path) -> ExitCode {
    let answer = setup::admin_socket(Some(path)).and_then(|s| admin_socket::ask_line(&s, "reload"));
    match answer {
        Ok(None) => {
            println!("no running instance: the change applies at the next start");
            ExitCode::SUCCESS
        }
        Ok(Some(r)) if r.ok => {
            println!("reloaded");
            r.lines.iter().for_each(|l| println!("{l}"));
            ExitCode::SUCCESS
        }
        Ok(Some(r)) => {
            eprintln!(
                "the running instance refused to reload: {}\n{} is written: the change applies when it reloads or restarts",
                r.lines.join("; "),
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "could not ask the running instance to reload: {e}\n{} is written: the change applies when it reloads or restarts",
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Rows under headers, columns two spaces apart.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_none(value: String) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value
    }
}

fn connect(p: &Partner) -> String {
    p.connect
        .as_ref()
        .map_or_else(String::new, |c| format!("{}:{}", c.host, c.port))
}

fn partner_table(config: &Config) -> String {
    let rows: Vec<Vec<String>> = config
        .partners
        .iter()
        .map(|p| {
            vec![
                p.domain.clone(),
                p.partner_type.to_string(),
                p.policy.tls.to_string(),
                p.policy.sasl.to_string(),
                p.policy.dialback.to_string(),
                p.policy.keepalive.to_string(),
                or_none(connect(p)),
                p.connection_limit.to_string(),
                or_none(p.additional_domains.join(", ")),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "DOMAIN",
            "TYPE",
            "TLS",
            "SASL",
            "DIALBACK",
            "KEEPALIVE",
            "CONNECT",
            "LIMIT",
            "ADDITIONAL DOMAINS",
        ],
        &rows,
    );
    let _ = writeln!(
        out,
        "{} partner(s); federation = \"{}\"",
        rows.len(),
        config.gateway.federation
    );
    out
}

fn partner_detail(p: &Partner) -> String {
    let mut rows = vec![
        ("domain", p.domain.clone()),
        (
            "additional_domains",
            or_none(p.additional_domains.join(", ")),
        ),
        ("type", p.partner_type.to_string()),
        ("tls", p.policy.tls.to_string()),
        ("sasl", p.policy.sasl.to_string()),
        ("dialback", p.policy.dialback.to_string()),
        ("keepalive", p.policy.keepalive.to_string()),
        ("connect", or_none(connect(p))),
        ("connection_limit", p.connection_limit.to_string()),
        (
            "description",
            or_none(p.description.clone().unwrap_or_default()),
        ),
    ];
    if let Verdict::Doubtful(why) = p.policy.verdict() {
        rows.push(("note", why.to_owned()));
    }
    key_value(&rows)
}

fn gateway_detail(c: &Config) -> String {
    let g = &c.gateway;
    key_value(&[
        ("domains", g.domains.join(", ")),
        (
            "dialback_secret",
            if g.dialback_secret.is_some() {
                "set in the file".to_owned()
            } else {
                "generated, beside the store".to_owned()
            },
        ),
        ("connection_limit", g.connection_limit.to_string()),
        (
            "partner_connection_limit",
            g.partner_connection_limit.to_string(),
        ),
        (
            "stream_establishment_timeout",
            duration(g.stream_establishment_timeout),
        ),
        (
            "stream_inactivity_timeout",
            duration(g.stream_inactivity_timeout),
        ),
        ("keepalive_interval", duration(g.keepalive_interval)),
        (
            "subscription_refresh_interval",
            duration(g.subscription_refresh_interval),
        ),
        ("log_message_bodies", g.log_message_bodies.to_string()),
        ("max_stanza_size", g.max_stanza_size.to_string()),
        ("log_lines_per_source", g.log_lines_per_source.to_string()),
        ("federation", g.federation.to_string()),
        (
            "max_pending_dialback_per_stream",
            g.max_pending_dialback_per_stream.to_string(),
        ),
        (
            "max_pending_dialback_per_domain",
            g.max_pending_dialback_per_domain.to_string(),
        ),
        ("max_routes", g.max_routes.to_string()),
        ("max_dns_queries", g.max_dns_queries.to_string()),
    ])
}

fn key_value(rows: &[(&str, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![(*k).to_owned(), v.clone()])
        .collect();
    table(&["KEY", "VALUE"], &rows)
}

/// A duration as the configuration spells it, in its largest whole unit.
fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= per && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_are_the_keys_the_editor_sets() {
        fn names(keys: &'static [(&'static str, edit::Kind)]) -> Vec<&'static str> {
            keys.iter().map(|(k, _)| *k).collect()
        }
        // Besides, additional_domains+ and additional_domains-.
        let partner: Vec<&str> = PartnerKeys::KEYS
            .iter()
            .copied()
            .filter(|k| !k.ends_with(['+', '-']))
            .collect();
        assert_eq!(partner, names(edit::PARTNER_KEYS));
        assert_eq!(GatewayKeys::KEYS, names(edit::GATEWAY_KEYS));
    }

    #[test]
    fn tables_align_and_durations_read_back() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\ny          z\n");
        assert_eq!(duration(Duration::from_secs(300)), "5m");
        assert_eq!(duration(Duration::from_secs(28_800)), "8h");
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
    }
}
