//! A small seeded random number generator (SplitMix64).
//!
//! The core takes its randomness from a seed the caller gives, so that a test
//! replays exactly; this is the generator that seed drives. SplitMix64 passes
//! BigCrush, has a 64-bit state that every seed (zero included) makes valid,
//! and needs no dependency. It is not a CSPRNG: where its output must be
//! unpredictable (DNS message ids), the caller seeds it from the OS for each
//! use, and the output is never shown to the party it must surprise.
//!
//! Crate-visible so other modules can reuse it (`crate::dns::rng::Rng`).

/// SplitMix64 (Steele, Lea and Flood 2014; the constants of Vigna's reference).
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn next_u16(&mut self) -> u16 {
        // The high bits are the best mixed.
        (self.next_u64() >> 48) as u16
    }

    /// A uniform draw in `0..n` (`0` when `n` is `0`).
    ///
    /// Multiply-shift without rejection: no loop, and the bias, at most
    /// `n / 2^64`, is far below anything a test or a peer could observe for
    /// the small ranges used here.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn reference_values() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(7);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
        let mut seen = [0u32; 5];
        for _ in 0..5000 {
            let v = r.below(5) as usize;
            seen[v] += 1;
        }
        for count in seen {
            assert!((800..1200).contains(&count), "{seen:?}");
        }
    }
}
