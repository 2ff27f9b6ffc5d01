//! The SIP parser fed arbitrary bytes, as a datagram and as a stream in
//! two chunkings: never panics, the stream stays within its limits and
//! gives the same frames whatever the chunking, whatever parses writes
//! back to something that parses the same, and every error response
//! built for a refused request is itself a valid message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xfed_core::sip::{parse_datagram, ErrorKind, Frame, Limits, Message, ParseError, StreamFramer};

const LIMITS: Limits = Limits {
    max_message_size: 4096,
    max_headers: 32,
    max_line_length: 1024,
};

/// Writing may add a Content-Length line and a space after each colon,
/// so the message read back is checked under looser limits.
const LOOSE: Limits = Limits {
    max_message_size: 3 * 4096,
    max_headers: 64,
    max_line_length: 3 * 1024,
};

type Class = (ErrorKind, bool, Option<u16>, bool);

fn class(e: &ParseError) -> Class {
    (e.kind(), e.is_fatal(), e.response_code(), e.can_reply())
}

fn run(input: &[u8], chunk: usize) -> Vec<Result<Frame, Class>> {
    let mut f = StreamFramer::new(LIMITS);
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        f.feed(piece);
        assert!(f.buffered() <= 2 * LIMITS.max_message_size);
        while let Some(r) = f.poll() {
            out.push(r.map_err(|e| class(&e)));
        }
    }
    out
}

fn round_trip(m: &Message) {
    let bytes = m.to_bytes();
    assert_eq!(parse_datagram(&bytes, &LOOSE).as_ref(), Ok(m));
    let mut f = StreamFramer::new(LOOSE);
    f.feed(&bytes);
    assert_eq!(f.poll(), Some(Ok(Frame::Message(m.clone()))));
    assert!(f.is_idle());
}

fn check_error(e: &ParseError) {
    if let Some(r) = e.response("fuzz") {
        assert_eq!(e.response_code(), Some(r.status));
        let back = parse_datagram(&r.to_bytes(), &LOOSE);
        assert!(back.is_ok(), "{e}: {back:?}");
    } else {
        assert!(!e.can_reply());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    match parse_datagram(input, &LIMITS) {
        Ok(m) => round_trip(&m),
        Err(e) => check_error(&e),
    }
    let whole = run(input, input.len().max(1));
    let chunked = run(input, usize::from(first % 17) + 1);
    assert_eq!(whole, chunked);
    for frame in whole.iter().flatten() {
        if let Frame::Message(m) = frame {
            round_trip(m);
        }
    }
    // Errors on the stream carry responses too.
    let mut f = StreamFramer::new(LIMITS);
    f.feed(input);
    while let Some(r) = f.poll() {
        if let Err(e) = r {
            check_error(&e);
        }
    }
});
