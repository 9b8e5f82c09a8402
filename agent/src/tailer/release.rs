//! Letting go of files (rotated away, deleted), closing idle ones and opening those that
//! wait for a descriptor.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use super::{Tailer, Tracked};
use crate::batcher::{now_ms, FileKey, Origin};
use crate::container::Entry;
use crate::spool::{file_key, Checkpoint};

impl Tailer {
    /// Lets go of finished files, closes idle ones, opens files waiting for a
    /// descriptor.
    pub(super) fn housekeeping(&mut self) {
        let mut release = Vec::new();
        for (key, t) in &self.files {
            let at_end = t.splitter.pending() == 0 && !t.decode.is_holding() && t.offset >= t.size;
            let gone = !t.matched || t.deleted_since.is_some();
            if gone && at_end && t.last_data.elapsed() >= self.limits.rotate_wait {
                release.push((*key, false));
            } else if t
                .deleted_since
                .is_some_and(|d| d.elapsed() >= self.limits.deleted_file_hold)
            {
                release.push((*key, true));
            } else if !t.matched && t.file.is_none() {
                // Closed while idle and no longer at any matched path: nothing to read.
                release.push((*key, false));
            }
        }
        for (key, forced) in release {
            self.release(key, forced);
        }
        self.close_idle();
        self.open_waiting();
        self.update_gauges();
    }

    fn release(&mut self, key: FileKey, forced: bool) {
        let Some(mut t) = self.files.remove(&key) else {
            return;
        };
        if t.file.is_some() {
            self.open_files -= 1;
        }
        self.metrics.files_released.inc();
        // What was read but is still held goes out as it is.
        let origin = Origin {
            key,
            path: &t.path,
            fingerprint: t.fingerprint,
            attrs: &t.attrs,
        };
        let batcher = &mut self.batcher;
        let last_end = &mut t.last_event_end;
        let observed = now_ms();
        let mut out = |e: Entry<'_>| {
            *last_end = e.end_offset;
            batcher.push(&origin, e, observed);
        };
        if let Some(line) = t.splitter.flush_partial() {
            t.decode.push(line, t.offset, Instant::now(), &mut out);
        }
        t.decode.take_pending(&mut out);
        let unread = t.size.saturating_sub(t.offset);
        if forced && unread > 0 {
            self.metrics.deleted_unread_bytes.inc_by(unread);
            tracing::error!(path = %t.path.display(), unread_bytes = unread,
                "a deleted file was held open for tail.deleted_file_hold without being read to its end; letting it go, its unread lines are lost");
        } else {
            tracing::info!(path = %t.path.display(), "released file");
        }
        if t.deleted_since.is_none() {
            // It may come back into an include glob (renamed back, or a glob that
            // matches it again): resume where it stands rather than from 0.
            self.checkpoints.insert(
                key,
                Checkpoint {
                    offset: t.last_event_end,
                    path: t.path.clone(),
                    dev: key.0,
                    ino: key.1,
                    fingerprint: t.fingerprint,
                    updated_ms: now_ms(),
                },
            );
        } else {
            if self.batcher.holds(key) {
                self.forget_after_seal.push(key);
            } else {
                let _ = self.spool.forget(&file_key(key.0, key.1));
            }
        }
    }

    /// Closes files read to their end and unchanged for `close_idle_after`, and, when
    /// files wait for a descriptor, the longest idle ones at their end.
    fn close_idle(&mut self) {
        let waiting = self.files.values().filter(|t| t.wants_open()).count();
        let mut idle: Vec<(Instant, FileKey)> = self
            .files
            .iter()
            .filter(|(_, t)| {
                t.file.is_some()
                    && t.matched
                    && t.deleted_since.is_none()
                    && t.splitter.pending() == 0
                    && !t.decode.is_holding()
                    && t.offset >= t.size
            })
            .map(|(k, t)| (t.last_data, *k))
            .collect();
        idle.sort();
        let free = self.limits.max_open_files.saturating_sub(self.open_files);
        let mut to_free = waiting.saturating_sub(free);
        for (last, key) in idle {
            let due = last.elapsed() >= self.limits.close_idle_after;
            if !due && to_free == 0 {
                continue;
            }
            if let Some(t) = self.files.get_mut(&key) {
                t.file = None;
                self.open_files -= 1;
                to_free = to_free.saturating_sub(1);
            }
        }
    }

    /// Opens closed files that have data to read, as descriptors allow.
    fn open_waiting(&mut self) {
        let mut wanting: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, t)| t.wants_open())
            .map(|(k, _)| *k)
            .collect();
        wanting.sort_by_key(|k| self.files.get(k).map(|t| t.last_data));
        for key in wanting {
            if self.open_files >= self.limits.max_open_files {
                break;
            }
            let Some(t) = self.files.get_mut(&key) else {
                continue;
            };
            match reopen(t, key) {
                Ok(file) => {
                    t.file = Some(file);
                    self.open_files += 1;
                }
                Err(why) => {
                    tracing::info!(path = %t.path.display(), reason = why, "the path no longer holds the file closed while idle; letting it go");
                    t.matched = false;
                }
            }
        }
    }
}

/// Opens a closed file again at its position, if its path still holds it.
fn reopen(t: &Tracked, key: FileKey) -> Result<File, &'static str> {
    let mut file = File::open(&t.path).map_err(|_| "cannot open")?;
    let meta = file.metadata().map_err(|_| "cannot stat")?;
    if (meta.dev(), meta.ino()) != key {
        return Err("another file is at the path");
    }
    if !t.fingerprint.matches(&file).unwrap_or(false) {
        return Err("the file's first bytes changed");
    }
    file.seek(SeekFrom::Start(t.offset.min(meta.len())))
        .map_err(|_| "cannot seek")?;
    Ok(file)
}
