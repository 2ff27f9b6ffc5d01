//! The samples, keyed by family and label set, and their OpenMetrics
//! text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::families::{Family, Kind, BUCKETS, FAMILIES};

/// One label-less histogram: a count per bucket of [`BUCKETS`] (not
/// cumulative; `+Inf` last), the sum and the count.
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// Counters, gauges and histograms. Its size is bounded by its label
/// values: enum names, configuration keys and the partner domains it was
/// made with; a histogram is a fixed array.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Configured partner domains: the values of the `partner` label
    /// besides `other`.
    partners: BTreeSet<String>,
    /// Family name -> rendered labels -> value.
    samples: BTreeMap<&'static str, BTreeMap<String, u64>>,
    /// Family name -> its histogram.
    histograms: BTreeMap<&'static str, Histogram>,
    /// Where a sample's labels are rendered for a lookup: counting an
    /// event (several per message) allocates only for a new sample.
    scratch: String,
}

impl Registry {
    /// An empty registry whose `partner` label may take `partners`'
    /// values (any other domain is `other`). Label-less counters start at
    /// zero so that a scraper sees them from the start.
    pub fn new<'a>(partners: impl IntoIterator<Item = &'a str>) -> Registry {
        let mut r = Registry {
            partners: partners.into_iter().map(str::to_owned).collect(),
            ..Registry::default()
        };
        for f in FAMILIES {
            if f.kind == Kind::Counter && f.labels.is_empty() {
                r.add(f, &[], 0);
            }
        }
        r
    }

    /// The partners of a reloaded configuration: their domains label
    /// samples from now on (samples already labelled stay).
    pub fn set_partners<'a>(&mut self, partners: impl IntoIterator<Item = &'a str>) {
        self.partners = partners.into_iter().map(str::to_owned).collect();
    }

    /// The `partner` label's value for `domain`.
    pub(super) fn partner<'a>(&self, domain: &'a str) -> &'a str {
        if self.partners.contains(domain) {
            domain
        } else {
            "other"
        }
    }

    /// Adds `n` to a counter.
    pub fn add(&mut self, family: &'static Family, labels: &[(&str, &str)], n: u64) {
        self.update(family, labels, |v| *v = v.saturating_add(n));
    }

    /// Sets a gauge.
    pub fn set(&mut self, family: &'static Family, labels: &[(&str, &str)], value: u64) {
        self.update(family, labels, |v| *v = value);
    }

    /// Adds an observation (seconds) to a histogram.
    pub fn observe_seconds(&mut self, family: &'static Family, seconds: f64) {
        debug_assert_eq!(family.kind, Kind::Histogram, "{}", family.name);
        let h = self.histograms.entry(family.name).or_default();
        let i = BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(BUCKETS.len());
        h.buckets[i] += 1;
        h.sum += seconds;
        h.count += 1;
    }

    /// A histogram's count of observations.
    pub fn observations(&self, family: &Family) -> u64 {
        self.histograms.get(family.name).map_or(0, |h| h.count)
    }

    /// Changes a sample (made at zero when new).
    fn update(
        &mut self,
        family: &'static Family,
        labels: &[(&str, &str)],
        f: impl FnOnce(&mut u64),
    ) {
        debug_assert!(same_names(family, labels), "{} labels", family.name);
        self.scratch.clear();
        write_labels(&mut self.scratch, labels);
        let samples = self.samples.entry(family.name).or_default();
        match samples.get_mut(self.scratch.as_str()) {
            Some(v) => f(v),
            None => {
                let mut v = 0;
                f(&mut v);
                samples.insert(self.scratch.clone(), v);
            }
        }
    }

    /// A sample's value, if it was ever counted or set.
    pub fn get(&self, family: &Family, labels: &[(&str, &str)]) -> Option<u64> {
        self.samples
            .get(family.name)?
            .get(render_labels(labels).as_str())
            .copied()
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.values().map(BTreeMap::len).sum::<usize>() + self.histograms.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The OpenMetrics text exposition (version 1.0.0), `# EOF` last.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in FAMILIES {
            let (kind, suffix) = match f.kind {
                Kind::Counter => ("counter", "_total"),
                Kind::Gauge => ("gauge", ""),
                Kind::Histogram => ("histogram", ""),
            };
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            if f.kind == Kind::Histogram {
                let h = self.histograms.get(f.name).cloned().unwrap_or_default();
                render_histogram(&mut out, f.name, &h);
                continue;
            }
            for (labels, v) in self.samples.get(f.name).into_iter().flatten() {
                let _ = writeln!(out, "{}{suffix}{labels} {v}", f.name);
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// A histogram's samples: cumulative buckets, `+Inf`, sum and count.
fn render_histogram(out: &mut String, name: &str, h: &Histogram) {
    let mut cumulative = 0;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        match BUCKETS.get(i) {
            Some(le) => writeln!(out, "{name}_bucket{{le=\"{le:?}\"}} {cumulative}"),
            None => writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}"),
        }
        .unwrap_or_default();
    }
    let _ = writeln!(out, "{name}_sum {:?}", h.sum);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// Whether `labels` are the family's, in order.
fn same_names(family: &Family, labels: &[(&str, &str)]) -> bool {
    family.labels.len() == labels.len()
        && family.labels.iter().zip(labels).all(|(a, (b, _))| a == b)
}

/// `{k="v",...}`, values escaped as OpenMetrics asks; empty without
/// labels.
fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    write_labels(&mut s, labels);
    s
}

/// [`render_labels`] onto the end of `s`.
fn write_labels(s: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    s.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
}

#[cfg(test)]
mod tests {
    use super::super::families::{MESSAGES_RELAYED, REGISTRATIONS, ROUTES};
    use super::*;

    #[test]
    fn renders_openmetrics_text() {
        let mut r = Registry::new([]);
        r.add(REGISTRATIONS, &[], 2);
        r.add(MESSAGES_RELAYED, &[("direction", "sip_to_xmpp")], 1);
        r.set(ROUTES, &[], 3);
        let text = r.render();
        assert!(text.contains("# TYPE xfed_registrations counter\n"));
        assert!(text.contains("# HELP xfed_registrations Successful REGISTER requests.\n"));
        assert!(text.contains("\nxfed_registrations_total 2\n"));
        assert!(text.contains("\nxfed_messages_relayed_total{direction=\"sip_to_xmpp\"} 1\n"));
        assert!(text.contains("# TYPE xfed_routes gauge\n"));
        assert!(text.contains("\nxfed_routes 3\n"));
        assert!(text.ends_with("\n# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        // A family's samples follow its own header.
        let header = text.find("# TYPE xfed_messages_relayed ").unwrap();
        let sample = text.find("xfed_messages_relayed_total{").unwrap();
        let next = text.find("# TYPE xfed_messages_refused ").unwrap();
        assert!(header < sample && sample < next);
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        use super::super::families::SIP_TO_XMPP_SECONDS as H;
        let mut r = Registry::new([]);
        assert!(r.render().contains("\nxfed_sip_to_xmpp_seconds_count 0\n"));
        r.observe_seconds(H, 0.0);
        r.observe_seconds(H, 0.3);
        r.observe_seconds(H, 100.0);
        assert_eq!(r.observations(H), 3);
        let text = r.render();
        assert!(text.contains("# TYPE xfed_sip_to_xmpp_seconds histogram\n"));
        assert!(text.contains("\nxfed_sip_to_xmpp_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("\nxfed_sip_to_xmpp_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("\nxfed_sip_to_xmpp_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("\nxfed_sip_to_xmpp_seconds_bucket{le=\"60.0\"} 2\n"));
        assert!(text.contains("\nxfed_sip_to_xmpp_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("\nxfed_sip_to_xmpp_seconds_sum 100.3\n"));
        assert!(text.contains("\nxfed_sip_to_xmpp_seconds_count 3\n"));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(
            render_labels(&[("a", "x\"y\\z\n"), ("b", "c")]),
            "{a=\"x\\\"y\\\\z\\n\",b=\"c\"}"
        );
    }

    #[test]
    fn families_are_unique_and_well_named() {
        let mut names = BTreeSet::new();
        for f in FAMILIES {
            assert!(f.name.starts_with("xfed_"), "{}", f.name);
            assert!(!f.name.ends_with("_total"), "{}", f.name);
            assert!(names.insert(f.name), "{} twice", f.name);
        }
    }

    #[test]
    fn unknown_partners_share_one_label() {
        let r = Registry::new(["jabber.org"]);
        assert_eq!(r.partner("jabber.org"), "jabber.org");
        assert_eq!(r.partner("evil.example"), "other");
    }
}
