//! The status page of `[listen] metrics` at `/` (issue 12), like the XMPP
//! view of Lync's Control Panel: partners with their policy and live
//! state, streams, rates, recent failures and our certificate's expiry,
//! rendered from a [`Report`] and the [`Rate`]s. One self-contained
//! document: inline CSS, no script, no external asset, and a refresh
//! every [`REFRESH_SECS`]. Every string that is not a literal of this
//! file goes through [`escape`]. Rows carry stable classes and `data-`
//! attributes (`partner`/`data-domain`/`data-state`, `stream`/
//! `data-direction`/`data-method`/`data-established`) for tests and
//! scrapers.

use std::fmt::Write;

use super::rates::Rate;
use crate::gateway::report::{method_name, LinkState, Report, RouteLink};
use crate::plan::certificate::utc;

/// Seconds between the page's own reloads.
pub const REFRESH_SECS: u32 = 5;

/// How long before a certificate's expiry the page warns.
const EXPIRY_WARNING_SECS: u64 = 30 * 86_400;

/// The content type of the page.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// `s` with HTML's special characters as entities, for text and quoted
/// attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn render(report: &Report, rates: &[Rate]) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let domains = escape(&report.domains.join(", "));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>xfed status: {domains}</title><style>{STYLE}</style></head><body>\n\
         <header><h1>xfed <span>XMPP federation</span></h1>\
         <p id=\"domains\">{domains}</p><p class=\"taken\">as of {}</p></header>\n<main>\n",
        utc(report.unix)
    );
    summary(&mut out, report);
    partners(&mut out, report);
    streams(&mut out, report);
    routes(&mut out, report);
    rates_section(&mut out, rates, report);
    failures(&mut out, report);
    out.push_str("</main></body></html>\n");
    out
}

fn summary(out: &mut String, r: &Report) {
    let up = r
        .partners
        .iter()
        .filter(|p| p.state == LinkState::Up)
        .count();
    let authenticated = r.streams.iter().filter(|s| s.established).count();
    let (cert_class, cert) = match r.certificate_expiry {
        Some(t) if t <= r.unix => ("bad", format!("expired {}", utc(t))),
        Some(t) if t - r.unix < EXPIRY_WARNING_SECS => (
            "warn",
            format!("expires {} ({})", utc(t), relative(t, r.unix)),
        ),
        Some(t) => (
            "ok",
            format!("valid until {} ({})", utc(t), relative(t, r.unix)),
        ),
        None => ("warn", "none: TLS is off".to_owned()),
    };
    let _ = writeln!(
        out,
        "<section id=\"summary\" class=\"cards\">\
         <div class=\"card\"><b>{up} / {}</b>partners up</div>\
         <div class=\"card\"><b>{authenticated} / {}</b>streams authenticated</div>\
         <div class=\"card\"><b>{}</b>routes</div>\
         <div class=\"card\"><b>{}</b>recent failures</div>\
         <div class=\"card {cert_class}\" id=\"certificate\" data-expiry=\"{}\">\
         <b>certificate</b>{}</div></section>",
        r.partners.len(),
        r.streams.len(),
        r.routes.len(),
        r.failures.len(),
        r.certificate_expiry
            .map_or_else(String::new, |t| t.to_string()),
        escape(&cert),
    );
}

fn partners(out: &mut String, r: &Report) {
    out.push_str(
        "<section><h2>Partners</h2><table id=\"partners\"><thead><tr><th>Partner</th>\
         <th>Type</th><th>TLS</th><th>SASL</th><th>Dialback</th><th>State</th>\
         <th class=\"num\">Streams in / out</th><th>Last failure</th></tr></thead><tbody>\n",
    );
    if r.partners.is_empty() {
        empty(out, 8, "no [[partner]] configured");
    }
    for p in &r.partners {
        let domain = escape(&p.domain);
        let others = if p.additional_domains.is_empty() {
            String::new()
        } else {
            format!(
                "<div class=\"also\">also {}</div>",
                escape(&p.additional_domains.join(", "))
            )
        };
        let failure = p.last_failure.as_ref().map_or_else(
            || "<span class=\"quiet\">none</span>".to_owned(),
            |f| {
                format!(
                    "<span class=\"when\">{}</span> {}",
                    relative(f.unix, r.unix),
                    escape(&f.text)
                )
            },
        );
        let state = p.state.as_str();
        let _ = writeln!(
            out,
            "<tr class=\"partner\" data-domain=\"{domain}\" data-state=\"{state}\">\
             <td class=\"domain\">{domain}{others}</td><td class=\"kw\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td><span class=\"badge {state}\">{state}</span></td>\
             <td class=\"num\">{} / {}</td><td class=\"failure\">{failure}</td></tr>",
            p.partner_type,
            p.tls,
            p.sasl,
            if p.dialback { "yes" } else { "no" },
            p.inbound,
            p.outbound,
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn streams(out: &mut String, r: &Report) {
    out.push_str(
        "<section><h2>Streams</h2><table id=\"streams\"><thead><tr><th class=\"num\">#</th>\
         <th>Direction</th><th>Domains</th><th>Authentication</th><th>TLS</th>\
         <th>Peer certificate</th><th>State</th></tr></thead><tbody>\n",
    );
    if r.streams.is_empty() {
        empty(out, 7, "no stream");
    }
    for s in &r.streams {
        let method = method_name(s.method);
        let (state, class) = if s.established {
            ("authenticated", "up")
        } else {
            ("negotiating", "connecting")
        };
        let cert = s.certificate_expiry.map_or_else(
            || "none".to_owned(),
            |t| format!("until {} ({})", utc(t), relative(t, r.unix)),
        );
        let pairs: Vec<String> = s
            .pairs
            .iter()
            .map(|(a, b)| format!("<span class=\"pair\">{} → {}</span>", escape(a), escape(b)))
            .collect();
        let pairs = if pairs.is_empty() {
            "<span class=\"quiet\">no domain yet</span>".to_owned()
        } else {
            pairs.join(" ")
        };
        let tls = s.tls.unwrap_or("none");
        let _ =
            writeln!(
            out,
            "<tr class=\"stream\" data-conn=\"{}\" data-direction=\"{}\" data-method=\"{method}\" \
             data-tls=\"{tls}\" data-established=\"{}\"><td class=\"num\">{}</td><td>{}</td>\
             <td class=\"domains\">{pairs}</td><td>{method}</td><td>{}</td><td>{}</td>\
             <td><span class=\"badge {class}\">{state}</span>{}</td></tr>",
            s.conn,
            s.direction(),
            s.established,
            s.conn,
            s.direction(),
            escape(&tls.replace('_', ".")),
            escape(&cert),
            if s.bidi { " <span class=\"quiet\">bidi</span>" } else { "" },
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn routes(out: &mut String, r: &Report) {
    out.push_str(
        "<section><h2>Routes</h2><table id=\"routes\"><thead><tr><th>From</th><th>To</th>\
         <th>State</th><th class=\"num\">Queued</th></tr></thead><tbody>\n",
    );
    if r.routes.is_empty() {
        empty(out, 4, "no route");
    }
    for route in &r.routes {
        let (state, class) = match route.link {
            RouteLink::Resolving => ("resolving".to_owned(), "connecting"),
            RouteLink::Connecting(c) => (format!("connecting on stream {c}"), "connecting"),
            RouteLink::Up(c) => (format!("up on stream {c}"), "up"),
        };
        let _ = writeln!(
            out,
            "<tr class=\"route\" data-remote=\"{remote}\"><td>{}</td><td>{remote}</td>\
             <td><span class=\"badge {class}\">{state}</span></td><td class=\"num\">{}</td></tr>",
            escape(&route.local),
            route.queued,
            remote = escape(&route.remote),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn rates_section(out: &mut String, rates: &[Rate], r: &Report) {
    out.push_str(
        "<section><h2>Rates</h2><table id=\"rates\"><thead><tr><th>What</th>\
         <th class=\"num\">Per second</th><th class=\"num\">Since start</th></tr></thead><tbody>\n",
    );
    for rate in rates {
        let per_second = rate
            .per_second
            .map_or_else(|| "…".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "<tr class=\"rate\"><td>{}</td><td class=\"num\">{per_second}</td>\
             <td class=\"num\">{}</td></tr>",
            escape(rate.name),
            rate.total
        );
    }
    out.push_str("</tbody></table>");
    if let Some(t) = &r.sip {
        let _ = write!(
            out,
            "<p id=\"sip\" class=\"quiet\">SIP: {} transactions, {} queued messages, \
             {} subscriptions, {} watchers, {} publications</p>",
            t.transactions, t.queued_messages, t.subscriptions, t.watchers, t.publications
        );
    }
    out.push_str("</section>\n");
}

fn failures(out: &mut String, r: &Report) {
    out.push_str(
        "<section><h2>Recent failures</h2><table id=\"failures\"><thead><tr><th>When</th>\
         <th>What</th></tr></thead><tbody>\n",
    );
    if r.failures.is_empty() {
        empty(out, 2, "none");
    }
    for f in r.failures.iter().rev() {
        let _ = writeln!(
            out,
            "<tr class=\"failure\"><td class=\"when\" title=\"{}\">{}</td><td>{}</td></tr>",
            utc(f.unix),
            relative(f.unix, r.unix),
            escape(&f.text)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn empty(out: &mut String, columns: usize, text: &str) {
    let _ = writeln!(
        out,
        "<tr class=\"empty\"><td colspan=\"{columns}\">{}</td></tr>",
        escape(text)
    );
}

/// How far `t` is from `now`, in the largest whole unit.
fn relative(t: u64, now: u64) -> String {
    let (d, future) = if t >= now {
        (t - now, true)
    } else {
        (now - t, false)
    };
    let amount = match d {
        0..120 => format!("{d} s"),
        120..7200 => format!("{} min", d / 60),
        7200..172_800 => format!("{} h", d / 3600),
        _ => format!("{} days", d / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// The page's look: Lync Control Panel's plain tables, readable at a
/// glance (state badges in colour, with their word for those without).
const STYLE: &str = "\
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;background:#f3f4f6}\
header{background:#0f3d63;color:#fff;padding:14px 28px;display:flex;align-items:baseline;gap:24px;flex-wrap:wrap}\
header h1{margin:0;font-size:22px;font-weight:600}header h1 span{font-weight:400;opacity:.8;font-size:16px}\
header p{margin:0}#domains{font-weight:600}.taken{opacity:.75;margin-left:auto!important}\
main{padding:16px 28px 32px;max-width:1400px}\
section{background:#fff;border:1px solid #d8dde3;border-radius:6px;margin:0 0 16px;padding:10px 16px 14px}\
h2{font-size:15px;margin:4px 0 8px;color:#0f3d63}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #eceff2;vertical-align:top}\
th{font-weight:600;color:#57606a;font-size:12px;text-transform:uppercase;letter-spacing:.03em;white-space:nowrap}.kw{white-space:nowrap}\
tbody tr:last-child td{border-bottom:0}.num{text-align:right;font-variant-numeric:tabular-nums}\
.domain,.domains{font-weight:600}.also,.quiet{color:#6e7781;font-weight:400}.pair{white-space:nowrap;margin-right:10px}\
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}\
.badge.up{background:#1a7f37}.badge.connecting{background:#bf8700}.badge.down{background:#cf222e}\
.failure{color:#57606a;max-width:420px}.when{white-space:nowrap;color:#6e7781}\
.cards{display:flex;gap:12px;flex-wrap:wrap;background:none;border:0;padding:0}\
.card{background:#fff;border:1px solid #d8dde3;border-left:4px solid #0f3d63;border-radius:6px;padding:8px 16px;min-width:150px;color:#57606a}\
.card b{display:block;font-size:20px;color:#1f2328}.card.ok{border-left-color:#1a7f37}.card.warn{border-left-color:#bf8700}.card.bad{border-left-color:#cf222e}\
.card#certificate b{font-size:14px}.empty td{color:#6e7781;font-style:italic}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Negotiation, PartnerType};
    use crate::gateway::report::{Failure, PartnerStatus, StreamStatus};
    use crate::xmpp::session::AuthMethod;

    fn report() -> Report {
        Report {
            unix: 1_700_000_000,
            domains: vec!["a.test".into()],
            certificate_expiry: Some(2_524_608_000),
            partners: vec![PartnerStatus {
                domain: "b.test".into(),
                additional_domains: vec!["<b>".into()],
                partner_type: PartnerType::Federated,
                tls: Negotiation::Required,
                sasl: Negotiation::Optional,
                dialback: true,
                state: LinkState::Up,
                inbound: 1,
                outbound: 0,
                last_failure: Some(Failure {
                    unix: 1_699_999_990,
                    text: "<script>alert('x')</script> & \"more\"".into(),
                }),
            }],
            streams: vec![StreamStatus {
                conn: 7,
                inbound: true,
                pairs: vec![("b.test".into(), "a.test".into())],
                method: Some(AuthMethod::Sasl),
                tls: Some("TLSv1_3"),
                certificate_expiry: None,
                established: true,
                bidi: false,
            }],
            ..Report::default()
        }
    }

    #[test]
    fn a_self_contained_page_that_refreshes_itself() {
        let page = render(&report(), &[]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(!page.contains("<script"), "no script, escaped or not");
        assert!(!page.contains("src="));
        assert!(!page.contains("href="));
        assert!(!page.contains("url("));
        assert!(page.contains("<tr class=\"partner\" data-domain=\"b.test\" data-state=\"up\">"));
        assert!(page.contains("data-direction=\"inbound\" data-method=\"sasl-external\""));
        assert!(page.contains("data-established=\"true\""));
        assert!(page.contains("valid until 2050-01-01 00:00:00 UTC"));
    }

    #[test]
    fn dynamic_text_is_escaped() {
        let page = render(&report(), &[]);
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;")
        );
        assert!(page.contains("also &lt;b&gt;"));
        assert!(!page.contains("<b></div>"));
    }

    #[test]
    fn times_are_relative_to_the_report() {
        assert_eq!(relative(100, 40), "in 60 s");
        assert_eq!(relative(0, 3 * 86_400), "3 days ago");
    }
}
