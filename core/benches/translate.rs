//! Translation throughput on one core, the gateway's hot path without the
//! sockets: XMPP `<message>` bytes of an s2s stream in, SIP MESSAGE bytes
//! out (reader, RFC 7572 mapping read from each message's text as the
//! gateway does, or through its element tree as before, request building
//! with Via, serializing),
//! and SIP MESSAGE datagrams in, `<message>` bytes out (parser, mapping,
//! serializer). Transactions, queues and TLS are not included. Also
//! counts the calls into the allocator per message each way (the counting
//! allocator costs a relaxed atomic add per call).
//! Run with `cargo bench -p xfed-core --bench translate`.

mod common;

use std::hint::black_box;
use std::net::SocketAddr;

use xfed_core::config::SipTransport;
use xfed_core::endpoint::pager::{message_request, sip_im_of};
use xfed_core::endpoint::Target;
use xfed_core::sip::{parse_datagram, Limits as SipLimits, Message, Uri};
use xfed_core::translate::{
    sip_message_to_xmpp, xmpp_message_to_sip, xmpp_stanza_to_sip, ImError, SipIm,
};
use xfed_core::xml::{ns, Element, Event, Form, Limits, Reader, Scope, StreamHeader};

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

const MESSAGES: usize = 10_000;
const RUNS: usize = 20;

fn message(i: usize) -> Element {
    Element::new(ns::SERVER, "message")
        .with_attr("from", format!("juliet{}@capulet.example/balcony", i % 97))
        .with_attr("to", format!("romeo{}@montague.example", i % 89))
        .with_attr("type", "chat")
        .with_attr("id", format!("msg-{i:08}"))
        .with_attr_ns(ns::XML, "lang", "en")
        .with_child(Element::new(ns::SERVER, "body").with_text(
            "Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike & <so> on.",
        ))
        .with_child(
            Element::new(ns::SERVER, "thread").with_text("e0ffe42b28561960c6b12b944a092794b9683a38"),
        )
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
        message(i).write(&scope, &mut out);
    }
    out
}

fn target(i: usize) -> Target {
    let addr: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    Target {
        uri: Uri::parse(&format!("sip:romeo{}@192.0.2.10:5060", i % 89)).unwrap(),
        to: format!("sip:romeo{}@montague.example", i % 89),
        addr,
        transport: SipTransport::Udp,
        tls_name: None,
        flow: None,
    }
}

/// XMPP bytes -> SIP MESSAGE bytes, each message read as text and
/// translated from it (the gateway's path); returns the datagrams.
fn xmpp_to_sip(input: &[u8], targets: &[Target]) -> Vec<Vec<u8>> {
    translate_with(
        Reader::raw(Limits::default()),
        input,
        targets,
        xmpp_stanza_to_sip,
    )
}

/// The same through element trees (the path before, and the one for
/// messages from components and the local side).
fn xmpp_trees_to_sip(input: &[u8], targets: &[Target]) -> Vec<Vec<u8>> {
    translate_with(
        Reader::new(Limits::default()),
        input,
        targets,
        xmpp_message_to_sip,
    )
}

fn translate_with<S: Form>(
    mut reader: Reader<S>,
    input: &[u8],
    targets: &[Target],
    map: fn(&S) -> Result<SipIm, ImError>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(MESSAGES);
    for chunk in input.chunks(64 * 1024) {
        reader.feed_all(chunk);
        while let Some(ev) = reader.poll() {
            let Ok(Event::Stanza(stanza)) = ev else {
                continue;
            };
            let im = map(&stanza).expect("a gatewayed message");
            let call_id = im.call_id.clone().unwrap_or_default();
            let mut req = message_request(&im, &targets[out.len()], &call_id, "8b1c2d").unwrap();
            req.headers.push_front(
                "Via",
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK5f3c9a1e7d;rport",
            );
            out.push(req.to_bytes());
        }
    }
    out
}

/// SIP MESSAGE datagrams -> `<message>` bytes.
fn sip_to_xmpp(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let scope = Scope::server();
    let limits = SipLimits::default();
    let mut out = Vec::with_capacity(datagrams.len() * 400);
    for d in datagrams {
        let Ok(Message::Request(req)) = parse_datagram(d, &limits) else {
            panic!("a MESSAGE request");
        };
        let im = sip_im_of(&req).expect("a MESSAGE to map");
        let msg = sip_message_to_xmpp(&im, "sip-4f1d").unwrap();
        msg.write(&scope, &mut out);
    }
    out
}

fn main() {
    let input = xmpp_stream();
    let targets: Vec<Target> = (0..MESSAGES).map(target).collect();
    let datagrams = xmpp_to_sip(&input, &targets);
    assert_eq!(datagrams.len(), MESSAGES);
    let back = sip_to_xmpp(&datagrams);
    println!(
        "XMPP in: {:.0} bytes per <message>; SIP out: {:.0} bytes per MESSAGE; XMPP back: {:.0} bytes",
        input.len() as f64 / MESSAGES as f64,
        datagrams.iter().map(Vec::len).sum::<usize>() as f64 / MESSAGES as f64,
        back.len() as f64 / MESSAGES as f64
    );
    let per_message = |f: &mut dyn FnMut()| {
        let before = common::allocations_made();
        f();
        (common::allocations_made() - before) as f64 / MESSAGES as f64
    };
    assert_eq!(xmpp_trees_to_sip(&input, &targets), datagrams);
    println!(
        "allocations per message, XMPP -> SIP through trees: {:.1}",
        per_message(&mut || {
            black_box(xmpp_trees_to_sip(&input, &targets));
        })
    );
    let allocations = (
        per_message(&mut || {
            black_box(xmpp_to_sip(&input, &targets));
        }),
        per_message(&mut || {
            black_box(sip_to_xmpp(&datagrams));
        }),
    );
    println!(
        "allocations per message: XMPP -> SIP {:.1}, SIP -> XMPP {:.1}",
        allocations.0, allocations.1
    );
    common::figure("translate.xmpp_to_sip_allocations", allocations.0);
    common::figure("translate.sip_to_xmpp_allocations", allocations.1);
    let trees = common::measure(RUNS, || {
        black_box(xmpp_trees_to_sip(&input, &targets));
    });
    common::report(
        "XMPP -> SIP through trees",
        "messages",
        MESSAGES,
        RUNS,
        trees,
    );
    let into_sip = common::measure(RUNS, || {
        black_box(xmpp_to_sip(&input, &targets));
    });
    common::report(
        "XMPP -> SIP from the text",
        "messages",
        MESSAGES,
        RUNS,
        into_sip,
    );
    let into_xmpp = common::measure(RUNS, || {
        black_box(sip_to_xmpp(&datagrams));
    });
    common::report("SIP -> XMPP", "messages", MESSAGES, RUNS, into_xmpp);
    let us = |(median, _): (std::time::Duration, _)| median.as_secs_f64() * 1e6 / MESSAGES as f64;
    common::figure("translate.xmpp_to_sip_us", us(into_sip));
    common::figure("translate.sip_to_xmpp_us", us(into_xmpp));
    common::report(
        "round trip (XMPP -> SIP -> XMPP)",
        "messages",
        MESSAGES,
        RUNS,
        common::measure(RUNS, || {
            let d = xmpp_to_sip(&input, &targets);
            black_box(sip_to_xmpp(&d));
        }),
    );
}
