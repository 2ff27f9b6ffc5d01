//! The 25 stream error conditions of RFC 6120 section 4.9.3.

use std::fmt;

use crate::xml::{ns, Element, ErrorKind};

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

impl From<ErrorKind> for StreamCondition {
    /// The stream error RFC 6120 section 4.9.3 assigns to each way an XML
    /// stream can fail; the one place XML errors meet XMPP conditions.
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NotWellFormed => StreamCondition::NotWellFormed,
            ErrorKind::RestrictedXml => StreamCondition::RestrictedXml,
            ErrorKind::LimitExceeded => StreamCondition::PolicyViolation,
            ErrorKind::NotAStream => StreamCondition::BadFormat,
            ErrorKind::WrongStreamNamespace => StreamCondition::InvalidNamespace,
            ErrorKind::UnsupportedEncoding => StreamCondition::UnsupportedEncoding,
        }
    }
}

/// A stream error as sent or received: condition and optional text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    /// The defined condition.
    pub condition: StreamCondition,
    /// Human-readable detail (English), for the peer's log.
    pub text: Option<String>,
}

impl StreamError {
    /// An error with explanatory text.
    pub fn new(condition: StreamCondition, text: impl Into<String>) -> Self {
        StreamError {
            condition,
            text: Some(text.into()),
        }
    }

    /// The `<stream:error/>` element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::STREAM, "error")
            .with_child(Element::new(ns::STREAMS, self.condition.as_str()));
        if let Some(text) = &self.text {
            e.push_child(
                Element::new(ns::STREAMS, "text")
                    .with_attr_ns(ns::XML, "lang", "en")
                    .with_text(text),
            );
        }
        e
    }

    /// Reads a received `<stream:error/>`; an unknown or missing condition
    /// is `undefined-condition`, as RFC 6120 section 4.9.3.21 says.
    pub fn from_element(e: &Element) -> Option<Self> {
        if !e.is(ns::STREAM, "error") {
            return None;
        }
        let mut condition = None;
        let mut text = None;
        for c in e.children().filter(|c| c.ns() == ns::STREAMS) {
            if c.name() == "text" {
                text = Some(c.text().into_owned());
            } else if condition.is_none() {
                condition = StreamCondition::from_name(c.name());
            }
        }
        Some(StreamError {
            condition: condition.unwrap_or(StreamCondition::UndefinedCondition),
            text,
        })
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(t) => write!(f, "{} ({t})", self.condition),
            None => write!(f, "{}", self.condition),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_round_trip() {
        let err = StreamError::new(StreamCondition::HostUnknown, "no such domain");
        let back = StreamError::from_element(&err.to_element()).unwrap();
        assert_eq!(back, err);
        let odd =
            Element::new(ns::STREAM, "error").with_child(Element::new(ns::STREAMS, "made-up"));
        assert_eq!(
            StreamError::from_element(&odd).unwrap().condition,
            StreamCondition::UndefinedCondition
        );
    }

    #[test]
    fn twenty_five_conditions_round_trip() {
        assert_eq!(StreamCondition::ALL.len(), 25);
        for c in StreamCondition::ALL {
            assert_eq!(StreamCondition::from_name(c.as_str()), Some(*c));
        }
        assert_eq!(StreamCondition::from_name("see-other-hosts"), None);
    }
}
