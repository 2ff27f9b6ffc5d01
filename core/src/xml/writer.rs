//! Serialization of elements and stream headers.
//!
//! Output uses single-quoted attributes, the prefixes the enclosing scope
//! binds (so `db:result` keeps its conventional prefix, which some peers
//! require), and a default-namespace declaration wherever an element leaves
//! the namespace of its parent.

use super::element::{Element, Node};
use super::escape::{escape_attr, escape_text};
use super::header::StreamHeader;
use super::ns;
use super::scope::Scope;

impl Element {
    /// Appends this element as it must be written inside `scope`.
    pub fn write(&self, scope: &Scope, out: &mut Vec<u8>) {
        write_element(self, scope, scope.default_ns(), out)
    }

    /// This element as a standalone document fragment (no inherited scope).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&Scope::default(), &mut out);
        out
    }

    /// Appends this element as the root of a document that declares the
    /// prefixes of `prefixes` on it, so that its descendants in those
    /// namespaces are written with them (`<rpid:busy/>` rather than
    /// `<busy xmlns='...'/>`): the conventional prefixes of a format, for
    /// readers that match them literally. The default namespace of
    /// `prefixes` is not used.
    pub fn write_with_prefixes(&self, prefixes: &Scope, out: &mut Vec<u8>) {
        write_tree(self, prefixes, "", true, out)
    }
}

fn write_element(e: &Element, scope: &Scope, default_ns: &str, out: &mut Vec<u8>) {
    write_tree(e, scope, default_ns, false, out)
}

/// Writes `e` inside `scope`; `declare`: on the root, declare the scope's
/// prefixes first.
fn write_tree(e: &Element, scope: &Scope, default_ns: &str, declare: bool, out: &mut Vec<u8>) {
    // Prefixes a child could inherit from the scope but that this element
    // re-binds for an attribute would change its meaning; generated
    // prefixes therefore avoid every prefix the scope declares.
    let prefix = if e.ns() == default_ns {
        None
    } else if e.ns() == ns::XML {
        // Bound by definition, and never allowed as a default namespace.
        Some("xml")
    } else {
        scope.prefix_for(e.ns())
    };
    let start = out.len();
    out.push(b'<');
    if let Some(p) = prefix {
        out.extend_from_slice(p.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(e.name().as_bytes());
    let inner_default = if prefix.is_none() && e.ns() != default_ns {
        out.extend_from_slice(b" xmlns='");
        escape_attr(e.ns(), out);
        out.push(b'\'');
        e.ns()
    } else {
        default_ns
    };
    if declare {
        for (p, n) in scope.prefixes() {
            out.extend_from_slice(b" xmlns:");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"='");
            escape_attr(n, out);
            out.push(b'\'');
        }
    }
    let mut generated = 0usize;
    for a in e.attrs() {
        out.push(b' ');
        match a.ns() {
            "" => {}
            ns::XML => out.extend_from_slice(b"xml:"),
            other => match scope.prefix_for(other) {
                Some(p) => {
                    out.extend_from_slice(p.as_bytes());
                    out.push(b':');
                }
                None => {
                    let p = fresh_prefix(scope, &mut generated);
                    out.extend_from_slice(format!("xmlns:{p}='").as_bytes());
                    escape_attr(other, out);
                    out.extend_from_slice(format!("' {p}:").as_bytes());
                }
            },
        }
        out.extend_from_slice(a.name().as_bytes());
        out.extend_from_slice(b"='");
        escape_attr(a.value(), out);
        out.push(b'\'');
    }
    if e.nodes().is_empty() {
        out.extend_from_slice(b"/>");
        return;
    }
    out.push(b'>');
    for node in e.nodes() {
        match node {
            Node::Text(t) => escape_text(t, out),
            Node::Element(child) => write_element(child, scope, inner_default, out),
        }
    }
    // The end tag repeats the start tag's qualified name.
    let name_end = start + 1 + prefix.map_or(0, |p| p.len() + 1) + e.name().len();
    out.extend_from_slice(b"</");
    out.extend_from_within(start + 1..name_end);
    out.push(b'>');
}

fn fresh_prefix(scope: &Scope, n: &mut usize) -> String {
    loop {
        let p = format!("ns{n}");
        *n += 1;
        if scope.resolve(&p).is_none() {
            return p;
        }
    }
}

impl StreamHeader {
    /// Appends the XML declaration and this stream header (an open tag).
    pub fn write(&self, out: &mut Vec<u8>) {
        let scope = self.scope();
        out.extend_from_slice(b"<?xml version='1.0'?>");
        out.push(b'<');
        out.extend_from_slice(self.qname().as_bytes());
        if !scope.default_ns().is_empty() {
            out.extend_from_slice(b" xmlns='");
            escape_attr(scope.default_ns(), out);
            out.push(b'\'');
        }
        for (p, n) in scope.prefixes() {
            out.extend_from_slice(b" xmlns:");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"='");
            escape_attr(n, out);
            out.push(b'\'');
        }
        for a in self.attrs() {
            out.push(b' ');
            if a.ns() == ns::XML {
                out.extend_from_slice(b"xml:");
            }
            out.extend_from_slice(a.name().as_bytes());
            out.extend_from_slice(b"='");
            escape_attr(a.value(), out);
            out.push(b'\'');
        }
        out.push(b'>');
    }

    /// Appends the closing tag of this stream.
    pub fn write_end(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"</");
        out.extend_from_slice(self.qname().as_bytes());
        out.push(b'>');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_in_server_scope_uses_declared_prefixes() {
        let scope = Scope::server();
        let msg = Element::new(ns::SERVER, "message")
            .with_attr("to", "a@b")
            .with_child(Element::new(ns::SERVER, "body").with_text("x < y & 'z'"));
        let mut out = Vec::new();
        msg.write(&scope, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<message to='a@b'><body>x &lt; y &amp; 'z'</body></message>"
        );
        let db = Element::new(ns::DIALBACK, "result")
            .with_attr("from", "a")
            .with_text("key");
        let mut out = Vec::new();
        db.write(&scope, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<db:result from='a'>key</db:result>"
        );
    }

    #[test]
    fn namespace_changes_are_declared() {
        let iq = Element::new(ns::SERVER, "iq")
            .with_child(Element::new(ns::PING, "ping"))
            .with_child(Element::new("", "bare").with_child(Element::new("", "inner")));
        let mut out = Vec::new();
        iq.write(&Scope::server(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<iq><ping xmlns='urn:xmpp:ping'/><bare xmlns=''><inner/></bare></iq>"
        );
    }

    #[test]
    fn a_root_declares_the_prefixes_its_descendants_use() {
        let scope = Scope::new("").with_prefix("r", "urn:r");
        let doc = Element::new("urn:d", "doc")
            .with_child(Element::new("urn:r", "a").with_child(Element::new("urn:r", "b")))
            .with_child(Element::new("urn:d", "c").with_attr_ns("urn:r", "k", "v"));
        let mut out = Vec::new();
        doc.write_with_prefixes(&scope, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "<doc xmlns='urn:d' xmlns:r='urn:r'><r:a><r:b/></r:a><c r:k='v'/></doc>"
        );
        assert_eq!(crate::xml::parse_element(&text).unwrap(), doc);
    }

    #[test]
    fn foreign_attribute_namespaces_get_a_fresh_prefix() {
        let e = Element::new("u", "a")
            .with_attr_ns("urn:x", "k", "v")
            .with_attr_ns(ns::XML, "lang", "en");
        let s = String::from_utf8(e.to_bytes()).unwrap();
        assert_eq!(
            s,
            "<a xmlns='u' xmlns:ns0='urn:x' ns0:k='v' xml:lang='en'/>"
        );
    }
}
