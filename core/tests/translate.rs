//! The XMPP <-> SIP mappings of `xfed_core::translate`: RFC 7247 address and
//! error tables, RFC 7572 message tables, RFC 3994 / XEP-0085 chat states,
//! and properties (address round trips, no panics on hostile input).

use proptest::prelude::*;
use xfed_core::jid::{escape_local, unescape_local, Jid, JidError, JidPart};
use xfed_core::translate::chatstate::IS_COMPOSING_CONTENT_TYPE;
use xfed_core::translate::im::{ACCEPTED_CONTENT_TYPES, TEXT_PLAIN_UTF8};
use xfed_core::translate::{
    is_composing_xml, jid_to_sip, next_is_composing, parse_is_composing, sip_message_to_xmpp,
    sip_to_jid, sip_to_xmpp, xmpp_message_to_sip, xmpp_stanza_to_sip, xmpp_to_sip, AddressError,
    ChatState, ComposingState, ImError, IsComposingError, SipIm,
};
use xfed_core::xml::{ns, parse_element, Child, Element, Scope, Stanza};
use xfed_core::xmpp::stanza::{ErrorType, StanzaCondition};

/// The message mapping read from the tree, checked to say the same read
/// from the stanza's text without one (the gateway's path).
fn to_sip(msg: &Element) -> Result<SipIm, ImError> {
    let tree = xmpp_message_to_sip(msg);
    let scope = Scope::server();
    let mut text = Vec::new();
    msg.write(&scope, &mut text);
    let text = String::from_utf8(text).expect("UTF-8");
    let stanza = Stanza::parse(&text, std::sync::Arc::new(scope), 64).expect("a stanza");
    assert_eq!(xmpp_stanza_to_sip(&stanza), tree, "{text}");
    tree
}

fn chat_state(msg: &Element) -> Option<ChatState> {
    let children: Vec<Child<'_>> = msg.children().map(Child::of).collect();
    ChatState::of_message(&children)
}

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

// ---------------------------------------------------------------------------
// Addresses (RFC 7247 section 6)
// ---------------------------------------------------------------------------

/// RFC 7247 section 6.4 examples (rfcs.md 4.2, left table).
#[test]
fn rfc7247_sip_to_xmpp_examples() {
    let rows = [
        ("sip:f%C3%BC@sip.example", "f\u{fc}@sip.example"),
        ("sip:o'malley@sip.example", r"o\27malley@sip.example"),
        ("sip:foo@sip.example;gr=bar", "foo@sip.example/bar"),
    ];
    for (uri, expected) in rows {
        assert_eq!(sip_to_jid(uri), Ok(jid(expected)), "{uri}");
    }
}

/// RFC 7247 section 6.5 examples (rfcs.md 4.2, right table).
#[test]
fn rfc7247_xmpp_to_sip_examples() {
    let rows = [
        (r"m\26m@xmpp.example", "sip:m&m@xmpp.example"),
        ("tsch\u{fc}ss@xmpp.example", "sip:tsch%C3%BCss@xmpp.example"),
        ("baz@xmpp.example/qux", "sip:baz@xmpp.example;gr=qux"),
    ];
    for (from, expected) in rows {
        assert_eq!(jid_to_sip(&jid(from)), expected, "{from}");
    }
}

#[test]
fn sip_to_jid_cases() {
    let rows: &[(&str, &str)] = &[
        // PRECIS case mapping of the user; domains lowercase.
        ("sip:Alice@Example.COM", "alice@example.com"),
        // Port, password, other parameters and headers are not the address.
        (
            "SIP:bob:secret@example.com:5061;transport=tls?Subject=hi",
            "bob@example.com",
        ),
        ("im:romeo@example.net", "romeo@example.net"),
        ("pres:romeo@example.net?x=y", "romeo@example.net"),
        // Every character XMPP reserves is XEP-0106-escaped (section 6.2).
        ("sip:m&m@xmpp.example", r"m\26m@xmpp.example"),
        ("sip:a/b@x.example", r"a\2fb@x.example"),
        ("sip:a%40b@x.example", r"a\40b@x.example"),
        ("sip:space%20cadet@x.example", r"space\20cadet@x.example"),
        (
            "sip:%22q%22%3C%3E%3A@x.example",
            r"\22q\22\3c\3e\3a@x.example",
        ),
        // A backslash is escaped only before an escape look-alike.
        ("sip:call%5Cme@x.example", r"call\me@x.example"),
        ("sip:c%3A%5Cnet@x.example", r"c\3a\net@x.example"),
        ("sip:%5C27@x.example", r"\5c27@x.example"),
        // ... including upper-case ones, which PRECIS would lowercase.
        ("sip:%5C2F@x.example", r"\5c2f@x.example"),
        // Characters SIP allows and XMPP too pass unchanged.
        (
            "sip:a.b-c_d!e~f*g(h)i=j+k$l,m;n?o@x.example",
            "a.b-c_d!e~f*g(h)i=j+k$l,m;n?o@x.example",
        ),
        (
            "sip:+15551234;phone-context=example.com@example.com;user=phone",
            "+15551234;phone-context=example.com@example.com",
        ),
        // No user: the domain itself.
        ("sip:example.com", "example.com"),
        ("sip:example.com;gr=x", "example.com/x"),
        // gr: public GRUUs, percent-decoded; a valueless gr is temporary.
        (
            "sip:foo@sip.example;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "foo@sip.example/urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ),
        (
            "sip:foo@sip.example;GR=caf%C3%A9%201",
            "foo@sip.example/caf\u{e9} 1",
        ),
        ("sip:tgruu.7hs@example.com;gr", "tgruu.7hs@example.com"),
        ("sip:foo@example.com;gr=", "foo@example.com"),
        ("sip:foo@example.com;lr;gr=a;gr=b", "foo@example.com/a"),
        // A-labels on the SIP side, U-labels in the JID.
        (
            "sip:alice@xn--bcher-kva.example",
            "alice@b\u{fc}cher.example",
        ),
        ("sip:alice@[2001:DB8::1]:5060", "alice@[2001:db8::1]"),
        ("sip:alice@192.0.2.1:5060", "alice@192.0.2.1"),
        ("sip:alice@example.com.", "alice@example.com"),
        // Raw UTF-8 that some agents send unencoded is taken as is.
        ("sip:f\u{fc}@sip.example", "f\u{fc}@sip.example"),
    ];
    for (uri, expected) in rows {
        assert_eq!(sip_to_jid(uri), Ok(jid(expected)), "{uri}");
    }
}

#[test]
fn sip_to_jid_refusals() {
    let rows: &[(&str, AddressError, u16)] = &[
        // RFC 7247 section 8: sips is never gatewayed.
        ("sips:alice@example.com", AddressError::Sips, 403),
        ("SIPS:alice@example.com;gr=x", AddressError::Sips, 403),
        ("tel:+15551234", AddressError::UnsupportedScheme, 416),
        (
            "mailto:alice@example.com",
            AddressError::UnsupportedScheme,
            416,
        ),
        (
            "alice@example.com",
            AddressError::Malformed("no scheme"),
            400,
        ),
        ("", AddressError::Malformed("no scheme"), 400),
        (
            ":alice@example.com",
            AddressError::Malformed("no scheme"),
            400,
        ),
        (
            "sip:@example.com",
            AddressError::Malformed("empty user"),
            400,
        ),
        ("sip:alice@", AddressError::Malformed("empty host"), 400),
        (
            "sip:alice@;gr=x",
            AddressError::Malformed("empty host"),
            400,
        ),
        (
            "sip:alice@example.com:50x",
            AddressError::Malformed("bad port"),
            400,
        ),
        (
            "sip:alice@example.com:",
            AddressError::Malformed("bad port"),
            400,
        ),
        (
            "sip:alice@[::1",
            AddressError::Malformed("unclosed IPv6 literal"),
            400,
        ),
        (
            "sip:%ZZ@example.com",
            AddressError::Malformed("bad percent-encoding"),
            400,
        ),
        (
            "sip:a%4@example.com",
            AddressError::Malformed("bad percent-encoding"),
            400,
        ),
        (
            "sip:a@example.com;gr=%",
            AddressError::Malformed("bad percent-encoding"),
            400,
        ),
        ("sip:%C3@example.com", AddressError::NotUtf8, 400),
        ("sip:a@example.com;gr=%FF", AddressError::NotUtf8, 400),
        // XEP-0106 cannot put \20 at either end of a localpart.
        (
            "sip:%20alice@example.com",
            AddressError::Jid(JidError::SpaceAtEdge),
            404,
        ),
        (
            "sip:alice%20@example.com",
            AddressError::Jid(JidError::SpaceAtEdge),
            404,
        ),
        // PRECIS refuses symbols and controls.
        (
            "sip:%E2%99%9A@example.com",
            AddressError::Jid(JidError::ForbiddenChar(JidPart::Local, '\u{265a}')),
            404,
        ),
        (
            "sip:a%09b@example.com",
            AddressError::Jid(JidError::ForbiddenChar(JidPart::Local, '\t')),
            404,
        ),
        (
            "sip:a@example.com;gr=%00",
            AddressError::Jid(JidError::ForbiddenChar(JidPart::Resource, '\u{0}')),
            404,
        ),
        (
            "sip:alice@exa_mple.com",
            AddressError::Jid(JidError::BadDomain),
            404,
        ),
        // Fullwidth backslash: PRECIS makes it a leading \20 after escaping.
        (
            "sip:%EF%BC%BC20alice@example.com",
            AddressError::Unstable,
            404,
        ),
    ];
    for (uri, err, status) in rows {
        assert_eq!(sip_to_jid(uri), Err(*err), "{uri}");
        assert_eq!(err.sip_status(), *status, "{uri}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn jid_to_sip_cases() {
    let rows: &[(&str, &str)] = &[
        // All ten escapes are undone and re-encoded as SIP requires.
        (r"space\20cadet@x.example", "sip:space%20cadet@x.example"),
        (r"c\3a\net@x.example", "sip:c%3A%5Cnet@x.example"),
        (r"a\40b@x.example", "sip:a%40b@x.example"),
        (r"\22q\22\3c\3e@x.example", "sip:%22q%22%3C%3E@x.example"),
        (r"a\2fb@x.example", "sip:a/b@x.example"),
        (r"\5c27@x.example", "sip:%5C27@x.example"),
        // RFC 7247 section 6.5 step 5 bytes.
        (
            "a#b%c[d]e^f`g{h|i}j@x.example",
            "sip:a%23b%25c%5Bd%5De%5Ef%60g%7Bh%7Ci%7Dj@x.example",
        ),
        (
            "d\\27artagnan@musketeers.lit/R\u{e9}sum\u{e9}",
            "sip:d'artagnan@musketeers.lit;gr=R%C3%A9sum%C3%A9",
        ),
        // A resource is a gr parameter value: its delimiters are encoded.
        (
            "romeo@example.net/orchard;x=1 2?@%",
            "sip:romeo@example.net;gr=orchard%3Bx%3D1%202%3F%40%25",
        ),
        (
            "romeo@example.net/a/b:c[d]&+$",
            "sip:romeo@example.net;gr=a/b:c[d]&+$",
        ),
        // IDNs become A-labels (rfcs.md 4.2 [impl]).
        (
            "juliet@b\u{fc}cher.example/balcony",
            "sip:juliet@xn--bcher-kva.example;gr=balcony",
        ),
        ("example.com", "sip:example.com"),
        ("user@[2001:db8::1]", "sip:user@[2001:db8::1]"),
        ("user@192.0.2.1/r", "sip:user@192.0.2.1;gr=r"),
    ];
    for (from, expected) in rows {
        assert_eq!(jid_to_sip(&jid(from)), *expected, "{from}");
    }
}

/// XEP-0106 writes the user `a\b` as `a\b`; the JID `a\5cb` is a second,
/// non-canonical spelling, so it maps to the same URI and comes back
/// canonical. Documented on `jid_to_sip`.
#[test]
fn non_canonical_escapes_normalize() {
    let odd = jid(r"a\5cb@x.example");
    assert_eq!(jid_to_sip(&odd), "sip:a%5Cb@x.example");
    assert_eq!(sip_to_jid(&jid_to_sip(&odd)), Ok(jid(r"a\b@x.example")));
}

// ---------------------------------------------------------------------------
// Errors (RFC 7247 section 7)
// ---------------------------------------------------------------------------

/// RFC 7247 Table 2 with notes 1, 2 and 5 resolved: (condition, code for
/// a full JID, code for a bare JID).
const TABLE_2: &[(StanzaCondition, u16, u16)] = &[
    (StanzaCondition::BadRequest, 400, 400),
    (StanzaCondition::Conflict, 400, 400),
    (StanzaCondition::FeatureNotImplemented, 405, 501),
    (StanzaCondition::Forbidden, 403, 603),
    (StanzaCondition::InternalServerError, 500, 500),
    (StanzaCondition::ItemNotFound, 404, 604),
    (StanzaCondition::JidMalformed, 400, 400),
    (StanzaCondition::NotAcceptable, 406, 606),
    (StanzaCondition::NotAllowed, 403, 403),
    (StanzaCondition::NotAuthorized, 401, 401),
    (StanzaCondition::PolicyViolation, 403, 403),
    (StanzaCondition::RecipientUnavailable, 480, 600),
    (StanzaCondition::Redirect, 302, 302),
    (StanzaCondition::RegistrationRequired, 407, 407),
    (StanzaCondition::RemoteServerNotFound, 404, 404),
    (StanzaCondition::RemoteServerTimeout, 408, 408),
    (StanzaCondition::ResourceConstraint, 500, 500),
    (StanzaCondition::ServiceUnavailable, 405, 403),
    (StanzaCondition::SubscriptionRequired, 400, 400),
    (StanzaCondition::UndefinedCondition, 400, 400),
    (StanzaCondition::UnexpectedRequest, 491, 491),
];

#[test]
fn rfc7247_table_2() {
    for &(condition, full, bare) in TABLE_2 {
        for gone_address in [false, true] {
            assert_eq!(
                xmpp_to_sip(condition, true, gone_address),
                full,
                "{condition} full"
            );
            assert_eq!(
                xmpp_to_sip(condition, false, gone_address),
                bare,
                "{condition} bare"
            );
        }
    }
    // Note 3: <gone/> with a new address MUST be 301, without MUST be 410.
    for full in [false, true] {
        assert_eq!(xmpp_to_sip(StanzaCondition::Gone, full, true), 301);
        assert_eq!(xmpp_to_sip(StanzaCondition::Gone, full, false), 410);
    }
    // Every condition is in the table (Gone above).
    assert_eq!(TABLE_2.len() + 1, StanzaCondition::ALL.len());
}

/// Note 5: SIP 503 means the whole server is down; never send it.
#[test]
fn service_unavailable_is_never_503() {
    for &c in StanzaCondition::ALL {
        for full in [false, true] {
            for gone in [false, true] {
                let code = xmpp_to_sip(c, full, gone);
                assert_ne!(code, 503, "{c}");
                assert!((300..700).contains(&code), "{c} gave {code}");
            }
        }
    }
}

/// RFC 7247 Table 3, every listed code.
const TABLE_3: &[(u16, StanzaCondition)] = &[
    (300, StanzaCondition::Redirect),
    (301, StanzaCondition::Gone),
    (302, StanzaCondition::Redirect),
    (305, StanzaCondition::Redirect),
    (380, StanzaCondition::NotAcceptable),
    (400, StanzaCondition::BadRequest),
    (401, StanzaCondition::NotAuthorized),
    (402, StanzaCondition::BadRequest),
    (403, StanzaCondition::Forbidden),
    (404, StanzaCondition::ItemNotFound),
    (405, StanzaCondition::FeatureNotImplemented),
    (406, StanzaCondition::NotAcceptable),
    (407, StanzaCondition::RegistrationRequired),
    (408, StanzaCondition::RemoteServerTimeout),
    (410, StanzaCondition::Gone),
    (413, StanzaCondition::PolicyViolation),
    (414, StanzaCondition::PolicyViolation),
    (415, StanzaCondition::NotAcceptable),
    (416, StanzaCondition::NotAcceptable),
    (420, StanzaCondition::FeatureNotImplemented),
    (421, StanzaCondition::NotAcceptable),
    (423, StanzaCondition::ResourceConstraint),
    (430, StanzaCondition::RecipientUnavailable),
    (439, StanzaCondition::FeatureNotImplemented),
    (440, StanzaCondition::PolicyViolation),
    (480, StanzaCondition::RecipientUnavailable),
    (481, StanzaCondition::ItemNotFound),
    (482, StanzaCondition::NotAcceptable),
    (483, StanzaCondition::NotAcceptable),
    (484, StanzaCondition::ItemNotFound),
    (485, StanzaCondition::ItemNotFound),
    (486, StanzaCondition::RecipientUnavailable),
    (487, StanzaCondition::RecipientUnavailable),
    (488, StanzaCondition::NotAcceptable),
    (489, StanzaCondition::PolicyViolation),
    (491, StanzaCondition::UnexpectedRequest),
    (493, StanzaCondition::BadRequest),
    (500, StanzaCondition::InternalServerError),
    (501, StanzaCondition::FeatureNotImplemented),
    (502, StanzaCondition::RemoteServerNotFound),
    (503, StanzaCondition::InternalServerError),
    (504, StanzaCondition::RemoteServerTimeout),
    (505, StanzaCondition::NotAcceptable),
    (513, StanzaCondition::PolicyViolation),
    (600, StanzaCondition::RecipientUnavailable),
    (603, StanzaCondition::RecipientUnavailable),
    (604, StanzaCondition::ItemNotFound),
    (606, StanzaCondition::NotAcceptable),
];

/// The error type rfcs.md 4.3 [impl] prescribes for each condition Table 3
/// produces (spelled out, not taken from `default_type`, so a change to
/// either shows here).
fn expected_type(c: StanzaCondition) -> ErrorType {
    use StanzaCondition as C;
    match c {
        C::Redirect | C::PolicyViolation | C::NotAcceptable | C::BadRequest => ErrorType::Modify,
        C::Gone
        | C::ItemNotFound
        | C::FeatureNotImplemented
        | C::InternalServerError
        | C::RemoteServerNotFound
        | C::UndefinedCondition => ErrorType::Cancel,
        C::RecipientUnavailable
        | C::RemoteServerTimeout
        | C::ResourceConstraint
        | C::UnexpectedRequest => ErrorType::Wait,
        C::NotAuthorized | C::Forbidden | C::RegistrationRequired => ErrorType::Auth,
        other => panic!("Table 3 never yields {other}"),
    }
}

#[test]
fn rfc7247_table_3() {
    for &(code, condition) in TABLE_3 {
        assert_eq!(
            sip_to_xmpp(code, false),
            (condition, expected_type(condition)),
            "{code}"
        );
        // A Retry-After always asks for wait.
        assert_eq!(
            sip_to_xmpp(code, true),
            (condition, ErrorType::Wait),
            "{code}"
        );
    }
    assert_eq!(TABLE_3.len(), 48);
}

#[test]
fn rfc7247_table_3_class_defaults() {
    let rows = [
        (303, StanzaCondition::Redirect),
        (399, StanzaCondition::Redirect),
        (409, StanzaCondition::BadRequest),
        (418, StanzaCondition::BadRequest),
        (422, StanzaCondition::BadRequest),
        (499, StanzaCondition::BadRequest),
        (506, StanzaCondition::InternalServerError),
        (580, StanzaCondition::InternalServerError),
        (599, StanzaCondition::InternalServerError),
        (601, StanzaCondition::RecipientUnavailable),
        (607, StanzaCondition::RecipientUnavailable),
        (699, StanzaCondition::RecipientUnavailable),
    ];
    for (code, condition) in rows {
        assert_eq!(
            sip_to_xmpp(code, false),
            (condition, expected_type(condition)),
            "{code}"
        );
    }
    // 1xx and 2xx are no errors; nonsense codes never panic.
    for code in [0, 100, 180, 200, 202, 299, 700, 999, u16::MAX] {
        assert_eq!(
            sip_to_xmpp(code, false),
            (StanzaCondition::UndefinedCondition, ErrorType::Cancel),
            "{code}"
        );
    }
}

// ---------------------------------------------------------------------------
// Pager-mode IM (RFC 7572)
// ---------------------------------------------------------------------------

fn sip_im(from: &str, to: &str, body: &str) -> SipIm {
    SipIm {
        from: from.into(),
        to: to.into(),
        body: body.into(),
        content_type: "text/plain".into(),
        subject: None,
        call_id: None,
        language: None,
    }
}

/// RFC 7572 Examples 1 and 2.
#[test]
fn rfc7572_xmpp_to_sip_example() {
    let msg = element(
        "<message xmlns='jabber:server' from='juliet@example.com/yn0cl4bnw0yr3vym' \
         to='romeo@example.net'><body>Art thou not Romeo, and a Montague?</body></message>",
    );
    assert_eq!(
        to_sip(&msg),
        Ok(SipIm {
            from: "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym".into(),
            to: "sip:romeo@example.net".into(),
            body: "Art thou not Romeo, and a Montague?".into(),
            content_type: TEXT_PLAIN_UTF8.into(),
            subject: None,
            call_id: None,
            language: None,
        })
    );
}

/// RFC 7572 Examples 4 and 5. ⚠ Example 5 shows a resource the MESSAGE of
/// Example 4 never carried: the resource comes only from a known GRUU.
#[test]
fn rfc7572_sip_to_xmpp_example() {
    let mut im = sip_im(
        "sip:romeo@example.net",
        "sip:juliet@example.com",
        "Neither, fair saint, if either thee dislike.",
    );
    im.call_id = Some("9E97FB43-85F4-4A00-8751-1124FD4C7B2E".into());
    let expected = element(
        "<message xmlns='jabber:server' from='romeo@example.net' to='juliet@example.com' \
         id='t1' type='chat'><body>Neither, fair saint, if either thee dislike.</body>\
         <thread>9E97FB43-85F4-4A00-8751-1124FD4C7B2E</thread>\
         <active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    assert_eq!(sip_message_to_xmpp(&im, "t1"), Ok(expected));

    im.from = "sip:romeo@example.net;gr=dr4hcr0st3lup4c".into();
    let msg = sip_message_to_xmpp(&im, "t1").unwrap();
    assert_eq!(msg.attr("from"), Some("romeo@example.net/dr4hcr0st3lup4c"));
}

/// RFC 7572 Examples 6 and 7 (section 8): Content-Language <-> xml:lang.
#[test]
fn rfc7572_language_example() {
    let text = "Nic z ob\u{e9}ho, m\u{e1} d\u{11b}vo spanil\u{e1},\r\n\
                nenavid\u{ed}\u{161}-li jedno nebo druh\u{e9}.";
    let mut im = sip_im("sip:romeo@example.net", "sip:juliet@example.com", text);
    im.language = Some("cs".into());
    let msg = sip_message_to_xmpp(&im, "x").unwrap();
    assert_eq!(msg.lang(), Some("cs"));
    assert_eq!(msg.attr("type"), Some("chat"));
    assert_eq!(
        msg.child(ns::SERVER, "body").map(|b| b.text().into_owned()),
        Some(text.into())
    );
    // The CR survives serialization.
    assert_eq!(
        parse_element(&String::from_utf8_lossy(&msg.to_bytes())),
        Ok(msg.clone())
    );
    // And back.
    let back = to_sip(&msg).unwrap();
    assert_eq!(back.language.as_deref(), Some("cs"));
    assert_eq!(back.body, text);
}

/// RFC 7572 Table 1, one row per assertion.
#[test]
fn rfc7572_table_1_xmpp_to_sip() {
    let msg = element(
        "<message xmlns='jabber:server' from='juliet@example.com/balcony' to='romeo@example.net/orchard' \
         id='m1' type='chat' xml:lang='en'><subject>Parting</subject><body>Good night</body>\
         <thread>act2scene2</thread></message>",
    );
    let im = to_sip(&msg).unwrap();
    // <body/> -> body (text/plain)
    assert_eq!(im.body, "Good night");
    assert_eq!(im.content_type, TEXT_PLAIN_UTF8);
    // <subject/> -> Subject
    assert_eq!(im.subject.as_deref(), Some("Parting"));
    // <thread/> -> Call-ID
    assert_eq!(im.call_id.as_deref(), Some("act2scene2"));
    // from -> From (bare JID, resource as GRUU)
    assert_eq!(im.from, "sip:juliet@example.com;gr=balcony");
    // to -> To / Request-URI
    assert_eq!(im.to, "sip:romeo@example.net;gr=orchard");
    // xml:lang -> Content-Language
    assert_eq!(im.language.as_deref(), Some("en"));
    // type: no mapping; normal, chat, headline and unknown types all go.
    for ty in [
        None,
        Some("normal"),
        Some("chat"),
        Some("headline"),
        Some("bogus"),
    ] {
        let mut m = msg.clone();
        match ty {
            Some(t) => m.set_attr("type", t),
            None => {
                m.remove_attr("type");
            }
        }
        assert_eq!(to_sip(&m), Ok(im.clone()), "{ty:?}");
    }
}

/// RFC 7572 Table 2, one row per assertion.
#[test]
fn rfc7572_table_2_sip_to_xmpp() {
    let im = SipIm {
        from: "sip:romeo@example.net;gr=orchard".into(),
        to: "sip:juliet@example.com".into(),
        body: "Wherefore?".into(),
        content_type: "text/plain; charset=UTF-8".into(),
        subject: Some("Question".into()),
        call_id: Some("a84b4c76e66710@pc33.example.net".into()),
        language: Some("en-GB".into()),
    };
    let msg = sip_message_to_xmpp(&im, "z9hG4bK776").unwrap();
    assert!(msg.is(ns::SERVER, "message"));
    // Call-ID -> <thread/>
    assert_eq!(
        msg.child(ns::SERVER, "thread")
            .map(|t| t.text().into_owned()),
        Some("a84b4c76e66710@pc33.example.net".into())
    );
    // Content-Language -> xml:lang
    assert_eq!(msg.lang(), Some("en-GB"));
    // From -> from (GRUU as resource)
    assert_eq!(msg.attr("from"), Some("romeo@example.net/orchard"));
    // Subject -> <subject/>
    assert_eq!(
        msg.child(ns::SERVER, "subject")
            .map(|s| s.text().into_owned()),
        Some("Question".into())
    );
    // Request-URI / To -> to
    assert_eq!(msg.attr("to"), Some("juliet@example.com"));
    // body -> <body/>
    assert_eq!(
        msg.child(ns::SERVER, "body").map(|b| b.text().into_owned()),
        Some("Wherefore?".into())
    );
    // transaction id -> id
    assert_eq!(msg.attr("id"), Some("z9hG4bK776"));
    // type chat by default, with <active/> (XEP-0085 content message).
    assert_eq!(msg.attr("type"), Some("chat"));
    assert_eq!(chat_state(&msg), Some(ChatState::Active));

    // And the way back gives the same SIP fields.
    let back = to_sip(&msg).unwrap();
    assert_eq!(back.from, im.from);
    assert_eq!(back.to, im.to);
    assert_eq!(back.body, im.body);
    assert_eq!(back.subject, im.subject);
    assert_eq!(back.call_id, im.call_id);
    assert_eq!(back.language, im.language);
}

/// Not RFC 7572's default (normal): chat, what XMPP clients show in the
/// conversation, with the thread and XEP-0085's `<active/>`.
#[test]
fn sip_messages_become_chat_with_thread_and_active_state() {
    let mut im = sip_im("sip:romeo@example.net", "sip:juliet@example.com", "hi");
    im.call_id = Some("c1".into());
    let msg = sip_message_to_xmpp(&im, "1").unwrap();
    assert_eq!(msg.attr("type"), Some("chat"));
    assert_eq!(
        msg.child(ns::SERVER, "thread")
            .map(|t| t.text().into_owned()),
        Some("c1".into())
    );
    assert_eq!(chat_state(&msg), Some(ChatState::Active));
}

#[test]
fn xmpp_messages_not_gatewayed() {
    let base = "xmlns='jabber:server' from='juliet@example.com/b' to='romeo@example.net'";
    let rows: &[(String, ImError, Option<StanzaCondition>)] = &[
        // Never answer an error with an error.
        (
            format!("<message {base} type='error'><body>x</body></message>"),
            ImError::ErrorMessage,
            None,
        ),
        // RFC 6121 8.5.2.1.1: groupchat to a non-occupant.
        (
            format!("<message {base} type='groupchat'><body>x</body></message>"),
            ImError::Groupchat,
            Some(StanzaCondition::ServiceUnavailable),
        ),
        // Nothing SIP can carry: dropped silently.
        (
            format!("<message {base}><received xmlns='urn:xmpp:receipts' id='1'/></message>"),
            ImError::NoBody,
            None,
        ),
        (format!("<message {base}><body/></message>"), ImError::NoBody, None),
        (
            format!("<message {base}><subject>only</subject></message>"),
            ImError::NoBody,
            None,
        ),
        // Standalone chat states go to the isComposing path.
        (
            format!(
                "<message {base} type='chat'><thread>t</thread>\
                 <composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
            ),
            ImError::ChatStateOnly(ChatState::Composing),
            None,
        ),
        (
            format!("<message {base}><body/><gone xmlns='http://jabber.org/protocol/chatstates'/></message>"),
            ImError::ChatStateOnly(ChatState::Gone),
            None,
        ),
        // Addressing.
        (
            "<message xmlns='jabber:server' to='romeo@example.net'><body>x</body></message>".into(),
            ImError::BadAddress,
            Some(StanzaCondition::JidMalformed),
        ),
        (
            "<message xmlns='jabber:server' from='a@b' to='@x'><body>x</body></message>".into(),
            ImError::BadAddress,
            Some(StanzaCondition::JidMalformed),
        ),
        // Not a message at all.
        (
            format!("<iq {base} type='get' id='1'/>"),
            ImError::NotAMessage,
            Some(StanzaCondition::BadRequest),
        ),
        (
            "<message xmlns='urn:other' from='a@b' to='c@d'><body>x</body></message>".into(),
            ImError::NotAMessage,
            Some(StanzaCondition::BadRequest),
        ),
    ];
    for (xml, err, condition) in rows {
        let msg = element(xml);
        assert_eq!(to_sip(&msg).as_ref(), Err(err), "{xml}");
        assert_eq!(err.condition(), *condition, "{xml}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        ImError::TooLarge.condition(),
        Some(StanzaCondition::PolicyViolation)
    );
}

#[test]
fn xmpp_to_sip_traps() {
    // A chat state next to a body is dropped: content ends composing.
    let msg = element(
        "<message xmlns='jabber:client' from='juliet@example.com' to='romeo@example.net' type='chat'>\
         <body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    let im = to_sip(&msg).unwrap();
    assert_eq!(im.body, "hi");
    assert_eq!(im.from, "sip:juliet@example.com");

    // CR/LF in the subject cannot inject headers; a blank subject is none.
    let msg = element(
        "<message xmlns='jabber:server' from='a@example.com' to='b@example.net'>\
         <subject>Hi&#13;\nX-Evil: 1</subject><body>x</body></message>",
    );
    assert_eq!(
        to_sip(&msg).unwrap().subject.as_deref(),
        Some("Hi  X-Evil: 1")
    );
    let msg = element(
        "<message xmlns='jabber:server' from='a@example.com' to='b@example.net'>\
         <subject> \n </subject><body>x</body></message>",
    );
    assert_eq!(to_sip(&msg).unwrap().subject, None);

    // A thread that is no SIP word, or too long, leaves the Call-ID to the SIP layer.
    for thread in [
        "two words".to_owned(),
        "caf\u{e9}".to_owned(),
        "a@b@c".to_owned(),
        "x".repeat(257),
    ] {
        let mut msg = element(
            "<message xmlns='jabber:server' from='a@example.com' to='b@example.net'><body>x</body></message>",
        );
        msg.push_child(Element::new(ns::SERVER, "thread").with_text(&thread));
        assert_eq!(to_sip(&msg).unwrap().call_id, None, "{thread}");
    }

    // An xml:lang that is no language tag is not copied into a header.
    let msg = element(
        "<message xmlns='jabber:server' from='a@example.com' to='b@example.net' xml:lang='en&#10;X: y'>\
         <body>x</body></message>",
    );
    assert_eq!(to_sip(&msg).unwrap().language, None);

    // Several bodies (RFC 6121 5.2.3): the one in the message's language,
    // and its language wins over the message's.
    let msg = element(
        "<message xmlns='jabber:server' from='a@example.com' to='b@example.net' xml:lang='de'>\
         <body xml:lang='en'>Hello</body><body>Hallo</body></message>",
    );
    let im = to_sip(&msg).unwrap();
    assert_eq!(
        (im.body.as_str(), im.language.as_deref()),
        ("Hallo", Some("de"))
    );
    let msg = element(
        "<message xmlns='jabber:server' from='a@example.com' to='b@example.net' xml:lang='de'>\
         <body xml:lang='en'>Hello</body><body xml:lang='fr'>Salut</body></message>",
    );
    let im = to_sip(&msg).unwrap();
    assert_eq!(
        (im.body.as_str(), im.language.as_deref()),
        ("Hello", Some("en"))
    );

    // Escaped and non-ASCII addresses.
    let msg = element(
        "<message xmlns='jabber:server' from='o\\27malley@b\u{fc}cher.example/r' to='m\\26m@example.net'>\
         <body>x</body></message>",
    );
    let im = to_sip(&msg).unwrap();
    assert_eq!(im.from, "sip:o'malley@xn--bcher-kva.example;gr=r");
    assert_eq!(im.to, "sip:m&m@example.net");
}

#[test]
fn sip_messages_refused() {
    let ok = sip_im("sip:romeo@example.net", "sip:juliet@example.com", "hi");
    let with = |f: &dyn Fn(&mut SipIm)| {
        let mut im = ok.clone();
        f(&mut im);
        im
    };
    let rows: Vec<(SipIm, ImError, u16)> = vec![
        // RFC 7247 section 8: a sips: To is never gatewayed.
        (
            with(&|im| im.to = "sips:juliet@example.com".into()),
            ImError::To(AddressError::Sips),
            403,
        ),
        (
            with(&|im| im.from = "sips:romeo@example.net".into()),
            ImError::From(AddressError::Sips),
            403,
        ),
        (
            with(&|im| im.to = "sip:%E2%99%9A@example.com".into()),
            ImError::To(AddressError::Jid(JidError::ForbiddenChar(
                JidPart::Local,
                '\u{265a}',
            ))),
            404,
        ),
        (
            with(&|im| im.to = "tel:+15551234".into()),
            ImError::To(AddressError::UnsupportedScheme),
            416,
        ),
        (
            with(&|im| im.from = "sip:%20x@example.net".into()),
            ImError::From(AddressError::Jid(JidError::SpaceAtEdge)),
            400,
        ),
        // Only text/plain in UTF-8 (or its ASCII subset) and isComposing.
        (
            with(&|im| im.content_type = "text/html".into()),
            ImError::UnsupportedMediaType,
            415,
        ),
        (
            with(&|im| im.content_type = "text/plain; charset=ISO-8859-1".into()),
            ImError::UnsupportedMediaType,
            415,
        ),
        (
            with(&|im| im.content_type = "message/cpim".into()),
            ImError::UnsupportedMediaType,
            415,
        ),
        (
            with(&|im| im.content_type = String::new()),
            ImError::UnsupportedMediaType,
            415,
        ),
        // Nothing to deliver.
        (with(&|im| im.body = String::new()), ImError::EmptyBody, 400),
        (
            with(&|im| im.body = "\u{0}\u{1}".into()),
            ImError::EmptyBody,
            400,
        ),
        // A broken isComposing document.
        (
            with(&|im| {
                im.content_type = IS_COMPOSING_CONTENT_TYPE.into();
                im.body = "<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'/>".into();
            }),
            ImError::IsComposing(IsComposingError::MissingState),
            400,
        ),
    ];
    for (im, err, status) in rows {
        assert_eq!(sip_message_to_xmpp(&im, "1").as_ref(), Err(&err), "{im:?}");
        assert_eq!(err.sip_status(), status, "{err}");
        assert_eq!(err.condition(), None);
    }
    assert!(ACCEPTED_CONTENT_TYPES.contains("text/plain"));
    assert!(ACCEPTED_CONTENT_TYPES.contains(IS_COMPOSING_CONTENT_TYPE));
}

#[test]
fn sip_to_xmpp_traps() {
    // Characters XML forbids would make the peer close the stream: dropped.
    let mut im = sip_im(
        "sip:romeo@example.net",
        "sip:juliet@example.com",
        "a\u{0}b\u{7}c\u{1b}[0m\u{fffe}\r\nd",
    );
    im.subject = Some("s\u{8}ub".into());
    im.call_id = Some("<id>@\"host\"".into());
    im.language = Some("not a tag".into());
    let msg = sip_message_to_xmpp(&im, "i'd&<>").unwrap();
    assert_eq!(
        msg.child(ns::SERVER, "body").map(|b| b.text().into_owned()),
        Some("abc[0m\r\nd".into())
    );
    assert_eq!(
        msg.child(ns::SERVER, "subject")
            .map(|b| b.text().into_owned()),
        Some("sub".into())
    );
    assert_eq!(msg.lang(), None);
    let wire = String::from_utf8_lossy(&msg.to_bytes()).into_owned();
    assert_eq!(parse_element(&wire), Ok(msg.clone()), "{wire}");
    assert_eq!(msg.attr("id"), Some("i'd&<>"));

    // An empty id is left out rather than sent empty.
    let msg =
        sip_message_to_xmpp(&sip_im("sip:a@example.net", "sip:b@example.com", "x"), "").unwrap();
    assert_eq!(msg.attr("id"), None);

    // im: URIs (RFC 3428 allows them in From/To) map too.
    let msg =
        sip_message_to_xmpp(&sip_im("im:a@example.net", "im:b@example.com", "x"), "1").unwrap();
    assert_eq!(
        (msg.attr("from"), msg.attr("to")),
        (Some("a@example.net"), Some("b@example.com"))
    );
}

#[test]
fn is_composing_messages_become_chat_states() {
    let rows = [
        ("active", ChatState::Composing),
        ("idle", ChatState::Paused),
        ("typing-very-hard", ChatState::Paused),
    ];
    for (state, chat_state) in rows {
        let mut im = sip_im("sip:romeo@example.net;gr=pc", "sip:juliet@example.com", "");
        im.content_type = "application/im-iscomposing+xml;charset=utf-8".into();
        im.body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\">\
             <state>{state}</state><refresh>90</refresh></isComposing>\n"
        );
        im.call_id = Some("c1".into());
        // Chat: XEP-0085 wants chat states in chat messages.
        let msg = sip_message_to_xmpp(&im, "7").unwrap();
        let expected = element(&format!(
            "<message xmlns='jabber:server' from='romeo@example.net/pc' to='juliet@example.com' \
             id='7' type='chat'><thread>c1</thread>\
             <{} xmlns='http://jabber.org/protocol/chatstates'/></message>",
            chat_state.as_str()
        ));
        assert_eq!(msg, expected, "{state}");
    }
}

// ---------------------------------------------------------------------------
// Chat states (XEP-0085 <-> RFC 3994)
// ---------------------------------------------------------------------------

/// XMPP -> isComposing (RFC 7573 Table 4, gone as idle in pager mode).
#[test]
fn chat_state_to_is_composing_table() {
    let rows = [
        (ChatState::Active, ComposingState::Idle),
        (ChatState::Composing, ComposingState::Active),
        (ChatState::Paused, ComposingState::Idle),
        (ChatState::Inactive, ComposingState::Idle),
        (ChatState::Gone, ComposingState::Idle),
    ];
    for (chat, composing) in rows {
        assert_eq!(chat.to_composing(), composing, "{chat}");
        let doc = parse_is_composing(&is_composing_xml(chat, Some(60))).unwrap();
        assert_eq!(doc.state, composing, "{chat}");
        assert_eq!(doc.content_type.as_deref(), Some("text/plain"));
    }
    assert_eq!(rows.len(), ChatState::ALL.len());
}

/// isComposing -> XMPP (RFC 7573 Table 3, idle as paused).
#[test]
fn is_composing_to_chat_state_table() {
    assert_eq!(ComposingState::Active.to_chat_state(), ChatState::Composing);
    assert_eq!(ComposingState::Idle.to_chat_state(), ChatState::Paused);
    assert_eq!(ComposingState::default(), ComposingState::Idle);
}

#[test]
fn is_composing_document_is_exact() {
    assert_eq!(
        is_composing_xml(ChatState::Composing, Some(60)),
        "<?xml version='1.0' encoding='UTF-8'?>\n\
         <isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'><state>active</state>\
         <contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>"
    );
    // No refresh in idle, and none of zero seconds (positiveInteger).
    for (state, refresh) in [
        (ChatState::Paused, Some(60)),
        (ChatState::Composing, Some(0)),
        (ChatState::Composing, None),
    ] {
        let doc = parse_is_composing(&is_composing_xml(state, refresh)).unwrap();
        assert_eq!(doc.refresh, None, "{state} {refresh:?}");
        assert!(!is_composing_xml(state, refresh).contains("refresh"));
    }
}

/// RFC 3994 section 5 examples, verbatim (including the xsi attributes
/// and the schemaLocation typo `im-composing`).
#[test]
fn rfc3994_examples_parse() {
    let active = r#"<?xml version="1.0" encoding="UTF-8"?>
   <isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
   xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
   xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing
   iscomposing.xsd">
     <state>active</state>
     <contenttype>text/plain</contenttype>
     <refresh>90</refresh>
   </isComposing>"#;
    let doc = parse_is_composing(active).unwrap();
    assert_eq!(doc.state, ComposingState::Active);
    assert_eq!(doc.content_type.as_deref(), Some("text/plain"));
    assert_eq!(doc.refresh, Some(90));
    assert_eq!(doc.last_active, None);

    let idle = r#"<?xml version="1.0" encoding="UTF-8"?>
   <isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
   xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
   xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing
   iscomposing.xsd">
     <state>idle</state>
     <lastactive>2003-01-27T10:43:00Z</lastactive>
     <contenttype>audio</contenttype>
   </isComposing>"#;
    let doc = parse_is_composing(idle).unwrap();
    assert_eq!(doc.state, ComposingState::Idle);
    assert_eq!(doc.last_active.as_deref(), Some("2003-01-27T10:43:00Z"));
    assert_eq!(doc.content_type.as_deref(), Some("audio"));
    assert_eq!(doc.refresh, None);
}

#[test]
fn is_composing_parsing_edges() {
    const NS: &str = "urn:ietf:params:xml:ns:im-iscomposing";
    let ok = |body: &str| parse_is_composing(body).map(|d| (d.state, d.refresh));
    // Unknown tokens are idle (RFC 3994 3.5); whitespace is trimmed.
    assert_eq!(
        ok(&format!(
            "<isComposing xmlns='{NS}'><state> active </state></isComposing>"
        )),
        Ok((ComposingState::Active, None))
    );
    assert_eq!(
        ok(&format!(
            "<isComposing xmlns='{NS}'><state>ACTIVE</state></isComposing>"
        )),
        Ok((ComposingState::Idle, None))
    );
    // Extensions in other namespaces are ignored; a bad refresh is absent.
    assert_eq!(
        ok(&format!(
            "\u{feff}\n<isComposing xmlns='{NS}'><state>active</state><refresh>abc</refresh>\
             <x:ext xmlns:x='urn:x'><state>idle</state></x:ext></isComposing>\r\n"
        )),
        Ok((ComposingState::Active, None))
    );
    assert_eq!(
        ok(&format!(
            "<isComposing xmlns='{NS}'><state>active</state><refresh>0</refresh></isComposing>"
        )),
        Ok((ComposingState::Active, None))
    );
    assert_eq!(
        ok(&format!(
            "<isComposing xmlns='{NS}'><state>active</state><refresh>99999999999</refresh></isComposing>"
        )),
        Ok((ComposingState::Active, None))
    );
    // A state element in another namespace is not the state.
    assert_eq!(
        parse_is_composing(&format!(
            "<isComposing xmlns='{NS}'><state xmlns='urn:x'>active</state></isComposing>"
        )),
        Err(IsComposingError::MissingState)
    );
    assert_eq!(
        parse_is_composing("<isComposing><state>active</state></isComposing>"),
        Err(IsComposingError::NotIsComposing)
    );
    assert_eq!(
        parse_is_composing(&format!(
            "<composing xmlns='{NS}'><state>active</state></composing>"
        )),
        Err(IsComposingError::NotIsComposing)
    );
    // Not XML, several roots, restricted XML (DTD, comment, PI), unclosed
    // declaration: all refused without panicking.
    for bad in [
        "",
        "active",
        "<isComposing",
        "<?xml version='1.0'",
        "<a/><b/>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]><isComposing/>",
        "<!-- c --><isComposing/>",
        "<?xml-stylesheet href='x'?><isComposing/>",
        "<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'><state>&ent;</state></isComposing>",
    ] {
        let err = parse_is_composing(bad);
        assert!(matches!(err, Err(IsComposingError::Xml(_))), "{bad:?}: {err:?}");
        assert_eq!(err.map_err(|e| e.sip_status()), Err(400));
    }
}

#[test]
fn chat_state_elements() {
    for state in ChatState::ALL {
        assert_eq!(ChatState::from_name(state.as_str()), Some(state));
        let e = state.element();
        assert!(e.is(ns::CHATSTATES, state.as_str()));
    }
    assert_eq!(ChatState::from_name("typing"), None);

    let mut msg = element(
        "<message xmlns='jabber:server' from='a@b' to='c@d' type='chat'><body>x</body>\
         <composing xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread></message>",
    );
    assert_eq!(chat_state(&msg), Some(ChatState::Composing));
    ChatState::Active.set_on(&mut msg);
    assert_eq!(
        msg,
        element(
            "<message xmlns='jabber:server' from='a@b' to='c@d' type='chat'><body>x</body>\
             <thread>t</thread><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )
    );
    // Unknown elements in the namespace are not a state.
    let msg = element(
        "<message xmlns='jabber:server'><typing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    assert_eq!(chat_state(&msg), None);
}

/// Several chat states map to idle; repeating a status costs a MESSAGE.
#[test]
fn is_composing_is_not_repeated() {
    use ComposingState::{Active, Idle};
    let rows = [
        (Idle, ChatState::Active, None),
        (Idle, ChatState::Gone, None),
        (Idle, ChatState::Composing, Some(Active)),
        (Active, ChatState::Composing, None),
        (Active, ChatState::Paused, Some(Idle)),
        (Active, ChatState::Inactive, Some(Idle)),
        (Active, ChatState::Gone, Some(Idle)),
        (Active, ChatState::Active, Some(Idle)),
    ];
    for (last, state, next) in rows {
        assert_eq!(next_is_composing(last, state), next, "{last:?} {state}");
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// SIP user names, weighted towards what needs escaping or encoding, and
/// towards escape look-alikes that PRECIS mapping can turn into escapes
/// (upper-case hex, fullwidth backslash and digits).
fn user_name() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => prop::char::range('a', 'z').prop_map(String::from),
        1 => prop::char::range('0', '9').prop_map(String::from),
        4 => prop::sample::select(vec![
            '&', '\'', '/', '"', ':', '<', '>', '@', '\\', ' ', '#', '%', '[', ']', '^', '`', '{',
            '|', '}', ';', '?', '=', '+', '$', ',', '.', '!', '~', '*', '(', ')', '-', '_', 'A', 'Z',
        ])
        .prop_map(String::from),
        2 => prop::sample::select(vec![
            '\u{fc}', '\u{df}', '\u{3c0}', '\u{4e2d}', '\u{e9}', '\u{5d0}', '\u{ff21}',
        ])
        .prop_map(String::from),
        3 => prop::sample::select(vec![
            "\\", "\\20", "\\27", "\\2f", "\\2F", "\\5c", "\\5C", "\\3A", "\\3e", "\\40",
            "\u{ff3c}", "\u{ff3c}20", "\u{ff3c}27", "\\\u{ff12}\u{ff17}", "20", "5c", "2F",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(ch, 1..12).prop_map(|v| v.concat())
}

fn domain() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "example.com",
        "sip.example",
        "b\u{fc}cher.example",
        "m\u{fc}nchen.de",
        "\u{4e2d}\u{6587}.example",
        "192.0.2.1",
        "[2001:db8::1]",
    ])
}

fn resource() -> impl Strategy<Value = Option<String>> {
    let ch = prop_oneof![
        4 => prop::char::range('a', 'z'),
        2 => prop::sample::select(vec![
            ' ', '/', '@', ';', '=', '?', '%', '#', '&', ':', '[', ']', '\\', '"', '<', '>', '+',
        ]),
        1 => prop::sample::select(vec!['\u{e9}', '\u{265a}', '\u{4e2d}', 'A', 'Z']),
    ];
    prop::option::of(prop::collection::vec(ch, 1..12).prop_map(|v| v.into_iter().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// jid -> sip -> jid is the identity for JIDs made by escaping a user
    /// name, with any domain and resource, as long as the prepared
    /// localpart is still a canonical XEP-0106 escaping (PRECIS can turn
    /// `\5C` into the non-canonical `\5c`; see `non_canonical_escapes_normalize`).
    #[test]
    fn jid_sip_jid_round_trip(user in user_name(), domain in domain(), res in resource()) {
        let Ok(local) = escape_local(&user) else { return Ok(()); };
        let Ok(j) = Jid::from_parts(Some(&local), domain, res.as_deref()) else { return Ok(()); };
        let prepared = j.local().unwrap_or_default();
        if escape_local(&unescape_local(prepared)).as_deref() != Ok(prepared) {
            return Ok(());
        }
        let uri = jid_to_sip(&j);
        prop_assert!(uri.is_ascii(), "{}", uri);
        prop_assert!(!uri.bytes().any(|b| b.is_ascii_control() || b == b' '), "{}", uri);
        prop_assert_eq!(sip_to_jid(&uri), Ok(j.clone()), "{}", uri);
        prop_assert!(uri.starts_with("sip:"), "{}", uri);
    }

    /// Any URI that maps to a JID maps back to a URI that gives that JID.
    #[test]
    fn sip_jid_sip_is_stable(user in user_name(), domain in domain(), res in resource()) {
        let mut uri = String::from("sip:");
        for b in user.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b) {
                uri.push(char::from(b));
            } else {
                uri.push_str(&format!("%{b:02x}"));
            }
        }
        uri.push('@');
        uri.push_str(domain);
        if let Some(r) = &res {
            uri.push_str(";gr=");
            for b in r.bytes() {
                uri.push_str(&format!("%{b:02X}"));
            }
        }
        if let Ok(j) = sip_to_jid(&uri) {
            prop_assert_eq!(sip_to_jid(&jid_to_sip(&j)), Ok(j.clone()), "{}", uri);
        }
    }

    /// Hostile URI text never panics, and what maps is stable.
    #[test]
    fn sip_to_jid_never_panics(s in ".{0,64}", tail in "[a-zA-Z0-9%@:;=?\\[\\]\\\\.\u{ff3c}\u{fc} -]{0,40}") {
        let _ = sip_to_jid(&s);
        for uri in [format!("sip:{tail}"), format!("im:{tail}"), format!("sips:{tail}"), format!("SIP:{s}")] {
            if let Ok(j) = sip_to_jid(&uri) {
                prop_assert_eq!(sip_to_jid(&jid_to_sip(&j)), Ok(j.clone()), "{}", uri);
            }
        }
    }

    /// isComposing bodies from anywhere never panic.
    #[test]
    fn parse_is_composing_never_panics(s in ".{0,200}", cut in 0usize..400, junk in "[<>/&;'\"a-z?! =\u{0}-\u{1f}]{0,8}") {
        let _ = parse_is_composing(&s);
        let valid = is_composing_xml(ChatState::Composing, Some(60));
        let at = cut.min(valid.len());
        if let (Some(head), Some(rest)) = (valid.get(..at), valid.get(at..)) {
            let _ = parse_is_composing(head);
            let _ = parse_is_composing(&format!("{head}{junk}{rest}"));
        }
    }

    /// Any SIP text message becomes a stanza that survives the wire.
    #[test]
    fn sip_text_becomes_valid_xml(body in ".{1,64}", subject in proptest::option::of(".{0,16}"), call_id in proptest::option::of(".{0,16}"), lang in proptest::option::of(".{0,8}")) {
        let im = SipIm {
            from: "sip:romeo@example.net".into(),
            to: "sip:juliet@example.com".into(),
            body,
            content_type: "text/plain".into(),
            subject,
            call_id,
            language: lang,
        };
        if let Ok(msg) = sip_message_to_xmpp(&im, "id") {
            let wire = String::from_utf8_lossy(&msg.to_bytes()).into_owned();
            prop_assert_eq!(parse_element(&wire), Ok(msg.clone()));
            // And the way back never puts a line break in a header.
            if let Ok(back) = to_sip(&msg) {
                for h in [back.subject, back.call_id, back.language].into_iter().flatten() {
                    prop_assert!(!h.contains(['\r', '\n']), "{:?}", h);
                }
            }
        }
    }
}
