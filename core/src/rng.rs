//! The core's randomness: HMAC-SHA256 in counter mode over a seed the
//! runtime draws from the operating system once. Unpredictable without the
//! seed (stream ids, which dialback keys bind to, must be), and exactly
//! reproducible from it, so a test replays.

use ring::hmac;

/// A deterministic generator keyed by a 32-byte seed.
pub struct Rng {
    key: hmac::Key,
    counter: u64,
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rng")
            .field("counter", &self.counter)
            .finish()
    }
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Rng {
            key: hmac::Key::new(hmac::HMAC_SHA256, &seed),
            counter: 0,
        }
    }

    /// A child generator, for a component that needs its own stream.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.block())
    }

    /// 32 fresh bytes.
    pub fn block(&mut self) -> [u8; 32] {
        self.counter += 1;
        let tag = hmac::sign(&self.key, &self.counter.to_be_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// A uniformly distributed `u64`.
    pub fn next_u64(&mut self) -> u64 {
        let b = self.block();
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// 128 random bits as lowercase hex: stream ids and similar tokens.
    pub fn token(&mut self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(32);
        for b in &self.block()[..16] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        let mut a = Rng::new([7; 32]);
        let mut b = Rng::new([7; 32]);
        assert_eq!(a.token(), b.token());
        assert_ne!(a.token(), a.token());
        assert_ne!(Rng::new([8; 32]).token(), Rng::new([7; 32]).token());
        assert_eq!(a.token().len(), 32);
    }
}
