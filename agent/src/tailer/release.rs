//! Letting go of files (rotated away, deleted), closing idle ones and opening those that
//! wait for a descriptor; reporting compressed files that end inside a gzip member.

use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use super::source::{open_gzip_at, Source};
use super::{Tailer, Tracked, MAX_GZIP_READERS};
use crate::batcher::FileKey;
use crate::spool::file_key;

impl Tailer {
    /// Lets go of finished files, closes idle ones, opens files waiting for a
    /// descriptor.
    pub(super) fn housekeeping(&mut self) {
        let mut release = Vec::new();
        let mut incomplete = Vec::new();
        for (key, t) in &self.files {
            let at_end = t.at_end();
            let gone = !t.matched || t.deleted_since.is_some();
            if t.reader.as_ref().is_some_and(Source::in_member)
                && t.read_pos >= t.size
                && t.last_data.elapsed() >= self.limits.gzip_incomplete_timeout
            {
                incomplete.push(*key);
            }
            if gone && at_end && t.last_data.elapsed() >= self.limits.rotate_wait {
                release.push((*key, false));
            } else if t
                .deleted_since
                .is_some_and(|d| d.elapsed() >= self.limits.deleted_file_hold)
            {
                release.push((*key, true));
            } else if !t.matched && t.reader.is_none() {
                // Closed while idle and no longer at any matched path: nothing to read.
                release.push((*key, false));
            }
        }
        for key in incomplete {
            self.report_incomplete(key);
        }
        for (key, forced) in release {
            self.release(key, forced);
        }
        self.close_idle();
        self.open_waiting();
        self.update_gauges();
    }

    /// Reports a compressed file that ends inside a gzip member and stopped growing
    /// (once; reading goes on if it grows).
    fn report_incomplete(&mut self, key: FileKey) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        let Some(g) = t.gzip.as_mut() else {
            return;
        };
        if g.reported_incomplete || t.failed {
            return;
        }
        g.reported_incomplete = true;
        self.metrics.gzip_incomplete_files.inc();
        tracing::warn!(path = %t.path.display(), offset = t.offset, size = t.size,
            "a compressed file ends inside a gzip member and has stopped growing (cut short, or its writer stalled); its lines so far were sent, the rest follows if it grows");
    }

    fn release(&mut self, key: FileKey, forced: bool) {
        if self
            .files
            .get(&key)
            .and_then(|t| t.reader.as_ref())
            .is_some_and(Source::in_member)
        {
            self.report_incomplete(key);
        }
        self.close(key);
        let Some(mut t) = self.files.remove(&key) else {
            return;
        };
        self.metrics.files_released.inc();
        // What was read but is still held goes out as it is.
        t.flush_held(key, &mut self.batcher);
        let unread = if t.failed {
            0
        } else {
            t.size.saturating_sub(t.read_pos)
        };
        if forced && unread > 0 {
            self.metrics.deleted_unread_bytes.inc_by(unread);
            tracing::error!(path = %t.path.display(), unread_bytes = unread,
                "a deleted file was held open for tail.deleted_file_hold without being read to its end; letting it go, its unread lines are lost");
        } else {
            tracing::info!(path = %t.path.display(), "released file");
        }
        // Kept when the file may come back into an include glob (renamed back, or a glob
        // that matches it again: it resumes where it stands rather than from 0), and for a
        // deleted plain file when a compressed copy of it may be met later.
        let keep = t.deleted_since.is_none() || (self.keep_deleted_positions && t.gzip.is_none());
        if keep {
            self.checkpoints.insert(key, t.checkpoint(key));
        } else {
            if self.batcher.holds(key) {
                self.forget_after_seal.push(key);
            } else {
                let _ = self.spool.forget(&file_key(key.0, key.1));
            }
        }
    }

    /// Closes `key`'s reader (its position is kept), freeing its descriptor.
    pub(super) fn close(&mut self, key: FileKey) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        if t.reader.take().is_some() {
            self.open_files -= 1;
            if t.gzip.is_some() {
                self.gzip_open -= 1;
            }
        }
    }

    /// Closes files read to their end and unchanged for `close_idle_after`, and, when
    /// files wait for a descriptor, the longest idle ones at their end. A compressed file
    /// read to the end of its last member is complete: it is closed at once (and opened
    /// again, at that member end, only if it grows). One that ends inside a member stays
    /// open until it is reported as incomplete.
    fn close_idle(&mut self) {
        let waiting = self.files.values().filter(|t| t.wants_open()).count();
        let gzip_waiting = self
            .files
            .values()
            .filter(|t| t.gzip.is_some() && t.wants_open())
            .count();
        let mut idle: Vec<(Instant, FileKey, bool)> = self
            .files
            .iter()
            .filter(|(_, t)| {
                let in_member = t.reader.as_ref().is_some_and(Source::in_member);
                t.reader.is_some()
                    && t.matched
                    && t.deleted_since.is_none()
                    && !t.unsaved
                    && t.at_end()
                    && !(in_member && t.gzip.as_ref().is_some_and(|g| !g.reported_incomplete))
            })
            .map(|(k, t)| {
                let complete =
                    t.gzip.is_some() && !t.reader.as_ref().is_some_and(Source::in_member);
                (t.last_data, *k, complete)
            })
            .collect();
        idle.sort();
        let free = self.limits.max_open_files.saturating_sub(self.open_files);
        let mut to_free = waiting.saturating_sub(free);
        let mut gzip_to_free =
            gzip_waiting.saturating_sub(MAX_GZIP_READERS - self.gzip_open.min(MAX_GZIP_READERS));
        for (last, key, complete) in idle {
            let gzip = self.files.get(&key).is_some_and(|t| t.gzip.is_some());
            let due = complete || last.elapsed() >= self.limits.close_idle_after;
            if !due && to_free == 0 && !(gzip && gzip_to_free > 0) {
                continue;
            }
            self.close(key);
            to_free = to_free.saturating_sub(1);
            if gzip {
                gzip_to_free = gzip_to_free.saturating_sub(1);
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
            if t.gzip.is_some() && self.gzip_open >= MAX_GZIP_READERS {
                continue;
            }
            match reopen(t, key) {
                Ok(reader) => {
                    if let Some(p) = reader.file_position() {
                        t.read_pos = p;
                    }
                    t.reader = Some(reader);
                    self.open_files += 1;
                    if t.gzip.is_some() {
                        self.gzip_open += 1;
                    }
                }
                Err(why) => {
                    tracing::info!(path = %t.path.display(), reason = why, "the path no longer holds the file closed while idle; letting it go");
                    t.matched = false;
                }
            }
        }
    }
}

/// Opens a closed file again at its position, if its path still holds it. A compressed
/// file is decoded again from the member start at or before its position.
fn reopen(t: &Tracked, key: FileKey) -> Result<Source, &'static str> {
    let mut file = super::source::open_read(&t.path).map_err(|_| "cannot open")?;
    let meta = file.metadata().map_err(|_| "cannot stat")?;
    if (meta.dev(), meta.ino()) != key {
        return Err("another file is at the path");
    }
    if !t.fingerprint.matches(&file).unwrap_or(false) {
        return Err("the file's first bytes changed");
    }
    if let Some(g) = &t.gzip {
        return Ok(Source::Gzip(Box::new(open_gzip_at(
            file,
            t.offset,
            Some(&g.members),
        ))));
    }
    file.seek(SeekFrom::Start(t.offset.min(meta.len())))
        .map_err(|_| "cannot seek")?;
    Ok(Source::Plain(file))
}
