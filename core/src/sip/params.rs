//! `;name=value` parameter lists of URIs and header values.

use std::fmt;

/// Parameters in order, as written: names are matched case-insensitively,
/// values are kept verbatim (escapes, or the quotes of a quoted string,
/// included) so that writing them back gives the same text. The owner (a
/// URI, a Via, an address) validates what is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    pub(crate) fn from_vec(v: Vec<(String, Option<String>)>) -> Self {
        Params(v)
    }

    /// `None` when absent, `Some(None)` for a parameter without a value
    /// (`;lr`), `Some(Some(v))` otherwise.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The value of `name`, when present with a value.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    /// True when `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// How many parameters, valueless ones included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No parameters at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces the first parameter called `name` (removing any others) or
    /// appends it; the caller has validated or encoded both.
    pub(crate) fn set(&mut self, name: String, value: Option<String>) {
        match self
            .0
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some(i) => {
                self.0[i] = (name, value);
                let mut j = i + 1;
                while j < self.0.len() {
                    if self.0[j].0.eq_ignore_ascii_case(&self.0[i].0) {
                        self.0.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.0.push((name, value)),
        }
    }
}

impl fmt::Display for Params {
    /// `;name=value` for each, no spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}
