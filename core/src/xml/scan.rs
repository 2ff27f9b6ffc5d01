//! The raw reader's one pass over a stanza: every tag, name, attribute,
//! reference and namespace binding checked by the rules of
//! [`super::parse::element`], and the outermost tag's routing attributes
//! kept, borrowed from the text. No tokenizer and no tree: markup is found
//! with `memchr`, names and values are slices of the input.
//!
//! The stream reader has already checked the text as UTF-8 and XML
//! characters, refused comments, processing instructions and DTDs, and
//! bounded its size and depth; this pass covers the rest.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use smallvec::SmallVec;

use super::element::Element;
use super::error::{Error, ErrorKind};
use super::escape::{check_closed, check_text, unescape_attr, unescape_text};
use super::ns;
use super::parse::{
    check_binding, normalize_eol, split_qname, too_many_attributes, Field, Head, Tag, Tree,
};
use super::scope::Scope;
use super::stanza::Child;

fn malformed(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotWellFormed, detail)
}

fn not_closed() -> Error {
    malformed("element not closed")
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Checks one whole element and returns its head.
pub(super) fn head<'a>(
    text: &'a str,
    scope: &Scope,
    max_attributes: usize,
) -> Result<Head<'a>, Error> {
    let mut pass = Pass::new(text, scope, max_attributes, Build::Head(None));
    pass.run()?;
    match pass.build {
        Build::Head(Some(mut head)) => {
            head.outer = pass.outer;
            Ok(head)
        }
        _ => Err(not_closed()),
    }
}

/// Checks one whole element and builds its tree, in the same pass.
pub(super) fn element(text: &str, scope: &Scope, max_attributes: usize) -> Result<Element, Error> {
    let mut pass = Pass::new(
        text,
        scope,
        max_attributes,
        Build::Tree(Tree::default(), None),
    );
    pass.run()?;
    match pass.build {
        Build::Tree(_, Some(done)) => Ok(done),
        _ => Err(not_closed()),
    }
}

/// The direct children of one element the pass has checked (a
/// [`super::Stanza`]'s text), read without building a tree: for each, its
/// namespace, name, `xml:lang` and the text directly inside it, as
/// [`Element::text`] reads them. Relies on the check: nothing is checked
/// again, and grandchildren are only skipped.
pub(super) fn children<'a>(
    text: &'a str,
    scope: &'a Scope,
) -> Result<SmallVec<[Child<'a>; 4]>, Error> {
    let bytes = text.as_bytes();
    let mut out = SmallVec::new();
    // The element's own tag: its declarations bind its children's names.
    let gt = 1 + tag_end(&bytes[1..]).ok_or_else(not_closed)?;
    let (tag, empty) = start_tag_parts(&text[1..gt]);
    if empty {
        return Ok(out);
    }
    let own = attributes(tag)?.decls;
    let mut pos = gt + 1;
    loop {
        let lt = pos + memchr::memchr(b'<', &bytes[pos..]).ok_or_else(not_closed)?;
        match bytes.get(lt + 1) {
            // The element's end tag.
            Some(b'/') => return Ok(out),
            Some(b'!') => pos = cdata_after(bytes, lt)?.1,
            _ => {
                let gt = lt + 1 + tag_end(&bytes[lt + 1..]).ok_or_else(not_closed)?;
                let (tag, empty) = start_tag_parts(&text[lt + 1..gt]);
                let Read { qname, decls, lang } = attributes(tag)?;
                let (prefix, name) = split_qname(qname)?;
                let bound = |d: &Declarations<'a>| {
                    d.iter()
                        .rev()
                        .find(|(p, _)| *p == prefix)
                        .map(|(_, v)| v.clone())
                };
                let ns = match bound(&decls).or_else(|| bound(&own)) {
                    Some(v) => v,
                    None => Cow::Borrowed(match prefix {
                        None => scope.default_ns(),
                        Some(p) => scope
                            .resolve(p)
                            .ok_or_else(|| malformed(format!("prefix '{p}' is not bound")))?,
                    }),
                };
                pos = gt + 1;
                let mut inner = Cow::Borrowed("");
                if !empty {
                    pos = direct_text(text, pos, &mut inner)?;
                }
                out.push(Child {
                    ns,
                    name,
                    lang,
                    text: inner,
                });
            }
        }
    }
}

/// A start tag's content between `<` and `>`, without the `/` of an empty
/// element, and whether it was one.
fn start_tag_parts(whole: &str) -> (&str, bool) {
    match whole.strip_suffix('/') {
        Some(c) => (c, true),
        None => (whole, false),
    }
}

/// A start tag's namespace declarations: prefix (`None` for the default)
/// and namespace name.
type Declarations<'a> = SmallVec<[(Option<&'a str>, Cow<'a, str>); 2]>;

/// What [`children`] reads of a start tag, in one pass over it.
struct Read<'a> {
    qname: &'a str,
    decls: Declarations<'a>,
    lang: Option<Cow<'a, str>>,
}

/// A start tag's name, namespace declarations and `xml:lang`.
fn attributes(tag: &str) -> Result<Read<'_>, Error> {
    let (qname, mut attrs) = Attributes::of(tag);
    let mut read = Read {
        qname,
        decls: SmallVec::new(),
        lang: None,
    };
    while attrs.more() {
        let (key, raw) = attrs.next()?;
        if key == "xmlns" {
            read.decls.push((None, unescape_attr(raw)?));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            read.decls.push((Some(p), unescape_attr(raw)?));
        } else if key == "xml:lang" {
            read.lang = Some(unescape_attr(raw)?);
        }
    }
    Ok(read)
}

/// A CDATA section whose `<` is at `lt`: its content and where it ends.
fn cdata_after(bytes: &[u8], lt: usize) -> Result<((usize, usize), usize), Error> {
    let body = lt + "<![CDATA[".len();
    let end = body
        + memchr::memmem::find(bytes.get(body..).unwrap_or_default(), b"]]>")
            .ok_or_else(not_closed)?;
    Ok(((body, end), end + 3))
}

/// From `pos`, inside an element just opened, to past its end tag: the
/// text directly inside it (not in its children) appended to `out`.
fn direct_text<'a>(text: &'a str, mut pos: usize, out: &mut Cow<'a, str>) -> Result<usize, Error> {
    let bytes = text.as_bytes();
    let mut depth = 1usize;
    let add = |out: &mut Cow<'a, str>, more: Cow<'a, str>| {
        if out.is_empty() {
            *out = more;
        } else {
            out.to_mut().push_str(&more);
        }
    };
    loop {
        let lt = pos + memchr::memchr(b'<', &bytes[pos..]).ok_or_else(not_closed)?;
        if depth == 1 && lt > pos {
            add(out, unescape_text(&text[pos..lt])?);
        }
        match bytes.get(lt + 1) {
            Some(b'/') => {
                pos = lt + 1 + memchr::memchr(b'>', &bytes[lt + 1..]).ok_or_else(not_closed)? + 1;
                depth -= 1;
                if depth == 0 {
                    return Ok(pos);
                }
            }
            Some(b'!') => {
                let ((a, b), after) = cdata_after(bytes, lt)?;
                if depth == 1 {
                    add(out, normalize_eol(&text[a..b]));
                }
                pos = after;
            }
            _ => {
                let gt = lt + 1 + tag_end(&bytes[lt + 1..]).ok_or_else(not_closed)?;
                if bytes[gt - 1] != b'/' {
                    depth += 1;
                }
                pos = gt + 1;
            }
        }
    }
}

/// What the pass makes of the element besides checking it.
enum Build<'a> {
    /// The outermost tag's routing attributes.
    Head(Option<Head<'a>>),
    /// The tree, and the outermost element once closed.
    Tree(Tree, Option<Element>),
}

/// The state of the pass.
struct Pass<'a, 's> {
    text: &'a str,
    pos: usize,
    scope: &'s Scope,
    max_attributes: usize,
    /// Namespace declarations of the open elements, innermost last.
    decls: Decls<'a>,
    /// Each open element's qualified name and where its declarations
    /// start in `decls`.
    open: SmallVec<[(&'a str, usize); 8]>,
    /// A prefix of the stream header is used, or the stream's content
    /// namespace is declared.
    outer: bool,
    build: Build<'a>,
}

impl<'a, 's> Pass<'a, 's> {
    fn new(text: &'a str, scope: &'s Scope, max_attributes: usize, build: Build<'a>) -> Self {
        Pass {
            text,
            pos: 0,
            scope,
            max_attributes,
            decls: Decls::default(),
            open: SmallVec::new(),
            outer: false,
            build,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Reads until the outermost element closes.
    fn run(&mut self) -> Result<(), Error> {
        loop {
            let rest = &self.bytes()[self.pos..];
            let lt = memchr::memchr(b'<', rest).ok_or_else(not_closed)?;
            let run = &self.text[self.pos..self.pos + lt];
            self.pos += lt + 1;
            // As the tree reader does: the markup after a run of text is
            // found (and an end tag matched) before the text's references
            // are checked, and those before the markup's names.
            let markup = self.markup()?;
            if !self.open.is_empty() || matches!(markup, Markup::End { .. }) {
                check_closed(run)?;
                match &mut self.build {
                    // Expanding reads each name, as checking would.
                    Build::Tree(tree, _) => tree.text(&unescape_text(run)?),
                    Build::Head(_) => check_text(run)?,
                }
            }
            let done = match markup {
                Markup::End { frame, after } => {
                    self.decls.truncate(frame);
                    self.pos = after;
                    self.close()
                }
                Markup::CData { content, after } => {
                    if let Build::Tree(tree, _) = &mut self.build {
                        tree.text(&normalize_eol(&self.text[content.0..content.1]));
                    }
                    self.pos = after;
                    false
                }
                Markup::Start { gt } => self.start_tag(gt)?,
            };
            if done {
                return Ok(());
            }
        }
    }

    /// Ends the innermost open element; true when it was the outermost.
    fn close(&mut self) -> bool {
        if let Build::Tree(tree, done) = &mut self.build {
            if let Some(e) = tree.close() {
                *done = Some(e);
            }
        }
        self.open.is_empty()
    }

    /// After `<`: where the markup ends, an end tag matched to its start.
    fn markup(&mut self) -> Result<Markup, Error> {
        let bytes = self.bytes();
        match bytes.get(self.pos) {
            Some(b'/') => {
                let start = self.pos + 1;
                let gt = memchr::memchr(b'>', &bytes[start..]).ok_or_else(not_closed)?;
                let name = self.text[start..start + gt].trim_end_matches([' ', '\t', '\r', '\n']);
                let Some((open, frame)) = self.open.pop() else {
                    return Err(malformed("unbalanced end tag"));
                };
                if name != open {
                    return Err(malformed(format!(
                        "end tag '{name}' does not match '{open}'"
                    )));
                }
                Ok(Markup::End {
                    frame,
                    after: start + gt + 1,
                })
            }
            Some(b'!') => {
                const OPEN: &str = "![CDATA[";
                let rest = &self.text[self.pos..];
                if rest.starts_with("!--") {
                    return Err(Error::new(
                        ErrorKind::RestrictedXml,
                        "comment inside a stanza",
                    ));
                }
                if !rest.starts_with(OPEN) {
                    return Err(malformed("malformed CDATA section"));
                }
                let body = self.pos + OPEN.len();
                let end = memchr::memmem::find(&bytes[body..], b"]]>").ok_or_else(not_closed)?;
                Ok(Markup::CData {
                    content: (body, body + end),
                    after: body + end + 3,
                })
            }
            Some(b'?') => Err(Error::new(
                ErrorKind::RestrictedXml,
                "processing instruction inside a stanza",
            )),
            _ => {
                // The tag ends at the first '>' outside quotes, wherever
                // they stand (as the stream reader found its extent).
                let gt = self.pos + tag_end(&bytes[self.pos..]).ok_or_else(not_closed)?;
                Ok(Markup::Start { gt })
            }
        }
    }

    /// A start tag ending at `gt`; true when it was the outermost element
    /// and empty.
    fn start_tag(&mut self, gt: usize) -> Result<bool, Error> {
        let (content, empty) = start_tag_parts(&self.text[self.pos..gt]);
        self.pos = gt + 1;
        let (qname, mut attrs) = Attributes::of(content);
        let frame = self.decls.len();
        let mut plain: SmallVec<[(&'a str, Cow<'a, str>); 8]> = SmallVec::new();
        let mut count = 0;
        let mut keys = Names::default();
        while attrs.more() {
            if count >= self.max_attributes {
                return Err(too_many_attributes(self.max_attributes));
            }
            count += 1;
            let (key, raw) = attrs.next()?;
            // The same name written twice, declarations included.
            if keys.seen_before(key) {
                return Err(malformed(format!("attribute '{key}' given twice")));
            }
            let value = unescape_attr(raw)?;
            // Naming the stream's own content namespace ties the text to
            // it: written into a stream with another, it would keep this
            // one where a tree's names would move.
            if (key == "xmlns" || key.starts_with("xmlns:")) && *value == *self.scope.default_ns() {
                self.outer = true;
            }
            if key == "xmlns" {
                check_binding(None, &value)?;
                self.decls.push(None, value);
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                check_binding(Some(p), &value)?;
                self.decls.push(Some(p), value);
            } else {
                plain.push((key, value));
            }
        }
        let (prefix, local) = split_qname(qname)?;
        self.outer |= self.bound_outside(prefix);
        let ns = ns::intern(self.resolve(prefix)?);
        let trees = matches!(self.build, Build::Tree(..));
        let mut values: [Option<Cow<'a, str>>; 5] = Default::default();
        let mut resolved = SmallVec::new();
        let mut outer = false;
        let mut seen = Names::default();
        for (key, value) in plain {
            let (prefix, local) = split_qname(key)?;
            outer |= self.bound_outside(prefix);
            let ans = match prefix {
                None => "",
                Some(p) => self.resolve(Some(p))?,
            };
            if seen.seen_before((ans, local)) {
                return Err(malformed(format!("attribute '{key}' given twice")));
            }
            if trees {
                resolved.push((ns::intern(ans), local, value));
                continue;
            }
            let slot = match (ans, local) {
                ("", "to") => Field::To,
                ("", "from") => Field::From,
                ("", "type") => Field::Type,
                ("", "id") => Field::Id,
                (ns::XML, "lang") => Field::Lang,
                _ => continue,
            };
            values[slot as usize] = Some(value);
        }
        drop(seen);
        self.outer |= outer;
        match &mut self.build {
            Build::Head(head @ None) => {
                *head = Some(Head {
                    ns,
                    name: local,
                    values,
                    outer: false,
                })
            }
            Build::Head(Some(_)) => {}
            Build::Tree(tree, _) => tree.open(Tag {
                ns,
                name: local,
                attrs: resolved,
            }),
        }
        if empty {
            self.decls.truncate(frame);
            return Ok(self.close());
        }
        self.open.push((qname, frame));
        Ok(false)
    }

    /// Whether `prefix` is bound by the stream header rather than inside
    /// the element (`xml` is bound everywhere).
    fn bound_outside(&self, prefix: Option<&str>) -> bool {
        prefix.is_some_and(|p| p != "xml" && self.decls.find(Some(p)).is_none())
    }

    fn resolve(&self, prefix: Option<&str>) -> Result<&str, Error> {
        if let Some(ns) = self.decls.find(prefix) {
            return Ok(ns);
        }
        match prefix {
            None => Ok(self.scope.default_ns()),
            Some(p) => self
                .scope
                .resolve(p)
                .ok_or_else(|| malformed(format!("prefix '{p}' is not bound"))),
        }
    }
}

/// Namespace declarations of the open elements, innermost last. Searched
/// one by one while few; beyond, each prefix's declarations are indexed,
/// so that an element full of prefixes under many declarations costs
/// linear time, as in the reference reader.
#[derive(Default)]
struct Decls<'a> {
    list: SmallVec<[(Option<&'a str>, Cow<'a, str>); 4]>,
    index: HashMap<Option<&'a str>, SmallVec<[usize; 2]>>,
}

/// Declarations searched one by one.
const LINEAR_DECLS: usize = 16;

impl<'a> Decls<'a> {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn push(&mut self, prefix: Option<&'a str>, ns: Cow<'a, str>) {
        self.list.push((prefix, ns));
        if !self.index.is_empty() {
            let i = self.list.len() - 1;
            self.index.entry(prefix).or_default().push(i);
        } else if self.list.len() > LINEAR_DECLS {
            for (i, (p, _)) in self.list.iter().enumerate() {
                self.index.entry(*p).or_default().push(i);
            }
        }
    }

    /// Forgets the declarations from `n` on (an element closed).
    fn truncate(&mut self, n: usize) {
        if !self.index.is_empty() {
            for (p, _) in self.list.drain(n..) {
                if let Some(v) = self.index.get_mut(&p) {
                    v.pop();
                    if v.is_empty() {
                        self.index.remove(&p);
                    }
                }
            }
        }
        self.list.truncate(n);
    }

    /// The innermost declaration of `prefix`.
    fn find(&self, prefix: Option<&str>) -> Option<&str> {
        if self.index.is_empty() {
            return self
                .list
                .iter()
                .rev()
                .find(|(q, _)| *q == prefix)
                .map(|(_, ns)| ns.as_ref());
        }
        let i = *self.index.get(&prefix)?.last()?;
        self.list.get(i).map(|(_, ns)| ns.as_ref())
    }
}

/// Names met on one tag, to refuse one given twice: compared one by one
/// while few, hashed beyond, so a tag with many attributes costs linear
/// time.
struct Names<T> {
    few: SmallVec<[T; 8]>,
    many: HashSet<T>,
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names {
            few: SmallVec::new(),
            many: HashSet::new(),
        }
    }
}

/// A name compared in place: names are short, and a call into `memcmp`
/// for each pair cost more than the comparison (a fifth of the raw
/// reader's time).
trait Short: Copy + Eq + Hash {
    fn same(&self, other: &Self) -> bool;
}

fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

impl Short for &str {
    fn same(&self, other: &Self) -> bool {
        same_str(self, other)
    }
}

impl Short for (&str, &str) {
    fn same(&self, other: &Self) -> bool {
        same_str(self.1, other.1) && same_str(self.0, other.0)
    }
}

impl<T: Short> Names<T> {
    fn seen_before(&mut self, name: T) -> bool {
        if self.few.len() < self.few.inline_size() {
            if self.few.iter().any(|n| n.same(&name)) {
                return true;
            }
            self.few.push(name);
            return false;
        }
        if self.many.is_empty() {
            self.many.extend(self.few.iter().copied());
        }
        !self.many.insert(name)
    }
}

/// A piece of markup found, not yet taken in.
enum Markup {
    /// An end tag that matched; the open element's declarations start at
    /// `frame`.
    End { frame: usize, after: usize },
    /// A CDATA section, its content between the two.
    CData {
        content: (usize, usize),
        after: usize,
    },
    /// A start tag whose `>` is at `gt`.
    Start { gt: usize },
}

/// Where a start tag's `>` is: the first outside quotes.
fn tag_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        at += memchr::memchr3(b'>', b'\'', b'"', &bytes[at..])?;
        let q = bytes[at];
        if q == b'>' {
            return Some(at);
        }
        at += 1;
        at += memchr::memchr(q, &bytes[at..])? + 1;
    }
}

/// The attributes of one start tag, after its name.
struct Attributes<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Attributes<'a> {
    /// A start tag's content between `<` and `>` (without an empty
    /// element's `/`): its qualified name (what comes before the first
    /// space) and its attributes after it.
    fn of(tag: &'a str) -> (&'a str, Self) {
        let name_len = tag.bytes().position(is_space).unwrap_or(tag.len());
        let attrs = Attributes {
            text: tag,
            pos: name_len,
        };
        (&tag[..name_len], attrs)
    }

    /// Skips spaces; whether anything is left.
    fn more(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        while bytes.get(self.pos).is_some_and(|&b| is_space(b)) {
            self.pos += 1;
        }
        self.pos < bytes.len()
    }

    /// One `name = 'value'`: the name and the raw value.
    fn next(&mut self) -> Result<(&'a str, &'a str), Error> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let len = bytes[start..]
            .iter()
            .position(|&b| is_space(b) || b == b'=')
            .unwrap_or(bytes.len() - start);
        let key = &self.text[start..start + len];
        self.pos += len;
        self.more();
        if bytes.get(self.pos) != Some(&b'=') {
            return Err(malformed(format!("attribute '{key}' without a value")));
        }
        self.pos += 1;
        self.more();
        let quote = match bytes.get(self.pos) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(malformed(format!("attribute '{key}' not quoted"))),
        };
        let body = self.pos + 1;
        let end = memchr::memchr(quote, &bytes[body..])
            .ok_or_else(|| malformed(format!("attribute '{key}' not closed")))?;
        self.pos = body + end + 1;
        Ok((key, &self.text[body..body + end]))
    }
}
