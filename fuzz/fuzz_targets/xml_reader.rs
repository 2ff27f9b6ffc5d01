//! The stream reader fed arbitrary bytes: never panics, stays within its
//! limits, gives the same events whatever the chunking, and agrees with
//! the reference reading (quick-xml's tokenizer); the raw reader (no
//! trees) agrees with it too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

use xfed_core::xml::{
    reference_element, Child, Element, Error, ErrorKind, Event, Form, Limits, Reader, Scope, Stanza,
};

const LIMITS: Limits = Limits {
    max_stanza_size: 4096,
    max_depth: 16,
    max_attributes: 16,
};

/// Elements read by the general tokenizer.
#[derive(Debug, PartialEq)]
struct Reference(Element);

impl Form for Reference {
    fn read(text: &str, scope: &Arc<Scope>, max_attributes: usize) -> Result<Self, Error> {
        reference_element(text, scope, max_attributes).map(Reference)
    }
}

fn run<S: Form>(mut r: Reader<S>, input: &[u8], chunk: usize) -> Vec<Result<Event<S>, ErrorKind>> {
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let n = r.feed(rest);
            assert!(n > 0 && n <= rest.len());
            rest = &rest[n..];
            assert!(r.buffered() <= LIMITS.max_stanza_size);
            while let Some(ev) = r.poll() {
                out.push(ev.map_err(|e| e.kind()));
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let whole = run(Reader::new(LIMITS), input, input.len().max(1));
    let chunked = run(Reader::new(LIMITS), input, usize::from(first % 17) + 1);
    assert_eq!(whole, chunked);
    let reference = run(
        Reader::<Reference>::with_form(LIMITS),
        input,
        input.len().max(1),
    );
    assert_eq!(reference.len(), whole.len());
    for (fast, slow) in whole.iter().zip(&reference) {
        match (fast, slow) {
            (Ok(Event::Stanza(e)), Ok(Event::Stanza(Reference(r)))) => assert_eq!(e, r),
            (Ok(Event::Header(a)), Ok(Event::Header(b))) => assert_eq!(a, b),
            (Ok(Event::End), Ok(Event::End)) => {}
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("reader {a:?} but reference {b:?}"),
        }
    }
    let raw = run(
        Reader::<Stanza>::raw(LIMITS),
        input,
        usize::from(first % 13) + 1,
    );
    assert_eq!(raw.len(), whole.len());
    for (tree, raw) in whole.iter().zip(&raw) {
        match (tree, raw) {
            (Ok(Event::Stanza(e)), Ok(Event::Stanza(s))) => {
                assert_eq!(s.element().as_ref(), Ok(e));
                assert!(s.is(e.ns(), e.name()));
                assert_eq!((s.to(), s.from()), (e.attr("to"), e.attr("from")));
                assert_eq!((s.kind(), s.id()), (e.attr("type"), e.attr("id")));
                assert_eq!(s.lang(), e.lang());
                // The children translation reads from the text.
                let children = s.children().expect("children of a checked stanza");
                let tree: Vec<Child<'_>> = e.children().map(Child::of).collect();
                assert_eq!(children.as_slice(), tree.as_slice());
            }
            (Ok(Event::Header(a)), Ok(Event::Header(b))) => assert_eq!(a, b),
            (Ok(Event::End), Ok(Event::End)) => {}
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("tree {a:?} but raw {b:?}"),
        }
    }
    // Every element read back serializes to something that reads the same.
    for ev in whole.into_iter().flatten() {
        if let Event::Stanza(e) = ev {
            let bytes = e.to_bytes();
            let text = std::str::from_utf8(&bytes).expect("writer emits UTF-8");
            assert_eq!(xfed_core::xml::parse_element(text).as_ref(), Ok(&e));
        }
    }
});
