//! Hostile inputs: each gets its response class (or is dropped), on
//! datagrams and on streams in several chunkings, and a stream never
//! holds more than the message size limit.

use xfed_core::sip::{parse_datagram, ErrorKind, Frame, Limits, Message, ParseError, StreamFramer};

const MESSAGE: &str = "MESSAGE sip:bob@gw.test SIP/2.0\r\n\
    Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bK-1-0\r\n\
    Max-Forwards: 70\r\n\
    From: <sip:sipp@sip.test>;tag=1SIPpTag001\r\n\
    To: <sip:bob@gw.test>\r\n\
    Call-ID: 1-1@127.0.0.1\r\n\
    CSeq: 1 MESSAGE\r\n\
    Content-Type: text/plain\r\n\
    Content-Length: 5\r\n\
    \r\n\
    hello";

/// (kind, fatal on a stream, response code, can reply)
type Class = (ErrorKind, bool, Option<u16>, bool);

fn class(e: &ParseError) -> Class {
    (e.kind(), e.is_fatal(), e.response_code(), e.can_reply())
}

/// The first error a stream reports, fed in `chunk`-sized pieces,
/// checking after every piece that the framer's buffers stay bounded.
fn stream_error(input: &[u8], chunk: usize, limits: Limits) -> Option<ParseError> {
    let mut f = StreamFramer::new(limits);
    for piece in input.chunks(chunk.max(1)) {
        f.feed(piece);
        assert!(
            f.buffered() <= 2 * limits.max_message_size,
            "buffer grew to {}",
            f.buffered()
        );
        while let Some(r) = f.poll() {
            if let Err(e) = r {
                return Some(e);
            }
        }
    }
    None
}

fn assert_stream(input: &[u8], expected: Class) {
    for chunk in [1, 7, 4096, input.len()] {
        let e = stream_error(input, chunk, Limits::default());
        assert_eq!(
            e.as_ref().map(class),
            Some(expected),
            "chunk {chunk}: {:?} for {}",
            e,
            String::from_utf8_lossy(&input[..input.len().min(300)])
        );
    }
}

fn assert_datagram(input: &[u8], expected: Class) {
    let e = parse_datagram(input, &Limits::default()).unwrap_err();
    // Datagram errors are never fatal: there is no stream to lose.
    assert_eq!(
        class(&e),
        (expected.0, false, expected.2, expected.3),
        "{e}"
    );
    if e.can_reply() {
        let r = e.response("x").unwrap();
        assert_eq!(Some(r.status), e.response_code());
        assert!(parse_datagram(&r.to_bytes(), &Limits::default()).is_ok());
    }
}

const BAD: ErrorKind = ErrorKind::BadRequest;

#[test]
fn the_base_message_is_fine() {
    assert!(parse_datagram(MESSAGE.as_bytes(), &Limits::default()).is_ok());
    assert_eq!(stream_error(MESSAGE.as_bytes(), 1, Limits::default()), None);
}

#[test]
fn oversized_messages() {
    // A body past the limit on a stream: 413, answerable, fatal (the body
    // is not read).
    let big = MESSAGE.replace("Content-Length: 5", "Content-Length: 70000");
    assert_stream(
        big.as_bytes(),
        (ErrorKind::EntityTooLarge, true, Some(413), true),
    );
    let huge = MESSAGE.replace(
        "Content-Length: 5",
        "Content-Length: 99999999999999999999999",
    );
    assert_stream(
        huge.as_bytes(),
        (ErrorKind::EntityTooLarge, true, Some(413), true),
    );
    // A datagram past the limit: 513, answerable when the head is readable.
    let mut dgram = MESSAGE
        .replace("Content-Length: 5", "Content-Length: 70000")
        .into_bytes();
    dgram.resize(70_000 + MESSAGE.len(), b'x');
    assert_datagram(&dgram, (ErrorKind::MessageTooLarge, false, Some(513), true));
    // A header section past the limit: 513, not answerable (never read
    // whole), and the stream buffers no more than the limit.
    let mut flood = MESSAGE.replace("\r\n\r\nhello", "\r\n").into_bytes();
    for i in 0..2000 {
        flood.extend_from_slice(format!("X-{i}: {}\r\n", "y".repeat(60)).as_bytes());
    }
    let limits = Limits {
        max_headers: 10_000,
        ..Limits::default()
    };
    for chunk in [1, 100, 65536] {
        let e = stream_error(&flood, chunk, limits).unwrap();
        assert_eq!(
            class(&e),
            (ErrorKind::MessageTooLarge, true, None, false),
            "{e}"
        );
    }
    // One 10 MB line is refused at the line limit, long before the end.
    let mut line = MESSAGE
        .replace("\r\n\r\nhello", "\r\nSubject: ")
        .into_bytes();
    line.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    assert_stream(&line, (ErrorKind::MessageTooLarge, true, None, false));
    // So is a request line.
    let uri = format!("MESSAGE sip:{}@gw.test SIP/2.0\r\n", "a".repeat(9000));
    assert_stream(
        uri.as_bytes(),
        (ErrorKind::MessageTooLarge, true, None, false),
    );
}

#[test]
fn header_floods() {
    let mut many = MESSAGE.replace("Content-Type: text/plain\r\n", "");
    let extra: String = (0..100).map(|i| format!("X-{i}: a\r\n")).collect();
    many = many.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
        1,
    );
    // 106 header fields against the default 100.
    assert_stream(
        many.as_bytes(),
        (ErrorKind::MessageTooLarge, true, None, false),
    );
    assert_datagram(
        many.as_bytes(),
        (ErrorKind::MessageTooLarge, false, None, false),
    );
    // Continuation lines do not count as fields, but the unfolded field is
    // bounded by the line limit.
    let folded: String = (0..2000).map(|_| "\r\n folded").collect();
    let long = MESSAGE.replacen(
        "Content-Type: text/plain",
        &format!("Subject: x{folded}"),
        1,
    );
    assert_stream(
        long.as_bytes(),
        (ErrorKind::MessageTooLarge, true, None, false),
    );
    assert_datagram(
        long.as_bytes(),
        (ErrorKind::MessageTooLarge, false, None, false),
    );
    // Exactly at the limit is fine.
    let ok_extra: String = (0..92).map(|i| format!("X-{i}: a\r\n")).collect();
    let at_limit = MESSAGE.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{ok_extra}"),
        1,
    );
    assert!(parse_datagram(at_limit.as_bytes(), &Limits::default()).is_ok());
}

#[test]
fn missing_mandatory_headers() {
    for (line, can_reply) in [
        (
            "Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bK-1-0\r\n",
            false,
        ),
        ("Max-Forwards: 70\r\n", true),
        ("From: <sip:sipp@sip.test>;tag=1SIPpTag001\r\n", false),
        ("To: <sip:bob@gw.test>\r\n", false),
        ("Call-ID: 1-1@127.0.0.1\r\n", false),
        ("CSeq: 1 MESSAGE\r\n", false),
    ] {
        let input = MESSAGE.replace(line, "");
        // Framing is intact: the stream goes on.
        assert_stream(input.as_bytes(), (BAD, false, Some(400), can_reply));
        assert_datagram(input.as_bytes(), (BAD, false, Some(400), can_reply));
    }
    // Present but unreadable is the same class.
    for (from, to) in [
        ("CSeq: 1 MESSAGE", "CSeq: one MESSAGE"),
        ("Call-ID: 1-1@127.0.0.1", "Call-ID: a b"),
        ("To: <sip:bob@gw.test>", "To: <sip:bob@gw.test"),
        ("Max-Forwards: 70", "Max-Forwards: -1"),
        ("SIP/2.0/TCP 127.0.0.1:5071", "SIP/1.0/TCP 127.0.0.1:5071"),
    ] {
        let input = MESSAGE.replace(from, to);
        let e = parse_datagram(input.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!((e.kind(), e.response_code()), (BAD, Some(400)), "{to}");
    }
}

#[test]
fn bad_content_length() {
    for value in ["-5", "abc", "5 5", "", "+5", "0x10", "5, 5", "５"] {
        let input = MESSAGE.replace("Content-Length: 5", &format!("Content-Length: {value}"));
        // On a stream the framing is lost: 400 if possible, then close.
        assert_stream(input.as_bytes(), (BAD, true, Some(400), true));
        assert_datagram(input.as_bytes(), (BAD, false, Some(400), true));
    }
    // Two Content-Length headers are refused, even when equal.
    let twice = MESSAGE.replace("Content-Length: 5", "Content-Length: 5\r\nl: 5");
    assert_stream(twice.as_bytes(), (BAD, true, Some(400), true));
    assert_datagram(twice.as_bytes(), (BAD, false, Some(400), true));
    // Larger than the body: a datagram is refused, a stream waits.
    let longer = MESSAGE.replace("Content-Length: 5", "Content-Length: 50");
    assert_datagram(longer.as_bytes(), (BAD, false, Some(400), true));
    let mut f = StreamFramer::new(Limits::default());
    f.feed(longer.as_bytes());
    assert_eq!(f.poll(), None);
    assert!(!f.is_idle());
    // Missing on a stream: 400, fatal; fine on a datagram.
    let missing = MESSAGE.replace("Content-Length: 5\r\n", "");
    assert_stream(missing.as_bytes(), (BAD, true, Some(400), true));
    assert!(parse_datagram(missing.as_bytes(), &Limits::default()).is_ok());
    // A response with a bad Content-Length is dropped, not answered.
    let resp = MESSAGE
        .replacen("MESSAGE sip:bob@gw.test SIP/2.0", "SIP/2.0 200 OK", 1)
        .replace("Content-Length: 5", "Content-Length: x");
    assert_stream(resp.as_bytes(), (BAD, true, None, false));
    assert_datagram(resp.as_bytes(), (BAD, false, None, false));
}

#[test]
fn crlf_games() {
    let bare_lf = MESSAGE.replace("\r\n", "\n");
    assert_stream(bare_lf.as_bytes(), (BAD, true, None, false));
    assert_datagram(bare_lf.as_bytes(), (BAD, false, None, false));
    // One bare LF, anywhere in the header section.
    let head_len = MESSAGE.find("\r\n\r\n").unwrap();
    for (i, _) in MESSAGE[..head_len].match_indices("\r\n") {
        let mut one = MESSAGE.to_owned();
        one.replace_range(i..i + 2, "\n");
        assert_stream(one.as_bytes(), (BAD, true, None, false));
        let mut cr = MESSAGE.to_owned();
        cr.replace_range(i..i + 2, "\r");
        assert_stream(cr.as_bytes(), (BAD, true, None, false));
    }
    // A header section ending in LF LF.
    let lflf = MESSAGE.replace("\r\n\r\n", "\r\n\n");
    assert_stream(lflf.as_bytes(), (BAD, true, None, false));
    // Before a message: CR LF runs are keepalives; LF or CR alone is not.
    assert_stream(format!("\n{MESSAGE}").as_bytes(), (BAD, true, None, false));
    assert_stream(
        format!("\r\r\n{MESSAGE}").as_bytes(),
        (BAD, true, None, false),
    );
    let mut run = "\r\n".repeat(10_001).into_bytes();
    run.extend_from_slice(MESSAGE.as_bytes());
    for chunk in [1, 3, 4096] {
        let mut f = StreamFramer::new(Limits::default());
        let mut pings = 0;
        let mut pongs = 0;
        let mut msgs = 0;
        for piece in run.chunks(chunk) {
            f.feed(piece);
            assert!(f.buffered() <= 1024, "keepalives are not buffered");
            while let Some(r) = f.poll() {
                match r.unwrap() {
                    Frame::Ping => pings += 1,
                    Frame::Pong => pongs += 1,
                    Frame::Message(_) => msgs += 1,
                }
            }
        }
        assert_eq!((pings, pongs, msgs), (5000, 5001, 1));
    }
    // A leading CRLF run on a datagram is skipped.
    assert!(parse_datagram(
        format!("\r\n\r\n\r\n{MESSAGE}").as_bytes(),
        &Limits::default()
    )
    .is_ok());
    // A continuation line before any header, or a space before the start line.
    let cont = MESSAGE.replacen("SIP/2.0\r\n", "SIP/2.0\r\n folded\r\n", 1);
    assert_stream(cont.as_bytes(), (BAD, true, None, false));
    let lead = format!(" {MESSAGE}");
    // The start line is garbage but the framing holds: dropped, stream goes on.
    assert_stream(lead.as_bytes(), (BAD, false, None, false));
    // An empty datagram or one with only CRLFs: nothing to answer.
    assert_datagram(b"", (BAD, false, None, false));
    assert_datagram(b"\r\n\r\n", (BAD, false, None, false));
    // No empty line at all.
    let unterminated = MESSAGE.replace("\r\n\r\nhello", "\r\n");
    assert_datagram(unterminated.as_bytes(), (BAD, false, None, false));
}

#[test]
fn nul_and_control_bytes_in_every_position() {
    let head_len = MESSAGE.find("\r\n\r\n").unwrap() + 4;
    for byte in [0x00u8, 0x01, 0x0B, 0x1F, 0x7F] {
        for pos in 0..head_len {
            let mut input = MESSAGE.as_bytes().to_vec();
            input.insert(pos, byte);
            let e = parse_datagram(&input, &Limits::default()).unwrap_err();
            assert_eq!(e.kind(), BAD, "{byte:02X} at {pos}: {e}");
            // Before the blank line a control line leaves the section
            // unterminated; a stream then waits, so end it.
            input.extend_from_slice(b"\r\n\r\n");
            let se = stream_error(&input, 5, Limits::default());
            assert_eq!(se.map(|e| e.kind()), Some(BAD), "{byte:02X} at {pos}");
        }
    }
    // In the body, anything goes.
    let body = MESSAGE.replace("hello", "he\0\x01o");
    let m = parse_datagram(body.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(m.body(), b"he\0\x01o");
}

#[test]
fn invalid_utf8_in_the_header_section() {
    let mut input = MESSAGE.as_bytes().to_vec();
    let at = MESSAGE.find("bob").unwrap();
    input.splice(at..at + 1, [0xC3, 0x28]);
    let e = parse_datagram(&input, &Limits::default()).unwrap_err();
    assert_eq!((e.kind(), e.response_code()), (BAD, None));
    // UTF-8 in a display name is fine.
    let utf8 = MESSAGE.replace("From: <", "From: \"Zoë 日本\" <");
    assert!(parse_datagram(utf8.as_bytes(), &Limits::default()).is_ok());
}

#[test]
fn version_and_scheme() {
    let v3 = MESSAGE.replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1);
    assert_stream(
        v3.as_bytes(),
        (ErrorKind::VersionNotSupported, false, Some(505), true),
    );
    let im = MESSAGE.replacen("sip:bob@gw.test SIP", "im:bob@gw.test SIP", 1);
    assert_stream(
        im.as_bytes(),
        (ErrorKind::UnsupportedUriScheme, false, Some(416), true),
    );
    let e = parse_datagram(im.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(e.response("t").unwrap().reason, "Unsupported URI Scheme");
}

#[test]
fn a_stream_goes_on_after_a_bad_message() {
    let bad = MESSAGE.replace("CSeq: 1 MESSAGE", "CSeq: 1 OPTIONS");
    let input = format!("{bad}{MESSAGE}\r\n\r\n{bad}");
    let mut f = StreamFramer::new(Limits::default());
    f.feed(input.as_bytes());
    let out: Vec<_> = std::iter::from_fn(|| f.poll()).collect();
    assert_eq!(out.len(), 5);
    assert!(matches!(&out[0], Err(e) if !e.is_fatal() && e.can_reply()));
    assert!(matches!(&out[1], Ok(Frame::Message(Message::Request(_)))));
    assert_eq!(out[2], Ok(Frame::Pong));
    assert_eq!(out[3], Ok(Frame::Ping));
    assert!(out[4].is_err());
    assert!(f.is_idle());
}

#[test]
fn random_garbage_never_panics_and_stays_bounded() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut garbage = MESSAGE.as_bytes().to_vec();
    let alphabet = b"\r\n:; ,<>\"\\/=@0123456789abcSIP\x00\x80\xC3Content-Length: 1\r\n\r\n";
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        garbage.push(alphabet[(x % alphabet.len() as u64) as usize]);
    }
    for chunk in [1, 13, 8192] {
        let _ = stream_error(&garbage, chunk, Limits::default());
    }
    for window in garbage.chunks(1500) {
        let _ = parse_datagram(window, &Limits::default());
    }
}
