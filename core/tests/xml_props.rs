//! Properties of the reader and writer: any chunking of a stream gives the
//! same events, and serialize/parse round trips.

use std::sync::Arc;

use proptest::prelude::*;
use xfed_core::xml::{
    ns, parse_element, reference_element, Element, Error, ErrorKind, Event, Form, Limits, Reader,
    Scope, Stanza, StreamHeader,
};

fn xml_text() -> impl Strategy<Value = String> {
    // Characters XML allows, weighted towards the ones that need escaping.
    let ch = prop_oneof![
        3 => prop::sample::select(vec!['<', '>', '&', '\'', '"', '\r', '\n', '\t', ' ', ']', ';', '#']),
        3 => prop::char::range('a', 'z'),
        1 => any::<char>().prop_filter("XML char", |c| {
            matches!(*c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        }),
    ];
    prop::collection::vec(ch, 0..24).prop_map(|v| v.into_iter().collect())
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_.-]{0,6}"
}

fn element_ns() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        ns::SERVER,
        ns::DIALBACK,
        ns::STREAM,
        "",
        "urn:x",
        "urn:a:b",
        ns::XML,
    ])
}

fn attr_ns() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(""), 1 => Just(ns::XML), 1 => Just("urn:y"), 1 => Just(ns::DIALBACK)]
}

fn leaf() -> impl Strategy<Value = Element> {
    (
        element_ns(),
        name(),
        prop::collection::vec((attr_ns(), name(), xml_text()), 0..4),
        xml_text(),
    )
        .prop_map(|(ns, name, attrs, text)| {
            let mut e = Element::new(ns, name);
            for (ans, an, av) in attrs {
                e.set_attr_ns(ans, an, av);
            }
            e.with_text(&text)
        })
}

fn element() -> impl Strategy<Value = Element> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        (
            leaf(),
            prop::collection::vec(
                prop_oneof![inner.prop_map(Ok), xml_text().prop_map(Err)],
                0..4,
            ),
        )
            .prop_map(|(mut e, kids)| {
                for k in kids {
                    match k {
                        Ok(child) => e.push_child(child),
                        Err(text) => e.push_text(&text),
                    }
                }
                e
            })
    })
}

/// A stanza with the attributes routing reads, each maybe missing.
fn stanza() -> impl Strategy<Value = Element> {
    let value = || prop::option::of(xml_text());
    (
        prop::sample::select(vec!["message", "presence", "iq"]),
        [value(), value(), value(), value(), value()],
        prop::collection::vec(element(), 0..3),
    )
        .prop_map(|(name, values, children)| {
            let mut e = Element::new(ns::SERVER, name);
            let keys = [
                ("", "to"),
                ("", "from"),
                ("", "type"),
                ("", "id"),
                (ns::XML, "lang"),
            ];
            for ((ans, key), v) in keys.into_iter().zip(values) {
                if let Some(v) = v {
                    e.set_attr_ns(ans, key, v);
                }
            }
            for c in children {
                e.push_child(c);
            }
            e
        })
}

fn stream(stanzas: &[Element], tail: &[u8]) -> Vec<u8> {
    let scope = Scope::server();
    let header = StreamHeader::new(scope.clone())
        .with_attr("to", "b.example")
        .with_attr("version", "1.0");
    let mut out = Vec::new();
    header.write(&mut out);
    for (i, s) in stanzas.iter().enumerate() {
        s.write(&scope, &mut out);
        if i % 2 == 0 {
            out.extend_from_slice(b" \n");
        }
    }
    out.extend_from_slice(tail);
    header.write_end(&mut out);
    out
}

const LIMITS: Limits = Limits {
    max_stanza_size: 4096,
    max_depth: 8,
    max_attributes: 64,
};

/// The stream reader's events for `chunks`, errors by class.
fn read(chunks: &[&[u8]]) -> Vec<Result<Event, ErrorKind>> {
    read_as::<Element>(chunks)
}

/// The same input through a reader of another form.
fn read_as<S: Form>(chunks: &[&[u8]]) -> Vec<Result<Event<S>, ErrorKind>> {
    let mut r = Reader::<S>::with_form(LIMITS);
    let mut out = Vec::new();
    for c in chunks {
        r.feed_all(c);
        out.extend(std::iter::from_fn(|| {
            r.poll().map(|e| e.map_err(|e| e.kind()))
        }));
    }
    out
}

/// Elements read by the general tokenizer: the reference.
#[derive(Debug, PartialEq)]
struct Reference(Element);

impl Form for Reference {
    fn read(text: &str, scope: &Arc<Scope>, max_attributes: usize) -> Result<Self, Error> {
        reference_element(text, scope, max_attributes).map(Reference)
    }
}

/// Checks that a raw stanza says what its tree says.
fn same_stanza(raw: &Stanza, tree: &Element, default_ns: &str) -> Result<(), TestCaseError> {
    let built = raw.element();
    prop_assert_eq!(built.as_ref(), Ok(tree));
    prop_assert!(raw.is(tree.ns(), tree.name()));
    prop_assert_eq!(raw.to(), tree.attr("to"));
    prop_assert_eq!(raw.from(), tree.attr("from"));
    prop_assert_eq!(raw.kind(), tree.attr("type"));
    prop_assert_eq!(raw.id(), tree.attr("id"));
    prop_assert_eq!(raw.lang(), tree.lang());
    // Its children as translation reads them, without the tree.
    let children = raw.children();
    prop_assert!(children.is_ok(), "{:?}", children);
    let children = children.unwrap_or_default();
    let kids: Vec<&Element> = tree.children().collect();
    prop_assert_eq!(children.len(), kids.len(), "{}", raw.text());
    for (c, k) in children.iter().zip(kids) {
        prop_assert_eq!(c.ns.as_ref(), k.ns());
        prop_assert_eq!(c.name, k.name());
        prop_assert_eq!(c.lang.as_deref(), k.lang());
        let text = k.text();
        prop_assert_eq!(c.text.as_ref(), text.as_ref(), "{}", raw.text());
    }
    if raw.self_contained() {
        // Written into a stream with only the same default namespace, the
        // text reads as the same tree.
        let bare = Arc::new(Scope::new(default_ns.to_owned()));
        let again = Stanza::parse(raw.text(), bare, 64).and_then(|s| s.element());
        prop_assert_eq!(again.as_ref(), Ok(tree), "{}", raw.text());
        // Written into a stream of another content namespace (s2s and a
        // component link), its names move there as a tree's would.
        if !default_ns.is_empty() {
            let other = Arc::new(Scope::new("urn:other-content".to_owned()));
            let moved = Stanza::parse(raw.text(), other, 64).and_then(|s| s.element());
            let mut want = tree.clone();
            want.move_ns(default_ns, "urn:other-content");
            prop_assert_eq!(moved.as_ref(), Ok(&want), "{}", raw.text());
        }
    }
    Ok(())
}

fn too_many_attributes() -> Vec<u8> {
    let attrs: String = (0..65).map(|i| format!(" a{i}=''")).collect();
    format!("<a{attrs}/>").into_bytes()
}

/// A stream with some bytes replaced by ones that matter to XML.
fn mangled() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop::sample::select(vec![
        b'<', b'>', b'&', b';', b'\'', b'"', b'/', b' ', b'x', b':', b'=', b'#', 0xC3, 0,
    ]);
    (
        prop::collection::vec(prop_oneof![stanza(), element()], 1..5),
        prop::collection::vec((any::<prop::sample::Index>(), byte), 0..4),
    )
        .prop_map(|(stanzas, edits)| {
            let mut input = stream(&stanzas, b"");
            let len = input.len();
            for (at, b) in edits {
                input[at.index(len)] = b;
            }
            input
        })
}

fn split<'a>(input: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&input[last..p]);
        last = p;
    }
    chunks.push(&input[last..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn serialize_then_parse_is_identity(e in element()) {
        let bytes = e.to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        prop_assert_eq!(parse_element(&text), Ok(e), "{}", text);
    }

    #[test]
    fn stanzas_round_trip_through_a_stream(stanzas in prop::collection::vec(element(), 0..6)) {
        let input = stream(&stanzas, b"");
        let ev = read(&[&input]);
        prop_assert!(matches!(ev.first(), Some(Ok(Event::Header(_)))));
        prop_assert_eq!(ev.last(), Some(&Ok(Event::End)));
        let got: Vec<Element> = ev.into_iter().filter_map(|e| match e {
            Ok(Event::Stanza(s)) => Some(s),
            _ => None,
        }).collect();
        prop_assert_eq!(got, stanzas);
    }

    #[test]
    fn any_chunking_gives_the_same_events(
        stanzas in prop::collection::vec(element(), 0..6),
        tail in prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec(any::<u8>(), 0..16),
            1 => prop::sample::select(vec![
                b"<!-- c -->".to_vec(), b"<?pi x?>".to_vec(), b"&amp;".to_vec(),
                b"<a>&bogus;</a>".to_vec(), b"<a><![CDATA[x]]></a>".to_vec(), vec![0xC3],
                b"<a b='1' b='2'/>".to_vec(), b"<a><b><c><d><e><f><g><h><i/></h></g></f></e></d></c></b></a>".to_vec(),
            ]),
        ],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let input = stream(&stanzas, &tail);
        let whole = read(&[&input]);
        let chunked = read(&split(&input, &cuts));
        prop_assert_eq!(&chunked, &whole);
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(read(&bytewise), whole);
    }

    #[test]
    fn the_readers_agree_with_the_reference(
        input in prop_oneof![
            2 => (prop::collection::vec(prop_oneof![stanza(), element()], 0..6), prop::sample::select(vec![
                b"".to_vec(), b"<!-- c -->".to_vec(), b"<a>&bogus;</a>".to_vec(),
                b"<a b='1' b='2'/>".to_vec(), b"<a xmlns:p='u' p:b='1' xmlns:q='u' q:b='2'/>".to_vec(),
                b"<p:a/>".to_vec(), b"<a b='&lt;&#x41;\r\n'>x&amp;y<![CDATA[]]></a>".to_vec(),
                b"<a>x<b>y</c></a>".to_vec(), too_many_attributes(),
                b"<a>x<![<![CDATA[<]]></a>".to_vec(), b"<a xmlns:p='u' xmlns:p='u'/>".to_vec(),
                b"<a'b>c'>&lt;&x;&&y;</a'b>c'>".to_vec(), b"<a>x<![CDATA[<y>\r\n]]>z&#13;</a>".to_vec(),
                b"<message><body>a<![CDATA[<b>\r\n]]><i>j</i>&amp;c</body><x:y xmlns:x='urn:x' xml:lang='de'>q</x:y><z xmlns='urn:z'/></message>".to_vec(),
            ])).prop_map(|(stanzas, tail)| stream(&stanzas, &tail)),
            3 => mangled(),
        ],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let chunks = split(&input, &cuts);
        let trees = read(&chunks);
        let reference: Vec<_> = read_as::<Reference>(&chunks)
            .into_iter()
            .map(|e| e.map(|e| match e {
                Event::Header(h) => Event::Header(h),
                Event::Stanza(Reference(s)) => Event::Stanza(s),
                Event::End => Event::End,
            }))
            .collect();
        prop_assert_eq!(&trees, &reference);
        let raws = read_as::<Stanza>(&chunks);
        prop_assert_eq!(trees.len(), raws.len());
        let mut default_ns = String::new();
        for (tree, raw) in trees.iter().zip(&raws) {
            match (tree, raw) {
                (Ok(Event::Stanza(e)), Ok(Event::Stanza(s))) => same_stanza(s, e, &default_ns)?,
                (Ok(Event::Header(a)), Ok(Event::Header(b))) => {
                    prop_assert_eq!(a, b);
                    default_ns = a.default_ns().to_owned();
                }
                (Ok(Event::End), Ok(Event::End)) => {}
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "tree {:?} but raw {:?}", a, b),
            }
        }
    }
}

/// More declarations than are searched one by one: the index of prefixes
/// must shadow and unwind as the reference does, and an element packed
/// with prefixes under many declarations must read (in linear time: the
/// reader would take seconds otherwise).
#[test]
fn many_declarations_resolve_as_the_reference_does() {
    let mut text = String::from("<message to='a@b' from='c@d'>");
    for depth in 0..29 {
        let decls: String = (0..40)
            .map(|i| format!(" xmlns:p{i}='urn:{depth}:{}'", i % 7))
            .collect();
        text.push_str(&format!("<e{depth}{decls}>"));
    }
    for _ in 0..100 {
        let attrs: String = (0..24).map(|i| format!(" p{i}:a{i}='v'")).collect();
        text.push_str(&format!("<p3:leaf{attrs}/>"));
    }
    for depth in (0..29).rev() {
        // Out of the inner declarations, p5 resolves to the outer ones.
        text.push_str(&format!("<p5:after{depth}/></e{depth}>"));
    }
    let scope = Scope::server();
    let read = |stanza: &str| {
        let mut input = stream(&[], b"");
        let end = input.len() - b"</stream:stream>".len();
        input.splice(end..end, stanza.bytes());
        let mut trees = Reader::new(Limits::default());
        trees.feed_all(&input);
        let mut raw = Reader::raw(Limits::default());
        raw.feed_all(&input);
        let tree = std::iter::from_fn(|| trees.poll()).nth(1).unwrap();
        let raw = std::iter::from_fn(|| raw.poll()).nth(1).unwrap();
        (tree, raw)
    };
    let good = format!("{text}</message>");
    let reference = reference_element(&good, &scope, 64).unwrap();
    let (tree, raw) = read(&good);
    assert_eq!(tree.unwrap(), Event::Stanza(reference.clone()));
    let Ok(Event::Stanza(s)) = raw else {
        panic!("raw reader: {raw:?}");
    };
    assert_eq!(s.element().unwrap(), reference);
    assert_eq!(s.to(), Some("a@b"));
    assert!(s.self_contained());
    // p30 was never declared: each reader says so.
    let bad = format!("{text}<p30:x/></message>");
    let kind = reference_element(&bad, &scope, 64).unwrap_err().kind();
    assert_eq!(kind, ErrorKind::NotWellFormed);
    let (tree, raw) = read(&bad);
    assert_eq!(tree.unwrap_err().kind(), kind);
    assert_eq!(raw.unwrap_err().kind(), kind);
}
