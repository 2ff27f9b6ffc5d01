//! Turns one complete, UTF-8-validated construct (a stream header's open
//! tag or a whole top-level element) into its namespace-resolved form.
//! quick-xml tokenizes; namespace resolution and reference expansion are
//! ours so that a stanza resolves against the bindings of its stream header.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use quick_xml::events::{BytesStart, Event};
use smallvec::SmallVec;

use super::element::Element;
use super::error::{Error, ErrorKind};
use super::escape::{is_name, unescape_attr, unescape_text};
use super::header::StreamHeader;
use super::ns;
use super::scope::Scope;

fn malformed(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotWellFormed, detail)
}

fn quick(e: quick_xml::Error) -> Error {
    malformed(format!("XML syntax: {e}"))
}

/// The `&str` of `base` that `part` (a sub-slice handed back by quick-xml)
/// covers, without validating UTF-8 again.
#[allow(clippy::needless_lifetimes)]
fn sub<'a>(base: &'a str, part: &[u8]) -> Result<&'a str, Error> {
    let off = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    match base.get(off..off.wrapping_add(part.len())) {
        Some(s) if s.as_ptr() == part.as_ptr() => Ok(s),
        // quick-xml hands back borrowed sub-slices of complete tokens, which
        // start and end on character boundaries; anything else is refused.
        _ => Err(malformed("token not on a character boundary")),
    }
}

/// A start tag with more attributes than `max`, declarations included.
pub(super) fn too_many_attributes(max: usize) -> Error {
    Error::new(
        ErrorKind::LimitExceeded,
        format!("more than {max} attributes on one element"),
    )
}

/// Splits a qualified name into prefix and local part, checking both.
pub(super) fn split_qname(q: &str) -> Result<(Option<&str>, &str), Error> {
    let (prefix, local) = match q.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, q),
    };
    let ok = |s: &str| is_name(s) && !s.contains(':');
    if !ok(local) || !prefix.is_none_or(ok) {
        return Err(malformed(format!("'{q}' is not a qualified name")));
    }
    Ok((prefix, local))
}

/// Namespace declarations of open elements, innermost last, over a base
/// scope. `index` maps each declared prefix to the positions of its
/// declarations in `decls`, so a lookup costs the same however many
/// declarations are open.
struct Bindings<'s, 'a> {
    base: &'s Scope,
    max_attributes: usize,
    decls: Vec<(Option<&'a str>, Cow<'static, str>)>,
    index: HashMap<Option<&'a str>, SmallVec<[usize; 2]>>,
    frames: Vec<usize>,
}

/// Above this many attributes on one element, duplicates are found with a
/// hash set instead of by comparing each with the earlier ones.
const LINEAR_DUPLICATE_CHECK: usize = 8;

impl<'s, 'a> Bindings<'s, 'a> {
    fn new(base: &'s Scope, max_attributes: usize) -> Self {
        Bindings {
            base,
            max_attributes,
            decls: Vec::new(),
            index: HashMap::new(),
            frames: Vec::new(),
        }
    }

    fn resolve(&self, prefix: Option<&str>) -> Result<&str, Error> {
        if let Some(&i) = self.index.get(&prefix).and_then(|v| v.last()) {
            return Ok(&self.decls[i].1);
        }
        match prefix {
            None => Ok(self.base.default_ns()),
            Some(p) => self
                .base
                .resolve(p)
                .ok_or_else(|| malformed(format!("prefix '{p}' is not bound"))),
        }
    }

    fn declare(&mut self, prefix: Option<&'a str>, ns: Cow<'static, str>) {
        self.index.entry(prefix).or_default().push(self.decls.len());
        self.decls.push((prefix, ns));
    }

    fn pop(&mut self) {
        let Some(n) = self.frames.pop() else { return };
        for (prefix, _) in self.decls.drain(n..) {
            if let Some(v) = self.index.get_mut(&prefix) {
                v.pop();
                if v.is_empty() {
                    self.index.remove(&prefix);
                }
            }
        }
    }

    /// Opens an element: records its declarations and returns its tag
    /// with the name and attributes resolved.
    fn open(&mut self, base: &'a str, tag: &BytesStart<'_>) -> Result<Tag<'a>, Error> {
        self.frames.push(self.decls.len());
        let mut plain: SmallVec<[(&'a str, Cow<'a, str>); 8]> = SmallVec::new();
        for (count, attr) in tag.attributes().enumerate() {
            if count >= self.max_attributes {
                return Err(too_many_attributes(self.max_attributes));
            }
            let attr = attr.map_err(|e| malformed(format!("attribute: {e}")))?;
            let key = sub(base, attr.key.as_ref())?;
            let raw = match &attr.value {
                Cow::Borrowed(v) => sub(base, v)?,
                Cow::Owned(_) => return Err(malformed("attribute value not in the input")),
            };
            let value = unescape_attr(raw)?;
            if key == "xmlns" {
                check_binding(None, &value)?;
                self.declare(None, ns::intern(&value));
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                check_binding(Some(p), &value)?;
                self.declare(Some(p), ns::intern(&value));
            } else {
                plain.push((key, value));
            }
        }
        let qname = sub(base, tag.name().as_ref())?;
        let (prefix, local) = split_qname(qname)?;
        let mut open = Tag {
            ns: ns::intern(self.resolve(prefix)?),
            name: local,
            attrs: SmallVec::new(),
        };
        // Two different qualified names can resolve to one expanded name
        // (`a:x` and `b:x` with `a` and `b` bound to one namespace).
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        let hashed = plain.len() > LINEAR_DUPLICATE_CHECK;
        for (key, value) in plain {
            let (prefix, local) = split_qname(key)?;
            let ans = match prefix {
                None => "",
                Some(p) => self.resolve(Some(p))?,
            };
            let twice = if hashed {
                !seen.insert((ans, local))
            } else {
                open.attrs.iter().any(|(n, l, _)| *l == local && n == ans)
            };
            if twice {
                return Err(malformed(format!("attribute '{key}' given twice")));
            }
            open.attrs.push((ns::intern(ans), local, value));
        }
        Ok(open)
    }
}

/// Namespace, local name and unescaped value of an attribute.
pub(super) type ResolvedAttr<'a> = (Cow<'static, str>, &'a str, Cow<'a, str>);

/// A start tag with its names resolved, borrowed from the input.
pub(super) struct Tag<'a> {
    pub(super) ns: Cow<'static, str>,
    pub(super) name: &'a str,
    pub(super) attrs: SmallVec<[ResolvedAttr<'a>; 8]>,
}

impl Tag<'_> {
    fn element(self) -> Element {
        let mut e = Element::new(self.ns, ns::intern_name(self.name));
        for (ans, local, value) in self.attrs {
            e.push_attr_unchecked(ans, ns::intern_name(local), value.into_owned());
        }
        e
    }
}

/// The element tree under construction: open elements, innermost last.
#[derive(Default)]
pub(super) struct Tree {
    stack: Vec<Element>,
}

impl Tree {
    pub(super) fn open(&mut self, tag: Tag<'_>) {
        self.stack.push(tag.element());
    }

    pub(super) fn text(&mut self, text: &str) {
        if let Some(top) = self.stack.last_mut() {
            top.push_text(text);
        }
    }

    /// Ends the innermost open element; the outermost one when done.
    pub(super) fn close(&mut self) -> Option<Element> {
        let done = self.stack.pop()?;
        match self.stack.last_mut() {
            Some(parent) => {
                parent.push_child(done);
                None
            }
            None => Some(done),
        }
    }
}

/// The attributes of a stanza's own tag that routing reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    To,
    From,
    Type,
    Id,
    Lang,
}

/// A checked element's namespace, name and routing attributes, borrowed
/// from its text.
#[derive(Debug)]
pub(super) struct Head<'a> {
    pub(super) ns: Cow<'static, str>,
    pub(super) name: &'a str,
    /// Indexed by [`Field`].
    pub(super) values: [Option<Cow<'a, str>>; 5],
    /// Some name uses a prefix the stream header binds.
    pub(super) outer: bool,
}

pub(super) fn check_binding(prefix: Option<&str>, ns: &str) -> Result<(), Error> {
    let bad = match prefix {
        Some("xmlns") => true,
        Some("xml") => ns != ns::XML,
        Some(p) => ns.is_empty() || ns == ns::XML || !is_name(p) || p.contains(':'),
        None => ns == ns::XML,
    };
    if bad || ns == ns::XMLNS {
        return Err(malformed(format!(
            "illegal namespace declaration {}='{ns}'",
            prefix.map_or("xmlns".to_owned(), |p| format!("xmlns:{p}"))
        )));
    }
    Ok(())
}

fn reader(input: &str) -> quick_xml::Reader<&[u8]> {
    quick_xml::Reader::from_reader(input.as_bytes())
}

/// Parses one whole element (a stanza) against the stream's bindings:
/// tokens from quick-xml, namespaces and references resolved and checked
/// here.
pub fn element(input: &str, scope: &Scope, max_attributes: usize) -> Result<Element, Error> {
    let mut r = reader(input);
    let mut b = Bindings::new(scope, max_attributes);
    let mut tree = Tree::default();
    // The character data since the last markup: text and references lie
    // next to each other in the input, so one span covers them.
    let mut text: Option<(usize, usize)> = None;
    loop {
        let ev = r.read_event().map_err(quick)?;
        if !matches!(ev, Event::Text(_) | Event::GeneralRef(_)) {
            if let Some((start, end)) = text.take() {
                if !tree.stack.is_empty() {
                    tree.text(&unescape_text(&input[start..end])?);
                }
            }
        }
        match ev {
            Event::Start(tag) => tree.open(b.open(input, &tag)?),
            Event::Empty(tag) => {
                let tag = b.open(input, &tag)?;
                b.pop();
                tree.open(tag);
                if let Some(done) = tree.close() {
                    return Ok(done);
                }
            }
            Event::End(_) => {
                b.pop();
                if tree.stack.is_empty() {
                    return Err(malformed("unbalanced end tag"));
                }
                if let Some(done) = tree.close() {
                    return Ok(done);
                }
            }
            Event::Text(t) => {
                let piece = span(input, sub(input, &t)?);
                text = Some(extend(text, piece));
            }
            Event::GeneralRef(r) => {
                let (start, end) = span(input, sub(input, &r)?);
                // The span takes in the '&' before and the ';' after.
                let piece = (start.saturating_sub(1), (end + 1).min(input.len()));
                if !input.is_char_boundary(piece.0) || !input.is_char_boundary(piece.1) {
                    return Err(malformed("token not on a character boundary"));
                }
                text = Some(extend(text, piece));
            }
            Event::CData(c) => {
                if !tree.stack.is_empty() {
                    tree.text(&normalize_eol(sub(input, &c)?));
                }
            }
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) | Event::Decl(_) => {
                return Err(Error::new(
                    ErrorKind::RestrictedXml,
                    "comment, processing instruction or DTD inside a stanza",
                ))
            }
            Event::Eof => return Err(malformed("element not closed")),
        }
    }
}

/// Where `part`, a sub-slice of `base`, lies in it.
fn span(base: &str, part: &str) -> (usize, usize) {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    (start, start + part.len())
}

fn extend(run: Option<(usize, usize)>, (start, end): (usize, usize)) -> (usize, usize) {
    match run {
        Some((first, _)) => (first.min(start), end),
        None => (start, end),
    }
}

/// XML 1.0 end-of-line handling for CDATA, where references are not expanded.
pub(super) fn normalize_eol(s: &str) -> Cow<'_, str> {
    if s.contains('\r') {
        Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Checks `<?...?>` before the stream header: only an XML declaration
/// naming UTF-8 (or no encoding) passes.
pub fn declaration(input: &str) -> Result<(), Error> {
    let is_decl = input
        .strip_prefix("<?xml")
        .is_some_and(|rest| rest.starts_with([' ', '\t', '\r', '\n']));
    if !is_decl {
        return Err(Error::new(
            ErrorKind::RestrictedXml,
            "processing instruction",
        ));
    }
    let Event::Decl(decl) = reader(input).read_event().map_err(quick)? else {
        return Err(malformed("malformed XML declaration"));
    };
    decl.version().map_err(quick)?;
    match decl.encoding() {
        None => Ok(()),
        Some(Ok(enc)) if enc.eq_ignore_ascii_case(b"utf-8") => Ok(()),
        Some(Ok(enc)) => Err(Error::new(
            ErrorKind::UnsupportedEncoding,
            format!(
                "encoding '{}' declared: only UTF-8 is supported",
                String::from_utf8_lossy(&enc)
            ),
        )),
        Some(Err(e)) => Err(malformed(format!("XML declaration: {e}"))),
    }
}

/// Parses the open tag of a stream header.
pub fn header(input: &str, max_attributes: usize) -> Result<StreamHeader, Error> {
    let mut r = reader(input);
    let tag = match r.read_event().map_err(quick)? {
        Event::Start(tag) => tag,
        Event::Empty(_) => {
            return Err(Error::new(
                ErrorKind::NotAStream,
                "the stream element is empty",
            ))
        }
        _ => return Err(malformed("expected a stream header")),
    };
    let base = Scope::default();
    let mut b = Bindings::new(&base, max_attributes);
    let e = b.open(input, &tag)?.element();
    if e.name() != "stream" {
        return Err(Error::new(
            ErrorKind::NotAStream,
            format!("root element is '{}', not a stream", e.name()),
        ));
    }
    if e.ns() != ns::STREAM {
        return Err(Error::new(
            ErrorKind::WrongStreamNamespace,
            format!("stream element in namespace '{}'", e.ns()),
        ));
    }
    let mut scope = Scope::default();
    for (prefix, ns) in b.decls {
        scope.bind(prefix, ns);
    }
    let qname = sub(input, tag.name().as_ref())?.to_owned();
    Ok(StreamHeader::parsed(qname, scope, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(input: &str, scope: &Scope) -> Result<Element, Error> {
        super::element(input, scope, 64)
    }

    fn header(input: &str) -> Result<StreamHeader, Error> {
        super::header(input, 64)
    }

    #[test]
    fn attributes_are_bounded_and_checked_in_linear_time() {
        let s = Scope::server();
        let many = |n: usize, dup: bool| {
            let mut x = String::from("<x");
            for i in 0..n {
                x.push_str(&format!(" a{}='1'", if dup && i == n - 1 { 0 } else { i }));
            }
            x + "/>"
        };
        assert_eq!(element(&many(64, false), &s).unwrap().attrs().len(), 64);
        assert_eq!(kind(element(&many(60, true), &s)), ErrorKind::NotWellFormed);
        assert_eq!(
            kind(element(&many(65, false), &s)),
            ErrorKind::LimitExceeded
        );
        // 23,000 attributes (219 KB) stop at the 65th, not after a scan of each.
        assert_eq!(
            kind(element(&many(23_000, false), &s)),
            ErrorKind::LimitExceeded
        );
        let decls: String = (0..65).map(|i| format!(" xmlns:p{i}='u{i}'")).collect();
        let e = super::header(
            &format!("<stream:stream xmlns:stream='{}'{decls}>", ns::STREAM),
            64,
        );
        assert_eq!(e.unwrap_err().kind(), ErrorKind::LimitExceeded);
    }

    #[test]
    fn inner_declarations_shadow_and_unwind() {
        let s = Scope::server();
        let e = element(
            "<x xmlns:p='u1' p:a='1'><y xmlns:p='u2' p:a='2'/><z p:a='3'/></x>",
            &s,
        )
        .unwrap();
        assert_eq!(e.attr_ns("u1", "a"), Some("1"));
        assert_eq!(
            e.child("jabber:server", "y").unwrap().attr_ns("u2", "a"),
            Some("2")
        );
        assert_eq!(
            e.child("jabber:server", "z").unwrap().attr_ns("u1", "a"),
            Some("3")
        );
        assert_eq!(
            kind(element("<x><y xmlns:p='u'/><z p:a='1'/></x>", &s)),
            ErrorKind::NotWellFormed
        );
    }

    fn kind(r: Result<Element, Error>) -> ErrorKind {
        r.unwrap_err().kind()
    }

    #[test]
    fn resolves_against_stream_scope() {
        let scope = Scope::server();
        let e = element(
            "<db:result from='a' to='b' xml:lang='en'>k<x xmlns='urn:x' y='1'/></db:result>",
            &scope,
        )
        .unwrap();
        assert!(e.is(ns::DIALBACK, "result"));
        assert_eq!(e.lang(), Some("en"));
        assert_eq!(e.text(), "k");
        let x = e.child("urn:x", "x").unwrap();
        assert_eq!(x.attr("y"), Some("1"));
        let m = element(
            "<message><body>a&amp;b<![CDATA[<c>]]></body></message>",
            &scope,
        )
        .unwrap();
        assert!(m.is(ns::SERVER, "message"));
        assert_eq!(m.child(ns::SERVER, "body").unwrap().text(), "a&b<c>");
    }

    #[test]
    fn namespace_errors() {
        let s = Scope::server();
        assert_eq!(kind(element("<foo:x/>", &s)), ErrorKind::NotWellFormed);
        assert_eq!(
            kind(element("<x foo:a='1'/>", &s)),
            ErrorKind::NotWellFormed
        );
        assert_eq!(
            kind(element("<x xmlns:p='' />", &s)),
            ErrorKind::NotWellFormed
        );
        assert_eq!(
            kind(element("<x xmlns:xmlns='u'/>", &s)),
            ErrorKind::NotWellFormed
        );
        assert_eq!(
            kind(element("<x xmlns:xml='u'/>", &s)),
            ErrorKind::NotWellFormed
        );
        assert_eq!(
            kind(element("<x xmlns:a='u' xmlns:b='u' a:k='1' b:k='2'/>", &s)),
            ErrorKind::NotWellFormed
        );
        assert_eq!(
            kind(element("<x a='1' a='2'/>", &s)),
            ErrorKind::NotWellFormed
        );
        assert_eq!(kind(element("<1x/>", &s)), ErrorKind::NotWellFormed);
        assert_eq!(kind(element("<a:b:c/>", &s)), ErrorKind::NotWellFormed);
        assert_eq!(
            kind(element("<a><b></a></b>", &s)),
            ErrorKind::NotWellFormed
        );
        assert_eq!(kind(element("<a>&foo;</a>", &s)), ErrorKind::RestrictedXml);
    }

    #[test]
    fn header_checks_namespace() {
        let h = header(
            "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b' version='1.0'>",
        )
        .unwrap();
        assert_eq!(h.to(), Some("b"));
        assert_eq!(h.default_ns(), ns::SERVER);
        assert_eq!(h.qname(), "stream:stream");
        let e = header("<stream:stream xmlns:stream='urn:wrong'>").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WrongStreamNamespace);
        let e = header("<html xmlns='http://etherx.jabber.org/streams'>").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAStream);
    }
}
