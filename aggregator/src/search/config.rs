//! `[search]`: the bounded store behind the admin endpoint's log search, and the runtime
//! settings it builds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use logferry_shared::config::ConfigError;
use serde::Deserialize;

/// Smallest `max_bytes` accepted: below it a few blocks would fill the store.
pub const MIN_MAX_BYTES: u64 = 1 << 20;
/// Largest segment file; smaller stores use `max_bytes / 8` (see [`StoreSettings`]).
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Events per block, at most.
pub const BLOCK_EVENTS: usize = 4096;
/// Line bytes per block: a block is sealed once its lines reach this size. A query
/// decompresses whole blocks, so this is what a text found in few events costs per hit:
/// `benches/search.rs` measured a text in 94 of 1,000,000 events at 178 ms of CPU with
/// 1 MiB blocks and 47 ms with 256 KiB, for 11% more disk and 4x as many summaries.
pub const BLOCK_BYTES: usize = 256 << 10;
/// zstd level for sealed blocks: the fastest regular level, since sealing runs on the
/// appending thread (`benches/search.rs` measures it; `SEARCH_BENCH_LEVEL` tries others:
/// negative levels saved little CPU here and cost a third more disk).
pub const COMPRESSION_LEVEL: i32 = 1;

/// `[search]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Keep recent events for `GET /api/logs`. Default true.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Most bytes on disk (segment files in `<data_dir>/search`); the oldest segments are
    /// deleted beyond it. Default 1 GiB, at least 1 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// How long events are kept, counted from when their block was written to disk.
    /// Default 24h.
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            enabled: default_enabled(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
        }
    }
}

fn default_enabled() -> bool {
    true
}

fn default_max_bytes() -> u64 {
    1 << 30
}

fn default_max_age() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl SearchConfig {
    /// Checks the values; keys are named as in the file (`search.max_bytes`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bytes < MIN_MAX_BYTES {
            return Err(ConfigError::invalid(
                "search.max_bytes",
                format!("must be at least {MIN_MAX_BYTES} (1 MiB)"),
            ));
        }
        if self.max_age < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "search.max_age",
                "must be at least 1s",
            ));
        }
        Ok(())
    }

    /// The store's directory under the aggregator's `data_dir`.
    pub fn dir(data_dir: &Path) -> PathBuf {
        data_dir.join("search")
    }

    /// The runtime settings.
    pub fn settings(&self) -> StoreSettings {
        StoreSettings {
            max_bytes: self.max_bytes,
            max_age: self.max_age,
            ..StoreSettings::default()
        }
    }
}

/// What [`super::EventStore`] runs with: the config's bounds plus block and segment sizes
/// (constants in production, small in tests so a few events span many blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSettings {
    /// Most bytes of segment files.
    pub max_bytes: u64,
    /// Blocks written longer ago than this are not served and their segments go.
    pub max_age: Duration,
    /// Events per block, at most (clamped to 1..=16,384).
    pub block_events: usize,
    /// Line bytes after which a block is sealed.
    pub block_bytes: usize,
    /// zstd level; 0 stores blocks uncompressed.
    pub compression_level: i32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
            block_events: BLOCK_EVENTS,
            block_bytes: BLOCK_BYTES,
            compression_level: COMPRESSION_LEVEL,
        }
    }
}

impl StoreSettings {
    /// Size at which a segment file is closed and the next one begun: an eighth of
    /// `max_bytes`, at most 64 MiB, so size retention (which deletes whole
    /// segments) keeps between seven eighths of `max_bytes` and `max_bytes`.
    pub fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 8).clamp(1, SEGMENT_BYTES)
    }

    /// Events per block, within what a block can number.
    pub(super) fn block_events(&self) -> usize {
        self.block_events.clamp(1, super::block::MAX_EVENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_keys() {
        let c: SearchConfig = toml::from_str("").unwrap();
        assert_eq!(c, SearchConfig::default());
        assert!(c.enabled);
        assert_eq!(c.max_bytes, 1 << 30);
        assert_eq!(c.max_age, Duration::from_secs(86_400));
        c.validate().unwrap();
        let c: SearchConfig =
            toml::from_str("enabled = false\nmax_bytes = 2097152\nmax_age = \"90m\"").unwrap();
        assert!(!c.enabled);
        assert_eq!(c.settings().max_bytes, 2 << 20);
        assert_eq!(c.settings().max_age, Duration::from_secs(5400));
        assert_eq!(c.settings().segment_bytes(), 256 << 10);
        let e = toml::from_str::<SearchConfig>("max_byte = 5").unwrap_err();
        assert!(e.to_string().contains("max_byte"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let c = SearchConfig {
            max_bytes: 1000,
            ..SearchConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("search.max_bytes"));
        let c = SearchConfig {
            max_age: Duration::ZERO,
            ..SearchConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("search.max_age"));
    }
}
