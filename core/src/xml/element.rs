//! The element tree stanzas are read into and built from.
//!
//! Names are namespace-resolved: layers above match on (namespace, name),
//! never on prefixes. Adjacent text is merged and empty text dropped, so two
//! trees that serialize the same compare equal.

use std::borrow::Cow;

use super::ns;

/// An attribute; `ns` is empty for the usual unprefixed attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    ns: Cow<'static, str>,
    name: Cow<'static, str>,
    value: String,
}

impl Attr {
    /// Namespace of the attribute, `""` when unprefixed.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Unescaped value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Unescaped character data (never empty, never next to other text).
    Text(String),
}

/// An XML element with its namespace, attributes and children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    ns: Cow<'static, str>,
    name: Cow<'static, str>,
    attrs: Vec<Attr>,
    nodes: Vec<Node>,
}

impl Element {
    /// An empty element named `name` in namespace `ns`.
    pub fn new(ns: impl Into<Cow<'static, str>>, name: impl Into<Cow<'static, str>>) -> Self {
        Element {
            ns: ns.into(),
            name: name.into(),
            attrs: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Namespace name.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Moves this element and its descendants from namespace `from` to
    /// `to` (a component stream's `jabber:component:accept` stanzas are
    /// the gateway's `jabber:server` ones, and back).
    pub fn move_ns(&mut self, from: &str, to: &'static str) {
        if self.ns == from {
            self.ns = Cow::Borrowed(to);
        }
        for node in &mut self.nodes {
            if let Node::Element(e) = node {
                e.move_ns(from, to);
            }
        }
    }

    /// Local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is `name` in namespace `ns`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// The value of an unprefixed attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    /// The value of an attribute in a namespace (`ns::XML` for `xml:lang`).
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name && a.ns == ns)
            .map(|a| a.value.as_str())
    }

    /// `xml:lang`, if present.
    pub fn lang(&self) -> Option<&str> {
        self.attr_ns(ns::XML, "lang")
    }

    /// All attributes, in document order.
    pub fn attrs(&self) -> &[Attr] {
        &self.attrs
    }

    /// Sets an unprefixed attribute, replacing any previous value.
    pub fn set_attr(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.set_attr_ns("", name, value)
    }

    /// Sets a namespaced attribute, replacing any previous value.
    pub fn set_attr_ns(
        &mut self,
        ns: impl Into<Cow<'static, str>>,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) {
        let (ns, name, value) = (ns.into(), name.into(), value.into());
        match self.attrs.iter_mut().find(|a| a.name == name && a.ns == ns) {
            Some(a) => a.value = value,
            None => self.attrs.push(Attr { ns, name, value }),
        }
    }

    /// Appends an attribute the caller knows is not there yet (the parser,
    /// which has checked for duplicates already).
    pub(super) fn push_attr_unchecked(
        &mut self,
        ns: Cow<'static, str>,
        name: Cow<'static, str>,
        value: String,
    ) {
        self.attrs.push(Attr { ns, name, value });
    }

    /// Removes an unprefixed attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let i = self
            .attrs
            .iter()
            .position(|a| a.name == name && a.ns.is_empty())?;
        Some(self.attrs.remove(i).value)
    }

    /// Builder form of [`Element::set_attr`].
    pub fn with_attr(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder form of [`Element::set_attr_ns`].
    pub fn with_attr_ns(
        mut self,
        ns: impl Into<Cow<'static, str>>,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Self {
        self.set_attr_ns(ns, name, value);
        self
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Element) {
        self.nodes.push(Node::Element(child));
    }

    /// Appends text, merged with text just before it; empty text is dropped.
    pub fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.nodes.last_mut() {
            Some(Node::Text(t)) => t.push_str(text),
            _ => self.nodes.push(Node::Text(text.to_owned())),
        }
    }

    /// Builder form of [`Element::push_child`].
    pub fn with_child(mut self, child: Element) -> Self {
        self.push_child(child);
        self
    }

    /// Builder form of [`Element::push_text`].
    pub fn with_text(mut self, text: &str) -> Self {
        self.push_text(text);
        self
    }

    /// Children in document order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Child elements in document order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element named `name` in `ns`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children().find(|c| c.is(ns, name))
    }

    /// Mutable access to the first child element named `name` in `ns`.
    pub fn child_mut(&mut self, ns: &str, name: &str) -> Option<&mut Element> {
        self.nodes.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.is(ns, name) => Some(e),
            _ => None,
        })
    }

    /// Direct character data, concatenated (borrowed when there is one piece).
    pub fn text(&self) -> Cow<'_, str> {
        let mut texts = self.nodes.iter().filter_map(|n| match n {
            Node::Text(t) => Some(t.as_str()),
            Node::Element(_) => None,
        });
        match (texts.next(), texts.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(one), None) => Cow::Borrowed(one),
            (Some(a), Some(b)) => {
                let mut s = String::from(a);
                s.push_str(b);
                texts.for_each(|t| s.push_str(t));
                Cow::Owned(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_merged_and_empty_text_dropped() {
        let mut a = Element::new("x", "a");
        a.push_text("");
        a.push_text("he");
        a.push_text("llo");
        assert_eq!(a.nodes().len(), 1);
        assert_eq!(a.text(), "hello");
        a.push_child(Element::new("x", "b"));
        a.push_text("!");
        assert_eq!(a.text(), "hello!");
        assert_eq!(a.children().count(), 1);
    }

    #[test]
    fn attributes_replace_and_remove() {
        let mut a = Element::new("x", "a")
            .with_attr("to", "1")
            .with_attr_ns(ns::XML, "lang", "en");
        a.set_attr("to", "2");
        assert_eq!(a.attr("to"), Some("2"));
        assert_eq!(a.lang(), Some("en"));
        assert_eq!(a.attr("lang"), None);
        assert_eq!(a.remove_attr("to").as_deref(), Some("2"));
        assert_eq!(a.attrs().len(), 1);
    }
}
