//! How many log lines one source may cause: a flood of garbage datagrams
//! or failed digests from one address must not become a flood of log
//! lines (disk, and the operator's attention). Each source gets a few
//! lines per window; what it causes beyond them is counted, and the count
//! is reported (an `Event::Suppressed`) just before its next event.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::output::Output;

/// Lines per source and window, with a bounded table of sources.
#[derive(Debug)]
pub struct LogBudget<K> {
    per_window: u32,
    window: Duration,
    max_sources: usize,
    sources: HashMap<K, Slot>,
    /// Sources beyond `max_sources` share this one (spoofed UDP can
    /// name any number of sources).
    others: Slot,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    start: Instant,
    used: u32,
    suppressed: u64,
}

impl Slot {
    fn new(now: Instant) -> Self {
        Slot {
            start: now,
            used: 0,
            suppressed: 0,
        }
    }

    /// `Some(lines suppressed since the last one)` when a line may be
    /// written now.
    fn take(&mut self, per_window: u32, window: Duration, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.start) >= window {
            self.start = now;
            self.used = 0;
        }
        if self.used >= per_window {
            self.suppressed += 1;
            return None;
        }
        self.used += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl<K: Hash + Eq> LogBudget<K> {
    /// `per_window` lines per source every `window`, for at most
    /// `max_sources` sources tracked one by one.
    pub fn new(per_window: u32, window: Duration, max_sources: usize, now: Instant) -> Self {
        LogBudget {
            per_window,
            window,
            max_sources,
            sources: HashMap::new(),
            others: Slot::new(now),
            last_sweep: None,
        }
    }

    /// Whether `source` may log a line now: `Some(n)` with the number of
    /// its lines suppressed since its last one (say so in the line), or
    /// `None` to stay quiet.
    pub fn allow(&mut self, source: K, now: Instant) -> Option<u64> {
        let (per_window, window) = (self.per_window, self.window);
        if !self.sources.contains_key(&source) && self.sources.len() >= self.max_sources {
            self.sweep(now);
        }
        if let Some(slot) = self.sources.get_mut(&source) {
            return slot.take(per_window, window, now);
        }
        if self.sources.len() >= self.max_sources {
            return self.others.take(per_window, window, now);
        }
        let slot = self.sources.entry(source).or_insert(Slot::new(now));
        slot.take(per_window, window, now)
    }

    /// Drops sources whose window is over and that have nothing to
    /// report, at most once per window.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < self.window)
        {
            return;
        }
        self.last_sweep = Some(now);
        let window = self.window;
        self.sources
            .retain(|_, s| s.suppressed > 0 || now.saturating_duration_since(s.start) < window);
    }

    /// Reports `event` into `out` unless `source` has used up its budget
    /// for now, preceded by an [`Event::Suppressed`] counting those it
    /// could not report since its last one.
    pub fn report(&mut self, source: K, event: Event, now: Instant, out: &mut VecDeque<Output>) {
        let Some(suppressed) = self.allow(source, now) else {
            return;
        };
        if suppressed > 0 {
            let conn = event.conn();
            out.push_back(Output::Event(Event::Suppressed {
                conn,
                count: suppressed,
            }));
        }
        out.push_back(Output::Event(event));
    }

    /// Stops tracking `source` (a connection that closed), returning how
    /// many of its lines were suppressed since its last one, for a last
    /// line that says so.
    pub fn forget(&mut self, source: &K) -> u64 {
        self.sources.remove(source).map_or(0, |s| s.suppressed)
    }

    /// Sources tracked one by one.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_source_gets_a_few_lines_and_a_count() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(3, Duration::from_secs(10), 4, t0);
        let got: Vec<Option<u64>> = (0..1000).map(|_| b.allow("a", t0)).collect();
        assert_eq!(&got[..3], [Some(0), Some(0), Some(0)]);
        assert!(got[3..].iter().all(Option::is_none));
        // Another source is not held back by the first.
        assert_eq!(b.allow("b", t0), Some(0));
        // The next window reports what was suppressed.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.allow("a", t1), Some(997));
        assert_eq!(b.allow("a", t1), Some(0));
    }

    #[test]
    fn a_forgotten_source_reports_what_it_had_suppressed() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(2, Duration::from_secs(10), 4, t0);
        for _ in 0..5 {
            b.allow("a", t0);
        }
        assert_eq!(b.forget(&"a"), 3);
        assert_eq!(b.forget(&"a"), 0);
        assert!(b.is_empty());
        // Tracked afresh afterwards.
        assert_eq!(b.allow("a", t0), Some(0));
    }

    #[test]
    fn sources_are_bounded() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(1, Duration::from_secs(10), 100, t0);
        let allowed = (0..100_000u32)
            .filter(|i| b.allow(*i, t0).is_some())
            .count();
        assert_eq!(b.len(), 100);
        // 100 sources one by one, then one line for all the others.
        assert_eq!(allowed, 101);
        // Once their windows are over, quiet sources make room again.
        let t1 = t0 + Duration::from_secs(11);
        assert!(b.allow(200_000, t1).is_some());
        assert!(b.len() <= 100);
    }
}
