//! Standalone element parsing of arbitrary text: never panics, and what
//! parses round-trips through the serializer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xfed_core::xml::parse_element;

fuzz_target!(|text: &str| {
    if let Ok(e) = parse_element(text) {
        let bytes = e.to_bytes();
        let again = std::str::from_utf8(&bytes).expect("writer emits UTF-8");
        assert_eq!(parse_element(again), Ok(e));
    }
});
