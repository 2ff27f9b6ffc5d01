//! The operator's requests to a running instance and its answers, as the
//! local admin socket carries them (`xfed contact list|remove`): one line
//! in, a status line and text out. Plain lines rather than a format, so
//! that `socat` or `nc -U` can speak it too; the host moves them, the
//! gateway answers them ([`crate::Gateway::admin`]).

use std::fmt;

use crate::jid::Jid;

/// The longest request line taken; beyond it the host answers an error
/// without reading further.
pub const MAX_REQUEST: usize = 1024;

/// What the operator asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `contact list USER`: the user's contacts, presence authorizations
    /// (approved or pending) and watched XMPP contacts.
    ContactList {
        /// The local user, a bare JID.
        user: Jid,
    },
    /// `contact remove USER REMOTE`: everything between them goes (the
    /// authorization, the remembered contact, the user's subscription to
    /// them); the remote side gets `unsubscribed` and `unsubscribe`.
    ContactRemove {
        /// The local user, a bare JID.
        user: Jid,
        /// The remote bare JID.
        remote: Jid,
    },
    /// `status`: the instance's streams (direction, domains,
    /// authentication, TLS version), routes (state, queue) and latest
    /// failures.
    Status,
    /// `reload`: read the configuration file again and apply it (as
    /// SIGHUP does); the answer lists what changed, or why the running
    /// configuration stays.
    Reload,
}

impl Request {
    /// Reads one request line (without its line end).
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let bare = |w: &str| match Jid::parse(w) {
            Ok(j) if j.local().is_some() && j.resource().is_none() => Ok(j),
            _ => Err(format!("'{w}' is not a bare JID (user@domain)")),
        };
        match words.as_slice() {
            ["status"] => Ok(Request::Status),
            ["reload"] => Ok(Request::Reload),
            ["contact", "list", user] => Ok(Request::ContactList { user: bare(user)? }),
            ["contact", "remove", user, remote] => Ok(Request::ContactRemove {
                user: bare(user)?,
                remote: bare(remote)?,
            }),
            _ => Err(
                "unknown request: expected 'status', 'reload', 'contact list USER' \
                      or 'contact remove USER REMOTE'"
                    .to_owned(),
            ),
        }
    }
}

impl fmt::Display for Request {
    /// The request line, as [`Request::parse`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::ContactList { user } => write!(f, "contact list {user}"),
            Request::ContactRemove { user, remote } => write!(f, "contact remove {user} {remote}"),
            Request::Status => write!(f, "status"),
            Request::Reload => write!(f, "reload"),
        }
    }
}

/// The answer: `ok` or `error: REASON` on the first line, then the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// The reason (an error) or the result, one item per line.
    pub lines: Vec<String>,
}

impl Reply {
    /// Carried out, with these lines.
    pub fn ok(lines: Vec<String>) -> Reply {
        Reply { ok: true, lines }
    }

    /// Refused, for this reason.
    pub fn error(reason: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            lines: vec![reason.into()],
        }
    }

    /// Reads an answer as [`Reply`]'s `Display` wrote it.
    pub fn parse(text: &str) -> Reply {
        let mut lines = text.lines();
        match lines.next() {
            Some("ok") => Reply::ok(lines.map(str::to_owned).collect()),
            Some(first) => {
                let reason = first.strip_prefix("error: ").unwrap_or(first);
                Reply::error(reason)
            }
            None => Reply::error("empty answer"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok {
            writeln!(f, "ok")?;
            for l in &self.lines {
                writeln!(f, "{l}")?;
            }
            Ok(())
        } else {
            writeln!(f, "error: {}", self.lines.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_say_why() {
        for line in [
            "contact list alice@xfed.test",
            "contact remove alice@xfed.test bob@remote.test",
            "status",
            "reload",
        ] {
            let r = Request::parse(line).unwrap();
            assert_eq!(r.to_string(), line);
        }
        assert!(Request::parse("  contact   list  alice@x.test \r").is_ok());
        let e = Request::parse("contact list alice@x.test/phone").unwrap_err();
        assert!(e.contains("bare JID"), "{e}");
        assert!(Request::parse("contact list x.test").is_err());
        assert!(Request::parse("restart").unwrap_err().contains("unknown"));
        assert!(Request::parse("").is_err());
    }

    #[test]
    fn replies_round_trip() {
        let ok = Reply::ok(vec!["a".into(), "b".into()]);
        assert_eq!(ok.to_string(), "ok\na\nb\n");
        assert_eq!(Reply::parse(&ok.to_string()), ok);
        let e = Reply::error("no such contact");
        assert_eq!(e.to_string(), "error: no such contact\n");
        assert_eq!(Reply::parse(&e.to_string()), e);
        assert!(!Reply::parse("").ok);
    }
}
