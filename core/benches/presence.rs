//! Presence translation throughput on one core, without the sockets or
//! the SIP message around the body: XMPP `<presence>` bytes of an s2s
//! stream in, PIDF bodies out (reader, RFC 8048 mapping with RPID,
//! serializer), and PIDF bodies in, `<presence>` bytes out (bounded PIDF
//! reader, mapping, serializer). Subscriptions, NOTIFY building and TLS
//! are not included.
//! Run with `cargo bench -p xfed-core --bench presence`.

mod common;

use std::hint::black_box;

use xfed_core::jid::Jid;
use xfed_core::translate::presence::{pidf_to_xmpp, xmpp_to_pidf, Disclosure, PidfLimits};
use xfed_core::xml::{ns, Element, Event, Limits, Reader, Scope, StreamHeader};

const MESSAGES: usize = 10_000;
const RUNS: usize = 20;
const SHOWS: [Option<&str>; 5] = [None, Some("away"), Some("dnd"), Some("xa"), Some("chat")];

fn presence(i: usize) -> Element {
    let mut p = Element::new(ns::SERVER, "presence")
        .with_attr("from", format!("juliet{}@capulet.example/balcony", i % 97))
        .with_attr("to", format!("romeo{}@montague.example", i % 89))
        .with_attr_ns(ns::XML, "lang", "en");
    if let Some(show) = SHOWS[i % SHOWS.len()] {
        p.push_child(Element::new(ns::SERVER, "show").with_text(show));
    }
    p.with_child(
        Element::new(ns::SERVER, "status")
            .with_text("Wherefore art thou? At the ball & <back> soon."),
    )
    .with_child(Element::new(ns::SERVER, "priority").with_text("5"))
}

fn xmpp_stream() -> Vec<u8> {
    let scope = Scope::server();
    let header = StreamHeader::new(scope.clone())
        .with_attr("from", "capulet.example")
        .with_attr("to", "montague.example")
        .with_attr("version", "1.0");
    let mut out = Vec::new();
    header.write(&mut out);
    for i in 0..MESSAGES {
        presence(i).write(&scope, &mut out);
    }
    out
}

/// `<presence>` stream bytes -> PIDF bodies.
fn xmpp_to_sip(input: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = Reader::new(Limits::default());
    let mut out = Vec::with_capacity(MESSAGES);
    for chunk in input.chunks(64 * 1024) {
        reader.feed_all(chunk);
        while let Some(ev) = reader.poll() {
            let Ok(Event::Stanza(stanza)) = ev else {
                continue;
            };
            out.push(xmpp_to_pidf([&stanza], Disclosure::Full).expect("availability"));
        }
    }
    out
}

/// PIDF bodies -> `<presence>` bytes.
fn sip_to_xmpp(bodies: &[Vec<u8>], from: &[Jid], to: &Jid) -> Vec<u8> {
    let scope = Scope::server();
    let limits = PidfLimits::default();
    let mut out = Vec::with_capacity(bodies.len() * 300);
    for (i, body) in bodies.iter().enumerate() {
        let stanzas = pidf_to_xmpp(
            Some(body),
            &from[i % from.len()],
            to,
            Disclosure::Full,
            &limits,
        )
        .expect("our PIDF");
        for s in stanzas {
            s.write(&scope, &mut out);
        }
    }
    out
}

fn main() {
    let input = xmpp_stream();
    let bodies = xmpp_to_sip(&input);
    assert_eq!(bodies.len(), MESSAGES);
    let from: Vec<Jid> = (0..97)
        .map(|i| Jid::parse(&format!("juliet{i}@capulet.example")).expect("a JID"))
        .collect();
    let to = Jid::parse("romeo@montague.example").expect("a JID");
    let back = sip_to_xmpp(&bodies, &from, &to);
    println!(
        "XMPP in: {:.0} bytes per <presence>; PIDF out: {:.0} bytes per body; XMPP back: {:.0} bytes",
        input.len() as f64 / MESSAGES as f64,
        bodies.iter().map(Vec::len).sum::<usize>() as f64 / MESSAGES as f64,
        back.len() as f64 / MESSAGES as f64
    );
    common::report(
        "XMPP -> PIDF",
        "presences",
        MESSAGES,
        RUNS,
        common::measure(RUNS, || {
            black_box(xmpp_to_sip(&input));
        }),
    );
    common::report(
        "PIDF -> XMPP",
        "presences",
        MESSAGES,
        RUNS,
        common::measure(RUNS, || {
            black_box(sip_to_xmpp(&bodies, &from, &to));
        }),
    );
}
