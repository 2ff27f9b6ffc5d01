//! Scenario tests of the stream reader: whole streams, restarts, the
//! prologue rules and the writer's output read back.

use xfed_core::xml::{ns, Element, ErrorKind, Event, Limits, Reader, Scope, StreamHeader};

fn events(input: &[u8]) -> Vec<Result<Event, ErrorKind>> {
    let mut r = Reader::new(Limits::default());
    r.feed_all(input);
    std::iter::from_fn(|| r.poll().map(|e| e.map_err(|e| e.kind()))).collect()
}

const HEADER: &str = "<?xml version='1.0' encoding='UTF-8'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='a.example' to='b.example' version='1.0' xml:lang='en'>";

#[test]
fn a_whole_s2s_stream() {
    let input = format!(
        "{HEADER}\n  <db:result from='a.example' to='b.example'>abc</db:result> \
         <message from='x@a.example' to='y@b.example' type='chat'><body>hi &amp; bye</body></message>\
         <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>\n\
         </stream:stream >"
    );
    let ev = events(input.as_bytes());
    assert_eq!(ev.len(), 5, "{ev:?}");
    let Ok(Event::Header(h)) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (h.from(), h.to(), h.version(), h.lang()),
        (
            Some("a.example"),
            Some("b.example"),
            Some("1.0"),
            Some("en")
        )
    );
    assert_eq!(h.scope().resolve("db"), Some(ns::DIALBACK));
    let Ok(Event::Stanza(db)) = &ev[1] else {
        panic!()
    };
    assert!(db.is(ns::DIALBACK, "result"));
    assert_eq!(db.text(), "abc");
    let Ok(Event::Stanza(m)) = &ev[2] else {
        panic!()
    };
    assert!(m.is(ns::SERVER, "message"));
    assert_eq!(
        m.child(ns::SERVER, "body").map(|b| b.text().into_owned()),
        Some("hi & bye".into())
    );
    let Ok(Event::Stanza(f)) = &ev[3] else {
        panic!()
    };
    assert!(f.is(ns::STREAM, "features"));
    assert!(f
        .child(ns::TLS, "starttls")
        .and_then(|s| s.child(ns::TLS, "required"))
        .is_some());
    assert_eq!(ev[4], Ok(Event::End));
}

#[test]
fn prefix_free_stream_element() {
    let input = "<stream xmlns='http://etherx.jabber.org/streams' to='b'>\
        <message xmlns='jabber:server'/><features/></stream>";
    let ev = events(input.as_bytes());
    let Ok(Event::Stanza(m)) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert!(m.is(ns::SERVER, "message"));
    let Ok(Event::Stanza(f)) = &ev[2] else {
        panic!("{ev:?}")
    };
    assert!(f.is(ns::STREAM, "features"));
    assert_eq!(ev[3], Ok(Event::End));
}

#[test]
fn feed_stops_at_each_event_so_a_restart_lands_exactly() {
    let first = format!("{HEADER}<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    let input = format!("{first}{HEADER}<message/>");
    let mut r = Reader::new(Limits::default());
    let mut rest = input.as_bytes();
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let n = r.feed(rest);
        rest = &rest[n..];
        while let Some(ev) = r.poll() {
            let ev = ev.unwrap();
            if let Event::Stanza(e) = &ev {
                if e.is(ns::TLS, "proceed") {
                    assert_eq!(input.len() - rest.len(), first.len());
                    r.reset();
                }
            }
            seen.push(ev);
        }
    }
    assert_eq!(seen.len(), 4);
    assert!(matches!(&seen[3], Event::Stanza(m) if m.is(ns::SERVER, "message")));
}

#[test]
fn prologue_rules() {
    let bom = [&[0xEF, 0xBB, 0xBF][..], HEADER.as_bytes()].concat();
    assert!(matches!(events(&bom)[0], Ok(Event::Header(_))));
    let latin = "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>";
    assert_eq!(
        events(latin.as_bytes()),
        vec![Err(ErrorKind::UnsupportedEncoding)]
    );
    let utf16 = [&[0xFF, 0xFE][..], b"<\0s\0"].concat();
    assert_eq!(events(&utf16), vec![Err(ErrorKind::UnsupportedEncoding)]);
    let late_decl = format!("<a/>{HEADER}");
    assert_eq!(
        events(late_decl.as_bytes()),
        vec![Err(ErrorKind::NotAStream)]
    );
    let decl_after_header = format!("{HEADER}<?xml version='1.0'?>");
    assert_eq!(
        events(decl_after_header.as_bytes())[1],
        Err(ErrorKind::RestrictedXml)
    );
    let stylesheet = "<?xml-stylesheet href='x'?><stream:stream>";
    assert_eq!(
        events(stylesheet.as_bytes()),
        vec![Err(ErrorKind::RestrictedXml)]
    );
    let empty = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>";
    assert_eq!(events(empty.as_bytes()), vec![Err(ErrorKind::NotAStream)]);
    let wrong_ns = "<stream:stream xmlns:stream='jabber:server'>";
    assert_eq!(
        events(wrong_ns.as_bytes()),
        vec![Err(ErrorKind::WrongStreamNamespace)]
    );
}

#[test]
fn top_level_and_closing_errors() {
    let text = format!("{HEADER}hello<message/>");
    assert_eq!(events(text.as_bytes())[1], Err(ErrorKind::NotAStream));
    let wrong_end = format!("{HEADER}</stream>");
    assert_eq!(
        events(wrong_end.as_bytes())[1],
        Err(ErrorKind::NotWellFormed)
    );
    let after_end = format!("{HEADER}</stream:stream> \n<message/>");
    assert_eq!(
        events(after_end.as_bytes())[2],
        Err(ErrorKind::NotWellFormed)
    );
    let cdata_top = format!("{HEADER}<![CDATA[x]]>");
    assert_eq!(
        events(cdata_top.as_bytes())[1],
        Err(ErrorKind::NotWellFormed)
    );
    let unbound = format!("{HEADER}<x:message/>");
    assert_eq!(events(unbound.as_bytes())[1], Err(ErrorKind::NotWellFormed));
}

#[test]
fn an_error_ends_the_stream_after_what_came_before() {
    let input = format!("{HEADER}<message/><!-- no --><message/>");
    let mut r = Reader::new(Limits::default());
    r.feed_all(input.as_bytes());
    assert!(matches!(r.poll(), Some(Ok(Event::Header(_)))));
    assert!(matches!(r.poll(), Some(Ok(Event::Stanza(_)))));
    assert_eq!(
        r.poll().unwrap().unwrap_err().kind(),
        ErrorKind::RestrictedXml
    );
    assert!(r.poll().is_none());
    assert_eq!(r.feed(b"<message/>"), 10);
    assert!(r.poll().is_none());
}

#[test]
fn writer_output_reads_back() {
    let scope = Scope::server();
    let header = StreamHeader::new(scope.clone())
        .with_attr("from", "a.example")
        .with_attr("to", "b.example")
        .with_attr("version", "1.0")
        .with_lang("en");
    let stanza = Element::new(ns::SERVER, "iq")
        .with_attr("type", "get")
        .with_child(Element::new(ns::PING, "ping"));
    let db = Element::new(ns::DIALBACK, "verify")
        .with_attr("id", "i")
        .with_text("k");
    let mut out = Vec::new();
    header.write(&mut out);
    stanza.write(&scope, &mut out);
    db.write(&scope, &mut out);
    header.write_end(&mut out);
    assert!(String::from_utf8_lossy(&out).contains("<db:verify id='i'>k</db:verify>"));
    let ev = events(&out);
    assert_eq!(
        ev,
        vec![
            Ok(Event::Header(header)),
            Ok(Event::Stanza(stanza)),
            Ok(Event::Stanza(db)),
            Ok(Event::End)
        ]
    );
}

#[test]
fn cdata_and_references_in_stanzas() {
    let input =
        format!("{HEADER}<message><body><![CDATA[a]]b]]>&#x1F600;&lt;x&gt;</body></message>");
    let ev = events(input.as_bytes());
    let Ok(Event::Stanza(m)) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        m.child(ns::SERVER, "body").unwrap().text(),
        "a]]b\u{1F600}<x>"
    );
}
