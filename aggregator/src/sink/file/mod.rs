//! The `file` sink: appends JSON lines to a local file, fsyncs on flush, and rotates the
//! file by size (`max_bytes`) and time (`rotate_every`), keeping `keep` rotated files.
//!
//! # Generations
//!
//! The file at `path` is the *active* file. Each file the sink writes is a generation,
//! numbered from 1. Rotation renames the active file to `PATH.N`, `N` its generation, and
//! starts an empty active file, generation `N + 1`. A rotated file is never renamed again:
//! the highest `N` is the newest, and `keep` deletes the lowest.
//!
//! # Exactly once across crashes
//!
//! The position the pipeline records with the inbox's progress is (generation of the
//! active file, its length), taken after the flush, which fsyncs the file and, when the
//! round rotated, the directory (a rotated file's lines were fsynced before its rename).
//! [`Sink::rewind_to`] a recorded `(g, L)`, after a crash or a failed round, reads the
//! state from the files alone:
//!
//! - `PATH.g` exists: generation `g` was rotated after `(g, L)` was recorded, so every later
//!   generation holds only lines that were never recorded. The rotated files `PATH.k`,
//!   `k > g`, and the active file are removed, `PATH.g` is renamed back to `PATH` and cut
//!   to `L`: the files are exactly as they were when `(g, L)` was recorded.
//! - Otherwise the active file is generation `g`, and it is cut to `L`. Rotated files with a
//!   higher number than `g` are not the sink's (it never made them): they are left alone,
//!   and the active file takes the number after the highest, so no rotation can ever
//!   overwrite them. The pipeline records the renumbered position before it writes
//!   anything (see [`Sink::rewind_to`]). Positions recorded before generations existed
//!   read as generation 0 and are renumbered the same way.
//!
//! # Page cache
//!
//! With `drop_page_cache` (the default), every fsync of the active file is followed by
//! `POSIX_FADV_DONTNEED` on what it made durable: the pages are clean by then, so the
//! kernel frees them at once and the next writes reuse them. A sink that writes gigabytes
//! an hour then neither pushes other programs' files out of the page cache nor makes the
//! kernel find fresh pages for every write. Readers of the file (`tail -f`, a shipper)
//! still see every line; they read it from the disk.
//!
//! Each step of the first case leaves the files in one of the two states, so a crash while
//! cutting back is followed by the same cut-back. `keep` deletes only rotated files below
//! the *recorded* generation ([`Sink::committed`]), so `PATH.g` is never one of them.
//!
//! # When it rotates
//!
//! Before a write that would take the active file over `max_bytes`: lines are never split,
//! a write is cut between lines, and a single line longer than `max_bytes` gets a file of
//! its own. Before the first write in a new period of `rotate_every` (periods are aligned
//! to the Unix epoch: `"1h"` rotates on the hour, `"1d"` at midnight UTC); the period of a
//! file found at start is that of its modification time. An empty file never rotates, and
//! an idle sink does not rotate until its next line.

mod config;
mod generations;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::{Position, Sink};
use crate::rules::{Clock, SystemClock};
pub use config::{FileSinkConfig, MIN_MAX_BYTES};
use generations::{first_line, fitting, list_rotated, parent_dir, period, rotated_path};

/// Where a rotation can be interrupted (tests stop it there, as a crash would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The old file is fsynced, not yet renamed.
    Synced,
    /// The old file is renamed, the new one not yet created.
    Renamed,
    /// The new active file exists.
    Created,
}

/// Appends to one file, rotating it. See the module docs.
#[derive(Debug)]
pub struct FileSink {
    name: String,
    config: FileSinkConfig,
    file: File,
    /// The active file's generation.
    generation: u64,
    /// Bytes in the active file (what has been written through this handle included).
    len: u64,
    unsynced: bool,
    /// Offset (page-aligned) from which the active file's pages may still be cached:
    /// everything before it was fsynced and dropped from the page cache.
    cached_from: u64,
    /// A rotation renamed and created files since the directory was last fsynced.
    dir_unsynced: bool,
    /// The `rotate_every` period of the active file's lines; `None` while it is empty.
    period: Option<u64>,
    /// Rotated since rotated files were last pruned to `keep`.
    prune_due: bool,
    clock: Arc<dyn Clock>,
    /// Tests: fail the next rotation at this step, as a crash would stop it.
    #[cfg(test)]
    crash_at: Option<Step>,
}

fn in_file(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn open_active(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| in_file(path, e))
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| in_file(dir, e))
}

/// Asks the kernel to drop the cached pages of `file` from `from` to its end: they were
/// fsynced, so this frees them (see the module docs). Advice only: a failure changes nothing
/// about the data, so it is logged at debug level and otherwise ignored.
fn drop_cached(file: &File, from: u64, path: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(offset) = libc::off_t::try_from(from) else {
        return;
    };
    // SAFETY: posix_fadvise reads no memory; the descriptor is valid while `file` lives.
    // A length of 0 means "to the end of the file".
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        tracing::debug!(path = %path.display(), error = %std::io::Error::from_raw_os_error(rc),
            "cannot drop the file sink's written pages from the page cache");
    }
}

/// The page holding `offset` is the first that may still be partly unwritten.
fn page_floor(offset: u64) -> u64 {
    offset & !4095
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(in_file(path, e)),
        _ => Ok(()),
    }
}

impl FileSink {
    /// Opens (creating) a file that never rotates; parent directories are created.
    pub fn open(name: &str, path: &Path) -> std::io::Result<FileSink> {
        FileSink::new(name, &FileSinkConfig::plain(path))
    }

    /// Opens (creating) the active file of `config`; parent directories are created.
    pub fn new(name: &str, config: &FileSinkConfig) -> std::io::Result<FileSink> {
        FileSink::with_clock(name, config, Arc::new(SystemClock))
    }

    /// [`FileSink::new`] with the clock `rotate_every` reads.
    pub fn with_clock(
        name: &str,
        config: &FileSinkConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<FileSink> {
        let path = &config.path;
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| in_file(dir, e))?;
            }
        }
        // Until a recorded position says otherwise: past every rotated file there is.
        let generation = list_rotated(path)
            .map_err(|e| in_file(path, e))?
            .last()
            .map_or(1, |n| n + 1);
        let file = open_active(path)?;
        let mut sink = FileSink {
            name: name.to_owned(),
            config: config.clone(),
            len: 0,
            file,
            generation,
            unsynced: false,
            cached_from: 0,
            dir_unsynced: false,
            period: None,
            prune_due: config.keep.is_some(),
            clock,
            #[cfg(test)]
            crash_at: None,
        };
        let meta = sink.file.metadata()?;
        sink.len = meta.len();
        sink.period = sink.period_of(&meta);
        Ok(sink)
    }

    /// Tests: the next rotation stops at `step` with an error, as a crash would.
    #[cfg(test)]
    pub(crate) fn crash_at(&mut self, step: Step) {
        self.crash_at = Some(step);
    }

    fn reached(&mut self, _step: Step) -> std::io::Result<()> {
        #[cfg(test)]
        if self.crash_at == Some(_step) {
            self.crash_at = None;
            return Err(std::io::Error::other(format!(
                "simulated crash at {_step:?}"
            )));
        }
        Ok(())
    }

    /// The rotation period the lines of a file with this metadata belong to.
    fn period_of(&self, meta: &std::fs::Metadata) -> Option<u64> {
        let every = self.config.rotate_every?;
        if meta.len() == 0 {
            return None;
        }
        let secs = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        Some(period(secs, every.as_secs()))
    }

    fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.unsynced = true;
        self.file
            .write_all(lines)
            .map_err(|e| in_file(&self.config.path, e))?;
        self.len += lines.len() as u64;
        Ok(())
    }

    /// Renames the active file to `PATH.N` and starts generation `N + 1` (module docs).
    fn rotate(&mut self) -> std::io::Result<()> {
        let path = self.config.path.clone();
        // Its lines are durable under either name before the rename can be.
        self.file.sync_data().map_err(|e| in_file(&path, e))?;
        self.unsynced = false;
        self.drop_synced_pages();
        self.reached(Step::Synced)?;
        let to = rotated_path(&path, self.generation);
        if to.symlink_metadata().is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists: not rotating over it", to.display()),
            ));
        }
        std::fs::rename(&path, &to).map_err(|e| in_file(&to, e))?;
        self.dir_unsynced = true;
        self.reached(Step::Renamed)?;
        self.file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| in_file(&path, e))?;
        self.generation += 1;
        self.len = 0;
        self.cached_from = 0;
        self.period = None;
        self.prune_due = self.config.keep.is_some();
        tracing::info!(sink = %self.name, path = %path.display(), rotated = %to.display(),
            generation = self.generation, "rotated the file sink");
        self.reached(Step::Created)
    }

    /// After an fsync of the active file: its pages up to the last partial one are dropped.
    fn drop_synced_pages(&mut self) {
        if self.config.drop_page_cache {
            drop_cached(&self.file, self.cached_from, &self.config.path);
            self.cached_from = page_floor(self.len);
        }
    }

    /// Deletes the oldest rotated files beyond `keep`, only below the recorded generation.
    fn prune(&mut self, recorded: u64) {
        let Some(keep) = self.config.keep else {
            self.prune_due = false;
            return;
        };
        let rotated = match list_rotated(&self.config.path) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(sink = %self.name, error = %e, "cannot list rotated files to keep {keep}; trying again after the next rotation");
                return;
            }
        };
        let excess = rotated.len().saturating_sub(keep);
        let mut done = true;
        for &n in &rotated[..excess] {
            if n >= recorded {
                // Not recorded yet: it may have to be renamed back (module docs).
                done = false;
                break;
            }
            let old = rotated_path(&self.config.path, n);
            match std::fs::remove_file(&old) {
                Ok(()) => {
                    tracing::info!(sink = %self.name, path = %old.display(), keep, "deleted the oldest rotated file")
                }
                Err(e) => {
                    done = false;
                    tracing::warn!(sink = %self.name, path = %old.display(), error = %e, "cannot delete a rotated file beyond keep");
                }
            }
        }
        self.prune_due = !done;
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        let every = self.config.rotate_every.map(|e| e.as_secs());
        let now = every.map(|e| period(self.clock.now_ms() / 1000, e));
        let mut rest = lines;
        while !rest.is_empty() {
            if now.is_some() && self.len > 0 && self.period != now {
                self.rotate()?;
            }
            let take = match self.config.max_bytes {
                None => rest.len(),
                Some(max) => match fitting(rest, max.saturating_sub(self.len)) {
                    0 if self.len > 0 => {
                        self.rotate()?;
                        continue;
                    }
                    // An empty file and a line longer than max_bytes: a file of its own.
                    0 => first_line(rest),
                    n => n,
                },
            };
            self.append(&rest[..take])?;
            self.period = self.period.or(now);
            rest = &rest[take..];
        }
        Ok(())
    }

    fn position(&self) -> Option<Position> {
        Some(Position {
            generation: self.generation,
            offset: self.len,
        })
    }

    fn position_key(&self) -> String {
        format!("file:{}", self.config.path.display())
    }

    fn rewind_to(&mut self, to: Position) -> std::io::Result<()> {
        let path = self.config.path.clone();
        let rotated = list_rotated(&path).map_err(|e| in_file(&path, e))?;
        let g = to.generation;
        let generation = if g >= 1 && rotated.binary_search(&g).is_ok() {
            // Rotated after the record: undo the rotations (module docs).
            for &k in rotated.iter().filter(|&&k| k > g) {
                let later = rotated_path(&path, k);
                tracing::warn!(sink = %self.name, path = %later.display(),
                    "removing a file rotated after the last recorded position; its events are written again");
                remove_if_there(&later)?;
            }
            remove_if_there(&path)?;
            let from = rotated_path(&path, g);
            tracing::warn!(sink = %self.name, from = %from.display(), to = %path.display(),
                "renaming back a file rotated after the last recorded position");
            std::fs::rename(&from, &path).map_err(|e| in_file(&from, e))?;
            g
        } else {
            // The active file is generation g; numbered past any rotated file found.
            g.max(rotated.last().map_or(1, |n| n + 1))
        };
        let file = open_active(&path)?;
        let meta = file.metadata()?;
        let period = self.period_of(&meta);
        let actual = meta.len();
        if actual > to.offset {
            tracing::warn!(sink = %self.name, path = %path.display(), from = actual, to = to.offset,
                "cutting off events written after the last recorded position; they are written again");
            file.set_len(to.offset).map_err(|e| in_file(&path, e))?;
            file.sync_all().map_err(|e| in_file(&path, e))?;
        } else if actual < to.offset {
            tracing::warn!(sink = %self.name, path = %path.display(), size = actual, recorded = to.offset,
                "the file is shorter than recorded (truncated by someone else); appending");
        }
        sync_dir(&path)?;
        self.len = file.metadata()?.len();
        self.file = file;
        self.period = if self.len > 0 { period } else { None };
        self.generation = generation;
        self.unsynced = false;
        self.cached_from = 0;
        self.dir_unsynced = false;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(|e| in_file(&self.config.path, e))?;
            self.unsynced = false;
            self.drop_synced_pages();
        }
        if self.dir_unsynced {
            sync_dir(&self.config.path)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    fn committed(&mut self, position: Position) {
        if self.prune_due {
            self.prune(position.generation);
        }
    }
}

#[cfg(test)]
mod tests;
