//! Namespace bindings in force: those a stream header declares (inherited by
//! every stanza) and, in the writer, the prefixes it may use.

use std::borrow::Cow;

use super::ns;

/// A default namespace and prefix bindings, as declared on a stream header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    default: Cow<'static, str>,
    prefixes: Vec<(String, Cow<'static, str>)>,
}

impl Scope {
    /// A scope with only a default namespace (`""` for none).
    pub fn new(default_ns: impl Into<Cow<'static, str>>) -> Self {
        Scope {
            default: default_ns.into(),
            prefixes: Vec::new(),
        }
    }

    /// The scope of a server-to-server stream as xfed writes it:
    /// `jabber:server` by default, `stream:` and `db:` prefixes.
    pub fn server() -> Self {
        Scope::new(ns::SERVER)
            .with_prefix("stream", ns::STREAM)
            .with_prefix("db", ns::DIALBACK)
    }

    /// Adds or replaces a prefix binding.
    pub fn with_prefix(mut self, prefix: &str, ns: impl Into<Cow<'static, str>>) -> Self {
        self.bind(Some(prefix), ns.into());
        self
    }

    pub(crate) fn bind(&mut self, prefix: Option<&str>, ns: Cow<'static, str>) {
        match prefix {
            None => self.default = ns,
            Some(p) => match self.prefixes.iter_mut().find(|(q, _)| q == p) {
                Some(slot) => slot.1 = ns,
                None => self.prefixes.push((p.to_owned(), ns)),
            },
        }
    }

    /// The namespace unprefixed elements are in.
    pub fn default_ns(&self) -> &str {
        &self.default
    }

    /// The namespace a prefix is bound to (`xml` is always bound).
    pub fn resolve(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(ns::XML);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, n)| n.as_ref())
    }

    /// A prefix bound to `ns`, for the writer.
    pub fn prefix_for(&self, ns: &str) -> Option<&str> {
        self.prefixes
            .iter()
            .find(|(_, n)| n == ns)
            .map(|(p, _)| p.as_str())
    }

    /// The declared prefixes, in declaration order.
    pub fn prefixes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.prefixes.iter().map(|(p, n)| (p.as_str(), n.as_ref()))
    }
}
