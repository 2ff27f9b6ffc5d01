//! SIP request methods.

use std::fmt;

use super::syntax::is_token_str;

/// A request method. Method names are case-sensitive (RFC 3261 section
/// 7.1), so `message` is `Other("message")`, not [`Method::Message`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// RFC 3261: binds a contact to an address of record.
    Register,
    /// RFC 3428: a pager-mode instant message.
    Message,
    /// RFC 6665: asks for notifications of an event.
    Subscribe,
    /// RFC 6665: reports an event's state.
    Notify,
    /// RFC 3261: asks for capabilities.
    Options,
    /// RFC 3261: starts a session.
    Invite,
    /// RFC 3261: acknowledges a final response to INVITE.
    Ack,
    /// RFC 3261: ends a session.
    Bye,
    /// RFC 3261: cancels a pending request.
    Cancel,
    /// RFC 3903: publishes event state (presence).
    Publish,
    /// RFC 6086: mid-session information.
    Info,
    /// RFC 3311: changes session parameters before the answer.
    Update,
    /// RFC 3515: asks the recipient to contact a third party.
    Refer,
    /// RFC 3262: acknowledges a reliable provisional response.
    Prack,
    /// Any other token. Build it with [`Method::parse`] so that a known
    /// name is never held here (equality is structural).
    Other(String),
}

const KNOWN: [(Method, &str); 14] = [
    (Method::Register, "REGISTER"),
    (Method::Message, "MESSAGE"),
    (Method::Subscribe, "SUBSCRIBE"),
    (Method::Notify, "NOTIFY"),
    (Method::Options, "OPTIONS"),
    (Method::Invite, "INVITE"),
    (Method::Ack, "ACK"),
    (Method::Bye, "BYE"),
    (Method::Cancel, "CANCEL"),
    (Method::Publish, "PUBLISH"),
    (Method::Info, "INFO"),
    (Method::Update, "UPDATE"),
    (Method::Refer, "REFER"),
    (Method::Prack, "PRACK"),
];

impl Method {
    /// The method named `s`, or `None` when `s` is not a token.
    pub fn parse(s: &str) -> Option<Method> {
        if let Some((m, _)) = KNOWN.iter().find(|(_, name)| *name == s) {
            return Some(m.clone());
        }
        is_token_str(s).then(|| Method::Other(s.to_owned()))
    }

    /// The name as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Other(s) => s,
            known => KNOWN
                .iter()
                .find(|(m, _)| m == known)
                .map_or("", |(_, name)| name),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (m, name) in KNOWN.iter() {
            assert_eq!(Method::parse(name).as_ref(), Some(m));
            assert_eq!(m.as_str(), *name);
        }
        assert_eq!(
            Method::parse("message"),
            Some(Method::Other("message".into()))
        );
        assert_eq!(Method::parse("FOO").unwrap().to_string(), "FOO");
        assert_eq!(Method::parse(""), None);
        assert_eq!(Method::parse("A B"), None);
        assert_eq!(Method::parse("A:B"), None);
    }
}
