//! Per-second rates for the status page, from the registry's counters
//! over a moving window: each render adds a sample (the counters at its
//! `now`), samples older than [`WINDOW`] go (the newest old one stays as
//! the window's start), and at most [`MAX_SAMPLES`] are kept however
//! often the page is loaded.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::families::{Family, MESSAGES_RELAYED, S2S_STANZAS};
use super::Registry;

/// How far back a rate looks.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Samples kept at most (a page loaded more often than `WINDOW /
/// MAX_SAMPLES` replaces its newest sample).
pub const MAX_SAMPLES: usize = 32;

/// What the page shows a rate of: its name, and the counter.
const RATED: [(&str, &Family, (&str, &str)); 4] = [
    ("s2s stanzas in", S2S_STANZAS, ("direction", "in")),
    ("s2s stanzas out", S2S_STANZAS, ("direction", "out")),
    (
        "messages SIP → XMPP",
        MESSAGES_RELAYED,
        ("direction", "sip_to_xmpp"),
    ),
    (
        "messages XMPP → SIP",
        MESSAGES_RELAYED,
        ("direction", "xmpp_to_sip"),
    ),
];

/// One rate as shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Rate {
    /// What is counted.
    pub name: &'static str,
    /// Per second over the window; `None` until two samples exist.
    pub per_second: Option<f64>,
    /// The counter's value now.
    pub total: u64,
}

/// The samples the rates are taken from.
#[derive(Debug, Default)]
pub struct Rates {
    samples: VecDeque<(Instant, [u64; RATED.len()])>,
}

impl Rates {
    /// Samples `registry` at `now` and gives every rate.
    pub fn update(&mut self, registry: &Registry, now: Instant) -> Vec<Rate> {
        let values = RATED.map(|(_, family, label)| registry.get(family, &[label]).unwrap_or(0));
        // Keep one sample at or before the window's start.
        while self.samples.len() >= 2 && now.saturating_duration_since(self.samples[1].0) >= WINDOW
        {
            self.samples.pop_front();
        }
        // The newest sample floats until the one before it is a
        // sample's spacing old.
        let spaced = WINDOW / MAX_SAMPLES as u32;
        let n = self.samples.len();
        if n >= 2 && now.saturating_duration_since(self.samples[n - 2].0) < spaced {
            self.samples[n - 1] = (now, values);
        } else {
            self.samples.push_back((now, values));
        }
        if self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
        let first = self.samples.front().filter(|(t, _)| *t < now);
        RATED
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| Rate {
                name,
                per_second: first.map(|(t, v)| {
                    let secs = now.saturating_duration_since(*t).as_secs_f64();
                    values[i].saturating_sub(v[i]) as f64 / secs
                }),
                total: values[i],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_the_window_and_bounded_samples() {
        let mut reg = Registry::new([]);
        let mut rates = Rates::default();
        let t0 = Instant::now();
        let r = rates.update(&reg, t0);
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|r| r.per_second.is_none()));
        reg.set(S2S_STANZAS, &[("direction", "in")], 50);
        let r = rates.update(&reg, t0 + Duration::from_secs(5));
        assert_eq!(r[0].per_second, Some(10.0));
        assert_eq!(r[0].total, 50);
        assert_eq!(r[1].per_second, Some(0.0));
        // Loaded many times a second for long: bounded, still a rate.
        for i in 0..10_000u64 {
            reg.set(S2S_STANZAS, &[("direction", "in")], 50 + i);
            rates.update(&reg, t0 + Duration::from_millis(5_000 + i * 100));
        }
        assert!(rates.samples.len() <= MAX_SAMPLES);
        let r = rates.update(&reg, t0 + Duration::from_millis(5_000 + 10_000 * 100));
        let per_second = r[0].per_second.unwrap();
        assert!((9.0..=11.0).contains(&per_second), "{per_second}");
    }
}
