//! Edits of a configuration file's text for `xfed partner|access|gateway`,
//! the equivalents of Lync's `New-`/`Set-`/`Remove-CsXmppAllowedPartner`,
//! `Set-CsXmppGatewayConfiguration` and external access policies. Text in,
//! text out, through `toml_edit` so that comments, order and formatting
//! survive; whether the result is a valid configuration is for
//! [`super::parse`] (and `xfed check`) to say, not for this module. The
//! file's I/O is the host's.

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

use super::lync::{boolean, kebab};

/// How a key's value is written in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A string spelled in kebab-case; Lync's spellings (`PublicVerified`,
    /// `NotSupported`) are accepted and converted.
    Choice,
    /// A whole number.
    Integer,
    /// `true` or `false` (PowerShell's `$true`, `True` accepted).
    Bool,
    /// An array of strings, given comma-separated.
    TextList,
    /// A number of bytes, or a string such as `"256KiB"`.
    Size,
}

/// The keys of `[[partner]]` the commands set (`domain` names the partner).
pub const PARTNER_KEYS: &[(&str, Kind)] = &[
    ("additional_domains", Kind::TextList),
    ("type", Kind::Choice),
    ("tls", Kind::Choice),
    ("sasl", Kind::Choice),
    ("dialback", Kind::Bool),
    ("keepalive", Kind::Bool),
    ("connect", Kind::Text),
    ("connection_limit", Kind::Integer),
    ("description", Kind::Text),
];

/// The keys of `[gateway]` the commands set.
pub const GATEWAY_KEYS: &[(&str, Kind)] = &[
    ("domains", Kind::TextList),
    ("dialback_secret", Kind::Text),
    ("connection_limit", Kind::Integer),
    ("partner_connection_limit", Kind::Integer),
    ("stream_establishment_timeout", Kind::Text),
    ("stream_inactivity_timeout", Kind::Text),
    ("keepalive_interval", Kind::Text),
    ("subscription_refresh_interval", Kind::Text),
    ("log_message_bodies", Kind::Bool),
    ("max_stanza_size", Kind::Size),
    ("log_lines_per_source", Kind::Integer),
    ("federation", Kind::Choice),
    ("max_pending_dialback_per_stream", Kind::Integer),
    ("max_pending_dialback_per_domain", Kind::Integer),
    ("max_routes", Kind::Integer),
    ("max_dns_queries", Kind::Integer),
];

/// One change: a key of [`PARTNER_KEYS`] or [`GATEWAY_KEYS`] and its new
/// value as typed on the command line; an empty value removes the key, so
/// that its default applies again.
pub type Setting<'a> = (&'a str, &'a str);

/// The TOML value of `text` for `key` of kind `kind`.
fn value(key: &str, kind: Kind, text: &str) -> Result<Value, String> {
    let text = text.trim();
    Ok(match kind {
        Kind::Text => Value::from(text),
        Kind::Choice => Value::from(kebab(text)),
        Kind::Integer => Value::from(
            text.parse::<i64>()
                .map_err(|_| format!("{key}: '{text}' is not a whole number"))?,
        ),
        Kind::Bool => Value::from(
            boolean(text).ok_or_else(|| format!("{key}: '{text}' is neither true nor false"))?,
        ),
        Kind::TextList => {
            let items = text.split(',').map(str::trim).filter(|s| !s.is_empty());
            Value::Array(items.collect::<Array>())
        }
        Kind::Size => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(text),
        },
    })
}

/// Applies `settings` to `table`, each key looked up in `keys`; a value
/// replacing another keeps the old one's comments and spacing. A list
/// key followed by `+` or `-` (`additional_domains+`) adds items to the
/// list or removes them from it, as Lync's `@{Add=...}` and
/// `@{Remove=...}` do.
fn apply(table: &mut Table, keys: &[(&str, Kind)], settings: &[Setting<'_>]) -> Result<(), String> {
    for &(given, text) in settings {
        let (key, change) = match given.strip_suffix(['+', '-']) {
            Some(key) => (key, given.ends_with('+')),
            None => (given, false),
        };
        let kind = keys
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, kind)| *kind)
            .filter(|kind| key == given || *kind == Kind::TextList)
            .ok_or_else(|| format!("{given} is not a key this command sets"))?;
        let mut new = if key != given {
            let Some(new) = changed_list(table.get(key), text, change) else {
                table.remove(key);
                continue;
            };
            new
        } else if text.trim().is_empty() {
            table.remove(key);
            continue;
        } else {
            value(key, kind, text)?
        };
        match table.get_mut(key).and_then(Item::as_value_mut) {
            Some(old) => {
                *new.decor_mut() = old.decor().clone();
                *old = new;
            }
            None => {
                table.insert(key, Item::Value(new));
            }
        }
    }
    Ok(())
}

/// The list `old` with the comma-separated `items` added (`add`) or
/// removed (compared ignoring ASCII case); `None` when nothing is left.
fn changed_list(old: Option<&Item>, items: &str, add: bool) -> Option<Value> {
    let mut list: Vec<String> = old
        .and_then(Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for item in items.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let present = list.iter().any(|l| l.eq_ignore_ascii_case(item));
        if add && !present {
            list.push(item.to_owned());
        } else if !add {
            list.retain(|l| !l.eq_ignore_ascii_case(item));
        }
    }
    (!list.is_empty()).then(|| Value::Array(list.iter().map(String::as_str).collect()))
}

fn document(text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| format!("not a TOML file: {e}"))
}

/// A domain as compared here: ASCII case and a trailing dot ignored (the
/// configuration's own check prepares it fully).
fn same_domain(a: &str, b: &str) -> bool {
    a.trim()
        .trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim().trim_end_matches('.'))
}

/// The array of `[[name]]` tables, if the file has one.
fn tables_mut<'d>(doc: &'d mut DocumentMut, name: &str) -> Option<&'d mut ArrayOfTables> {
    doc.get_mut(name).and_then(Item::as_array_of_tables_mut)
}

/// Where the partner whose `domain` is `domain` is among the `[[partner]]`s.
fn partner_index(doc: &mut DocumentMut, domain: &str) -> Option<usize> {
    tables_mut(doc, "partner")?.iter().position(|t| {
        t.get("domain")
            .and_then(Item::as_str)
            .is_some_and(|d| same_domain(d, domain))
    })
}

/// `xfed partner add`: a new `[[partner]]` after the last one, `domain`
/// first, then `settings` in [`PARTNER_KEYS`] order.
pub fn add_partner(text: &str, domain: &str, settings: &[Setting<'_>]) -> Result<String, String> {
    let mut doc = document(text)?;
    if partner_index(&mut doc, domain).is_some() {
        return Err(format!(
            "{domain} is a partner already (use `xfed partner set`)"
        ));
    }
    let mut table = Table::new();
    table.insert("domain", toml_edit::value(domain.trim()));
    let mut ordered: Vec<Setting<'_>> = settings.to_vec();
    ordered.sort_by_key(|(k, _)| PARTNER_KEYS.iter().position(|(p, _)| p == k));
    apply(&mut table, PARTNER_KEYS, &ordered)?;
    if !doc.contains_key("partner") {
        doc.insert("partner", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    tables_mut(&mut doc, "partner")
        .ok_or_else(|| "partner is not an array of [[partner]] tables".to_owned())?
        .push(table);
    Ok(doc.to_string())
}

/// `xfed partner set`: changes keys of the partner `domain`.
pub fn set_partner(text: &str, domain: &str, settings: &[Setting<'_>]) -> Result<String, String> {
    let mut doc = document(text)?;
    let index = partner_index(&mut doc, domain).ok_or_else(|| no_partner(domain))?;
    let partners = tables_mut(&mut doc, "partner").ok_or_else(|| no_partner(domain))?;
    let table = partners.get_mut(index).ok_or_else(|| no_partner(domain))?;
    apply(table, PARTNER_KEYS, settings)?;
    Ok(doc.to_string())
}

/// `xfed partner remove`: the partner `domain`'s `[[partner]]`, with the
/// comment lines just above it.
pub fn remove_partner(text: &str, domain: &str) -> Result<String, String> {
    let mut doc = document(text)?;
    let index = partner_index(&mut doc, domain).ok_or_else(|| no_partner(domain))?;
    if let Some(partners) = tables_mut(&mut doc, "partner") {
        partners.remove(index);
    }
    Ok(doc.to_string())
}

fn no_partner(domain: &str) -> String {
    format!("{domain} is no partner (see `xfed partner list`)")
}

/// `xfed access add`: a rule for `users` (comma-separated globs) with
/// `xmpp`, inserted as rule number `position` (from 1; first match wins)
/// or after the last.
pub fn add_access(
    text: &str,
    users: &str,
    xmpp: Option<&str>,
    position: Option<usize>,
) -> Result<String, String> {
    let mut doc = document(text)?;
    let mut table = Table::new();
    table.insert("users", Item::Value(value("users", Kind::TextList, users)?));
    if let Some(x) = xmpp {
        table.insert("xmpp", Item::Value(value("xmpp", Kind::Bool, x)?));
    }
    if !doc.contains_key("access") {
        doc.insert("access", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let rules = tables_mut(&mut doc, "access")
        .ok_or_else(|| "access is not an array of [[access]] tables".to_owned())?;
    let index = match position {
        None => rules.len(),
        Some(0) => return Err("rules are numbered from 1".to_owned()),
        Some(n) if n > rules.len() + 1 => {
            return Err(format!(
                "there are {} rule(s): a new one can be number 1 to {}",
                rules.len(),
                rules.len() + 1
            ))
        }
        Some(n) => n - 1,
    };
    // A table placed before an existing one takes its place in the text.
    if let Some(next) = rules.get(index) {
        table.set_position(next.position());
    }
    rules.insert(index, table);
    Ok(doc.to_string())
}

/// `xfed access remove`: rule number `number` (from 1, as `xfed access
/// list` shows them).
pub fn remove_access(text: &str, number: usize) -> Result<String, String> {
    let mut doc = document(text)?;
    let rules = tables_mut(&mut doc, "access");
    let len = rules.as_ref().map_or(0, |r| r.len());
    match rules {
        Some(rules) if (1..=len).contains(&number) => {
            rules.remove(number - 1);
            Ok(doc.to_string())
        }
        _ => Err(format!("there is no rule {number}: there are {len}")),
    }
}

/// `xfed gateway set`: changes keys of `[gateway]` (made if missing).
pub fn set_gateway(text: &str, settings: &[Setting<'_>]) -> Result<String, String> {
    let mut doc = document(text)?;
    let gateway = doc
        .entry("gateway")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| "gateway is not a [gateway] table".to_owned())?;
    apply(gateway, GATEWAY_KEYS, settings)?;
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# Our deployment.
[gateway]
domains = ["example.com"]  # the SIP domain
connection_limit = 1000 # Lync's default

# Jabber.org federates with us.
[[partner]]
domain = "jabber.org"
type = "federated"   # trusted
dialback = true

# The lab.
[[partner]]
domain = "lab.example.net"

# Everyone in sales.
[[access]]
users = ["*@example.com"]
xmpp = true

[store]
# Beside the binary.
url = "sqlite://xfed.db"
"#;

    fn loads(text: &str) -> crate::config::Config {
        crate::config::parse(text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .config
    }

    #[test]
    fn add_partner_keeps_comments_and_lands_after_the_last_partner() {
        let out = add_partner(
            FILE,
            "example.org",
            &[
                ("dialback", "true"),
                ("type", "PublicVerified"),
                ("tls", "required"),
                ("sasl", "Optional"),
                ("additional_domains", "a.example.org, b.example.org"),
            ],
        )
        .unwrap();
        for kept in [
            "# Our deployment.",
            "# the SIP domain",
            "# Jabber.org federates with us.",
            "type = \"federated\"   # trusted",
            "# Everyone in sales.",
            "# Beside the binary.",
        ] {
            assert!(out.contains(kept), "{kept} lost:\n{out}");
        }
        let new = out.find("domain = \"example.org\"").unwrap();
        assert!(new > out.find("lab.example.net").unwrap(), "{out}");
        assert!(new < out.find("# Everyone in sales.").unwrap(), "{out}");
        let config = loads(&out);
        let p = &config.partners[2];
        assert_eq!(p.domain, "example.org");
        assert_eq!(p.additional_domains, ["a.example.org", "b.example.org"]);
        assert_eq!(p.partner_type, crate::config::PartnerType::PublicVerified);
        assert_eq!(p.policy.sasl, crate::config::Negotiation::Optional);
        // Keys in PARTNER_KEYS order, domain first.
        let block = &out[new..];
        assert!(block.find("additional_domains").unwrap() < block.find("type").unwrap());
        assert!(block.find("sasl").unwrap() < block.find("dialback").unwrap());
    }

    #[test]
    fn add_refuses_a_partner_twice() {
        let e = add_partner(FILE, "Jabber.org.", &[]).unwrap_err();
        assert!(e.contains("partner already"), "{e}");
    }

    #[test]
    fn set_partner_keeps_the_value_comment_and_empty_removes() {
        let out = set_partner(
            FILE,
            "jabber.org",
            &[
                ("type", "public-unverified"),
                ("dialback", ""),
                ("connection_limit", "5"),
            ],
        )
        .unwrap();
        assert!(
            out.contains("type = \"public-unverified\"   # trusted"),
            "{out}"
        );
        let config = loads(&out);
        assert_eq!(config.partners[0].connection_limit, 5);
        assert!(!out.contains("dialback"), "{out}");
        assert!(set_partner(FILE, "nobody.example", &[])
            .unwrap_err()
            .contains("no partner"));
        let e = set_partner(FILE, "jabber.org", &[("connection_limit", "many")]).unwrap_err();
        assert!(e.contains("not a whole number"), "{e}");
        let e = set_partner(FILE, "jabber.org", &[("dialback", "perhaps")]).unwrap_err();
        assert!(e.contains("neither true nor false"), "{e}");
    }

    #[test]
    fn additional_domains_added_and_removed_as_lync_does() {
        let out = set_partner(
            FILE,
            "jabber.org",
            &[("additional_domains+", "muc.jabber.org, conf.jabber.org")],
        )
        .unwrap();
        let out = set_partner(
            &out,
            "jabber.org",
            &[
                ("additional_domains+", "MUC.jabber.org, x.jabber.org"),
                ("additional_domains-", "conf.jabber.org"),
            ],
        )
        .unwrap();
        assert_eq!(
            loads(&out).partners[0].additional_domains,
            ["muc.jabber.org", "x.jabber.org"]
        );
        let out = set_partner(
            &out,
            "jabber.org",
            &[("additional_domains-", "muc.jabber.org,x.jabber.org")],
        )
        .unwrap();
        assert!(!out.contains("additional_domains"), "{out}");
        let e = set_partner(FILE, "jabber.org", &[("tls+", "x")]).unwrap_err();
        assert!(e.contains("not a key"), "{e}");
    }

    #[test]
    fn remove_partner_takes_its_comment_and_leaves_the_rest() {
        let out = remove_partner(FILE, "jabber.org").unwrap();
        assert!(
            !out.contains("jabber.org") && !out.contains("federates"),
            "{out}"
        );
        assert!(
            out.contains("# The lab.") && out.contains("# Everyone in sales."),
            "{out}"
        );
        assert_eq!(loads(&out).partners.len(), 1);
        assert!(remove_partner(&out, "jabber.org").is_err());
    }

    #[test]
    fn access_rules_insert_at_a_position_and_remove_by_number() {
        let first = add_access(FILE, "bob@example.com", Some("false"), Some(1)).unwrap();
        let rules = loads(&first).access;
        assert_eq!(rules[0].users, ["bob@example.com"]);
        assert!(!rules[0].xmpp);
        assert_eq!(rules[1].users, ["*@example.com"]);
        // The new rule sits in the text where the old first one was.
        assert!(first.find("bob@").unwrap() < first.find("\"*@example.com\"").unwrap());
        assert!(first.find("bob@").unwrap() > first.find("lab.example.net").unwrap());
        let last = add_access(
            &first,
            "carol@example.com, dan@example.com",
            Some("true"),
            None,
        )
        .unwrap();
        assert_eq!(loads(&last).access[2].users.len(), 2);
        let removed = remove_access(&last, 1).unwrap();
        assert_eq!(loads(&removed).access[0].users, ["*@example.com"]);
        assert!(removed.contains("# Everyone in sales."), "{removed}");
        assert!(remove_access(FILE, 2).unwrap_err().contains("there are 1"));
        assert!(add_access(FILE, "x@example.com", None, Some(3)).is_err());
        // A file without rules gets its first.
        let none = remove_access(FILE, 1).unwrap();
        let again = add_access(&none, "*@example.com", Some("true"), None).unwrap();
        assert_eq!(loads(&again).access.len(), 1);
    }

    #[test]
    fn gateway_set_changes_keys_in_place() {
        let out = set_gateway(
            FILE,
            &[
                ("connection_limit", "500"),
                ("keepalive_interval", "5m"),
                ("max_stanza_size", "512KiB"),
                ("federation", "DenyList"),
            ],
        )
        .unwrap();
        assert!(
            out.contains("connection_limit = 500 # Lync's default"),
            "{out}"
        );
        let g = loads(&out).gateway;
        assert_eq!(g.connection_limit, 500);
        assert_eq!(g.keepalive_interval, std::time::Duration::from_secs(300));
        assert_eq!(g.max_stanza_size, 512 * 1024);
        assert_eq!(g.federation, crate::config::FederationMode::DenyList);
        let e = set_gateway(FILE, &[("listen", "x")]).unwrap_err();
        assert!(e.contains("not a key"), "{e}");
        // Removing a key brings its default back.
        let out = set_gateway(FILE, &[("connection_limit", "")]).unwrap();
        assert_eq!(loads(&out).gateway.connection_limit, 1000);
    }
}
