//! Real messages: what sipp sends (peers.md section 3), RFC 3261's
//! examples and RFC 4475's tortuous one, read through every accessor.

use xfed_core::sip::{
    parse_datagram, Contact, Frame, Host, Limits, Message, Method, Request, Response, Scheme,
    StreamFramer,
};

const SIPP_MESSAGE: &str = "MESSAGE sip:bob@gw.test SIP/2.0\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bK-4321-1-0\r\n\
Max-Forwards: 70\r\n\
From: <sip:sipp@sip.test>;tag=4321SIPpTag001\r\n\
To: <sip:bob@gw.test>\r\n\
Call-ID: 1-4321@127.0.0.1\r\n\
CSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\n\
Content-Length: 47\r\n\
\r\n\
sipp message 1 0123456789abcdef0123456789abcdef";

const SIPP_REGISTER: &str = "REGISTER sip:gw.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-4321-1-0;rport\r\n\
From: <sip:sipp@sip.test>;tag=4321SIPpTag001\r\n\
To: <sip:sipp@sip.test>\r\n\
Call-ID: 1-4321@127.0.0.1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:sipp@127.0.0.1:5071;transport=udp>;expires=3600;q=0.8\r\n\
Max-Forwards: 70\r\n\
Expires: 3600\r\n\
User-Agent: SIPp\r\n\
Content-Length: 0\r\n\
\r\n";

const SIPP_200: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bK-4321-1-0\r\n\
From: <sip:sipp@sip.test>;tag=4321SIPpTag001\r\n\
To: <sip:bob@gw.test>;tag=4321SIPpTag011\r\n\
Call-ID: 1-4321@127.0.0.1\r\n\
CSeq: 1 MESSAGE\r\n\
Server: sipp-uas\r\n\
Content-Length: 0\r\n\
\r\n";

fn parse(s: &str) -> Message {
    parse_datagram(s.as_bytes(), &Limits::default()).unwrap_or_else(|e| panic!("{e}\n{s}"))
}

fn req(s: &str) -> Request {
    match parse(s) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("a response"),
    }
}

#[test]
fn sipp_message() {
    let body = SIPP_MESSAGE.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(body.len(), 47);
    let r = req(SIPP_MESSAGE);
    assert_eq!(r.method, Method::Message);
    assert_eq!(r.uri.user(), Some("bob"));
    let h = &r.headers;
    let via = h.top_via().unwrap();
    assert_eq!(via.transport(), "TCP");
    assert!(via.is_reliable());
    assert_eq!(via.host(), &Host::V4([127, 0, 0, 1].into()));
    assert_eq!(via.port(), Some(5071));
    assert_eq!(via.branch(), Some("z9hG4bK-4321-1-0"));
    assert_eq!(h.from().unwrap().tag(), Some("4321SIPpTag001"));
    assert_eq!(h.from().unwrap().uri().to_string(), "sip:sipp@sip.test");
    assert_eq!(h.to().unwrap().tag(), None);
    assert_eq!(h.call_id(), Ok("1-4321@127.0.0.1"));
    assert_eq!(h.cseq().unwrap().seq, 1);
    assert_eq!(h.max_forwards(), Ok(Some(70)));
    assert!(h.content_type_is("text/plain"));
    assert_eq!(r.content_length(), 47);
    assert_eq!(r.body, body.as_bytes());

    // Our 202 to it, as a gateway answers MESSAGE (RFC 3428).
    let resp = r.response(202, "gwtag");
    let text = String::from_utf8(resp.to_bytes()).unwrap();
    assert_eq!(
        text,
        "SIP/2.0 202 Accepted\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bK-4321-1-0\r\n\
         From: <sip:sipp@sip.test>;tag=4321SIPpTag001\r\n\
         To: <sip:bob@gw.test>;tag=gwtag\r\n\
         Call-ID: 1-4321@127.0.0.1\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    assert_eq!(parse(&text), Message::Response(resp));
}

#[test]
fn sipp_register_and_200() {
    let r = req(SIPP_REGISTER);
    assert_eq!(r.method, Method::Register);
    assert_eq!(r.uri.user(), None);
    assert_eq!(r.headers.top_via().unwrap().rport(), Some(None));
    let contacts = r.headers.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].expires(), Some(3600));
    assert_eq!(contacts[0].q(), Some(800));
    let Contact::Addr(a) = &contacts[0] else {
        panic!()
    };
    assert_eq!(a.uri().transport(), Some("udp"));
    assert_eq!(r.headers.expires(), Ok(Some(3600)));
    assert_eq!(r.headers.get("user-agent"), Some("SIPp"));

    let Message::Response(ok) = parse(SIPP_200) else {
        panic!()
    };
    assert_eq!((ok.status, ok.reason.as_str()), (200, "OK"));
    assert_eq!(ok.headers.to().unwrap().tag(), Some("4321SIPpTag011"));
    assert_eq!(ok.headers.max_forwards(), Ok(None));
}

#[test]
fn sipp_load_over_one_tcp_connection() {
    // A burst as sipp sends it at 20k/s: many messages per read, split
    // anywhere.
    let mut stream = Vec::new();
    for i in 0..500 {
        let m = SIPP_MESSAGE
            .replace("SIPpTag001", &format!("SIPpTag00{i}"))
            .replace("1-4321@", &format!("{i}-4321@"));
        stream.extend_from_slice(m.as_bytes());
    }
    let mut f = StreamFramer::new(Limits::default());
    let mut n = 0;
    for piece in stream.chunks(1460) {
        f.feed(piece);
        while let Some(frame) = f.poll() {
            let Frame::Message(Message::Request(r)) = frame.unwrap() else {
                panic!()
            };
            assert_eq!(r.headers.call_id().unwrap(), format!("{n}-4321@127.0.0.1"));
            n += 1;
        }
    }
    assert_eq!(n, 500);
    assert!(f.is_idle());
}

/// RFC 4475 section 3.1.1.1, "A Short Tortuous INVITE": legal, ugly.
#[test]
fn rfc4475_short_tortuous_invite() {
    let body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\n\
                t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";
    let text = format!(
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : {}\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;rport;branch=390skdjuw\r\n\
s :\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
Content-Type: application/sdp\r\n\
Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n \
SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  \
secondparam ; q = 0.33\r\n\
\r\n{body}",
        body.len()
    );
    let r = req(&text);
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.param("unknownparam"), Some(None));
    let h = &r.headers;
    assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
    let from = h.from().unwrap();
    assert_eq!(from.display_name(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(h.max_forwards(), Ok(Some(68)));
    let cseq = h.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(h.get("Subject"), Some(""));
    assert_eq!(
        h.get("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    let vias = h.via().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(vias[0].rport(), Some(None));
    assert_eq!(vias[1].host(), &Host::Domain("spindle.example.com".into()));
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    let contacts = h.contacts().unwrap();
    let Contact::Addr(c) = &contacts[0] else {
        panic!()
    };
    assert_eq!(c.display_name(), Some("Quoted string \"\""));
    assert_eq!(c.params().value("newparam"), Some("newvalue"));
    assert_eq!(c.q(), Some(330));
    assert!(h.values("route").next().is_some());
    assert_eq!(r.body, body.as_bytes());
    // Written back in canonical form, it reads the same.
    assert_eq!(
        parse(&String::from_utf8(r.to_bytes()).unwrap()),
        Message::Request(r)
    );
}

#[test]
fn ipv6_and_sips_and_tel() {
    let text = SIPP_MESSAGE
        .replace(
            "sip:bob@gw.test SIP",
            "sips:bob@[2001:db8::1]:5061;transport=tls SIP",
        )
        .replace("127.0.0.1:5071", "[2001:db8::2]:5071;received=2001:db8::3")
        .replace("To: <sip:bob@gw.test>", "To: <tel:+1-201-555-0123>");
    let r = req(&text);
    assert_eq!(r.uri.scheme(), Scheme::Sips);
    assert_eq!(
        r.uri.host(),
        Some(&Host::V6("2001:db8::1".parse().unwrap()))
    );
    assert_eq!(r.uri.transport(), Some("tls"));
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.host(), &Host::V6("2001:db8::2".parse().unwrap()));
    assert_eq!(via.received(), Some("2001:db8::3"));
    assert_eq!(
        r.headers.to().unwrap().uri().user(),
        Some("+1-201-555-0123")
    );
}

#[test]
fn compact_form_message() {
    let text = "MESSAGE sip:bob@gw.test SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\n\
Max-Forwards: 70\r\n\
f: Alice <sip:alice@a.test>;tag=1\r\n\
t: sip:bob@gw.test\r\n\
i: abc\r\n\
CSeq: 5 MESSAGE\r\n\
c: text/plain;charset=UTF-8\r\n\
l: 2\r\n\
\r\n\
hi";
    let r = req(text);
    assert_eq!(r.headers.from().unwrap().display_name(), Some("Alice"));
    assert_eq!(r.headers.to().unwrap().uri().user(), Some("bob"));
    assert_eq!(r.body, b"hi");
    let resp: Response = r.response(200, "x");
    // Compact names are kept when copied.
    assert!(resp.to_bytes().starts_with(b"SIP/2.0 200 OK\r\nv: "));
    assert_eq!(resp.headers.to().unwrap().tag(), Some("x"));
}
