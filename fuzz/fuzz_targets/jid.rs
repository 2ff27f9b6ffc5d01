//! Arbitrary bytes as a JID: parsing must never panic, a parsed JID must be
//! canonical (its display form parses back to itself and displays the same),
//! and XEP-0106 escaping must give back what it was given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xfed_core::jid::{escape_local, unescape_local, Jid, JidError};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(jid) = Jid::parse(s) {
        let shown = jid.to_string();
        let again = Jid::parse(&shown).expect("display form of a JID must parse");
        assert_eq!(again, jid, "parse(display) differs for {s:?}");
        assert_eq!(again.to_string(), shown, "display not idempotent for {s:?}");
        assert_eq!(jid.bare().resource(), None);
        assert!(jid.bare().same_domain(&jid));
        if let Some(local) = jid.local() {
            // A prepared localpart unescapes without trouble, and escaping the
            // result gives a string that unescapes to the same text.
            let plain = unescape_local(local);
            if let Ok(escaped) = escape_local(&plain) {
                assert_eq!(unescape_local(&escaped), plain);
            }
        }
    }

    match escape_local(s) {
        Ok(escaped) => {
            assert!(
                !escaped.contains([' ', '"', '&', '\'', '/', ':', '<', '>', '@']),
                "escape_local({s:?}) = {escaped:?} kept a forbidden character"
            );
            assert_eq!(unescape_local(&escaped), s, "escape round trip for {s:?}");
        }
        Err(e) => {
            assert_eq!(e, JidError::SpaceAtEdge);
            assert!(s.starts_with(' ') || s.ends_with(' '));
        }
    }
});
