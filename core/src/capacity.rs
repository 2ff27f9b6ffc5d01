//! Giving back the room of tables that emptied. A `HashMap` never shrinks
//! by itself: after a storm of 100,000 transactions or subscriptions the
//! buckets they needed stay allocated for the life of the process. The
//! tables outsiders can fill call [`release_sparse`] as entries leave.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

/// Tables at most this large keep their room whatever their use.
const SMALL: usize = 64;

/// Shrinks `map` to twice its length once it uses under a quarter of its
/// capacity. Each shrink halves the room at least, and the map has to lose
/// half its entries again before the next, so the rehashing costs O(1)
/// per removal over time.
pub(crate) fn release_sparse<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    let capacity = map.capacity();
    if capacity > SMALL && map.len() < capacity / 4 {
        map.shrink_to((map.len() * 2).max(SMALL / 2));
    }
}

/// [`release_sparse`] for a set.
pub(crate) fn release_sparse_set<K: Eq + Hash, S: BuildHasher>(set: &mut HashSet<K, S>) {
    let capacity = set.capacity();
    if capacity > SMALL && set.len() < capacity / 4 {
        set.shrink_to((set.len() * 2).max(SMALL / 2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_comes_back_when_emptied() {
        let mut m: HashMap<u32, u32> = (0..100_000).map(|i| (i, i)).collect();
        let full = m.capacity();
        for i in 0..100_000 {
            m.remove(&i);
            release_sparse(&mut m);
        }
        assert!(m.capacity() <= SMALL, "{} of {full}", m.capacity());
        m.extend((0..10).map(|i| (i, i)));
        release_sparse(&mut m);
        assert_eq!(m.len(), 10);
    }
}
