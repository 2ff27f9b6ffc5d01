//! The 25 stream error conditions of RFC 6120 section 4.9.3.

use std::fmt;

macro_rules! conditions {
    ($($variant:ident => $name:literal,)*) => {
        /// A defined stream error condition; every fatal stream problem is
        /// answered with one of these before the stream is closed.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum StreamCondition {
            $(#[doc = concat!("`<", $name, "/>`")] $variant,)*
        }

        impl StreamCondition {
            /// Every condition, in RFC order.
            pub const ALL: &'static [StreamCondition] = &[$(StreamCondition::$variant,)*];

            /// The element name in `urn:ietf:params:xml:ns:xmpp-streams`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(StreamCondition::$variant => $name,)*
                }
            }

            /// Reads a condition element name; `None` for names RFC 6120 does not define.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(StreamCondition::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

conditions! {
    BadFormat => "bad-format",
    BadNamespacePrefix => "bad-namespace-prefix",
    Conflict => "conflict",
    ConnectionTimeout => "connection-timeout",
    HostGone => "host-gone",
    HostUnknown => "host-unknown",
    ImproperAddressing => "improper-addressing",
    InternalServerError => "internal-server-error",
    InvalidFrom => "invalid-from",
    InvalidNamespace => "invalid-namespace",
    InvalidXml => "invalid-xml",
    NotAuthorized => "not-authorized",
    NotWellFormed => "not-well-formed",
    PolicyViolation => "policy-violation",
    RemoteConnectionFailed => "remote-connection-failed",
    Reset => "reset",
    ResourceConstraint => "resource-constraint",
    RestrictedXml => "restricted-xml",
    SeeOtherHost => "see-other-host",
    SystemShutdown => "system-shutdown",
    UndefinedCondition => "undefined-condition",
    UnsupportedEncoding => "unsupported-encoding",
    UnsupportedFeature => "unsupported-feature",
    UnsupportedStanzaType => "unsupported-stanza-type",
    UnsupportedVersion => "unsupported-version",
}

impl fmt::Display for StreamCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_five_conditions_round_trip() {
        assert_eq!(StreamCondition::ALL.len(), 25);
        for c in StreamCondition::ALL {
            assert_eq!(StreamCondition::from_name(c.as_str()), Some(*c));
        }
        assert_eq!(StreamCondition::from_name("see-other-hosts"), None);
    }
}
