//! The domain pairs a stream carries, as a sorted `Vec`: a stream has one
//! or a few, and a `BTreeSet`'s first node costs half a kilobyte on every
//! idle link.

/// A sorted set of (first, second) domain pairs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pairs(Vec<(String, String)>);

impl Pairs {
    /// Adds a pair; `false` if it was there already.
    pub fn insert(&mut self, pair: (String, String)) -> bool {
        match self.find(&pair.0, &pair.1) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, pair);
                true
            }
        }
    }

    /// Whether (`first`, `second`) is in the set.
    pub fn contains(&self, first: &str, second: &str) -> bool {
        self.find(first, second).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs in order.
    pub fn iter(&self) -> std::slice::Iter<'_, (String, String)> {
        self.0.iter()
    }

    fn find(&self, first: &str, second: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|(a, b)| (a.as_str(), b.as_str()).cmp(&(first, second)))
    }
}

impl std::fmt::Debug for Pairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_pairs_sorted_and_once() {
        let mut p = Pairs::default();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert!(p.is_empty());
        assert!(p.insert(pair("b.test", "a.test")));
        assert!(p.insert(pair("a.test", "c.test")));
        assert!(p.insert(pair("a.test", "b.test")));
        assert!(!p.insert(pair("a.test", "c.test")));
        assert!(p.contains("a.test", "b.test"));
        assert!(!p.contains("b.test", "b.test"));
        let order: Vec<_> = p.iter().cloned().collect();
        assert_eq!(
            order,
            [
                pair("a.test", "b.test"),
                pair("a.test", "c.test"),
                pair("b.test", "a.test")
            ]
        );
        assert_eq!(
            format!("{p:?}"),
            r#"{("a.test", "b.test"), ("a.test", "c.test"), ("b.test", "a.test")}"#
        );
    }
}
