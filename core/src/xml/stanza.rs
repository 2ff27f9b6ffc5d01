//! A stanza as it arrived: its checked text and what routing reads of it,
//! with no element tree. A relay reads `to` and `from` here and writes the
//! text on as it came; a tree is built only where the content is needed.

use std::borrow::Cow;
use std::sync::Arc;

use smallvec::SmallVec;

use super::element::Element;
use super::error::{Error, ErrorKind};
use super::parse::{Field, Head};
use super::scan;
use super::scope::Scope;

/// Where a value lies: a span of the text when it needed no unescaping,
/// else its own copy.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Span(u32, u32),
    Owned(Box<str>),
}

/// One top-level element, checked by exactly the rules of the tree
/// reader (restricted XML, namespaces, references, limits), kept as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stanza {
    text: Box<str>,
    /// The bindings of the stream it arrived on, for [`Stanza::element`].
    scope: Arc<Scope>,
    ns: Cow<'static, str>,
    name: (u32, u32),
    values: [Option<Value>; 5],
    outer: bool,
}

impl Stanza {
    /// Checks `text`, one whole element, against the bindings of its
    /// stream.
    pub fn parse(text: &str, scope: Arc<Scope>, max_attributes: usize) -> Result<Self, Error> {
        if u32::try_from(text.len()).is_err() {
            return Err(Error::new(ErrorKind::LimitExceeded, "element over 4 GiB"));
        }
        let text: Box<str> = text.into();
        let head = scan::head(&text, &scope, max_attributes)?;
        let Head {
            ns,
            name,
            values,
            outer,
        } = head;
        let at = |part: &str| {
            let start = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
            (start as u32, (start + part.len()) as u32)
        };
        let name = at(name);
        let values = values.map(|v| {
            v.map(|v| match v {
                Cow::Borrowed(s) => {
                    let (a, b) = at(s);
                    Value::Span(a, b)
                }
                Cow::Owned(s) => Value::Owned(s.into_boxed_str()),
            })
        });
        Ok(Stanza {
            ns,
            name,
            values,
            outer,
            text,
            scope,
        })
    }

    /// The element as it arrived.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Namespace name of the element.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Local name of the element.
    pub fn name(&self) -> &str {
        self.span(self.name)
    }

    /// Whether the element is `name` in `ns`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns() == ns && self.name() == name
    }

    /// The unescaped `to` attribute.
    pub fn to(&self) -> Option<&str> {
        self.value(Field::To)
    }

    /// The unescaped `from` attribute.
    pub fn from(&self) -> Option<&str> {
        self.value(Field::From)
    }

    /// The unescaped `type` attribute.
    pub fn kind(&self) -> Option<&str> {
        self.value(Field::Type)
    }

    /// The unescaped `id` attribute.
    pub fn id(&self) -> Option<&str> {
        self.value(Field::Id)
    }

    /// The element's own `xml:lang`.
    pub fn lang(&self) -> Option<&str> {
        self.value(Field::Lang)
    }

    /// True when the text means the same in any stream whose default
    /// namespace plays the same part: no name uses a prefix that only the
    /// stream header declares, and nothing declares the stream's content
    /// namespace itself. Such a stanza can be written on as it is.
    pub fn self_contained(&self) -> bool {
        !self.outer
    }

    /// The element tree, for where the content is needed.
    pub fn element(&self) -> Result<Element, Error> {
        scan::element(&self.text, &self.scope, usize::MAX)
    }

    /// The direct children as translation reads them (namespace, name,
    /// `xml:lang`, the text directly inside), without a tree; what
    /// [`Stanza::element`]'s children would say.
    pub fn children(&self) -> Result<SmallVec<[Child<'_>; 4]>, Error> {
        scan::children(&self.text, &self.scope)
    }

    fn value(&self, field: Field) -> Option<&str> {
        match self.values[field as usize].as_ref()? {
            Value::Span(a, b) => Some(self.span((*a, *b))),
            Value::Owned(s) => Some(s),
        }
    }

    fn span(&self, (a, b): (u32, u32)) -> &str {
        self.text.get(a as usize..b as usize).unwrap_or_default()
    }
}

/// A direct child of a [`Stanza`], read from its text (or of an
/// [`Element`], [`Child::of`]): what translation reads of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child<'a> {
    /// Namespace name.
    pub ns: Cow<'a, str>,
    /// Local name.
    pub name: &'a str,
    /// Its own `xml:lang`.
    pub lang: Option<Cow<'a, str>>,
    /// The text directly inside it, unescaped, as [`Element::text`].
    pub text: Cow<'a, str>,
}

impl<'a> Child<'a> {
    /// What a tree's child says, borrowed from it.
    pub fn of(e: &'a Element) -> Self {
        Child {
            ns: Cow::Borrowed(e.ns()),
            name: e.name(),
            lang: e.lang().map(Cow::Borrowed),
            text: e.text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ns;

    #[test]
    fn children_read_as_the_tree_does() {
        let scope = Arc::new(Scope::server());
        let text = "<message xmlns:p='urn:p' to='a@b' xml:lang='en'>x<body xml:lang='fr'>a &amp; \
                    <![CDATA[<b>]]>c<i>skipped</i>d</body><p:thread xmlns:p='urn:t'>t</p:thread>\
                    <p:x/><active xmlns='http://jabber.org/protocol/chatstates'/></message>";
        let stanza = Stanza::parse(text, scope, 64).unwrap();
        let children = stanza.children().unwrap();
        let tree = stanza.element().unwrap();
        let kids: Vec<_> = tree.children().collect();
        assert_eq!(children.len(), 4);
        for (c, k) in children.iter().zip(kids) {
            assert_eq!(
                (c.ns.as_ref(), c.name, c.lang.as_deref(), c.text.as_ref()),
                (k.ns(), k.name(), k.lang(), k.text().as_ref())
            );
        }
        assert_eq!(children[0].text, "a & <b>cd");
        assert_eq!(children[0].ns, ns::SERVER);
        assert_eq!(children[1].ns, "urn:t");
        assert_eq!(children[2].ns, "urn:p");
        assert_eq!(children[3].ns, ns::CHATSTATES);
    }
}
