//! Outbound s2s resolution driven against a scripted resolver and a
//! simulated clock; the codec fed hostile bytes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType as WireType};
use proptest::prelude::*;
use xfed_core::dns::{
    parse_answer, query, tcp_frame, tcp_unframe, Candidate, Connect, HostsTable, Query, RecordType,
    Resolution, ResolveError, ResolveOptions, Transport, MAX_CANDIDATES, MAX_IN_FLIGHT,
    MAX_SRV_RECORDS,
};

const SRV_S: &str = "_xmpp-server._tcp.example.com";
const SRV_D: &str = "_xmpps-server._tcp.example.com";

/// What the scripted resolver does with a question.
#[derive(Clone)]
enum Script {
    Records(Vec<Record>),
    NxDomain,
    ServFail,
    /// TC set over UDP; the records over TCP.
    Truncate(Vec<Record>),
    /// No reply at all.
    Silent,
}

#[derive(Default)]
struct Resolver {
    zone: HashMap<(String, WireType), Script>,
    /// Every question asked: (name, type, transport).
    asked: Vec<(String, WireType, Transport)>,
}

fn name(s: &str) -> Name {
    if s == "." {
        return Name::root();
    }
    Name::from_ascii(format!("{s}.")).expect("test name")
}

fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        300,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 300, RData::A(A(Ipv4Addr::from(ip))))
}

fn aaaa(owner: &str, ip: &str) -> Record {
    Record::from_rdata(name(owner), 300, RData::AAAA(AAAA(ip.parse().expect("v6"))))
}

impl Resolver {
    fn set(&mut self, owner: &str, t: WireType, script: Script) -> &mut Self {
        self.zone.insert((owner.to_ascii_lowercase(), t), script);
        self
    }

    /// Names not in the zone are NXDOMAIN.
    fn reply(&mut self, q: &Query) -> Option<Vec<u8>> {
        let msg = Message::from_vec(&q.message).expect("our query decodes");
        let question = msg.queries.first().expect("one question").clone();
        let qname = question
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.asked
            .push((qname.clone(), question.query_type(), q.transport));
        let script = self
            .zone
            .get(&(qname, question.query_type()))
            .cloned()
            .unwrap_or(Script::NxDomain);
        let mut r = Message::response(msg.metadata.id, OpCode::Query);
        r.metadata.recursion_desired = true;
        r.metadata.recursion_available = true;
        r.add_query(question);
        // Negative answers carry the zone's SOA, as real ones do (RFC 2308).
        let soa = Record::from_rdata(
            name("example"),
            900,
            RData::SOA(SOA::new(
                name("ns.example"),
                name("hostmaster.example"),
                1,
                2,
                3,
                4,
                600,
            )),
        );
        match script {
            Script::Records(records) => {
                if records.is_empty() {
                    r.add_authority(soa);
                }
                r.add_answers(records);
            }
            Script::NxDomain => {
                r.metadata.response_code = ResponseCode::NXDomain;
                r.add_authority(soa);
            }
            Script::ServFail => r.metadata.response_code = ResponseCode::ServFail,
            Script::Truncate(records) => {
                if q.transport == Transport::Udp {
                    r.metadata.truncation = true;
                } else {
                    r.add_answers(records);
                }
            }
            Script::Silent => return None,
        }
        Some(r.to_vec().expect("encode reply"))
    }

    fn asked_names(&self) -> Vec<(String, WireType)> {
        self.asked.iter().map(|(n, t, _)| (n.clone(), *t)).collect()
    }
}

struct Run {
    outcome: Result<Vec<Candidate>, ResolveError>,
    elapsed: Duration,
}

/// Drives `r` against the resolver: answers delivered at once, and time
/// jumped to the next deadline when nothing is left to deliver. TCP
/// replies go through the framing helpers as a runtime's would.
fn drive(r: &mut Resolution, dns: &mut Resolver) -> Run {
    let start = Instant::now();
    let mut now = start;
    for _ in 0..1000 {
        let mut replies = Vec::new();
        while let Some(q) = r.poll_query(now) {
            if let Some(bytes) = dns.reply(&q) {
                replies.push((q.id, q.transport, bytes));
            }
        }
        if let Some(outcome) = r.poll_outcome() {
            return Run {
                outcome,
                elapsed: now - start,
            };
        }
        if replies.is_empty() {
            now = r.poll_timeout().expect("a deadline while waiting");
            r.handle_timeout(now);
        }
        for (id, transport, bytes) in replies {
            match transport {
                Transport::Udp => r.handle_response(id, &bytes),
                Transport::Tcp => {
                    let framed = tcp_frame(&bytes).expect("fits");
                    let (msg, used) = tcp_unframe(&framed).expect("complete");
                    assert_eq!(used, framed.len());
                    r.handle_response(id, msg);
                }
            }
        }
    }
    panic!("resolution did not end");
}

fn cand(addr: &str, direct_tls: bool, host: &str) -> Candidate {
    Candidate {
        addr: addr.parse().expect("addr"),
        direct_tls,
        host: host.to_owned(),
    }
}

fn opts() -> ResolveOptions {
    ResolveOptions::default()
}

#[test]
fn srv_happy_path_merges_xep0368_records() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![
            srv(SRV_S, 10, 0, 5269, "s1.example.com"),
            srv(SRV_S, 20, 0, 5269, "s2.example.com"),
        ]),
    )
    .set(
        SRV_D,
        WireType::SRV,
        Script::Records(vec![srv(SRV_D, 10, 0, 5223, "s1.example.com")]),
    )
    .set(
        "s1.example.com",
        WireType::AAAA,
        Script::Records(vec![aaaa("s1.example.com", "2001:db8::1")]),
    )
    .set(
        "s1.example.com",
        WireType::A,
        Script::Records(vec![a("s1.example.com", [192, 0, 2, 1])]),
    )
    .set(
        "s2.example.com",
        WireType::A,
        Script::Records(vec![a("s2.example.com", [192, 0, 2, 2])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    let run = drive(&mut r, &mut dns);
    assert_eq!(
        run.outcome,
        Ok(vec![
            cand("[2001:db8::1]:5223", true, "s1.example.com"),
            cand("192.0.2.1:5223", true, "s1.example.com"),
            cand("[2001:db8::1]:5269", false, "s1.example.com"),
            cand("192.0.2.1:5269", false, "s1.example.com"),
            cand("192.0.2.2:5269", false, "s2.example.com"),
        ])
    );
    assert_eq!(run.elapsed, Duration::ZERO);
    // s1 was looked up once although two records name it.
    let s1_lookups = dns
        .asked
        .iter()
        .filter(|(n, _, _)| n == "s1.example.com")
        .count();
    assert_eq!(s1_lookups, 2);
    assert!(r.is_finished());
    assert_eq!(r.ttl(), Some(300));
    assert_eq!(r.poll_outcome(), None);
    assert_eq!(r.poll_query(Instant::now()), None);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn priority_beats_kind_and_preference_can_be_turned_off() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 5, 0, 5269, "plain.example.com")]),
    )
    .set(
        SRV_D,
        WireType::SRV,
        Script::Records(vec![srv(SRV_D, 10, 0, 5270, "tls.example.com")]),
    )
    .set(
        "plain.example.com",
        WireType::A,
        Script::Records(vec![a("plain.example.com", [192, 0, 2, 1])]),
    )
    .set(
        "tls.example.com",
        WireType::A,
        Script::Records(vec![a("tls.example.com", [192, 0, 2, 2])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![
            cand("192.0.2.1:5269", false, "plain.example.com"),
            cand("192.0.2.2:5270", true, "tls.example.com"),
        ])
    );

    // XEP-0368 off: only _xmpp-server is asked.
    let mut dns2 = Resolver {
        zone: dns.zone.clone(),
        ..Default::default()
    };
    let o = ResolveOptions {
        direct_tls: false,
        ..opts()
    };
    let mut r = Resolution::new("example.com", &o, 1);
    assert_eq!(
        drive(&mut r, &mut dns2).outcome,
        Ok(vec![cand("192.0.2.1:5269", false, "plain.example.com")])
    );
    assert!(!dns2
        .asked_names()
        .contains(&(SRV_D.to_owned(), WireType::SRV)));
}

#[test]
fn equal_priority_weights_mixed_when_not_preferring_direct_tls() {
    let mut direct_first = 0;
    for seed in 0..1000 {
        let mut dns = Resolver::default();
        dns.set(
            SRV_S,
            WireType::SRV,
            Script::Records(vec![srv(SRV_S, 0, 90, 5269, "h.example.com")]),
        )
        .set(
            SRV_D,
            WireType::SRV,
            Script::Records(vec![srv(SRV_D, 0, 10, 5270, "h.example.com")]),
        )
        .set(
            "h.example.com",
            WireType::A,
            Script::Records(vec![a("h.example.com", [192, 0, 2, 1])]),
        );
        let o = ResolveOptions {
            prefer_direct_tls: false,
            ..opts()
        };
        let mut r = Resolution::new("example.com", &o, seed);
        let list = drive(&mut r, &mut dns).outcome.expect("candidates");
        assert_eq!(list.len(), 2);
        if list[0].direct_tls {
            direct_first += 1;
        }
    }
    // About 10 in 101 (RFC 2782 with r in [0, 100]).
    assert!((60..150).contains(&direct_first), "{direct_first}");
}

#[test]
fn weighted_order_across_seeds() {
    // Weights 10/90 over 10,000 seeded resolutions.
    let mut light_first = 0u32;
    const RUNS: u64 = 10_000;
    for seed in 0..RUNS {
        let mut dns = Resolver::default();
        dns.set(
            SRV_S,
            WireType::SRV,
            Script::Records(vec![
                srv(SRV_S, 1, 10, 5269, "light.example.com"),
                srv(SRV_S, 1, 90, 5269, "heavy.example.com"),
            ]),
        )
        .set(SRV_D, WireType::SRV, Script::NxDomain)
        .set(
            "light.example.com",
            WireType::A,
            Script::Records(vec![a("light.example.com", [192, 0, 2, 1])]),
        )
        .set(
            "heavy.example.com",
            WireType::A,
            Script::Records(vec![a("heavy.example.com", [192, 0, 2, 2])]),
        );
        let mut r = Resolution::new("example.com", &opts(), seed);
        let list = drive(&mut r, &mut dns).outcome.expect("candidates");
        if list[0].host == "light.example.com" {
            light_first += 1;
        }
    }
    let share = f64::from(light_first) / RUNS as f64;
    // Expected 11/101 = 0.109; three standard deviations are about 0.009.
    assert!((0.099..0.120).contains(&share), "light first {share}");
}

#[test]
fn same_seed_same_queries_and_order() {
    let script = |dns: &mut Resolver| {
        dns.set(
            SRV_S,
            WireType::SRV,
            Script::Records(
                (0..6)
                    .map(|i| srv(SRV_S, 0, 10 + i, 5269, &format!("h{i}.example.com")))
                    .collect(),
            ),
        );
        for i in 0..6u8 {
            let h = format!("h{i}.example.com");
            dns.set(
                &h,
                WireType::A,
                Script::Records(vec![a(&h, [192, 0, 2, i])]),
            );
        }
    };
    let mut ids = Vec::new();
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let mut dns = Resolver::default();
        script(&mut dns);
        let mut r = Resolution::new("example.com", &opts(), 99);
        let first = r.poll_query(Instant::now()).expect("a query");
        ids.push(first.id);
        // Put it back in play: answer it and run the rest.
        let reply = dns.reply(&first);
        if let Some(b) = reply {
            r.handle_response(first.id, &b);
        }
        outcomes.push(drive(&mut r, &mut dns).outcome);
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(outcomes[0], outcomes[1]);
}

#[test]
fn single_dot_target_is_unavailable_without_fallback() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 0, 0, 0, ".")]),
    )
    .set(
        "example.com",
        WireType::A,
        Script::Records(vec![a("example.com", [192, 0, 2, 9])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Err(ResolveError::Unavailable)
    );
    assert!(
        dns.asked.iter().all(|(_, t, _)| *t == WireType::SRV),
        "{:?}",
        dns.asked
    );
}

#[test]
fn direct_tls_dot_means_starttls_only() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_D,
        WireType::SRV,
        Script::Records(vec![srv(SRV_D, 0, 0, 0, ".")]),
    )
    .set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 0, 0, 5269, "xmpp.example.com")]),
    )
    .set(
        "xmpp.example.com",
        WireType::A,
        Script::Records(vec![a("xmpp.example.com", [192, 0, 2, 1])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("192.0.2.1:5269", false, "xmpp.example.com")])
    );

    // `.` for direct TLS and nothing for STARTTLS: XEP-0368 forbids the
    // A/AAAA fallback.
    let mut dns = Resolver::default();
    dns.set(
        SRV_D,
        WireType::SRV,
        Script::Records(vec![srv(SRV_D, 0, 0, 0, ".")]),
    )
    .set(
        "example.com",
        WireType::A,
        Script::Records(vec![a("example.com", [192, 0, 2, 9])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Err(ResolveError::Unavailable)
    );
    assert!(!dns
        .asked_names()
        .contains(&("example.com".to_owned(), WireType::A)));
}

#[test]
fn starttls_dot_with_direct_tls_records_uses_direct_tls() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 0, 0, 0, ".")]),
    )
    .set(
        SRV_D,
        WireType::SRV,
        Script::Records(vec![srv(SRV_D, 0, 0, 443, "tls.example.com")]),
    )
    .set(
        "tls.example.com",
        WireType::A,
        Script::Records(vec![a("tls.example.com", [192, 0, 2, 1])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("192.0.2.1:443", true, "tls.example.com")])
    );
}

#[test]
fn dot_among_other_records_is_ignored() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![
            srv(SRV_S, 0, 0, 0, "."),
            srv(SRV_S, 1, 0, 5269, "xmpp.example.com"),
        ]),
    )
    .set(
        "xmpp.example.com",
        WireType::A,
        Script::Records(vec![a("xmpp.example.com", [192, 0, 2, 1])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("192.0.2.1:5269", false, "xmpp.example.com")])
    );
}

#[test]
fn no_srv_falls_back_to_domain_on_5269() {
    let mut dns = Resolver::default();
    // _xmpp-server NXDOMAIN (not in the zone), _xmpps-server NODATA.
    dns.set(SRV_D, WireType::SRV, Script::Records(vec![]))
        .set(
            "example.com",
            WireType::AAAA,
            Script::Records(vec![aaaa("example.com", "2001:db8::5")]),
        )
        .set(
            "example.com",
            WireType::A,
            Script::Records(vec![a("example.com", [192, 0, 2, 5])]),
        );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![
            cand("[2001:db8::5]:5269", false, "example.com"),
            cand("192.0.2.5:5269", false, "example.com"),
        ])
    );
}

#[test]
fn nothing_at_all_is_not_found() {
    let mut dns = Resolver::default();
    let mut r = Resolution::new("nowhere.example", &opts(), 1);
    assert_eq!(drive(&mut r, &mut dns).outcome, Err(ResolveError::NotFound));
    assert_eq!(
        dns.asked.len(),
        4,
        "two SRV, then AAAA and A: {:?}",
        dns.asked
    );
    // The negative TTL of the SOA (its MINIMUM, 600 s, below its TTL).
    assert_eq!(r.ttl(), Some(600));
}

#[test]
fn srv_targets_without_addresses_are_not_found_and_no_fallback() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 0, 0, 5269, "gone.example.com")]),
    )
    .set(
        "example.com",
        WireType::A,
        Script::Records(vec![a("example.com", [192, 0, 2, 9])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(drive(&mut r, &mut dns).outcome, Err(ResolveError::NotFound));
    assert!(!dns
        .asked_names()
        .contains(&("example.com".to_owned(), WireType::A)));
}

/// `/etc/hosts` answers address lookups only: SRV still goes to DNS, the
/// fallback and SRV targets and `connect` hosts take their addresses from
/// the table without a query, and names it does not list are asked as usual.
#[test]
fn hosts_table_answers_addresses_but_not_srv() {
    let hosts = std::sync::Arc::new(HostsTable::parse(
        "127.0.0.2 example.com\n::1 xmpp.example.com\n127.0.0.9 gw.example.org\n",
    ));
    let with_hosts = ResolveOptions {
        hosts: hosts.clone(),
        ..opts()
    };

    // No SRV records: the domain on 5269, from the table.
    let mut dns = Resolver::default();
    let mut r = Resolution::new("example.com", &with_hosts, 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("127.0.0.2:5269", false, "example.com")])
    );
    assert_eq!(
        dns.asked_names(),
        [
            (SRV_D.to_owned(), WireType::SRV),
            (SRV_S.to_owned(), WireType::SRV)
        ],
        "only SRV is asked"
    );

    // SRV records win over the table's entry for the domain; a target the
    // table lists needs no query, the others are asked.
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![
            srv(SRV_S, 0, 0, 5300, "xmpp.example.com"),
            srv(SRV_S, 1, 0, 5301, "backup.example.com"),
        ]),
    )
    .set(
        "backup.example.com",
        WireType::A,
        Script::Records(vec![a("backup.example.com", [192, 0, 2, 7])]),
    );
    let mut r = Resolution::new("example.com", &with_hosts, 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![
            cand("[::1]:5300", false, "xmpp.example.com"),
            cand("192.0.2.7:5301", false, "backup.example.com"),
        ])
    );
    assert!(!dns
        .asked_names()
        .iter()
        .any(|(n, _)| n == "xmpp.example.com" || n == "example.com"));

    // A partner's `connect` host from the table: no DNS at all.
    let mut dns = Resolver::default();
    let o = ResolveOptions {
        connect: Connect::parse("GW.example.org:5299"),
        ..with_hosts
    };
    let mut r = Resolution::new("example.org", &o, 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("127.0.0.9:5299", false, "gw.example.org")])
    );
    assert!(dns.asked_names().is_empty());

    // SRV lookups that fail are still a timeout, table or not: the
    // fallback never bypasses an SRV record the resolver failed to deliver.
    let mut dns = Resolver::default();
    dns.set(SRV_S, WireType::SRV, Script::ServFail)
        .set(SRV_D, WireType::SRV, Script::ServFail);
    let o = ResolveOptions { hosts, ..opts() };
    let mut r = Resolution::new("example.com", &o, 1);
    assert_eq!(drive(&mut r, &mut dns).outcome, Err(ResolveError::Timeout));
}

#[test]
fn fixed_connect_host_skips_srv() {
    let mut dns = Resolver::default();
    dns.set(
        "xmpp.jabber.org",
        WireType::A,
        Script::Records(vec![a("xmpp.jabber.org", [192, 0, 2, 3])]),
    );
    let o = ResolveOptions {
        connect: Connect::parse("xmpp.jabber.org:5299"),
        ..opts()
    };
    let mut r = Resolution::new("jabber.org", &o, 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("192.0.2.3:5299", false, "xmpp.jabber.org")])
    );
    assert_eq!(
        dns.asked_names(),
        [
            ("xmpp.jabber.org".to_owned(), WireType::AAAA),
            ("xmpp.jabber.org".to_owned(), WireType::A)
        ]
    );
}

#[test]
fn fixed_connect_ip_literal_needs_no_dns() {
    for (text, addr) in [
        ("192.0.2.4:5270", "192.0.2.4:5270"),
        ("[2001:db8::4]:5271", "[2001:db8::4]:5271"),
    ] {
        let mut connect = Connect::parse(text).expect("parses");
        connect.direct_tls = true;
        let o = ResolveOptions {
            connect: Some(connect.clone()),
            ..opts()
        };
        let mut r = Resolution::new("jabber.org", &o, 1);
        assert_eq!(r.poll_query(Instant::now()), None);
        assert_eq!(
            r.poll_outcome(),
            Some(Ok(vec![cand(addr, true, &connect.host)]))
        );
        assert_eq!(r.ttl(), None);
    }
}

#[test]
fn ip_literal_domain_and_invalid_domain() {
    let mut r = Resolution::new("[::1]", &opts(), 1);
    assert_eq!(r.poll_query(Instant::now()), None);
    assert_eq!(
        r.poll_outcome(),
        Some(Ok(vec![Candidate {
            addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5269),
            direct_tls: false,
            host: "[::1]".into()
        }]))
    );
    for bad in ["", "bad domain", "a..b", "under_score/slash"] {
        let mut r = Resolution::new(bad, &opts(), 1);
        assert_eq!(r.poll_query(Instant::now()), None, "{bad:?}");
        assert_eq!(
            r.poll_outcome(),
            Some(Err(ResolveError::NotFound)),
            "{bad:?}"
        );
    }
}

#[test]
fn idn_domain_is_queried_in_a_label_form() {
    let mut dns = Resolver::default();
    let mut r = Resolution::new("Bücher.example", &opts(), 1);
    let _ = drive(&mut r, &mut dns);
    assert!(dns.asked_names().contains(&(
        "_xmpp-server._tcp.xn--bcher-kva.example".to_owned(),
        WireType::SRV
    )));
    assert!(dns
        .asked_names()
        .contains(&("xn--bcher-kva.example".to_owned(), WireType::A)));
}

#[test]
fn cname_to_target_is_followed() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 0, 0, 5269, "alias.example.com")]),
    )
    .set(
        "alias.example.com",
        WireType::A,
        Script::Records(vec![
            Record::from_rdata(
                name("alias.example.com"),
                60,
                RData::CNAME(CNAME(name("real.example.net"))),
            ),
            a("real.example.net", [192, 0, 2, 6]),
        ]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("192.0.2.6:5269", false, "alias.example.com")])
    );
    assert_eq!(r.ttl(), Some(60));
}

#[test]
fn spoofed_replies_are_ignored() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 0, 0, 5269, "xmpp.example.com")]),
    )
    .set(
        "xmpp.example.com",
        WireType::A,
        Script::Records(vec![a("xmpp.example.com", [192, 0, 2, 1])]),
    );
    let o = ResolveOptions {
        direct_tls: false,
        ..opts()
    };
    let mut r = Resolution::new("example.com", &o, 1);
    let now = Instant::now();
    let q = r.poll_query(now).expect("SRV query");
    assert_eq!(r.poll_query(now), None);

    // A forged "." answer with the wrong id, even handed in under the right
    // one; then one with the right id but another question.
    let mut forged = Message::from_vec(&dns.reply(&q).expect("reply")).expect("decode");
    forged.answers = vec![srv(SRV_S, 0, 0, 0, ".")];
    forged.metadata.id = q.id.wrapping_add(1);
    r.handle_response(q.id, &forged.to_vec().expect("encode"));
    r.handle_response(q.id.wrapping_add(1), &forged.to_vec().expect("encode"));
    let other = query(q.id, "_xmpp-server._tcp.evil.example", RecordType::Srv).expect("query");
    let mut other = Message::from_vec(&other).expect("decode");
    other.metadata.message_type = hickory_proto::op::MessageType::Response;
    other.answers = vec![srv("_xmpp-server._tcp.evil.example", 0, 0, 0, ".")];
    r.handle_response(q.id, &other.to_vec().expect("encode"));
    // Garbage and our own query echoed.
    r.handle_response(q.id, b"\x00\x01garbage");
    r.handle_response(q.id, &q.message);
    assert!(!r.is_finished());
    assert_eq!(r.poll_outcome(), None);
    assert_eq!(r.poll_query(now), None, "no retry for ignored replies");

    // The genuine answer still works.
    r.handle_response(q.id, &dns.reply(&q).expect("reply"));
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("192.0.2.1:5269", false, "xmpp.example.com")])
    );
}

#[test]
fn truncated_answer_is_asked_again_over_tcp() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Truncate(vec![srv(SRV_S, 0, 0, 5269, "xmpp.example.com")]),
    )
    .set(
        "xmpp.example.com",
        WireType::A,
        Script::Records(vec![a("xmpp.example.com", [192, 0, 2, 1])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("192.0.2.1:5269", false, "xmpp.example.com")])
    );
    let srv_asks: Vec<_> = dns
        .asked
        .iter()
        .filter(|(n, _, _)| n == SRV_S)
        .map(|(_, _, t)| *t)
        .collect();
    assert_eq!(srv_asks, [Transport::Udp, Transport::Tcp]);
}

#[test]
fn silent_resolver_times_out_after_retries() {
    let mut dns = Resolver::default();
    dns.set(SRV_S, WireType::SRV, Script::Silent)
        .set(SRV_D, WireType::SRV, Script::Silent);
    let o = ResolveOptions {
        query_timeout: Duration::from_secs(3),
        retries: 2,
        ..opts()
    };
    let mut r = Resolution::new("example.com", &o, 1);
    let run = drive(&mut r, &mut dns);
    assert_eq!(run.outcome, Err(ResolveError::Timeout));
    assert_eq!(run.elapsed, Duration::from_secs(9));
    assert_eq!(dns.asked.len(), 6, "two queries, three sends each");
}

#[test]
fn retries_use_fresh_ids_and_accept_late_replies() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 0, 0, 5269, "xmpp.example.com")]),
    )
    .set(
        "xmpp.example.com",
        WireType::A,
        Script::Records(vec![a("xmpp.example.com", [192, 0, 2, 1])]),
    );
    let o = ResolveOptions {
        direct_tls: false,
        query_timeout: Duration::from_secs(2),
        retries: 1,
        ..opts()
    };
    let mut r = Resolution::new("example.com", &o, 7);
    let t0 = Instant::now();
    let first = r.poll_query(t0).expect("first send");
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    // Nothing before the deadline.
    r.handle_timeout(t0 + Duration::from_millis(1999));
    assert_eq!(r.poll_query(t0 + Duration::from_millis(1999)), None);
    let t1 = t0 + Duration::from_secs(2);
    r.handle_timeout(t1);
    let second = r.poll_query(t1).expect("retry");
    assert_ne!(first.id, second.id);
    assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_secs(2)));
    // The reply to the first send arrives late: still good.
    let late = dns.reply(&first).expect("reply");
    r.handle_response(first.id, &late);
    let run = drive(&mut r, &mut dns);
    assert_eq!(
        run.outcome,
        Ok(vec![cand("192.0.2.1:5269", false, "xmpp.example.com")])
    );
}

#[test]
fn servfail_is_retried_then_times_out() {
    let mut dns = Resolver::default();
    dns.set(SRV_S, WireType::SRV, Script::ServFail)
        .set(SRV_D, WireType::SRV, Script::ServFail);
    let o = ResolveOptions {
        retries: 1,
        ..opts()
    };
    let mut r = Resolution::new("example.com", &o, 1);
    let run = drive(&mut r, &mut dns);
    assert_eq!(run.outcome, Err(ResolveError::Timeout));
    assert_eq!(
        run.elapsed,
        Duration::ZERO,
        "an error reply is retried at once"
    );
    assert_eq!(dns.asked.len(), 4);
}

#[test]
fn partial_failure_keeps_what_answered() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![srv(SRV_S, 0, 0, 5269, "xmpp.example.com")]),
    )
    .set(SRV_D, WireType::SRV, Script::Silent)
    .set("xmpp.example.com", WireType::AAAA, Script::Silent)
    .set(
        "xmpp.example.com",
        WireType::A,
        Script::Records(vec![a("xmpp.example.com", [192, 0, 2, 1])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    let run = drive(&mut r, &mut dns);
    assert_eq!(
        run.outcome,
        Ok(vec![cand("192.0.2.1:5269", false, "xmpp.example.com")])
    );
    // Waited for the silent SRV query (5 s x 2), then the silent AAAA one.
    assert_eq!(run.elapsed, Duration::from_secs(20));
}

#[test]
fn srv_failure_without_records_is_timeout_not_fallback() {
    let mut dns = Resolver::default();
    dns.set(SRV_D, WireType::SRV, Script::ServFail).set(
        "example.com",
        WireType::A,
        Script::Records(vec![a("example.com", [192, 0, 2, 9])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(drive(&mut r, &mut dns).outcome, Err(ResolveError::Timeout));
    assert!(!dns
        .asked_names()
        .contains(&("example.com".to_owned(), WireType::A)));
}

#[test]
fn bounds_on_records_candidates_and_parallel_queries() {
    let mut dns = Resolver::default();
    let records: Vec<_> = (0..40u16)
        .map(|i| srv(SRV_S, i, 0, 5269, &format!("h{i}.example.com")))
        .collect();
    dns.set(SRV_S, WireType::SRV, Script::Records(records));
    for i in 0..40u8 {
        let h = format!("h{i}.example.com");
        dns.set(
            &h,
            WireType::A,
            Script::Records(vec![
                a(&h, [192, 0, 2, i]),
                a(&h, [198, 51, 100, i]),
                a(&h, [203, 0, 113, i]),
            ]),
        );
    }
    let mut r = Resolution::new("example.com", &opts(), 1);
    // Answer the SRV stage, then count datagrams out at once.
    let now = Instant::now();
    let mut first = Vec::new();
    while let Some(q) = r.poll_query(now) {
        first.push(q);
    }
    for q in &first {
        let reply = dns.reply(q).expect("reply");
        r.handle_response(q.id, &reply);
    }
    let mut out = 0;
    while r.poll_query(now).is_some() {
        out += 1;
    }
    assert_eq!(out, MAX_IN_FLIGHT);
    let mut dns2 = Resolver {
        zone: dns.zone.clone(),
        ..Default::default()
    };
    let mut r = Resolution::new("example.com", &opts(), 1);
    let list = drive(&mut r, &mut dns2).outcome.expect("candidates");
    assert_eq!(list.len(), MAX_CANDIDATES);
    let targets = dns2
        .asked
        .iter()
        .filter(|(_, t, _)| *t == WireType::A)
        .count();
    assert_eq!(targets, MAX_SRV_RECORDS);
    // Best priorities first.
    assert_eq!(list[0].host, "h0.example.com");
    assert_eq!(list[3].host, "h1.example.com");
}

#[test]
fn duplicate_addresses_are_dropped() {
    let mut dns = Resolver::default();
    dns.set(
        SRV_S,
        WireType::SRV,
        Script::Records(vec![
            srv(SRV_S, 0, 0, 5269, "a.example.com"),
            srv(SRV_S, 1, 0, 5269, "b.example.com"),
        ]),
    )
    .set(
        "a.example.com",
        WireType::A,
        Script::Records(vec![a("a.example.com", [192, 0, 2, 1])]),
    )
    .set(
        "b.example.com",
        WireType::A,
        Script::Records(vec![a("b.example.com", [192, 0, 2, 1])]),
    );
    let mut r = Resolution::new("example.com", &opts(), 1);
    assert_eq!(
        drive(&mut r, &mut dns).outcome,
        Ok(vec![cand("192.0.2.1:5269", false, "a.example.com")])
    );
}

/// A valid reply to mutate.
fn sample_reply() -> Vec<u8> {
    let mut m = Message::response(0x4242, OpCode::Query);
    m.add_query(hickory_proto::op::Query::query(name(SRV_S), WireType::SRV));
    m.add_answers(vec![
        Record::from_rdata(
            name(SRV_S),
            60,
            RData::CNAME(CNAME(name("_x._tcp.example.net"))),
        ),
        srv("_x._tcp.example.net", 0, 5, 5269, "xmpp.example.net"),
        srv("_x._tcp.example.net", 1, 5, 5270, "."),
    ]);
    m.to_vec().expect("encode")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_answer_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for rtype in [RecordType::A, RecordType::Aaaa, RecordType::Srv] {
            let _ = parse_answer(&bytes, 0x4242, SRV_S, rtype);
        }
    }

    #[test]
    fn parse_answer_never_panics_on_mutated_replies(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = sample_reply();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let len = bytes.len();
        bytes.truncate(len - cut.index(len / 4));
        let _ = parse_answer(&bytes, 0x4242, SRV_S, RecordType::Srv);
    }

    #[test]
    fn resolution_never_panics_on_random_replies(
        seed in any::<u64>(),
        replies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
    ) {
        let mut r = Resolution::new("example.com", &ResolveOptions::default(), seed);
        let now = Instant::now();
        let mut ids = Vec::new();
        while let Some(q) = r.poll_query(now) {
            ids.push(q.id);
        }
        for (i, mut bytes) in replies.into_iter().enumerate() {
            let id = ids[i % ids.len()];
            // Give half of them our id so they reach the question check.
            if i % 2 == 0 && bytes.len() >= 2 {
                bytes[..2].copy_from_slice(&id.to_be_bytes());
            }
            r.handle_response(id, &bytes);
            while r.poll_query(now).is_some() {}
        }
        prop_assert!(!r.is_finished());
    }
}

#[test]
fn mutated_reply_sample_parses_when_intact() {
    let bytes = sample_reply();
    let ans = parse_answer(&bytes, 0x4242, SRV_S, RecordType::Srv).expect("valid");
    let xfed_core::dns::Answer::Srv { ttl, records } = ans else {
        panic!("{ans:?}")
    };
    assert_eq!(ttl, 60);
    assert_eq!(records.len(), 2);
    assert!(records[1].is_unavailable());
}

#[test]
fn wants_query_says_when_poll_query_has_one() {
    // A caller bounding queries across resolutions polls only with room:
    // `wants_query` tells it which resolution is waiting, and nothing is
    // lost by polling late.
    let o = ResolveOptions {
        query_timeout: Duration::from_secs(2),
        retries: 1,
        ..opts()
    };
    let mut r = Resolution::new("example.com", &o, 7);
    let t0 = Instant::now();
    assert!(r.wants_query());
    // Polled late: its timeout counts from the poll.
    let t1 = t0 + Duration::from_secs(30);
    assert!(r.poll_query(t1).is_some());
    assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_secs(2)));
    assert!(r.wants_query(), "the second SRV lookup waits");
    assert!(r.poll_query(t1).is_some());
    assert!(!r.wants_query());
    assert_eq!(r.poll_query(t1), None);
    // A timeout queues both again for their retry.
    r.handle_timeout(t1 + Duration::from_secs(2));
    assert!(r.wants_query());
    // A domain that is an IP literal or no name has nothing to ask.
    assert!(!Resolution::new("192.0.2.1", &o, 7).wants_query());
    assert!(!Resolution::new("bad domain!", &o, 7).wants_query());
}
