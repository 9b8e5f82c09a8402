//! `type = "file"`: the settings and what `validate` checks about them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[sinks.NAME]` with `type = "file"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The active file; parent directories are created. Rotated files are `PATH.N`.
    pub path: PathBuf,
    /// Rotate before a write would take the file over this many bytes (lines are never
    /// split: a single longer line gets a file of its own). None (default): no limit.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Rotate before the first write in a new period of this length, periods aligned to
    /// the Unix epoch (`"1h"`: on the hour, UTC). None (default): never by time.
    #[serde(default, with = "humantime_serde")]
    pub rotate_every: Option<Duration>,
    /// How many rotated files to keep; older ones are deleted. None (default): all.
    #[serde(default)]
    pub keep: Option<usize>,
    /// After each fsync, tell the kernel the written pages will not be read again
    /// (`POSIX_FADV_DONTNEED`), so the page cache is not filled with the sink's output.
    /// Default true.
    #[serde(default = "yes")]
    pub drop_page_cache: bool,
}

fn yes() -> bool {
    true
}

/// The smallest `max_bytes` accepted: smaller would make a file per line.
pub const MIN_MAX_BYTES: u64 = 4096;

impl FileSinkConfig {
    /// A file that never rotates.
    pub fn plain(path: impl Into<PathBuf>) -> FileSinkConfig {
        FileSinkConfig {
            path: path.into(),
            max_bytes: None,
            rotate_every: None,
            keep: None,
            drop_page_cache: true,
        }
    }

    /// True when the file rotates at all.
    pub fn rotates(&self) -> bool {
        self.max_bytes.is_some() || self.rotate_every.is_some()
    }

    /// Checks what serde cannot; the message starts with the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.path.as_os_str().is_empty() || self.path.file_name().is_none() {
            anyhow::bail!("path: {:?} does not name a file", self.path);
        }
        if let Some(max) = self.max_bytes {
            if max < MIN_MAX_BYTES {
                anyhow::bail!("max_bytes = {max} must be at least {MIN_MAX_BYTES}");
            }
        }
        if let Some(every) = self.rotate_every {
            if every < Duration::from_secs(1) || every.subsec_nanos() != 0 {
                anyhow::bail!(
                    "rotate_every = {:?} must be a whole number of seconds, at least 1s",
                    every
                );
            }
        }
        match self.keep {
            Some(0) => anyhow::bail!(
                "keep = 0 would delete every rotated file: at least 1, or leave it out to keep all"
            ),
            Some(_) if !self.rotates() => {
                anyhow::bail!("keep needs max_bytes or rotate_every: the file never rotates")
            }
            _ => Ok(()),
        }
    }
}
