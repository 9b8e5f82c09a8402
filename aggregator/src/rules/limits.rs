//! Keep-only actions: sampling (1 in N, by a counter or by a hash of a key field) and
//! rate limiting (a token bucket per key value, at most `max_keys` buckets, the least
//! recently used forgotten first).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use lru::LruCache;

/// 1-in-N sampling.
#[derive(Debug)]
pub struct Sampler {
    one_in: u64,
    counter: AtomicU64,
}

impl Sampler {
    /// Keeps one event in `one_in` (at least 1).
    pub fn new(one_in: u64) -> Sampler {
        Sampler {
            one_in: one_in.max(1),
            counter: AtomicU64::new(0),
        }
    }

    /// By the counter: the 1st, (N+1)th, ... event is kept.
    pub fn keep_next(&self) -> bool {
        self.counter
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(self.one_in)
    }

    /// By the key: the same key is always kept, or always dropped.
    pub fn keep_key(&self, key: &str) -> bool {
        xxhash_rust::xxh3::xxh3_64(key.as_bytes()).is_multiple_of(self.one_in)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// A token bucket per key.
#[derive(Debug)]
pub struct RateLimiter {
    per_ms: f64,
    burst: f64,
    buckets: Mutex<LruCache<Box<str>, Bucket>>,
}

impl RateLimiter {
    /// `per_second` tokens refilled per second, up to `burst`, for at most `max_keys` keys.
    pub fn new(per_second: f64, burst: u64, max_keys: usize) -> RateLimiter {
        let cap = NonZeroUsize::new(max_keys.max(1)).unwrap_or(NonZeroUsize::MIN);
        RateLimiter {
            per_ms: per_second / 1000.0,
            burst: burst.max(1) as f64,
            buckets: Mutex::new(LruCache::new(cap)),
        }
    }

    /// Takes a token for `key` at `now_ms`; false when its bucket is empty.
    pub fn allow(&self, key: &str, now_ms: u64) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = match buckets.get_mut(key) {
            Some(b) => b,
            None => {
                buckets.push(
                    key.into(),
                    Bucket {
                        tokens: self.burst,
                        last_ms: now_ms,
                    },
                );
                match buckets.get_mut(key) {
                    Some(b) => b,
                    None => return true,
                }
            }
        };
        let elapsed = now_ms.saturating_sub(b.last_ms) as f64;
        b.tokens = (b.tokens + elapsed * self.per_ms).min(self.burst);
        b.last_ms = b.last_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Keys tracked now.
    pub fn keys(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
