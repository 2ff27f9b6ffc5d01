//! Branches, tags and Call-IDs from the core's RNG: unpredictable (a
//! guessable branch or tag lets an off-path attacker inject responses or
//! in-dialog requests) and reproducible in tests.

use crate::rng::Rng;

/// RFC 3261 section 8.1.1.7: branches of RFC 3261 elements start with it.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// A Via branch: the magic cookie and 128 random bits.
pub fn new_branch(rng: &mut Rng) -> String {
    let mut b = String::with_capacity(MAGIC_COOKIE.len() + 32);
    b.push_str(MAGIC_COOKIE);
    b.push_str(&rng.token());
    b
}

/// A From or To tag: 64 random bits (RFC 3261 section 19.3 asks for 32).
pub fn new_tag(rng: &mut Rng) -> String {
    format!("{:016x}", rng.next_u64())
}

/// A Call-ID: 128 random bits, no host part (it would leak the address
/// and add nothing to uniqueness).
pub fn new_call_id(rng: &mut Rng) -> String {
    rng.token()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let mut rng = Rng::new([1; 32]);
        let b = new_branch(&mut rng);
        assert!(b.starts_with(MAGIC_COOKIE));
        assert_eq!(b.len(), 39);
        assert_ne!(new_branch(&mut rng), b);
        assert_eq!(new_tag(&mut rng).len(), 16);
        assert_eq!(new_call_id(&mut rng).len(), 32);
    }
}
