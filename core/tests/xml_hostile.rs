//! Hostile inputs: each is answered with its stream error class, and the
//! reader never holds more than the stanza size limit.

use xfed_core::xml::{ErrorKind, Event, Limits, Reader};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' to='b.example' version='1.0'>";

/// Feeds `input` in `chunk`-sized pieces and returns the first error kind,
/// checking after every piece that the reader's buffer stays within bounds.
fn first_error(input: &[u8], chunk: usize) -> Option<ErrorKind> {
    let limits = Limits::default();
    let mut r = Reader::new(limits);
    for piece in input.chunks(chunk.max(1)) {
        r.feed_all(piece);
        assert!(
            r.buffered() <= limits.max_stanza_size,
            "buffer grew to {}",
            r.buffered()
        );
        while let Some(ev) = r.poll() {
            if let Err(e) = ev {
                return Some(e.kind());
            }
        }
    }
    None
}

fn assert_refused(input: &[u8], kind: ErrorKind) {
    for chunk in [1, 7, 4096, input.len()] {
        assert_eq!(
            first_error(input, chunk),
            Some(kind),
            "chunk {chunk}: {}",
            String::from_utf8_lossy(&input[..input.len().min(200)])
        );
    }
}

#[test]
fn billion_laughs() {
    let mut dtd = String::from("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        dtd.push_str(&format!(
            "<!ENTITY lol{i} '{}'>",
            format!("&{prev};").repeat(10)
        ));
    }
    dtd.push_str("]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'><message>&lol9;</message>");
    assert_refused(dtd.as_bytes(), ErrorKind::RestrictedXml);
    // The same entity used without its DTD is still refused.
    assert_refused(
        format!("{HEADER}<message><body>&lol9;</body></message>").as_bytes(),
        ErrorKind::RestrictedXml,
    );
}

#[test]
fn external_entity() {
    let xxe = "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>\
        <stream:stream xmlns:stream='http://etherx.jabber.org/streams'><message>&xxe;</message>";
    assert_refused(xxe.as_bytes(), ErrorKind::RestrictedXml);
    let inside = format!("{HEADER}<message><!DOCTYPE x SYSTEM 'http://evil/'></message>");
    assert_refused(inside.as_bytes(), ErrorKind::RestrictedXml);
}

#[test]
fn comments_and_processing_instructions() {
    assert_refused(
        format!("{HEADER}<!-- hi -->").as_bytes(),
        ErrorKind::RestrictedXml,
    );
    assert_refused(
        format!("{HEADER}<message><!-- hi --></message>").as_bytes(),
        ErrorKind::RestrictedXml,
    );
    assert_refused(
        format!("{HEADER}<message><?php x?></message>").as_bytes(),
        ErrorKind::RestrictedXml,
    );
    assert_refused(
        format!("<!-- first -->{HEADER}").as_bytes(),
        ErrorKind::RestrictedXml,
    );
}

#[test]
fn ten_megabyte_attribute() {
    let mut input = format!("{HEADER}<message to='").into_bytes();
    input.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    input.extend_from_slice(b"'/>");
    assert_refused(&input, ErrorKind::LimitExceeded);
    // Text, and an oversized stream header, are bounded the same way.
    let mut text = format!("{HEADER}<message><body>").into_bytes();
    text.extend(std::iter::repeat_n(b'x', 300 * 1024));
    assert_eq!(first_error(&text, 65536), Some(ErrorKind::LimitExceeded));
    let mut header = b"<stream:stream to='".to_vec();
    header.extend(std::iter::repeat_n(b'x', 300 * 1024));
    assert_eq!(first_error(&header, 65536), Some(ErrorKind::LimitExceeded));
}

#[test]
fn ten_thousand_deep_nesting() {
    let mut input = HEADER.as_bytes().to_vec();
    input.extend("<a>".repeat(10_000).bytes());
    assert_refused(&input, ErrorKind::LimitExceeded);
    // Exactly at the limit is fine.
    let ok = format!("{HEADER}{}{}", "<a>".repeat(32), "</a>".repeat(32));
    assert_eq!(first_error(ok.as_bytes(), 5), None);
    let over = format!("{HEADER}{}{}", "<a>".repeat(33), "</a>".repeat(33));
    assert_eq!(
        first_error(over.as_bytes(), 5),
        Some(ErrorKind::LimitExceeded)
    );
}

fn base_stream() -> Vec<u8> {
    format!(
        "{HEADER} <message from='a@x' to='b@y' xml:lang='en'><body>caf\u{e9} \u{1F600} &amp;</body>\
         <x xmlns='urn:x'><![CDATA[c]]></x></message>\n<presence/></stream:stream>\n"
    )
    .into_bytes()
}

#[test]
fn bad_utf8_in_every_position() {
    let base = base_stream();
    assert_eq!(first_error(&base, 3), None);
    let bad: [&[u8]; 6] = [
        &[0xFF],
        &[0x80],
        &[0xC0, 0xAF],
        &[0xED, 0xA0, 0x80],
        &[0xF8, 0x88, 0x80, 0x80, 0x80],
        &[0xE2, 0x82],
    ];
    for seq in bad {
        for pos in 0..base.len() {
            // Splitting a valid character is not a position of the stream.
            if (base[pos] & 0xC0) == 0x80 {
                continue;
            }
            let input = [&base[..pos], seq, &base[pos..]].concat();
            let expected = if pos == 0 && seq == [0xFF] {
                ErrorKind::UnsupportedEncoding
            } else {
                ErrorKind::NotWellFormed
            };
            assert_eq!(
                first_error(&input, 64),
                Some(expected),
                "{seq:02X?} at {pos}"
            );
        }
    }
}

#[test]
fn nul_and_control_bytes_in_every_position() {
    let base = base_stream();
    for byte in [0x00u8, 0x01, 0x0B, 0x1F] {
        for pos in 0..base.len() {
            if (base[pos] & 0xC0) == 0x80 {
                continue;
            }
            let input = [&base[..pos], &[byte], &base[pos..]].concat();
            assert_eq!(
                first_error(&input, 64),
                Some(ErrorKind::NotWellFormed),
                "{byte:02X} at {pos}"
            );
        }
    }
    // Noncharacters and references to forbidden characters too.
    let fffe = format!("{HEADER}<message><body>\u{FFFE}</body></message>");
    assert_refused(fffe.as_bytes(), ErrorKind::NotWellFormed);
    assert_refused(
        format!("{HEADER}<message><body>&#0;</body></message>").as_bytes(),
        ErrorKind::NotWellFormed,
    );
}

#[test]
fn random_garbage_never_panics_and_stays_bounded() {
    // A deterministic xorshift stream of bytes, in several chunkings.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut garbage = HEADER.as_bytes().to_vec();
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let alphabet = b"<>/'\"=&;![]?-ax \n\x80\xC3";
        garbage.push(alphabet[(x % alphabet.len() as u64) as usize]);
    }
    for chunk in [1, 13, 8192] {
        let _ = first_error(&garbage, chunk);
    }
    let mut r = Reader::new(Limits::default());
    r.feed_all(&garbage);
    let n = std::iter::from_fn(|| r.poll())
        .filter(|e| matches!(e, Ok(Event::Stanza(_))))
        .count();
    assert!(n < 200_000);
}
