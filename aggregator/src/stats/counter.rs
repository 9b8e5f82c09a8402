//! Bounded counting by key: at most `max_keys` distinct keys, the rest under "other".

use std::collections::HashMap;

use serde::Serialize;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// A key and its count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The value (a source path, a host, a section, ...).
    pub key: String,
    /// How many.
    pub count: u64,
}

/// Counts per key, for at most `max_keys` keys; further keys add to `other`.
#[derive(Debug, Clone)]
pub struct TopCounter {
    counts: HashMap<Box<str>, u64, Xxh3DefaultBuilder>,
    max_keys: usize,
    other: u64,
}

impl TopCounter {
    /// An empty counter.
    pub fn new(max_keys: usize) -> TopCounter {
        TopCounter {
            counts: HashMap::default(),
            max_keys,
            other: 0,
        }
    }

    /// Adds `n` to `key`.
    pub fn add(&mut self, key: &str, n: u64) {
        if let Some(c) = self.counts.get_mut(key) {
            *c += n;
        } else if self.counts.len() < self.max_keys {
            self.counts.insert(key.into(), n);
        } else {
            self.other += n;
        }
    }

    /// The `k` largest counts (ties by key), and the sum of all the others.
    pub fn top(&self, k: usize) -> (Vec<Count>, u64) {
        let mut all: Vec<(&str, u64)> = self.counts.iter().map(|(k, v)| (&**k, *v)).collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let rest: u64 = all.iter().skip(k).map(|(_, c)| c).sum::<u64>() + self.other;
        let top = all
            .into_iter()
            .take(k)
            .map(|(key, count)| Count {
                key: key.to_owned(),
                count,
            })
            .collect();
        (top, rest)
    }
}

/// Adds up the top lists of several intervals.
#[derive(Debug, Default)]
pub(super) struct Merge {
    counts: HashMap<String, u64>,
    other: u64,
}

impl Merge {
    pub(super) fn add(&mut self, top: &[Count], other: u64) {
        for c in top {
            *self.counts.entry(c.key.clone()).or_default() += c.count;
        }
        self.other += other;
    }

    pub(super) fn top(self, k: usize) -> (Vec<Count>, u64) {
        let mut all: Vec<Count> = self
            .counts
            .into_iter()
            .map(|(key, count)| Count { key, count })
            .collect();
        all.sort_unstable_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
        let rest: u64 = all.iter().skip(k).map(|c| c.count).sum::<u64>() + self.other;
        all.truncate(k);
        (all, rest)
    }
}
