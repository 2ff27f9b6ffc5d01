//! Reader throughput on a realistic s2s stream: 10,000 `<message>` stanzas
//! of about 300 bytes, fed in 64 KiB reads as a socket would deliver them.
//! Run with `cargo bench -p xfed-core --bench xml_reader`; prints MB/s and
//! stanzas/s (median and best of the runs) for reading into trees, for
//! reading as a relay does (`Reader::raw`: checked, routing attributes
//! read, no tree) and for writing.

mod common;

use std::hint::black_box;
use std::time::Duration;

use xfed_core::xml::{ns, Element, Event, Form, Limits, Reader, Scope, StreamHeader};

const STANZAS: usize = 10_000;
const RUNS: usize = 30;

fn message(i: usize) -> Element {
    Element::new(ns::SERVER, "message")
        .with_attr("from", format!("juliet{}@capulet.example/balcony", i % 97))
        .with_attr("to", format!("romeo{}@montague.example", i % 89))
        .with_attr("type", "chat")
        .with_attr("id", format!("msg-{i:08}"))
        .with_attr_ns(ns::XML, "lang", "en")
        .with_child(
            Element::new(ns::SERVER, "body")
                .with_text("Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike & <so> on."),
        )
        .with_child(Element::new(ns::SERVER, "thread").with_text("e0ffe42b28561960c6b12b944a092794b9683a38"))
        .with_child(Element::new(ns::CHATSTATES, "active"))
}

fn stream() -> (Vec<u8>, Vec<Element>) {
    let scope = Scope::server();
    let header = StreamHeader::new(scope.clone())
        .with_attr("from", "capulet.example")
        .with_attr("to", "montague.example")
        .with_attr("version", "1.0");
    let mut out = Vec::new();
    header.write(&mut out);
    let stanzas: Vec<Element> = (0..STANZAS).map(message).collect();
    for s in &stanzas {
        s.write(&scope, &mut out);
    }
    header.write_end(&mut out);
    (out, stanzas)
}

fn report(what: &str, bytes: usize, (median, best): (Duration, Duration)) {
    let mbs = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    let sps = |d: Duration| STANZAS as f64 / d.as_secs_f64();
    println!(
        "{what}: {:.0} MB/s, {:.0} stanzas/s median ({:.0} MB/s, {:.0} stanzas/s best) over {RUNS} runs of {STANZAS} stanzas, {bytes} bytes",
        mbs(median),
        sps(median),
        mbs(best),
        sps(best)
    );
}

/// Reads the whole stream in 64 KiB reads, handing each stanza to `each`.
fn read_all<S: Form>(mut r: Reader<S>, input: &[u8], mut each: impl FnMut(&S)) {
    let mut n = 0;
    for chunk in input.chunks(64 * 1024) {
        r.feed_all(chunk);
        while let Some(ev) = r.poll() {
            if let Ok(Event::Stanza(s)) = ev {
                each(&s);
                n += 1;
            }
        }
    }
    assert_eq!(n, STANZAS);
}

fn main() {
    let (input, stanzas) = stream();
    println!(
        "stream: {} bytes, {:.0} bytes per stanza",
        input.len(),
        input.len() as f64 / STANZAS as f64
    );
    let read = common::measure(RUNS, || {
        read_all(Reader::new(Limits::default()), &input, |e| {
            black_box(e);
        })
    });
    report("read, trees", input.len(), read);
    // What a relay does: each stanza checked and its routing attributes
    // read, no tree.
    let raw = common::measure(RUNS, || {
        read_all(Reader::raw(Limits::default()), &input, |s| {
            black_box(s.to());
        })
    });
    report("read, raw (no trees)", input.len(), raw);
    let mbs = |(median, _): (Duration, Duration)| input.len() as f64 / median.as_secs_f64() / 1e6;
    common::figure("xml_reader.trees_mbs", mbs(read));
    common::figure("xml_reader.raw_mbs", mbs(raw));
    let scope = Scope::server();
    let write = common::measure(RUNS, || {
        let mut out = Vec::with_capacity(input.len());
        for s in &stanzas {
            s.write(&scope, &mut out);
        }
        black_box(out);
    });
    report("write", input.len(), write);
}
