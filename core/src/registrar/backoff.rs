//! Back-off after failed digests: a source address that keeps failing,
//! and an account that keeps being failed against, are refused for a
//! while without a look at their credentials, the while doubling with
//! each round. Password guessing then costs hours per handful of tries
//! instead of a few microseconds each.

use std::collections::HashMap;
use std::net::IpAddr;

/// Whose failures are counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Source(IpAddr),
    Account(String),
}

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    /// Failures since the last block (or success).
    failures: u32,
    /// Blocks so far: the next lasts `base << strikes`.
    strikes: u32,
    /// Refused until this unix second.
    until: u64,
    /// Last failure, unix seconds (for forgetting quiet records).
    last: u64,
}

/// The back-off table, bounded.
#[derive(Debug)]
pub struct Backoff {
    /// Failures a source may have before it is blocked; an account gets
    /// [`ACCOUNT_FACTOR`] times as many (many sources share it, and
    /// blocking it shuts its owner out too).
    limit: u32,
    /// The first block, seconds.
    base: u64,
    records: HashMap<Key, Record>,
}

impl Backoff {
    /// Its bounds (failures before a block, first block in seconds), to
    /// tell whether a reload changed them.
    pub fn bounds(&self) -> (u32, u64) {
        (self.limit, self.base)
    }
}

/// An account's failures before a block, in multiples of a source's.
pub const ACCOUNT_FACTOR: u32 = 4;
/// No block lasts longer than an hour.
pub const MAX_BLOCK_SECS: u64 = 3_600;
/// Records kept at most; quiet ones are forgotten first, and beyond the
/// bound new sources are not tracked (a flood of spoofed addresses must
/// not grow the table).
pub const MAX_RECORDS: usize = 10_000;
/// A record with no failure for a day is forgotten.
const FORGET_AFTER_SECS: u64 = 86_400;

impl Backoff {
    /// `limit` failures before a block of `base_secs`, doubling.
    pub fn new(limit: u32, base_secs: u64) -> Self {
        Backoff {
            limit: limit.max(1),
            base: base_secs.max(1),
            records: HashMap::new(),
        }
    }

    /// Until when (unix seconds) a request from `source` for `account` is
    /// refused, if it is.
    pub fn blocked(&self, source: IpAddr, account: &str, now: u64) -> Option<u64> {
        [Key::Source(source), Key::Account(account.to_owned())]
            .iter()
            .filter_map(|k| self.records.get(k))
            .map(|r| r.until)
            .filter(|&until| until > now)
            .max()
    }

    /// A failed digest from `source`; `account` when it names one that
    /// exists (unknown names are counted against the source only, so
    /// they cannot fill the table).
    pub fn failed(&mut self, source: IpAddr, account: Option<&str>, now: u64) {
        self.count(Key::Source(source), self.limit, now);
        if let Some(a) = account {
            let limit = self.limit.saturating_mul(ACCOUNT_FACTOR);
            self.count(Key::Account(a.to_owned()), limit, now);
        }
    }

    /// A digest that verified: the source starts afresh; the account's
    /// count too (its owner is the one who just got in).
    pub fn succeeded(&mut self, source: IpAddr, account: &str) {
        self.records.remove(&Key::Source(source));
        self.records.remove(&Key::Account(account.to_owned()));
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn count(&mut self, key: Key, limit: u32, now: u64) {
        if !self.records.contains_key(&key) && self.records.len() >= MAX_RECORDS {
            self.records
                .retain(|_, r| r.until > now || now.saturating_sub(r.last) < FORGET_AFTER_SECS);
            if self.records.len() >= MAX_RECORDS {
                return;
            }
        }
        let base = self.base;
        let r = self.records.entry(key).or_default();
        r.last = now;
        r.failures += 1;
        if r.failures >= limit {
            let secs = base
                .checked_shl(r.strikes)
                .unwrap_or(MAX_BLOCK_SECS)
                .min(MAX_BLOCK_SECS);
            r.until = now + secs;
            r.strikes = r.strikes.saturating_add(1);
            r.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_source_is_blocked_for_longer_each_round() {
        let mut b = Backoff::new(5, 60);
        for _ in 0..4 {
            b.failed(ip(1), Some("alice"), T0);
        }
        assert_eq!(b.blocked(ip(1), "alice", T0), None);
        b.failed(ip(1), Some("alice"), T0);
        assert_eq!(b.blocked(ip(1), "alice", T0), Some(T0 + 60));
        // Another source for the same account is not blocked yet.
        assert_eq!(b.blocked(ip(2), "alice", T0), None);
        // After the block, five more failures block for twice as long.
        let t = T0 + 61;
        assert_eq!(b.blocked(ip(1), "alice", t), None);
        for _ in 0..5 {
            b.failed(ip(1), None, t);
        }
        assert_eq!(b.blocked(ip(1), "bob", t), Some(t + 120));
        // A success starts the source afresh.
        b.succeeded(ip(1), "alice");
        assert_eq!(b.blocked(ip(1), "alice", t), None);
    }

    #[test]
    fn an_account_failed_against_from_many_sources_is_blocked() {
        let mut b = Backoff::new(5, 60);
        for i in 0..20u8 {
            b.failed(ip(i), Some("alice"), T0);
        }
        assert_eq!(b.blocked(ip(100), "alice", T0), Some(T0 + 60));
        assert_eq!(b.blocked(ip(100), "bob", T0), None);
    }

    #[test]
    fn blocks_are_capped_and_the_table_bounded() {
        let mut b = Backoff::new(1, 60);
        for round in 0..20 {
            b.failed(ip(1), None, T0 + round * 10_000);
        }
        let until = b.blocked(ip(1), "x", T0 + 19 * 10_000).unwrap();
        assert_eq!(until, T0 + 19 * 10_000 + MAX_BLOCK_SECS);
        for i in 0..(MAX_RECORDS as u32 + 500) {
            b.failed(IpAddr::from(i.to_be_bytes()), None, T0);
        }
        assert!(b.len() <= MAX_RECORDS);
    }
}
