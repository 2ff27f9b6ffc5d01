//! The local hosts table (`/etc/hosts` format), consulted for addresses
//! before DNS, as the C library's resolver does.
//!
//! Operators expect a name they put in `/etc/hosts` to be reached, and a
//! lab or a private deployment often has no DNS for its peers. The table
//! only answers address lookups (A and AAAA): SRV records still come from
//! DNS, so a domain listed here is reached through the fallback of RFC 6120
//! section 3.2.2 (port 5269) when DNS says it has no SRV records, or
//! through a partner's `connect` host. The runtime reads the file once at
//! start and hands its text to [`HostsTable::parse`].

use std::collections::HashMap;
use std::net::IpAddr;

/// Most names kept: the table is local configuration, but its size still
/// has a bound.
pub const MAX_NAMES: usize = 10_000;

/// Name → addresses, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsTable {
    names: HashMap<String, Vec<IpAddr>>,
}

impl HostsTable {
    /// Reads `/etc/hosts` text: `ADDRESS NAME [ALIAS...]` per line, `#`
    /// starts a comment; lines whose address does not parse are skipped
    /// (the C library does the same), as are zone-scoped IPv6 addresses.
    pub fn parse(text: &str) -> HostsTable {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_ascii_whitespace();
            let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in fields {
                let key = normalize(name);
                if key.is_empty() || (names.len() >= MAX_NAMES && !names.contains_key(&key)) {
                    continue;
                }
                let addrs = names.entry(key).or_default();
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
        }
        HostsTable { names }
    }

    /// The addresses listed for `name` (any case, with or without the
    /// final dot); empty when the table does not know it.
    pub fn lookup(&self, name: &str) -> &[IpAddr] {
        self.names
            .get(&normalize(name))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_file() {
        let t = HostsTable::parse(
            "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n# a comment\n\
             127.0.0.2 xmpp.test Chat.Test # trailing\nnot-an-ip bad.test\n\
             fe80::1%eth0 scoped.test\n\n   \n127.0.0.3 xmpp.test\n",
        );
        assert_eq!(
            t.lookup("localhost"),
            &[
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(t.lookup("XMPP.test."), t.lookup("xmpp.test"));
        assert_eq!(t.lookup("xmpp.test").len(), 2);
        assert_eq!(
            t.lookup("chat.test"),
            &["127.0.0.2".parse::<IpAddr>().unwrap()]
        );
        assert!(t.lookup("bad.test").is_empty());
        assert!(t.lookup("scoped.test").is_empty());
        assert!(t.lookup("other.test").is_empty());
    }

    #[test]
    fn names_are_bounded() {
        let text: String = (0..MAX_NAMES + 10)
            .map(|i| format!("10.0.0.1 h{i}.test\n"))
            .collect();
        let t = HostsTable::parse(&text);
        assert_eq!(t.names.len(), MAX_NAMES);
        assert!(t.lookup(&format!("h{}.test", MAX_NAMES + 5)).is_empty());
    }
}
