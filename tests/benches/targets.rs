//! Issue 11's table in one run: runs the benches that measure each of its
//! targets (and the burst test), gathers the `figure KEY VALUE` lines they
//! print, and prints every target beside its figure, met or by how much
//! not, with what bounds it. The benches' own output goes through as it
//! comes, so the run reads like running each of them.
//!
//! - core translation per message, both ways: `xfed-core --bench translate`;
//! - XML reading of relayed stanzas: `xfed-core --bench xml_reader`;
//! - CPU per message over TLS, both ways, xfed on each runtime and
//!   Prosody's own relay in the same run: `--bench compare`, once per
//!   runtime (so Prosody is measured twice);
//! - memory per idle TLS link, xfed and Prosody: `--bench idle_memory`;
//! - no loss under overload: the `sip_burst` test, 2,000 messages at once
//!   from a Prosody user to one SIP user, on each runtime.
//!
//! Run: `cargo bench -p xfed-tests --bench targets` (about ten minutes);
//! the other benches' environment (XFED_COMPARE_N, XFED_COMPARE_RATE,
//! XFED_IDLE_CONNECTIONS) passes through. A part that fails or skips is
//! reported and its rows say "not measured".

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Figures by key, from every part that ran.
type Figures = BTreeMap<String, f64>;

/// A part: cargo's arguments and the environment it adds.
type Part<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

/// Runs `cargo ARGS` with `env`, echoing its output and keeping its
/// figures; false when it failed.
fn part(figures: &mut Figures, args: &[&str], env: &[(&str, &str)]) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("\n=== cargo {}", args.join(" "));
    let child = Command::new(cargo)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("cannot start cargo");
        return false;
    };
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            let mut words = line.split_whitespace();
            if let (Some("figure"), Some(key), Some(value)) =
                (words.next(), words.next(), words.next())
            {
                if let Ok(v) = value.parse() {
                    figures.insert(key.to_owned(), v);
                }
            }
        }
    }
    child.wait().is_ok_and(|s| s.success())
}

/// Which way a target points.
#[derive(Clone, Copy)]
enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    fn text(self, unit: &str) -> String {
        match self {
            Goal::AtMost(t) => format!("<= {t} {unit}"),
            Goal::AtLeast(t) => format!(">= {t} {unit}"),
        }
    }

    fn verdict(self, figure: f64) -> String {
        match self {
            Goal::AtMost(t) if figure <= t => "met".into(),
            Goal::AtLeast(t) if figure >= t => "met".into(),
            Goal::AtMost(t) => format!("not met, {:.1}x over", figure / t),
            Goal::AtLeast(t) => format!("not met, {:.1}x under", t / figure.max(1e-9)),
        }
    }
}

/// One row of the table.
struct Row<'a> {
    measure: &'a str,
    unit: &'a str,
    /// Keys of xfed's figure (tokio), xfed on async-std, and Prosody's.
    keys: [Option<&'a str>; 3],
    goal: Goal,
    /// What bounds the figure when the target is not met.
    bound: &'a str,
}

/// A figure as the table shows it: ratios to two decimals, the rest to one.
fn cell(figures: &Figures, key: Option<&str>, unit: &str) -> String {
    let decimals = if unit == "x" { 2 } else { 1 };
    match key {
        None => "-".into(),
        Some(k) => figures
            .get(k)
            .map_or("not measured".into(), |v| format!("{v:.decimals$}")),
    }
}

fn main() {
    let mut figures = Figures::new();
    let mut failed = Vec::new();
    let parts: [Part; 6] = [
        (
            &["bench", "-q", "-p", "xfed-core", "--bench", "translate"],
            &[],
        ),
        (
            &["bench", "-q", "-p", "xfed-core", "--bench", "xml_reader"],
            &[],
        ),
        (
            &["bench", "-q", "-p", "xfed-tests", "--bench", "compare"],
            &[("XFED_COMPARE_RUNTIME", "tokio")],
        ),
        (
            &["bench", "-q", "-p", "xfed-tests", "--bench", "compare"],
            &[("XFED_COMPARE_RUNTIME", "async-std")],
        ),
        (
            &["bench", "-q", "-p", "xfed-tests", "--bench", "idle_memory"],
            &[],
        ),
        (&["build", "-q", "--bins"], &[]),
    ];
    for (args, env) in parts {
        if !part(&mut figures, args, env) {
            failed.push(args.join(" "));
        }
    }
    let burst = [
        "test",
        "-q",
        "-p",
        "xfed-tests",
        "--test",
        "sip_burst",
        "--",
        "--nocapture",
    ];
    if !part(&mut figures, &burst, &[]) {
        failed.push(burst.join(" "));
    }
    // Ratios of the runtimes' figures, as rows of their own.
    for way in ["into", "out"] {
        let tokio = figures.get(&format!("compare.tokio.{way}_us")).copied();
        let other = figures.get(&format!("compare.async-std.{way}_us")).copied();
        if let (Some(t), Some(a)) = (tokio, other) {
            figures.insert(format!("ratio.{way}"), a / t.max(1e-9));
        }
    }

    let profile = "profile (README, Benchmarks): the kernel 17 % (system calls, wake-ups), \
                   malloc and free 16 %, memmove and memcmp 8 %, xfed's own code flat: \
                   the SIP side a third (framing, parsing each header, URI and name-addr \
                   again in each layer, transactions), the XML side under a tenth, no \
                   function above 1.5 %";
    let rows = [
        Row {
            measure: "core: XMPP -> SIP per message",
            unit: "us",
            keys: [Some("translate.xmpp_to_sip_us"), None, None],
            goal: Goal::AtMost(1.0),
            bound: "the message is read from its text (no tree), then the mapping's strings \
                    and the SIP request are built and written: no hot spot, see the \
                    allocations a message above",
        },
        Row {
            measure: "core: SIP -> XMPP per message",
            unit: "us",
            keys: [Some("translate.sip_to_xmpp_us"), None, None],
            goal: Goal::AtMost(1.0),
            bound: "SIP parsing (header values are slices, URIs and name-addrs are not), \
                    RFC 7247 address mapping with PRECIS, the stanza's tree and \
                    serialization: see the allocations a message above",
        },
        Row {
            measure: "XML reading, relayed stanzas",
            unit: "MB/s",
            keys: [Some("xml_reader.raw_mbs"), None, None],
            goal: Goal::AtLeast(1000.0),
            bound: "two passes over the bytes: the framer finds each stanza's end and copies \
                    it, then the single pass checks it; flat profile (the pass 12 %, memchr \
                    12 %, copies 7 %, character checks 6 %)",
        },
        Row {
            measure: "process CPU per message over TLS, into s2s",
            unit: "us",
            keys: [
                Some("compare.tokio.into_us"),
                Some("compare.async-std.into_us"),
                Some("compare.tokio.prosody_into_us"),
            ],
            goal: Goal::AtMost(3.0),
            bound: profile,
        },
        Row {
            measure: "process CPU per message over TLS, out of s2s",
            unit: "us",
            keys: [
                Some("compare.tokio.out_us"),
                Some("compare.async-std.out_us"),
                Some("compare.tokio.prosody_out_us"),
            ],
            goal: Goal::AtMost(3.0),
            bound: profile,
        },
        Row {
            measure: "async-std / tokio, into s2s",
            unit: "x",
            keys: [None, Some("ratio.into"), None],
            goal: Goal::AtMost(1.25),
            bound: "async-std's reactor and executor",
        },
        Row {
            measure: "async-std / tokio, out of s2s",
            unit: "x",
            keys: [None, Some("ratio.out"), None],
            goal: Goal::AtMost(1.25),
            bound: "async-std's reactor and executor",
        },
        Row {
            measure: "memory per idle TLS s2s link",
            unit: "KiB",
            keys: [Some("idle.xfed_kib"), None, Some("idle.prosody_kib")],
            goal: Goal::AtMost(12.0),
            bound: "rustls's connection state and the session's tables",
        },
        Row {
            measure: "burst of 2,000 to one SIP user: bounced",
            unit: "lost",
            keys: [
                Some("burst.xfed.bounced"),
                Some("burst.xfed-async-std.bounced"),
                None,
            ],
            goal: Goal::AtMost(0.0),
            bound: "the queue bounds of [sip]",
        },
    ];

    println!("\nissue 11's targets, figures of this run:");
    println!(
        "{:<46} | {:>12} | {:>14} | {:>12} | {:<13} | verdict (xfed; async-std)",
        "measure", "xfed tokio", "xfed async-std", "Prosody", "target"
    );
    let mut bounds = Vec::new();
    for row in &rows {
        let [x, a, p] = row.keys.map(|k| cell(&figures, k, row.unit));
        let verdicts: Vec<String> = row.keys[..2]
            .iter()
            .flatten()
            .filter_map(|k| figures.get(*k))
            .map(|v| row.goal.verdict(*v))
            .collect();
        let verdict = if verdicts.is_empty() {
            "not measured".to_owned()
        } else {
            verdicts.join("; ")
        };
        if verdict.contains("not met") {
            bounds.push(format!("- {}: {}", row.measure, row.bound));
        }
        println!(
            "{:<46} | {x:>12} | {a:>14} | {p:>12} | {:<13} | {verdict}",
            row.measure,
            row.goal.text(row.unit)
        );
    }
    if let (Some(x), Some(s)) = (
        figures.get("translate.xmpp_to_sip_allocations"),
        figures.get("translate.sip_to_xmpp_allocations"),
    ) {
        println!("allocations per message in the core: XMPP -> SIP {x:.0}, SIP -> XMPP {s:.0}");
    }
    if !bounds.is_empty() {
        println!("\nwhat bounds each target not met:");
        bounds.iter().for_each(|b| println!("{b}"));
    }
    if !failed.is_empty() {
        println!("\nparts that failed or skipped (their rows say not measured):");
        failed.iter().for_each(|f| println!("- cargo {f}"));
    }
}
