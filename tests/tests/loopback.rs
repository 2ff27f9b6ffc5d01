//! Both binaries on loopback: streams are framed by the core and answered
//! with the stream error RFC 6120 prescribes; bad input on one connection
//! does not disturb another; SIGTERM stops the process cleanly.

use std::io::Write;
use std::time::Duration;

use xfed_core::xml::{Event, Limits, Reader};
use xfed_core::xmpp::{StreamCondition, StreamError};
use xfed_tests::{read_to_close, Instance, BINARIES};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' from='peer.example' to='localhost' version='1.0'>";

/// Parses what xfed sent: its header, then the stream error, then the end.
fn answered_condition(reply: &str) -> StreamCondition {
    let mut r = Reader::new(Limits::default());
    r.feed_all(reply.as_bytes());
    let events: Vec<_> = std::iter::from_fn(|| r.poll()).collect();
    match events.as_slice() {
        [Ok(Event::Header(h)), Ok(Event::Stanza(e)), Ok(Event::End)] => {
            assert_eq!(h.from(), Some("localhost"), "{reply}");
            assert!(h.id().is_some_and(|id| id.len() >= 16), "{reply}");
            StreamError::from_element(e)
                .expect("a stream error")
                .condition
        }
        other => panic!("unexpected reply {other:?} to {reply}"),
    }
}

fn exchange(inst: &Instance, input: &[u8]) -> StreamCondition {
    let mut s = inst.connect();
    // In small pieces, to exercise reassembly over TCP.
    // xfed may close before all of a hostile input is written.
    for chunk in input.chunks(7) {
        if s.write_all(chunk).is_err() {
            break;
        }
    }
    answered_condition(&read_to_close(&mut s))
}

#[test]
fn streams_are_refused_with_the_right_error_on_both_runtimes() {
    for bin in BINARIES {
        let mut inst = Instance::start(bin, &[]);
        // Another peer holds a stream open meanwhile: hostile input on
        // other connections must not disturb it.
        let mut idle = inst.connect();
        idle.write_all(&HEADER.as_bytes()[..40]).unwrap();

        assert_eq!(
            exchange(&inst, HEADER.as_bytes()),
            StreamCondition::PolicyViolation,
            "{bin}"
        );
        let other = HEADER.replace("to='localhost'", "to='elsewhere.example'");
        assert_eq!(
            exchange(&inst, other.as_bytes()),
            StreamCondition::HostUnknown,
            "{bin}"
        );
        let laughs = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>]><stream:stream>";
        assert_eq!(
            exchange(&inst, laughs.as_bytes()),
            StreamCondition::RestrictedXml,
            "{bin}"
        );
        assert_eq!(
            exchange(&inst, b"<stream:stream \xFF>"),
            StreamCondition::NotWellFormed,
            "{bin}"
        );
        let mut huge = b"<stream:stream to='".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 300 * 1024));
        assert_eq!(
            exchange(&inst, &huge),
            StreamCondition::PolicyViolation,
            "{bin}"
        );
        inst.wait_log("refused", Duration::from_secs(5));
        inst.wait_log("restricted-xml", Duration::from_secs(5));

        // The idle stream is still served.
        idle.write_all(&HEADER.as_bytes()[40..]).unwrap();
        assert_eq!(
            answered_condition(&read_to_close(&mut idle)),
            StreamCondition::PolicyViolation,
            "{bin}"
        );

        assert!(inst.terminate(), "{bin} did not exit cleanly on SIGTERM");
    }
}
