//! The stream header: the open `<stream:stream>` tag that frames a stream.

use super::element::{Attr, Element};
use super::ns;
use super::scope::Scope;

/// A stream header as read or to be written: its attributes and the
/// namespace bindings every stanza of the stream inherits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    qname: String,
    scope: Scope,
    // Attributes kept in an element so that lookups and setters are shared.
    attrs: Element,
}

impl StreamHeader {
    /// A header to write in `scope`; it is named `stream:stream` when the
    /// scope binds a prefix to the streams namespace, `stream` otherwise
    /// (declaring the streams namespace as default is the caller's choice).
    pub fn new(scope: Scope) -> Self {
        let qname = match scope.prefix_for(ns::STREAM) {
            Some(p) => format!("{p}:stream"),
            None => "stream".to_owned(),
        };
        StreamHeader {
            qname,
            scope,
            attrs: Element::new(ns::STREAM, "stream"),
        }
    }

    /// A header read from the wire; `root` is the resolved stream element.
    pub(crate) fn parsed(qname: String, scope: Scope, root: Element) -> Self {
        StreamHeader {
            qname,
            scope,
            attrs: root,
        }
    }

    /// The qualified name as written (`stream:stream`), which the closing
    /// tag must repeat.
    pub fn qname(&self) -> &str {
        &self.qname
    }

    /// Namespace bindings declared on the header.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The content namespace (`jabber:server` on s2s streams).
    pub fn default_ns(&self) -> &str {
        self.scope.default_ns()
    }

    /// Attributes other than namespace declarations.
    pub fn attrs(&self) -> &[Attr] {
        self.attrs.attrs()
    }

    /// An unprefixed attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.attr(name)
    }

    /// Builder: sets an unprefixed attribute.
    pub fn with_attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attrs.set_attr(name, value);
        self
    }

    /// Builder: sets `xml:lang`.
    pub fn with_lang(mut self, lang: impl Into<String>) -> Self {
        self.attrs.set_attr_ns(ns::XML, "lang", lang);
        self
    }

    /// `to`: the domain the initiator wants.
    pub fn to(&self) -> Option<&str> {
        self.attr("to")
    }

    /// `from`: the domain the sender claims.
    pub fn from(&self) -> Option<&str> {
        self.attr("from")
    }

    /// `id`: the stream id (response headers only).
    pub fn id(&self) -> Option<&str> {
        self.attr("id")
    }

    /// `version`; absent means a pre-1.0 peer.
    pub fn version(&self) -> Option<&str> {
        self.attr("version")
    }

    /// `xml:lang`.
    pub fn lang(&self) -> Option<&str> {
        self.attrs.lang()
    }
}
