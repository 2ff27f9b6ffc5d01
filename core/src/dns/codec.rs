//! DNS messages: the queries xfed sends and the answers it reads.
//!
//! Only what outbound s2s needs: A, AAAA and SRV questions, class IN, with
//! recursion desired, to the recursive resolver of the host. hickory-proto
//! does the wire format; the checks that make an answer trustworthy (id,
//! question, CNAME chain, bounds) are ours and sit here.

use std::fmt;
use std::net::IpAddr;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// CNAME records followed inside one answer before giving up on it.
pub const MAX_CNAME_HOPS: usize = 8;

/// The UDP payload size advertised with EDNS(0): the 2020 DNS flag day value,
/// which avoids IP fragmentation. A runtime's receive buffer must hold it.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The record types xfed asks for. Our own type, so that hickory-proto stays
/// out of the public API and the runtimes need not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Service location (RFC 2782).
    Srv,
}

impl RecordType {
    fn wire(self) -> hickory_proto::rr::RecordType {
        match self {
            Self::A => hickory_proto::rr::RecordType::A,
            Self::Aaaa => hickory_proto::rr::RecordType::AAAA,
            Self::Srv => hickory_proto::rr::RecordType::SRV,
        }
    }
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Srv {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among records of the same priority.
    pub weight: u16,
    /// Port to connect to on the target.
    pub port: u16,
    /// Target host in ASCII form without the final dot; `"."` for the root,
    /// which means the service is decidedly not available.
    pub target: String,
}

impl Srv {
    /// Whether the target is the root (`.`): "decidedly not available".
    pub fn is_unavailable(&self) -> bool {
        self.target == "."
    }
}

/// What a well-formed answer to our question says.
///
/// TTLs are in seconds and already the minimum over everything the answer
/// relied on (the CNAME chain included), so a cache can keep the result that
/// long. Negative answers carry the RFC 2308 negative TTL (the SOA record's
/// TTL capped by its MINIMUM field), or 0 when the answer has no SOA, which
/// means "do not cache".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name does not exist (NXDOMAIN).
    NxDomain {
        /// Negative-caching TTL.
        ttl: u32,
    },
    /// The name exists but has no record of the type asked (NODATA).
    NoRecords {
        /// Negative-caching TTL.
        ttl: u32,
    },
    /// SRV records, in the order of the answer.
    Srv {
        /// Lowest TTL of the records and of the CNAMEs leading to them.
        ttl: u32,
        /// At least one record.
        records: Vec<Srv>,
    },
    /// A or AAAA records, in the order of the answer.
    Addrs {
        /// Lowest TTL of the records and of the CNAMEs leading to them.
        ttl: u32,
        /// At least one address, all of the family asked.
        addrs: Vec<IpAddr>,
    },
    /// The TC bit is set: the answer did not fit the datagram. Its content is
    /// not read; ask again over TCP (see [`tcp_frame`]).
    Truncated,
}

/// Why a name could not be queried or a reply could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// The name cannot be written as a DNS name (bad IDNA, empty or too long
    /// label, forbidden character).
    InvalidName,
    /// The bytes are not a well-formed DNS message.
    Malformed,
    /// The reply's id is not the one asked: not an answer to us (maybe a
    /// spoofing attempt); keep waiting for the real one.
    IdMismatch,
    /// The message is not a response to a standard query.
    NotAResponse,
    /// The reply's question is not ours (name, type or class): ignore it.
    QuestionMismatch,
    /// The resolver answered with an error code other than NXDOMAIN
    /// (1 FORMERR, 2 SERVFAIL, 4 NOTIMP, 5 REFUSED, ...).
    ResponseCode(u16),
    /// The CNAME chain is longer than [`MAX_CNAME_HOPS`] or loops.
    CnameChainTooLong,
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName => f.write_str("invalid DNS name"),
            Self::Malformed => f.write_str("malformed DNS message"),
            Self::IdMismatch => f.write_str("DNS reply id does not match the query"),
            Self::NotAResponse => f.write_str("DNS message is not a query response"),
            Self::QuestionMismatch => f.write_str("DNS reply question does not match the query"),
            Self::ResponseCode(code) => write!(f, "DNS resolver answered with rcode {code}"),
            Self::CnameChainTooLong => f.write_str("DNS CNAME chain too long or looping"),
        }
    }
}

impl std::error::Error for DnsError {}

/// LDH plus the underscore of `_xmpp-server._tcp` labels; everything else in
/// ASCII is refused. (Evaluated at compile time.)
const DNS_ASCII_DENY: AsciiDenyList = AsciiDenyList::new(true, " !\"#$%&'()*+,/:;<=>?@[\\]^`{|}~");

/// Converts a name to its A-label form and to a fully qualified wire name.
/// One trailing dot is accepted.
pub(crate) fn to_name(name: &str) -> Result<Name, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(DnsError::InvalidName);
    }
    let ascii = Uts46::new()
        .to_ascii(
            name.as_bytes(),
            DNS_ASCII_DENY,
            Hyphens::Allow,
            DnsLength::Verify,
        )
        .map_err(|_| DnsError::InvalidName)?;
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return Err(DnsError::InvalidName);
    }
    Name::from_labels(labels.iter().map(|l| l.as_bytes())).map_err(|_| DnsError::InvalidName)
}

/// A host name in the form we hand out: ASCII, no final dot; `"."` for root.
pub(crate) fn host_string(name: &Name) -> String {
    if name.is_root() {
        return ".".to_owned();
    }
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// Builds a query for `name` (converted to its A-label form) and `rtype`,
/// class IN, recursion desired, with an EDNS(0) record advertising
/// [`MAX_UDP_PAYLOAD`].
pub fn query(id: u16, name: &str, rtype: RecordType) -> Result<Vec<u8>, DnsError> {
    let name = to_name(name)?;
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name, rtype.wire()));
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_PAYLOAD);
    msg.set_edns(edns);
    msg.to_vec().map_err(|_| DnsError::InvalidName)
}

/// Reads the reply to the query `query(expect_id, name, rtype)` made.
///
/// The header and question are checked before anything else is decoded: a
/// reply with another id or question is refused ([`DnsError::IdMismatch`],
/// [`DnsError::QuestionMismatch`]) and must be ignored, not treated as a
/// failure, so that a spoofed datagram cannot end a lookup. CNAME records
/// in the answer section are followed from the question name (at most
/// [`MAX_CNAME_HOPS`]); only records owned by the end of that chain count.
/// The authority and additional sections are not trusted for data, only for
/// the negative TTL.
pub fn parse_answer(
    bytes: &[u8],
    expect_id: u16,
    name: &str,
    rtype: RecordType,
) -> Result<Answer, DnsError> {
    let qname = to_name(name)?;
    let wire_type = rtype.wire();

    // Header and question first: a truncated reply may be cut anywhere after.
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).map_err(|_| DnsError::Malformed)?;
    if header.metadata.id != expect_id {
        return Err(DnsError::IdMismatch);
    }
    if header.metadata.message_type != MessageType::Response
        || header.metadata.op_code != OpCode::Query
    {
        return Err(DnsError::NotAResponse);
    }
    if header.counts.queries != 1 {
        return Err(DnsError::QuestionMismatch);
    }
    let question = Query::read(&mut decoder).map_err(|_| DnsError::Malformed)?;
    if question.name() != &qname
        || question.query_type() != wire_type
        || question.query_class() != DNSClass::IN
    {
        return Err(DnsError::QuestionMismatch);
    }
    if header.metadata.truncation {
        return Ok(Answer::Truncated);
    }

    let msg = Message::from_vec(bytes).map_err(|_| DnsError::Malformed)?;
    let rcode = msg.metadata.response_code;
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return Err(DnsError::ResponseCode(u16::from(rcode)));
    }

    // Follow the CNAME chain from the question name.
    let mut owner = qname;
    let mut chain_ttl = u32::MAX;
    let mut hops = 0;
    let data: Vec<&Record> = loop {
        let here: Vec<&Record> = msg
            .answers
            .iter()
            .filter(|r| r.dns_class == DNSClass::IN && r.name == owner)
            .collect();
        let matching: Vec<&Record> = here
            .iter()
            .copied()
            .filter(|r| r.record_type() == wire_type)
            .collect();
        if !matching.is_empty() {
            break matching;
        }
        let Some(cname) = here.iter().find_map(|r| match &r.data {
            RData::CNAME(target) => Some((r.ttl, target.0.clone())),
            _ => None,
        }) else {
            break Vec::new();
        };
        hops += 1;
        if hops > MAX_CNAME_HOPS {
            return Err(DnsError::CnameChainTooLong);
        }
        chain_ttl = chain_ttl.min(cname.0);
        owner = cname.1;
    };

    if data.is_empty() {
        let ttl = negative_ttl(&msg).min(chain_ttl);
        return Ok(if rcode == ResponseCode::NXDomain {
            Answer::NxDomain { ttl }
        } else {
            Answer::NoRecords { ttl }
        });
    }

    let ttl = data.iter().map(|r| r.ttl).fold(chain_ttl, u32::min);
    Ok(match rtype {
        RecordType::Srv => Answer::Srv {
            ttl,
            records: data
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => Some(Srv {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: host_string(&srv.target),
                    }),
                    _ => None,
                })
                .collect(),
        },
        RecordType::A | RecordType::Aaaa => Answer::Addrs {
            ttl,
            addrs: data
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })
                .collect(),
        },
    })
}

/// RFC 2308 section 5: the TTL of the SOA in the authority section, capped
/// by its MINIMUM field; 0 (do not cache) without one.
fn negative_ttl(msg: &Message) -> u32 {
    msg.authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })
        .unwrap_or(0)
}

/// Prefixes a message with its two-byte length, as DNS over TCP requires
/// (RFC 1035 section 4.2.2). `None` if it is longer than 65535 bytes.
pub fn tcp_frame(message: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(message.len()).ok()?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    Some(framed)
}

/// Reads one length-prefixed message from the start of what a TCP connection
/// delivered: `Some((message, bytes consumed))` once it is complete, `None`
/// while more bytes are needed.
pub fn tcp_unframe(buf: &[u8]) -> Option<(&[u8], usize)> {
    let (len, rest) = buf.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    let message = rest.get(..len)?;
    Some((message, len + 2))
}

/// The id of a DNS message, for a runtime that reads every reply from one
/// socket and needs to know which query it answers. `None` if shorter than
/// a header's first two bytes.
pub fn reply_id(bytes: &[u8]) -> Option<u16> {
    bytes.first_chunk::<2>().map(|b| u16::from_be_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn n(s: &str) -> Name {
        to_name(s).expect("test name")
    }

    /// A reply to `query(id, qname, rtype)` with the given answer records.
    fn reply(id: u16, qname: &str, rtype: RecordType, answers: Vec<Record>) -> Message {
        let mut m = Message::response(id, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.metadata.recursion_available = true;
        m.add_query(Query::query(n(qname), rtype.wire()));
        m.add_answers(answers);
        m
    }

    fn bytes(m: &Message) -> Vec<u8> {
        m.to_vec().expect("encode")
    }

    fn srv(owner: &str, ttl: u32, p: u16, w: u16, port: u16, target: &str) -> Record {
        let target = if target == "." {
            Name::root()
        } else {
            n(target)
        };
        Record::from_rdata(n(owner), ttl, RData::SRV(SRV::new(p, w, port, target)))
    }

    fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
        Record::from_rdata(n(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
    }

    fn cname(owner: &str, ttl: u32, target: &str) -> Record {
        Record::from_rdata(n(owner), ttl, RData::CNAME(CNAME(n(target))))
    }

    fn soa(owner: &str, ttl: u32, minimum: u32) -> Record {
        Record::from_rdata(
            n(owner),
            ttl,
            RData::SOA(SOA::new(
                n("ns.example"),
                n("host.example"),
                1,
                2,
                3,
                4,
                minimum,
            )),
        )
    }

    const SRV_NAME: &str = "_xmpp-server._tcp.example.com";

    #[test]
    fn query_encodes_question_in_a_label_form() {
        let q = query(0x1234, "_xmpp-server._tcp.Bücher.example.", RecordType::Srv).unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.message_type, MessageType::Query);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(
            m.queries[0].name().to_ascii(),
            "_xmpp-server._tcp.xn--bcher-kva.example."
        );
        assert_eq!(
            m.queries[0].query_type(),
            hickory_proto::rr::RecordType::SRV
        );
        assert_eq!(m.queries[0].query_class(), DNSClass::IN);
        assert_eq!(
            m.edns.as_ref().map(Edns::max_payload),
            Some(MAX_UDP_PAYLOAD)
        );

        let q = query(1, "example.com", RecordType::Aaaa).unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert_eq!(
            m.queries[0].query_type(),
            hickory_proto::rr::RecordType::AAAA
        );
    }

    #[test]
    fn query_refuses_bad_names() {
        for bad in [
            "",
            ".",
            "a..b",
            "a b.example",
            "a/b.example",
            &"x".repeat(64),
            &format!("{}.example", ["abcdefghij"; 25].join(".")),
        ] {
            assert_eq!(
                query(1, bad, RecordType::A),
                Err(DnsError::InvalidName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reads_srv_records() {
        let m = reply(
            7,
            SRV_NAME,
            RecordType::Srv,
            vec![
                srv(SRV_NAME, 300, 10, 60, 5269, "xmpp1.example.com"),
                srv(SRV_NAME, 200, 20, 0, 5270, "xmpp2.example.com."),
            ],
        );
        let ans = parse_answer(&bytes(&m), 7, SRV_NAME, RecordType::Srv).unwrap();
        assert_eq!(
            ans,
            Answer::Srv {
                ttl: 200,
                records: vec![
                    Srv {
                        priority: 10,
                        weight: 60,
                        port: 5269,
                        target: "xmpp1.example.com".into()
                    },
                    Srv {
                        priority: 20,
                        weight: 0,
                        port: 5270,
                        target: "xmpp2.example.com".into()
                    },
                ]
            }
        );
    }

    #[test]
    fn srv_root_target_is_unavailable() {
        let m = reply(
            7,
            SRV_NAME,
            RecordType::Srv,
            vec![srv(SRV_NAME, 60, 0, 0, 0, ".")],
        );
        let Answer::Srv { records, .. } =
            parse_answer(&bytes(&m), 7, SRV_NAME, RecordType::Srv).unwrap()
        else {
            panic!("expected SRV records");
        };
        assert_eq!(records.len(), 1);
        assert!(records[0].is_unavailable());
    }

    #[test]
    fn reads_addresses_and_ignores_other_owners_and_types() {
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let m = reply(
            9,
            "host.example",
            RecordType::Aaaa,
            vec![
                Record::from_rdata(n("host.example"), 50, RData::AAAA(AAAA(v6))),
                // Another owner: not part of the answer to our question.
                Record::from_rdata(n("evil.example"), 5, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
                // Another type at our name.
                a("host.example", 1, [192, 0, 2, 1]),
            ],
        );
        let ans = parse_answer(&bytes(&m), 9, "host.example", RecordType::Aaaa).unwrap();
        assert_eq!(
            ans,
            Answer::Addrs {
                ttl: 50,
                addrs: vec![IpAddr::V6(v6)]
            }
        );
    }

    #[test]
    fn follows_cname_chain_with_minimum_ttl() {
        let m = reply(
            3,
            "HOST.example",
            RecordType::A,
            vec![
                cname("host.example", 100, "mid.example"),
                cname("mid.example", 30, "end.example"),
                a("end.example", 60, [192, 0, 2, 7]),
                a("end.example", 60, [192, 0, 2, 8]),
            ],
        );
        let ans = parse_answer(&bytes(&m), 3, "host.EXAMPLE", RecordType::A).unwrap();
        assert_eq!(
            ans,
            Answer::Addrs {
                ttl: 30,
                addrs: vec![
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8))
                ]
            }
        );
    }

    #[test]
    fn cname_chain_bounded() {
        let mut chain = Vec::new();
        for i in 0..=MAX_CNAME_HOPS {
            chain.push(cname(
                &format!("h{i}.example"),
                60,
                &format!("h{}.example", i + 1),
            ));
        }
        chain.push(a(
            &format!("h{}.example", MAX_CNAME_HOPS + 1),
            60,
            [192, 0, 2, 1],
        ));
        let m = reply(3, "h0.example", RecordType::A, chain.clone());
        assert_eq!(
            parse_answer(&bytes(&m), 3, "h0.example", RecordType::A),
            Err(DnsError::CnameChainTooLong)
        );
        // Exactly MAX_CNAME_HOPS hops is fine.
        let m = reply(3, "h1.example", RecordType::A, chain);
        assert!(matches!(
            parse_answer(&bytes(&m), 3, "h1.example", RecordType::A),
            Ok(Answer::Addrs { .. })
        ));
        // A loop ends the same way.
        let m = reply(
            3,
            "a.example",
            RecordType::A,
            vec![
                cname("a.example", 60, "b.example"),
                cname("b.example", 60, "a.example"),
            ],
        );
        assert_eq!(
            parse_answer(&bytes(&m), 3, "a.example", RecordType::A),
            Err(DnsError::CnameChainTooLong)
        );
    }

    #[test]
    fn nxdomain_and_nodata_with_negative_ttl() {
        let mut m = reply(5, SRV_NAME, RecordType::Srv, vec![]);
        m.metadata.response_code = ResponseCode::NXDomain;
        m.add_authority(soa("example.com", 900, 300));
        assert_eq!(
            parse_answer(&bytes(&m), 5, SRV_NAME, RecordType::Srv),
            Ok(Answer::NxDomain { ttl: 300 })
        );

        let mut m = reply(5, SRV_NAME, RecordType::Srv, vec![]);
        m.add_authority(soa("example.com", 120, 300));
        assert_eq!(
            parse_answer(&bytes(&m), 5, SRV_NAME, RecordType::Srv),
            Ok(Answer::NoRecords { ttl: 120 })
        );

        // No SOA: do not cache.
        let m = reply(5, "host.example", RecordType::A, vec![]);
        assert_eq!(
            parse_answer(&bytes(&m), 5, "host.example", RecordType::A),
            Ok(Answer::NoRecords { ttl: 0 })
        );

        // A CNAME to a name that does not exist.
        let mut m = reply(
            5,
            "host.example",
            RecordType::A,
            vec![cname("host.example", 10, "gone.example")],
        );
        m.metadata.response_code = ResponseCode::NXDomain;
        m.add_authority(soa("example", 900, 300));
        assert_eq!(
            parse_answer(&bytes(&m), 5, "host.example", RecordType::A),
            Ok(Answer::NxDomain { ttl: 10 })
        );
    }

    #[test]
    fn error_rcodes() {
        for (rc, code) in [(ResponseCode::ServFail, 2), (ResponseCode::Refused, 5)] {
            let mut m = reply(5, "host.example", RecordType::A, vec![]);
            m.metadata.response_code = rc;
            assert_eq!(
                parse_answer(&bytes(&m), 5, "host.example", RecordType::A),
                Err(DnsError::ResponseCode(code))
            );
        }
    }

    #[test]
    fn spoof_guards() {
        let m = reply(
            5,
            "host.example",
            RecordType::A,
            vec![a("host.example", 1, [192, 0, 2, 1])],
        );
        let b = bytes(&m);
        assert_eq!(
            parse_answer(&b, 6, "host.example", RecordType::A),
            Err(DnsError::IdMismatch)
        );
        assert_eq!(
            parse_answer(&b, 5, "other.example", RecordType::A),
            Err(DnsError::QuestionMismatch)
        );
        assert_eq!(
            parse_answer(&b, 5, "host.example", RecordType::Aaaa),
            Err(DnsError::QuestionMismatch)
        );

        // Our own query echoed back is not an answer.
        let q = query(5, "host.example", RecordType::A).unwrap();
        assert_eq!(
            parse_answer(&q, 5, "host.example", RecordType::A),
            Err(DnsError::NotAResponse)
        );

        // No question, or two.
        let mut m2 = m.clone();
        m2.queries.clear();
        assert_eq!(
            parse_answer(&bytes(&m2), 5, "host.example", RecordType::A),
            Err(DnsError::QuestionMismatch)
        );
        let mut m2 = m.clone();
        m2.add_query(Query::query(
            n("host.example"),
            hickory_proto::rr::RecordType::A,
        ));
        assert_eq!(
            parse_answer(&bytes(&m2), 5, "host.example", RecordType::A),
            Err(DnsError::QuestionMismatch)
        );

        // Class other than IN.
        let mut m2 = m;
        m2.queries[0].set_query_class(DNSClass::CH);
        assert_eq!(
            parse_answer(&bytes(&m2), 5, "host.example", RecordType::A),
            Err(DnsError::QuestionMismatch)
        );
    }

    #[test]
    fn truncated_reply_is_reported_even_when_cut_short() {
        let mut m = reply(
            5,
            SRV_NAME,
            RecordType::Srv,
            (0..20)
                .map(|i| srv(SRV_NAME, 60, 0, i, 5269, "xmpp.example.com"))
                .collect(),
        );
        m.metadata.truncation = true;
        let b = bytes(&m);
        // Cut in the middle of the answer section, as a resolver may.
        let cut = &b[..b.len() / 2];
        assert_eq!(
            parse_answer(cut, 5, SRV_NAME, RecordType::Srv),
            Ok(Answer::Truncated)
        );
        // The id is still checked first.
        assert_eq!(
            parse_answer(cut, 6, SRV_NAME, RecordType::Srv),
            Err(DnsError::IdMismatch)
        );
    }

    #[test]
    fn malformed_bytes() {
        let m = reply(
            5,
            "host.example",
            RecordType::A,
            vec![a("host.example", 1, [192, 0, 2, 1])],
        );
        let b = bytes(&m);
        for len in 0..b.len() {
            let r = parse_answer(&b[..len], 5, "host.example", RecordType::A);
            assert!(r.is_err(), "prefix of {len} bytes gave {r:?}");
        }
        assert_eq!(
            parse_answer(&[], 5, "host.example", RecordType::A),
            Err(DnsError::Malformed)
        );
    }

    #[test]
    fn tcp_framing() {
        let framed = tcp_frame(b"abc").unwrap();
        assert_eq!(framed, b"\x00\x03abc");
        assert_eq!(tcp_unframe(&framed), Some((&b"abc"[..], 5)));
        assert_eq!(tcp_unframe(&framed[..4]), None);
        assert_eq!(tcp_unframe(&framed[..1]), None);
        let mut two = framed.clone();
        two.extend_from_slice(b"\x00\x00");
        assert_eq!(tcp_unframe(&two), Some((&b"abc"[..], 5)));
        assert_eq!(tcp_unframe(&two[5..]), Some((&b""[..], 2)));
        assert!(tcp_frame(&vec![0; 65536]).is_none());
        assert_eq!(tcp_frame(&vec![0; 65535]).map(|v| v.len()), Some(65537));
    }

    #[test]
    fn reply_id_reads_header() {
        assert_eq!(reply_id(&[0x12, 0x34, 0]), Some(0x1234));
        assert_eq!(reply_id(&[0x12]), None);
    }
}
