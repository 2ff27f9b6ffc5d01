//! The stream reader fed arbitrary bytes: never panics, stays within its
//! limits, and gives the same events whatever the chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xfed_core::xml::{Event, Limits, Reader};

const LIMITS: Limits = Limits {
    max_stanza_size: 4096,
    max_depth: 16,
    max_attributes: 16,
};

fn run(input: &[u8], chunk: usize) -> Vec<Result<Event, xfed_core::xml::ErrorKind>> {
    let mut r = Reader::new(LIMITS);
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
    let whole = run(input, input.len().max(1));
    let chunked = run(input, usize::from(first % 17) + 1);
    assert_eq!(whole, chunked);
    // Every element read back serializes to something that reads the same.
    for ev in whole.into_iter().flatten() {
        if let Event::Stanza(e) = ev {
            let bytes = e.to_bytes();
            let text = std::str::from_utf8(&bytes).expect("writer emits UTF-8");
            assert_eq!(xfed_core::xml::parse_element(text).as_ref(), Ok(&e));
        }
    }
});
