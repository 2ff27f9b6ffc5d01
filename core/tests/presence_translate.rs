//! Presence translation, `xfed_core::translate::presence`: XMPP
//! `<presence/>` <-> PIDF/RPID (RFC 8048 Tables 1 and 2) on the RFC
//! examples, the activity table, partner disclosure, round-trip
//! properties in both directions, and hostile PIDF bodies.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use xfed_core::jid::Jid;
use xfed_core::translate::presence::{
    parse_pidf, parse_pidf_with_language, pidf_body, pidf_to_xmpp, pres_uri, presentity_from_xmpp,
    presentity_to_xmpp, resource_of_tuple_id, tuple_id, xmpp_to_pidf, Activity, Availability,
    Disclosure, PidfError, PidfLimits, PresenceError, Presentity, Priority, QValue, Show,
    DATA_MODEL_NS, PIDF_NS, RPID_NS,
};
use xfed_core::xml::{ns, parse_element, Element, ErrorKind};

fn jid(s: &str) -> Jid {
    match Jid::parse(s) {
        Ok(j) => j,
        Err(e) => panic!("{s:?} is not a JID: {e}"),
    }
}

fn element(xml: &str) -> Element {
    match parse_element(xml) {
        Ok(e) => e,
        Err(e) => panic!("{xml:?} does not parse: {e}"),
    }
}

/// The PIDF bytes without the XML declaration, as an element tree.
fn pidf_tree(body: &[u8]) -> Element {
    let text = std::str::from_utf8(body).expect("UTF-8");
    let start = text.find("?>").map_or(0, |i| i + 2);
    element(text[start..].trim())
}

fn notify(body: &str) -> Vec<Element> {
    match pidf_to_xmpp(
        Some(body.as_bytes()),
        &jid("romeo@example.net"),
        &jid("juliet@example.com"),
        Disclosure::Full,
        &PidfLimits::default(),
    ) {
        Ok(s) => s,
        Err(e) => panic!("{body} is refused: {e}"),
    }
}

fn child_text(e: &Element, name: &str) -> Option<String> {
    e.child(ns::SERVER, name).map(|c| c.text().into_owned())
}

fn statuses(e: &Element) -> Vec<(Option<String>, String)> {
    e.children()
        .filter(|c| c.is(ns::SERVER, "status"))
        .map(|c| (c.lang().map(str::to_owned), c.text().into_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// RFC examples
// ---------------------------------------------------------------------------

const RFC8048_NOTIFY_BODY: &str = "<?xml version='1.0' encoding='UTF-8'?>
<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:romeo@example.net'>
  <tuple id='ID-dr4hcr0st3lup4c'>
    <status><basic>open</basic><show xmlns='jabber:client'>away</show></status>
  </tuple>
</presence>";

/// RFC 8048 section 5.2 (rfcs.md 4.5): the NOTIFY's body becomes presence
/// from the tuple's resource, with the `<show>` the RFC says a faithful
/// translation adds.
#[test]
fn rfc8048_notify_example() {
    let out = notify(RFC8048_NOTIFY_BODY);
    assert_eq!(out.len(), 1);
    let p = &out[0];
    assert!(p.is(ns::SERVER, "presence"));
    assert_eq!(p.attr("from"), Some("romeo@example.net/dr4hcr0st3lup4c"));
    assert_eq!(p.attr("to"), Some("juliet@example.com"));
    assert_eq!(p.attr("type"), None);
    assert_eq!(child_text(p, "show").as_deref(), Some("away"));
    assert_eq!(child_text(p, "priority"), None);
    assert!(statuses(p).is_empty());
}

/// The same example the other way: the stanza RFC 8048 derives from that
/// NOTIFY, with its `<show>`, gives back that document (plus the contact
/// GRUU and the RPID activity this gateway adds).
#[test]
fn rfc8048_example_from_xmpp() {
    let stanza = element(
        "<presence xmlns='jabber:server' from='romeo@example.net/dr4hcr0st3lup4c' \
         to='juliet@example.com'><show>away</show></presence>",
    );
    let body = xmpp_to_pidf([&stanza], Disclosure::Full).expect("a document");
    let text = String::from_utf8(body.clone()).expect("UTF-8");
    assert_eq!(
        text,
        "<?xml version='1.0' encoding='UTF-8'?>\n\
         <presence xmlns='urn:ietf:params:xml:ns:pidf' \
         xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' \
         xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:romeo@example.net'>\
         <tuple id='ID-dr4hcr0st3lup4c'>\
         <status><basic>open</basic><show xmlns='jabber:client'>away</show></status>\
         <contact>sip:romeo@example.net;gr=dr4hcr0st3lup4c</contact>\
         </tuple>\
         <dm:person id='p'><rpid:activities><rpid:away/></rpid:activities></dm:person>\
         </presence>"
    );
    // And it reads back as the RFC's example does.
    let back = pidf_to_xmpp(
        Some(&body),
        &jid("romeo@example.net"),
        &jid("juliet@example.com"),
        Disclosure::Full,
        &PidfLimits::default(),
    )
    .expect("reads back");
    assert_eq!(back, notify(RFC8048_NOTIFY_BODY));
}

/// SIP agents that only know RPID may match its elements by their
/// conventional names: baresip 1.0 reads a contact as away or busy only when
/// the text has `<rpid:away/>` or `<rpid:busy/>`. So the activity xfed adds
/// carries the `rpid:` prefix (and the person `dm:`), declared on the root;
/// a document without a person declares nothing.
#[test]
fn rpid_activities_carry_their_conventional_prefixes() {
    for (show, activity) in [
        ("away", "<rpid:away/>"),
        ("dnd", "<rpid:busy/>"),
        ("xa", "<rpid:away/>"),
    ] {
        let stanza = element(&format!(
            "<presence xmlns='jabber:server' from='bob@example.net/desk' \
             to='alice@example.com'><show>{show}</show></presence>"
        ));
        let body = xmpp_to_pidf([&stanza], Disclosure::Full).expect("a document");
        let text = String::from_utf8(body.clone()).expect("UTF-8");
        assert!(text.contains(activity), "{show}: {text}");
        assert!(
            text.contains("<dm:person id='p'><rpid:activities>"),
            "{show}: {text}"
        );
        assert!(
            text.contains(
                "<presence xmlns='urn:ietf:params:xml:ns:pidf' \
                 xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' \
                 xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' "
            ),
            "{show}: {text}"
        );
        // The same document for a namespace-aware reader.
        let back = pidf_to_xmpp(
            Some(&body),
            &jid("bob@example.net"),
            &jid("alice@example.com"),
            Disclosure::Full,
            &PidfLimits::default(),
        )
        .expect("reads back");
        assert_eq!(child_text(&back[0], "show").as_deref(), Some(show));
    }
    let plain = element(
        "<presence xmlns='jabber:server' from='bob@example.net/desk' to='alice@example.com'/>",
    );
    let text = String::from_utf8(xmpp_to_pidf([&plain], Disclosure::Full).expect("a document"))
        .expect("UTF-8");
    assert!(!text.contains("xmlns:"), "nothing to declare: {text}");
}

/// RFC 3863 section 6 (the example with two tuples, a foreign extension,
/// contacts that are no GRUU and a document-level note).
#[test]
fn rfc3863_example() {
    let out = notify(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:im="urn:ietf:params:xml:ns:pidf:im"
    xmlns:myex="http://id.example.com/presence/"
    entity="pres:someone@example.com">
  <tuple id="bs35r9">
    <status>
      <basic>open</basic>
      <im:im>busy</im:im>
      <myex:location>home</myex:location>
    </status>
    <contact priority="0.8">im:someone@mobilecarrier.net</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <note xml:lang="fr">Ne derangez pas, s'il vous plait</note>
    <timestamp>2001-10-27T16:49:29Z</timestamp>
  </tuple>
  <tuple id="eg92n8">
    <status>
      <basic>open</basic>
    </status>
    <contact priority="1.0">mailto:someone@example.com</contact>
  </tuple>
  <note>I'll be in Tokyo next week</note>
</presence>"#,
    );
    assert_eq!(out.len(), 2);
    // The entity (someone@example.com) does not address anything: the
    // dialog's notifier does.
    assert_eq!(out[0].attr("from"), Some("romeo@example.net/bs35r9"));
    assert_eq!(child_text(&out[0], "priority").as_deref(), Some("102"));
    assert_eq!(
        statuses(&out[0]),
        vec![
            (Some("en".into()), "Don't Disturb Please!".into()),
            (Some("fr".into()), "Ne derangez pas, s'il vous plait".into()),
        ]
    );
    assert_eq!(child_text(&out[0], "show"), None);
    assert_eq!(out[1].attr("from"), Some("romeo@example.net/eg92n8"));
    assert_eq!(child_text(&out[1], "priority").as_deref(), Some("127"));
    assert_eq!(
        statuses(&out[1]),
        vec![(None, "I'll be in Tokyo next week".into())]
    );
}

/// RFC 4480 section 5 (abridged): RPID on tuples, a device and a person
/// whose activities say `away`, which every open tuple then shows.
#[test]
fn rfc4480_example() {
    let out = notify(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    entity="pres:someone@example.com">
  <tuple id="bs35r9">
    <status><basic>open</basic></status>
    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>
    <rpid:relationship><rpid:self/></rpid:relationship>
    <rpid:service-class><rpid:electronic/></rpid:service-class>
    <contact priority="0.8">im:someone@mobilecarrier.net</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <note xml:lang="fr">Ne dérangez pas, s'il vous plait</note>
    <timestamp>2005-10-27T16:49:29Z</timestamp>
  </tuple>
  <tuple id="ty4658">
    <status><basic>open</basic></status>
    <rpid:relationship><rpid:assistant/></rpid:relationship>
    <contact priority="1.0">mailto:secretary@example.com</contact>
  </tuple>
  <tuple id="eg92n8">
    <status><basic>closed</basic></status>
    <rpid:class>email</rpid:class>
    <contact>mailto:someone@example.com</contact>
  </tuple>
  <note>I'll be in Tokyo next week</note>
  <dm:device id="pc122">
    <rpid:user-input idle-threshold="600" last-input="2004-10-21T13:20:00.000-05:00">idle</rpid:user-input>
    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>
    <dm:note>PC</dm:note>
  </dm:device>
  <dm:person id="p1">
    <rpid:activities from="2005-05-30T12:00:00+05:00" until="2005-05-30T17:00:00+05:00">
      <rpid:note>Far away</rpid:note>
      <rpid:away/>
    </rpid:activities>
    <rpid:class>calendar</rpid:class>
    <rpid:mood><rpid:angry/><rpid:other>brooding</rpid:other></rpid:mood>
    <rpid:place-is><rpid:audio><rpid:noisy/></rpid:audio></rpid:place-is>
    <rpid:privacy><rpid:unknown/></rpid:privacy>
    <rpid:sphere>bowling league</rpid:sphere>
    <rpid:time-offset>-240</rpid:time-offset>
    <dm:note>Scoring 120</dm:note>
    <dm:timestamp>2005-05-30T16:09:44+05:00</dm:timestamp>
  </dm:person>
</presence>"#,
    );
    assert_eq!(out.len(), 3);
    assert_eq!(child_text(&out[0], "show").as_deref(), Some("away"));
    assert_eq!(statuses(&out[0]).len(), 2);
    assert_eq!(out[1].attr("from"), Some("romeo@example.net/ty4658"));
    assert_eq!(child_text(&out[1], "show").as_deref(), Some("away"));
    // One note per language: the document's <note> wins over the person's.
    assert_eq!(
        statuses(&out[1]),
        vec![(None, "I'll be in Tokyo next week".into())]
    );
    assert_eq!(out[2].attr("type"), Some("unavailable"));
    assert_eq!(child_text(&out[2], "show"), None);
}

// ---------------------------------------------------------------------------
// XMPP -> PIDF
// ---------------------------------------------------------------------------

fn document(stanzas: &[&str], disclosure: Disclosure) -> Element {
    let stanzas: Vec<Element> = stanzas.iter().map(|s| element(s)).collect();
    pidf_tree(&xmpp_to_pidf(&stanzas, disclosure).expect("a document"))
}

fn tuples(doc: &Element) -> Vec<&Element> {
    doc.children().filter(|c| c.is(PIDF_NS, "tuple")).collect()
}

fn activity(doc: &Element) -> Option<String> {
    let person = doc.child(DATA_MODEL_NS, "person")?;
    assert!(person.attr("id").is_some(), "RFC 4479: a person has an id");
    let acts = person.child(RPID_NS, "activities")?;
    let names: Vec<_> = acts.children().map(|a| a.name().to_owned()).collect();
    assert_eq!(names.len(), 1);
    names.into_iter().next()
}

#[test]
fn xmpp_to_pidf_fields() {
    let doc = document(
        &[
            "<presence xmlns='jabber:server' from='juliet@example.com/balcony' xml:lang='en'>\
           <show>dnd</show><status>Busy</status><status xml:lang='cs'>Zaneprázdněna</status>\
           <priority>1</priority></presence>",
        ],
        Disclosure::Full,
    );
    assert_eq!(doc.attr("entity"), Some("pres:juliet@example.com"));
    let t = tuples(&doc);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].attr("id"), Some("ID-balcony"));
    let status = t[0].child(PIDF_NS, "status").expect("status");
    assert_eq!(
        status
            .child(PIDF_NS, "basic")
            .map(|b| b.text().into_owned()),
        Some("open".into())
    );
    assert_eq!(
        status
            .child(ns::CLIENT, "show")
            .map(|b| b.text().into_owned()),
        Some("dnd".into())
    );
    let contact = t[0].child(PIDF_NS, "contact").expect("contact");
    assert_eq!(contact.text(), "sip:juliet@example.com;gr=balcony");
    assert_eq!(contact.attr("priority"), Some("0.007"));
    let notes: Vec<_> = t[0]
        .children()
        .filter(|c| c.is(PIDF_NS, "note"))
        .map(|n| (n.lang().map(str::to_owned), n.text().into_owned()))
        .collect();
    assert_eq!(
        notes,
        vec![
            (Some("en".into()), "Busy".into()),
            (Some("cs".into()), "Zaneprázdněna".into())
        ]
    );
    assert_eq!(activity(&doc).as_deref(), Some("busy"));
}

#[test]
fn show_to_activity_table() {
    for (show, act) in [
        ("away", Some("away")),
        ("xa", Some("away")),
        ("dnd", Some("busy")),
        ("chat", None),
    ] {
        let doc = document(
            &[&format!(
                "<presence xmlns='jabber:server' from='a@b.example/r'><show>{show}</show></presence>"
            )],
            Disclosure::Full,
        );
        assert_eq!(activity(&doc).as_deref(), act, "{show}");
    }
    let doc = document(
        &["<presence xmlns='jabber:server' from='a@b.example/r'/>"],
        Disclosure::Full,
    );
    assert_eq!(doc.child(DATA_MODEL_NS, "person"), None);
}

/// Unavailable is closed, keeps its status, and carries no show, priority
/// or activity; a negative priority is not mapped (RFC 8048 Table 1).
#[test]
fn unavailable_and_negative_priority() {
    let doc = document(
        &[
            "<presence xmlns='jabber:server' from='a@b.example/gone' type='unavailable'>\
             <status>Bye</status><priority>5</priority></presence>",
            "<presence xmlns='jabber:server' from='a@b.example/hidden'>\
             <show>away</show><priority>-1</priority></presence>",
        ],
        Disclosure::Full,
    );
    let t = tuples(&doc);
    assert_eq!(t.len(), 2);
    let basic = |t: &Element| {
        t.child(PIDF_NS, "status")
            .and_then(|s| s.child(PIDF_NS, "basic"))
            .map(|b| b.text().into_owned())
    };
    assert_eq!(basic(t[0]).as_deref(), Some("closed"));
    assert_eq!(
        t[0].child(PIDF_NS, "note").map(|n| n.text().into_owned()),
        Some("Bye".into())
    );
    assert_eq!(
        t[0].child(PIDF_NS, "contact")
            .and_then(|c| c.attr("priority")),
        None
    );
    assert_eq!(basic(t[1]).as_deref(), Some("open"));
    assert_eq!(
        t[1].child(PIDF_NS, "contact")
            .and_then(|c| c.attr("priority")),
        None
    );
    assert_eq!(activity(&doc).as_deref(), Some("away"));
}

/// Several resources: one tuple each; the person's activity is that of
/// the available resource with the highest priority; a later stanza of a
/// resource replaces the earlier one.
#[test]
fn resources_are_tuples_and_the_top_one_speaks_for_the_person() {
    let doc = document(
        &[
            "<presence xmlns='jabber:server' from='a@b.example/phone'><show>away</show>\
             <priority>1</priority></presence>",
            "<presence xmlns='jabber:server' from='a@b.example/desk'><show>xa</show></presence>",
            "<presence xmlns='jabber:server' from='a@b.example/desk'><show>dnd</show>\
             <priority>10</priority></presence>",
            "<presence xmlns='jabber:server' from='a@b.example/home laptop' type='unavailable'/>",
        ],
        Disclosure::Full,
    );
    let ids: Vec<_> = tuples(&doc).iter().map(|t| t.attr("id")).collect();
    assert_eq!(
        ids,
        vec![Some("ID-phone"), Some("ID-desk"), Some("ID-home_20laptop")]
    );
    assert_eq!(activity(&doc).as_deref(), Some("busy"));
}

#[test]
fn xmpp_side_refusals() {
    let e = |xml: &str| {
        presentity_from_xmpp([&element(xml)])
            .map(|_| ())
            .unwrap_err()
    };
    assert_eq!(
        e("<message xmlns='jabber:server' from='a@b.example'/>"),
        PresenceError::NotPresence
    );
    assert_eq!(
        e("<presence xmlns='urn:x' from='a@b.example'/>"),
        PresenceError::NotPresence
    );
    for t in ["subscribe", "subscribed", "unsubscribe", "probe", "error"] {
        assert_eq!(
            e(&format!(
                "<presence xmlns='jabber:server' from='a@b.example' type='{t}'/>"
            )),
            PresenceError::NotAvailability
        );
    }
    assert_eq!(
        e("<presence xmlns='jabber:server'/>"),
        PresenceError::BadFrom
    );
    assert_eq!(
        e("<presence xmlns='jabber:server' from='@@'/>"),
        PresenceError::BadFrom
    );
    let two = [
        element("<presence xmlns='jabber:server' from='a@b.example/1'/>"),
        element("<presence xmlns='jabber:server' from='c@b.example/1'/>"),
    ];
    assert_eq!(
        presentity_from_xmpp(&two).unwrap_err(),
        PresenceError::MixedSenders
    );
    assert_eq!(
        presentity_from_xmpp(&[] as &[Element]).unwrap_err(),
        PresenceError::Empty
    );
}

// ---------------------------------------------------------------------------
// PIDF -> XMPP
// ---------------------------------------------------------------------------

fn person_doc(activities: &[&str], tuple_status_extra: &str) -> String {
    let acts: String = activities.iter().map(|a| format!("<r:{a}/>")).collect();
    format!(
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' \
         xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' \
         xmlns:r='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:x@y.example'>\
         <tuple id='t1'><status><basic>open</basic>{tuple_status_extra}</status></tuple>\
         <dm:person id='p1'><r:activities>{acts}</r:activities></dm:person></presence>"
    )
}

/// Every RFC 4480 activity gives the `<show/>` of [`Activity::show`], and
/// the table is the one the module documents.
#[test]
fn activity_to_show_table() {
    let expect = |a: Activity| match a.as_str() {
        "busy" | "on-the-phone" | "meeting" | "appointment" | "presentation" | "performance"
        | "steering" => Some("dnd"),
        "vacation" | "holiday" | "sleeping" | "travel" | "permanent-absence" => Some("xa"),
        "away" | "breakfast" | "dinner" | "meal" | "shopping" | "in-transit" => Some("away"),
        _ => None,
    };
    for a in Activity::ALL {
        assert_eq!(Activity::from_name(a.as_str()), a);
        assert_eq!(a.show().map(Show::as_str), expect(a), "{}", a.as_str());
        let out = notify(&person_doc(&[a.as_str()], ""));
        assert_eq!(
            child_text(&out[0], "show").as_deref(),
            expect(a),
            "{}",
            a.as_str()
        );
    }
    assert_eq!(Activity::from_name("x-vendor-gaming"), Activity::Other);
    // Several: the least available wins.
    let out = notify(&person_doc(&["away", "working", "on-the-phone"], ""));
    assert_eq!(child_text(&out[0], "show").as_deref(), Some("dnd"));
    let out = notify(&person_doc(&["meal", "vacation"], ""));
    assert_eq!(child_text(&out[0], "show").as_deref(), Some("xa"));
}

/// A tuple's `<show>` beats activities in its status, which beat the
/// person's; an unknown `<show>` value falls through.
#[test]
fn show_precedence() {
    let out = notify(&person_doc(
        &["busy"],
        "<show xmlns='jabber:client'>chat</show>",
    ));
    assert_eq!(child_text(&out[0], "show").as_deref(), Some("chat"));
    let out = notify(&person_doc(
        &["busy"],
        "<r:activities><r:vacation/></r:activities>",
    ));
    assert_eq!(child_text(&out[0], "show").as_deref(), Some("xa"));
    let out = notify(&person_doc(
        &["busy"],
        "<show xmlns='jabber:client'>sleepy</show>",
    ));
    assert_eq!(child_text(&out[0], "show").as_deref(), Some("dnd"));
    // Once a tuple has a <show>, the person no longer speaks for the
    // tuples without one: they are plain available.
    let out = notify(
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' \
         xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' \
         xmlns:r='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:x@y.example'>\
         <tuple id='t1'><status><basic>open</basic></status></tuple>\
         <tuple id='t2'><status><basic>open</basic><show xmlns='jabber:client'>away</show>\
         </status></tuple>\
         <dm:person id='p1'><r:activities><r:away/></r:activities></dm:person></presence>",
    );
    assert_eq!(child_text(&out[0], "show"), None);
    assert_eq!(child_text(&out[1], "show").as_deref(), Some("away"));
}

/// No body, an empty body, a document without tuples: unknown, read as
/// closed (RFC 8048), one unavailable presence from the bare JID.
#[test]
fn no_body_means_unavailable() {
    let from = jid("romeo@example.net/ignored");
    let to = jid("juliet@example.com");
    let expected = vec![element(
        "<presence xmlns='jabber:server' from='romeo@example.net' \
         to='juliet@example.com' type='unavailable'/>",
    )];
    let limits = PidfLimits::default();
    for body in [
        None,
        Some(&b""[..]),
        Some(&b" \r\n"[..]),
        Some(&b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:r@x'/>"[..]),
    ] {
        let out = pidf_to_xmpp(body, &from, &to, Disclosure::Full, &limits).expect("mapped");
        assert_eq!(out, expected, "{body:?}");
    }
}

/// Closed tuples, missing or odd `<basic>`, a GRUU contact, duplicate
/// resources and the entity that addresses nothing.
#[test]
fn pidf_tuple_cases() {
    let out = notify(
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:mallory@evil.example'>\
         <tuple id='a'><status><basic>closed</basic><show xmlns='jabber:client'>dnd</show>\
         </status><note>Off</note></tuple>\
         <tuple id='b'><status/></tuple>\
         <tuple id='c'><status><basic> open </basic></status>\
         <contact priority='0.5'>sip:romeo@example.net;gr=urn:uuid:f81d4fae-7dec</contact></tuple>\
         <tuple id='ID-urn_3auuid_3af81d4fae-7dec'><status><basic>open</basic></status></tuple>\
         <tuple id='d'><status><basic>Open</basic></status></tuple>\
         </presence>",
    );
    let froms: Vec<_> = out.iter().map(|p| p.attr("from")).collect();
    assert_eq!(
        froms,
        vec![
            Some("romeo@example.net/a"),
            Some("romeo@example.net/b"),
            Some("romeo@example.net/urn:uuid:f81d4fae-7dec"),
            Some("romeo@example.net/d"),
        ]
    );
    let types: Vec<_> = out.iter().map(|p| p.attr("type")).collect();
    assert_eq!(
        types,
        vec![
            Some("unavailable"),
            Some("unavailable"),
            None,
            Some("unavailable")
        ]
    );
    assert_eq!(child_text(&out[0], "show"), None);
    assert_eq!(child_text(&out[0], "status").as_deref(), Some("Off"));
    assert_eq!(child_text(&out[2], "priority").as_deref(), Some("64"));
}

/// `xml:lang` is inherited from the tuple and the document, and written
/// on each `<status>`.
#[test]
fn note_languages_are_inherited() {
    let out = notify(
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:r@x' xml:lang='de'>\
         <tuple id='a' xml:lang='fr'><status><basic>open</basic></status>\
         <note>Salut</note><note xml:lang='en'>Hi</note><note xml:lang='en'>Hello</note></tuple>\
         <tuple id='b'><status><basic>open</basic></status><note>Hallo</note></tuple>\
         <tuple id='c'><status><basic>open</basic></status><note xml:lang='bad tag'>X</note></tuple>\
         </presence>",
    );
    assert_eq!(
        statuses(&out[0]),
        vec![
            (Some("fr".into()), "Salut".into()),
            (Some("en".into()), "Hi".into())
        ]
    );
    assert_eq!(statuses(&out[1]), vec![(Some("de".into()), "Hallo".into())]);
    assert_eq!(statuses(&out[2]), vec![(None, "X".into())]);
}

/// `Content-Language` (RFC 8048 Table 2) is the language of the notes the
/// document leaves without one; a bad header value is ignored.
#[test]
fn content_language_is_the_default_note_language() {
    let body = b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:r@x'>\
                 <tuple id='a'><status><basic>open</basic></status><note>Salut</note>\
                 <note xml:lang='en'>Hi</note></tuple></presence>";
    let langs = |header: Option<&str>| {
        let p = parse_pidf_with_language(body, &PidfLimits::default(), header).expect("valid");
        p.resources()[0]
            .notes()
            .iter()
            .map(|n| n.lang().map(|l| l.as_str().to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        langs(Some("fr, en")),
        vec![Some("fr".into()), Some("en".into())]
    );
    assert_eq!(langs(None), vec![None, Some("en".into())]);
    assert_eq!(langs(Some("*")), vec![None, Some("en".into())]);
}

/// Partner types: `AvailabilityOnly` drops every note in both directions
/// and keeps availability, show and priority.
#[test]
fn disclosure_drops_notes_both_ways() {
    let stanza = element(
        "<presence xmlns='jabber:server' from='a@b.example/r'><show>away</show>\
         <status>secret plans</status><priority>3</priority></presence>",
    );
    let body = xmpp_to_pidf([&stanza], Disclosure::AvailabilityOnly).expect("a document");
    let text = String::from_utf8(body).expect("UTF-8");
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("<show xmlns='jabber:client'>away</show>"));
    assert!(text.contains("priority='0.023'"));

    let out = pidf_to_xmpp(
        Some(
            b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:r@x'>\
              <tuple id='a'><status><basic>open</basic></status><contact priority='1'>sip:r@x</contact>\
              <note>secret</note></tuple><note>also secret</note></presence>",
        ),
        &jid("r@x.example"),
        &jid("j@y.example"),
        Disclosure::AvailabilityOnly,
        &PidfLimits::default(),
    )
    .expect("mapped");
    assert_eq!(
        out,
        vec![element(
            "<presence xmlns='jabber:server' from='r@x.example/a' to='j@y.example'>\
             <priority>127</priority></presence>"
        )]
    );
    assert_eq!(Disclosure::default(), Disclosure::Full);
}

// ---------------------------------------------------------------------------
// Hostile PIDF bodies
// ---------------------------------------------------------------------------

/// Runs `parse_pidf` and checks it answered quickly (even in a debug build).
fn hostile(body: &[u8], limits: &PidfLimits) -> PidfError {
    let t = Instant::now();
    let r = parse_pidf(body, limits);
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "{took:?} for {} bytes",
        body.len()
    );
    match r {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e,
    }
}

fn xml_kind(e: PidfError) -> ErrorKind {
    match e {
        PidfError::Xml(x) => x.kind(),
        other => panic!("not an XML error: {other:?}"),
    }
}

const OPEN: &str = "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'>";

#[test]
fn hostile_malformed() {
    let d = PidfLimits::default();
    for body in [
        "<presence xmlns='urn:ietf:params:xml:ns:pidf'><tuple id='a'>",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf'></tuple></presence>",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='a' entity='b'/>",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf'><x:y/></presence>",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf'/><presence xmlns='urn:ietf:params:xml:ns:pidf'/>",
        "just text",
        "<",
        "<?xml version='1.0'",
    ] {
        let e = hostile(body.as_bytes(), &d);
        assert!(matches!(e, PidfError::Xml(_)), "{body}: {e:?}");
        assert_eq!(e.sip_status(), 400);
    }
    assert_eq!(
        xml_kind(hostile(
            b"<presence xmlns='urn:ietf:params:xml:ns:pidf'>\xff</presence>",
            &d
        )),
        ErrorKind::NotWellFormed
    );
    assert_eq!(
        hostile(b"\xff\xfe<\x00p\x00", &d),
        PidfError::UnsupportedEncoding
    );
    assert_eq!(
        hostile(
            b"<?xml version='1.0' encoding='ISO-8859-1'?><presence xmlns='urn:ietf:params:xml:ns:pidf'/>",
            &d
        ),
        PidfError::UnsupportedEncoding
    );
    let not = hostile(b"<presence xmlns='urn:ietf:params:xml:ns:pidf:wrong'/>", &d);
    assert_eq!(not, PidfError::NotPidf);
    assert_eq!(not.sip_status(), 415);
    assert_eq!(
        hostile(
            b"<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'/>",
            &d
        ),
        PidfError::NotPidf
    );
}

#[test]
fn hostile_dtd_entities_comments() {
    let d = PidfLimits::default();
    let laughs = "<?xml version='1.0'?><!DOCTYPE presence [<!ENTITY a 'lol'>\
                  <!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]>\
                  <presence xmlns='urn:ietf:params:xml:ns:pidf'><note>&c;</note></presence>";
    for body in [
        laughs.to_owned(),
        format!("{OPEN}<note>&ext;</note></presence>"),
        "<!DOCTYPE presence SYSTEM 'http://evil.example/x.dtd'><presence/>".to_owned(),
        format!("{OPEN}<!-- hi --></presence>"),
        format!("{OPEN}<?php evil?></presence>"),
    ] {
        assert_eq!(
            xml_kind(hostile(body.as_bytes(), &d)),
            ErrorKind::RestrictedXml,
            "{body}"
        );
    }
}

#[test]
fn hostile_ten_thousand_tuples() {
    let tuples: String = (0..10_000)
        .map(|i| format!("<tuple id='t{i}'><status><basic>open</basic></status></tuple>"))
        .collect();
    let body = format!("{OPEN}{tuples}</presence>");
    // Over the default body size first...
    let e = hostile(body.as_bytes(), &PidfLimits::default());
    assert!(matches!(e, PidfError::TooLarge { .. }), "{e:?}");
    assert_eq!(e.sip_status(), 413);
    // ...and over the tuple count when the size would allow it.
    let roomy = PidfLimits {
        max_body: 4 << 20,
        ..PidfLimits::default()
    };
    let small: String = (0..10_000).map(|i| format!("<tuple id='t{i}'/>")).collect();
    let e = hostile(format!("{OPEN}{small}</presence>").as_bytes(), &roomy);
    assert_eq!(e, PidfError::TooManyTuples { max: 32 });
    assert_eq!(e.sip_status(), 400);
    // Exactly at the limit is fine.
    let tuples: String = (0..32)
        .map(|i| format!("<tuple id='t{i}'><status><basic>open</basic></status></tuple>"))
        .collect();
    let p = parse_pidf(
        format!("{OPEN}{tuples}</presence>").as_bytes(),
        &PidfLimits::default(),
    )
    .expect("32 tuples");
    assert_eq!(p.resources().len(), 32);
}

#[test]
fn hostile_nesting_and_attributes() {
    let deep = |n: usize| {
        format!(
            "{OPEN}<tuple id='a'><status><basic>open</basic>{}{}</status></tuple></presence>",
            "<x:e xmlns:x='urn:x'>".repeat(n),
            "</x:e>".repeat(n)
        )
    };
    // 16 levels pass (presence, tuple, status and 13 more).
    assert!(parse_pidf(deep(13).as_bytes(), &PidfLimits::default()).is_ok());
    assert_eq!(
        xml_kind(hostile(deep(14).as_bytes(), &PidfLimits::default())),
        ErrorKind::LimitExceeded
    );
    let roomy = PidfLimits {
        max_body: 8 << 20,
        ..PidfLimits::default()
    };
    assert_eq!(
        xml_kind(hostile(deep(100_000).as_bytes(), &roomy)),
        ErrorKind::LimitExceeded
    );
    let attrs: String = (0..40).map(|i| format!(" a{i}='1'")).collect();
    assert_eq!(
        xml_kind(hostile(
            format!("{OPEN}<tuple id='a'{attrs}/></presence>").as_bytes(),
            &PidfLimits::default()
        )),
        ErrorKind::LimitExceeded
    );
}

#[test]
fn hostile_huge_note() {
    let note = "A".repeat(1 << 20);
    let body = format!(
        "{OPEN}<tuple id='a'><status><basic>open</basic></status><note>{note}</note></tuple></presence>"
    );
    let e = hostile(body.as_bytes(), &PidfLimits::default());
    assert_eq!(
        e,
        PidfError::TooLarge {
            size: body.len(),
            max: 64 * 1024
        }
    );
    // A note that fits is kept whole.
    let note = "B".repeat(60_000);
    let body = format!(
        "{OPEN}<tuple id='a'><status><basic>open</basic></status><note>{note}</note></tuple></presence>"
    );
    let p = parse_pidf(body.as_bytes(), &PidfLimits::default()).expect("fits");
    assert_eq!(p.resources()[0].notes()[0].text().len(), 60_000);
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct GenResource {
    resource: String,
    available: bool,
    show: Option<Show>,
    priority: Option<i8>,
    statuses: Vec<(String, Option<&'static str>)>,
}

fn gen_show() -> impl Strategy<Value = Option<Show>> {
    prop::option::of(prop::sample::select(Show::ALL.to_vec()))
}

fn gen_lang() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec!["en", "fr", "de-CH", "es-419"]))
}

fn gen_resource() -> impl Strategy<Value = GenResource> {
    (
        "[a-zA-Z0-9 ._/@:é-]{1,12}",
        any::<bool>(),
        gen_show(),
        prop::option::of(any::<i8>()),
        prop::collection::vec(("\\PC{1,24}", gen_lang()), 0..4),
    )
        .prop_map(
            |(resource, available, show, priority, statuses)| GenResource {
                resource,
                available,
                show,
                priority,
                statuses,
            },
        )
}

fn stanza_of(from: &Jid, g: &GenResource, stanza_lang: Option<&str>) -> Element {
    let mut p = Element::new(ns::SERVER, "presence").with_attr("from", from.as_str());
    if let Some(lang) = stanza_lang {
        p.set_attr_ns(ns::XML, "lang", lang);
    }
    if !g.available {
        p.set_attr("type", "unavailable");
    }
    if let Some(show) = g.show {
        p.push_child(Element::new(ns::SERVER, "show").with_text(show.as_str()));
    }
    for (text, lang) in &g.statuses {
        let mut s = Element::new(ns::SERVER, "status").with_text(text);
        if let Some(lang) = lang {
            s.set_attr_ns(ns::XML, "lang", *lang);
        }
        p.push_child(s);
    }
    if let Some(priority) = g.priority {
        p.push_child(Element::new(ns::SERVER, "priority").with_text(&priority.to_string()));
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// XMPP -> PIDF -> XMPP keeps, per resource, availability, show,
    /// status texts with their languages, and the mappable priority
    /// (negative ones are not mapped, so they come back absent).
    #[test]
    fn xmpp_pidf_xmpp_round_trip(
        gens in prop::collection::vec(gen_resource(), 1..4),
        stanza_lang in gen_lang(),
    ) {
        let bare = jid("juliet@example.com");
        let mut stanzas = Vec::new();
        let mut seen = Vec::new();
        for g in &gens {
            let Ok(full) = bare.with_resource(&g.resource) else { continue };
            if seen.contains(&full) { continue; }
            seen.push(full.clone());
            stanzas.push((full.clone(), g.clone(), stanza_of(&full, g, stanza_lang)));
        }
        prop_assume!(!stanzas.is_empty());
        let elements: Vec<Element> = stanzas.iter().map(|(_, _, e)| e.clone()).collect();
        let (entity, model) = presentity_from_xmpp(&elements).expect("availability stanzas");
        prop_assert_eq!(&entity, &bare);

        // The model holds what the stanzas said.
        for ((full, g, _), r) in stanzas.iter().zip(model.resources()) {
            prop_assert_eq!(r.resource(), full.resource());
            let expected = if g.available {
                Availability::Available {
                    show: g.show,
                    priority: g.priority.and_then(Priority::from_xmpp),
                }
            } else {
                Availability::Unavailable
            };
            prop_assert_eq!(r.availability(), expected);
            let mut langs = Vec::new();
            let mut expected_notes = Vec::new();
            for (text, lang) in &g.statuses {
                let lang = lang.or(stanza_lang);
                if !langs.contains(&lang) {
                    langs.push(lang);
                    expected_notes.push((text.clone(), lang.map(str::to_owned)));
                }
            }
            let notes: Vec<_> = r
                .notes()
                .iter()
                .map(|n| (n.text().to_owned(), n.lang().map(|l| l.as_str().to_owned())))
                .collect();
            prop_assert_eq!(notes, expected_notes);
        }

        // Through PIDF and back to stanzas, the model is unchanged.
        let body = pidf_body(&entity, &model, Disclosure::Full);
        let back = pidf_to_xmpp(
            Some(&body), &bare, &jid("romeo@example.net"), Disclosure::Full, &PidfLimits::default(),
        ).expect("our own PIDF reads back");
        let (entity2, model2) = presentity_from_xmpp(&back).expect("stanzas");
        prop_assert_eq!(entity2, bare);
        prop_assert_eq!(&model2, &model);

        // Without notes: the same, minus every note.
        let body = pidf_body(&entity, &model, Disclosure::AvailabilityOnly);
        let parsed = parse_pidf(&body, &PidfLimits::default()).expect("reads back");
        for (a, b) in parsed.resources().iter().zip(model.resources()) {
            prop_assert!(a.notes().is_empty());
            prop_assert_eq!(a.availability(), b.availability());
            prop_assert_eq!(a.resource(), b.resource());
        }
    }

    /// PIDF -> XMPP -> PIDF keeps each tuple's basic status, its notes
    /// with their languages, the `<show>` it carried, the priority within
    /// the mapping's precision (4 thousandths), and the person's activity
    /// when XMPP can express it (away, busy); any other activity comes
    /// back as the one of its `<show/>` class.
    #[test]
    fn pidf_xmpp_pidf_round_trip(
        tuples in prop::collection::vec(
            (
                "[a-z][a-z0-9]{0,8}",
                any::<bool>(),
                gen_show(),
                prop::option::of(0u16..=1000),
                prop::collection::vec(("[^<&\\p{C}]{1,20}", gen_lang()), 0..3),
            ),
            1..5,
        ),
        activity in prop::option::of(prop::sample::select(Activity::ALL.to_vec())),
    ) {
        let mut body = String::from(
            "<?xml version='1.0' encoding='UTF-8'?>\n<presence xmlns='urn:ietf:params:xml:ns:pidf' \
             xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' \
             xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:romeo@example.net'>",
        );
        let mut ids: Vec<&str> = Vec::new();
        let mut kept = Vec::new();
        for (id, open, show, q, notes) in &tuples {
            if ids.contains(&id.as_str()) { continue; }
            ids.push(id);
            kept.push((id, open, show, q, notes));
            body.push_str(&format!(
                "<tuple id='{id}'><status><basic>{}</basic>{}</status>",
                if *open { "open" } else { "closed" },
                show.map(|s| format!("<show xmlns='jabber:client'>{s}</show>")).unwrap_or_default(),
            ));
            if let Some(q) = q {
                let q = QValue::new(*q).expect("in range");
                body.push_str(&format!("<contact priority='{q}'>sip:romeo@example.net</contact>"));
            }
            for (text, lang) in notes.iter() {
                match lang {
                    Some(l) => body.push_str(&format!("<note xml:lang='{l}'>{text}</note>")),
                    None => body.push_str(&format!("<note>{text}</note>")),
                }
            }
            body.push_str("</tuple>");
        }
        if let Some(a) = activity {
            body.push_str(&format!(
                "<dm:person id='p1'><rpid:activities><rpid:{}/></rpid:activities></dm:person>",
                a.as_str()
            ));
        }
        body.push_str("</presence>");

        let limits = PidfLimits::default();
        let first = parse_pidf(body.as_bytes(), &limits).expect("a valid document");
        let romeo = jid("romeo@example.net");
        let stanzas = presentity_to_xmpp(&first, &romeo, &jid("juliet@example.com"), Disclosure::Full);
        let (entity, model) = presentity_from_xmpp(&stanzas).expect("stanzas");
        prop_assert_eq!(&entity, &romeo);
        prop_assert_eq!(&model, &first);
        let again = pidf_body(&entity, &model, Disclosure::Full);
        let second = parse_pidf(&again, &limits).expect("our own PIDF reads back");
        prop_assert_eq!(second.resources().len(), kept.len());

        for ((id, open, show, q, notes), r) in kept.iter().zip(second.resources()) {
            prop_assert_eq!(r.resource(), Some(id.as_str()));
            match r.availability() {
                Availability::Available { show: s, priority } => {
                    prop_assert!(**open);
                    // A document with RFC 8048 <show>s is read per tuple.
                    let any_show = kept.iter().any(|t| t.2.is_some());
                    let person = activity.and_then(Activity::show).filter(|_| !any_show);
                    let expected_show = show.or(person);
                    prop_assert_eq!(s, expected_show);
                    match (q, priority) {
                        (Some(q), Some(p)) => {
                            let diff = i32::from(p.to_qvalue().thousandths()) - i32::from(*q);
                            prop_assert!(diff.abs() <= 4, "{} -> {:?}", q, p);
                        }
                        (None, None) => {}
                        other => prop_assert!(false, "priority {:?}", other),
                    }
                }
                Availability::Unavailable => prop_assert!(!**open),
            }
            let mut langs = Vec::new();
            let mut expected = Vec::new();
            for (text, lang) in notes.iter() {
                if !langs.contains(lang) {
                    langs.push(*lang);
                    expected.push((text.clone(), lang.map(str::to_owned)));
                }
            }
            let got: Vec<_> = r
                .notes()
                .iter()
                .map(|n| (n.text().to_owned(), n.lang().map(|l| l.as_str().to_owned())))
                .collect();
            prop_assert_eq!(got, expected);
        }

        // The person's activity: kept when XMPP can express it.
        let doc = pidf_tree(&again);
        let written = doc
            .child(DATA_MODEL_NS, "person")
            .and_then(|p| p.child(RPID_NS, "activities"))
            .and_then(|a| a.children().next())
            .map(|a| Activity::from_name(a.name()));
        let top = model.top().map(|r| r.availability());
        if let Some(Availability::Available { show, .. }) = top {
            prop_assert_eq!(written, show.and_then(Show::activity));
            if let (Some(a @ (Activity::Away | Activity::Busy)), true) =
                (activity, kept.iter().all(|t| t.2.is_none()))
            {
                prop_assert_eq!(written, Some(a));
            }
        } else {
            prop_assert_eq!(written, None);
        }
    }

    /// Tuple ids: `ID-` and an NCName body for any resource, and reversible.
    #[test]
    fn tuple_ids_round_trip(r in "\\PC{1,16}") {
        let id = tuple_id(Some(&r));
        prop_assert!(id.starts_with("ID-"));
        prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)));
        prop_assert_eq!(resource_of_tuple_id(&id), Some(Some(r)));
    }

    /// The reader never panics, whatever the bytes.
    #[test]
    fn parse_pidf_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_pidf(&bytes, &PidfLimits::default());
    }

    /// Nor on near-PIDF: a valid document cut and spliced anywhere.
    #[test]
    fn parse_pidf_survives_mutations(cut in 0usize..200, insert in "[<>/'\"&;a-z: =]{0,8}") {
        let doc = RFC8048_NOTIFY_BODY.as_bytes();
        let cut = cut.min(doc.len());
        let mut bytes = doc[..cut].to_vec();
        bytes.extend_from_slice(insert.as_bytes());
        bytes.extend_from_slice(&doc[cut..]);
        let _ = parse_pidf(&bytes, &PidfLimits::default());
    }
}

#[test]
fn pres_uri_of_escaped_and_full_jids() {
    assert_eq!(
        pres_uri(&jid("juliet@example.com/balcony")),
        "pres:juliet@example.com"
    );
    assert_eq!(
        pres_uri(&jid(r"m\26m@xmpp.example")),
        "pres:m&m@xmpp.example"
    );
    let empty = Presentity::default();
    let body = pidf_body(&jid("a@b.example"), &empty, Disclosure::Full);
    assert_eq!(pidf_tree(&body).children().count(), 0);
}
