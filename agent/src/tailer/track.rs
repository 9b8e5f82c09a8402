//! Meeting a file: opening it, telling copies apart, and finding its stored position.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::{Instant, SystemTime};

use super::{source_attrs, Tailer, Tracked};
use crate::batcher::FileKey;
use crate::config::ReadFrom;
use crate::discover::Found;
use crate::fingerprint::Fingerprint;
use crate::lines::LineSplitter;
use crate::spool::Checkpoint;

/// What [`Tailer::track`] did with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tracking {
    Tracked,
    /// Not tracked now (unreadable, or older than `ignore_older`); looked at again at the
    /// next scan.
    Skipped,
    /// A copy of a file being read; skipped while it exists.
    Duplicate,
}

impl Tailer {
    /// Starts tracking a file met for the first time (or again after it was let go).
    pub(super) fn track(&mut self, f: Found) -> Tracking {
        let key = (f.meta.dev(), f.meta.ino());
        let input = &self.discovery.inputs[f.input];
        let start_at_end = input.fresh && input.read_from == ReadFrom::End;
        if !self.checkpoints.contains_key(&key) {
            if let Some(max_age) = input.ignore_older {
                let old = f
                    .meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age > max_age);
                if old {
                    return Tracking::Skipped;
                }
            }
        }
        let file = match File::open(&f.path) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "cannot open file");
                return Tracking::Skipped;
            }
        };
        let fingerprint = match Fingerprint::read(&file) {
            Ok(fp) => fp,
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "cannot read file");
                return Tracking::Skipped;
            }
        };
        if fingerprint.is_full()
            && self
                .files
                .iter()
                .any(|(k, t)| *k != key && t.fingerprint == fingerprint)
        {
            // A copy of a file being read: reading it would send its lines twice.
            self.metrics.files_duplicate.inc();
            tracing::warn!(path = %f.path.display(), "skipping a file whose first kilobyte equals a file already read (a copy?)");
            return Tracking::Duplicate;
        }
        let size = f.meta.len();
        let offset = match self.claim_checkpoint(key, &file, fingerprint) {
            Some(cp) if cp.offset <= size => cp.offset,
            Some(cp) => {
                tracing::info!(path = %f.path.display(), size, offset = cp.offset, "file shrank while not watched; reading from the start");
                0
            }
            None if start_at_end => size,
            None => 0,
        };
        let mut file = file;
        if let Err(e) = file.seek(SeekFrom::Start(offset)) {
            tracing::warn!(path = %f.path.display(), error = %e, "cannot seek");
            return Tracking::Skipped;
        }
        let attrs = source_attrs(&f.path);
        tracing::info!(path = %f.path.display(), offset, "tailing file");
        let open = self.open_files < self.limits.max_open_files;
        if open {
            self.open_files += 1;
        }
        self.files.insert(
            key,
            Tracked {
                path: f.path,
                input: f.input,
                file: open.then_some(file),
                offset,
                size,
                mtime_ns: 0,
                fingerprint,
                splitter: LineSplitter::new(self.limits.max_line),
                decode: self.plans[f.input].start(),
                last_event_end: offset,
                matched: true,
                last_data: Instant::now(),
                deleted_since: None,
                attrs,
            },
        );
        Tracking::Tracked
    }

    /// The stored checkpoint of the file with `key` and `fingerprint`, removed from the
    /// unclaimed set (see [`crate::fingerprint`] for the rules).
    fn claim_checkpoint(
        &mut self,
        key: FileKey,
        file: &File,
        fingerprint: Fingerprint,
    ) -> Option<Checkpoint> {
        if let Some(cp) = self.checkpoints.remove(&key) {
            if cp.fingerprint.matches(file).unwrap_or(false) {
                return Some(cp);
            }
            // The inode was reused by another file.
            tracing::debug!(path = %cp.path.display(), "stored position belongs to an earlier file with the same inode");
            let _ = self.spool.forget(&cp.key());
        }
        if !fingerprint.is_full() {
            return None;
        }
        let moved = self
            .checkpoints
            .iter()
            .find(|(_, cp)| cp.fingerprint == fingerprint)
            .map(|(k, _)| *k)?;
        let cp = self.checkpoints.remove(&moved)?;
        tracing::info!(from = %cp.path.display(), "file matched its stored position by fingerprint (moved or copied to a new inode)");
        let _ = self.spool.forget(&cp.key());
        Some(cp)
    }
}
