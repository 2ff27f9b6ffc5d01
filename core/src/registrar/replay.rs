//! Replay protection for digest: the highest nonce count (`nc`) accepted
//! per nonce. A client using one nonce for several requests counts up
//! (RFC 7616 section 3.4); a captured `Authorization` sent again carries a
//! count already seen and is refused (the registrar answers with a
//! `stale` challenge, so a client that got confused recovers).
//!
//! Nonces stay stateless for issuing and checking ([`super::digest`]);
//! only nonces that authenticated a request are remembered, for their
//! lifetime. The table is bounded: past `capacity`, expired entries go
//! first, then the oldest nonces (whose replay then goes undetected on
//! this instance until they expire; only authenticated users can fill it).

use std::collections::HashMap;

/// The highest `nc` accepted per nonce, while the nonce is fresh.
#[derive(Debug)]
pub struct NonceCounts {
    /// Nonce → (highest count, issue time).
    seen: HashMap<String, (u32, u64)>,
    capacity: usize,
    lifetime: u64,
}

impl NonceCounts {
    /// Most nonces remembered by default: 64 bytes and a count each, a few
    /// MB at most, far more than a deployment issues in a nonce lifetime.
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A table of at most `capacity` nonces, each kept `lifetime` seconds
    /// after its issue time (the digest nonce lifetime).
    pub fn new(capacity: usize, lifetime: u64) -> NonceCounts {
        NonceCounts {
            seen: HashMap::new(),
            capacity: capacity.max(1),
            lifetime,
        }
    }

    /// Records count `nc` for `nonce` (issued at `issued`); `false` when
    /// the count is not above the highest already accepted: a replay.
    pub fn accept(&mut self, nonce: &str, issued: u64, nc: u32, now_unix: u64) -> bool {
        if let Some((highest, _)) = self.seen.get_mut(nonce) {
            if nc <= *highest {
                return false;
            }
            *highest = nc;
            return true;
        }
        if self.seen.len() >= self.capacity {
            let lifetime = self.lifetime;
            self.seen
                .retain(|_, (_, at)| now_unix.saturating_sub(*at) <= lifetime);
        }
        if self.seen.len() >= self.capacity {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(n, _)| n.clone());
            if let Some(n) = oldest {
                self.seen.remove(&n);
            }
        }
        self.seen.insert(nonce.to_owned(), (nc, issued));
        true
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_rise_per_nonce() {
        let mut t = NonceCounts::new(10, 300);
        assert!(t.accept("n1", 1000, 1, 1000));
        assert!(!t.accept("n1", 1000, 1, 1001), "same count: replay");
        assert!(t.accept("n1", 1000, 2, 1002));
        assert!(!t.accept("n1", 1000, 1, 1003), "lower count: replay");
        assert!(t.accept("n2", 1000, 1, 1003), "another nonce counts alone");
    }

    #[test]
    fn bounded_expired_first_then_oldest() {
        let mut t = NonceCounts::new(2, 300);
        assert!(t.accept("old", 100, 1, 100));
        assert!(t.accept("mid", 500, 1, 500));
        // "old" expired by 700: it goes, "mid" stays.
        assert!(t.accept("new", 700, 1, 700));
        assert_eq!(t.len(), 2);
        assert!(!t.accept("mid", 500, 1, 701));
        // All fresh and full: the oldest goes.
        assert!(t.accept("newer", 702, 1, 702));
        assert_eq!(t.len(), 2);
        assert!(t.accept("mid", 500, 1, 703), "forgotten, so taken again");
    }
}
