//! Meeting a file: opening it, telling copies apart, deciding how it is read (as it is,
//! or decompressed) and finding its stored position (for a compressed file without one,
//! see `copies.rs`).

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, Instant, SystemTime};

use super::copies::Copy;
use super::source::{open_gzip_at, Kind, Source};
use super::{source_attrs, GzipState, Tailer, Tracked, MAX_DISPLACED, MAX_GZIP_READERS};
use crate::batcher::{FileKey, Origin};
use crate::config::{InputCompression, ReadFrom};
use crate::discover::Found;
use crate::fingerprint::Fingerprint;
use crate::gzip::{self, Content, GzipReader, MemberLog, MemberStart};
use crate::lines::LineSplitter;
use crate::spool::Checkpoint;

/// Where reading a newly tracked file starts.
struct Start {
    /// Content offset.
    offset: u64,
    /// For a compressed file with a stored position: the member start to decode from.
    member: Option<MemberStart>,
    /// The position is not in any checkpoint yet and must be stored.
    unsaved: bool,
    /// Skip what a compressed file holds now (`read_from = "end"`).
    to_end: bool,
}

/// How long ago a file was last modified.
fn age(meta: &std::fs::Metadata) -> Option<Duration> {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
}

/// The file's first two bytes (fewer if it is shorter), for telling its kind.
pub(super) fn first_bytes(file: &File) -> Vec<u8> {
    let mut buf = [0u8; 2];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    buf[..n].to_vec()
}

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
        let compression = input.compression;
        if !self.checkpoints.contains_key(&key) {
            if let Some(max_age) = input.ignore_older {
                if age(&f.meta).is_some_and(|age| age > max_age) {
                    return Tracking::Skipped;
                }
            }
        }
        let file = match super::source::open_read(&f.path) {
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
        let prefix = first_bytes(&file);
        let kind = Kind::of(compression, &f.path, &prefix);
        if kind == Kind::Plain && compression == InputCompression::None && gzip::has_magic(&prefix)
        {
            tracing::warn!(path = %f.path.display(), "the file looks gzip-compressed but its input reads files as they are; set compression = \"auto\" on the input, or exclude the file");
        }
        let size = f.meta.len();
        let start = match kind {
            Kind::Gzip => match self.gzip_start(key, &f, &file, fingerprint, start_at_end) {
                Some(start) => start,
                None => return Tracking::Skipped,
            },
            Kind::Plain | Kind::Undecided => {
                let offset = match self.claim_checkpoint(key, &file, fingerprint) {
                    Some(cp) if cp.gzip.is_some() => {
                        tracing::info!(path = %f.path.display(), "the stored position counts decompressed bytes but the file is read as it is now; reading from the start");
                        0
                    }
                    Some(cp) if cp.offset <= size => cp.offset,
                    Some(cp) => {
                        tracing::info!(path = %f.path.display(), size, offset = cp.offset, "file shrank while not watched; reading from the start");
                        0
                    }
                    // A file too short to tell its kind has at most one byte: from 0.
                    None if start_at_end && kind == Kind::Plain => size,
                    None => 0,
                };
                Start {
                    offset,
                    member: None,
                    unsaved: false,
                    to_end: false,
                }
            }
        };
        let gzip = (kind == Kind::Gzip).then(|| GzipState {
            members: MemberLog::new(start.member.unwrap_or_default()),
            reported_incomplete: false,
        });
        let open = self.open_files < self.limits.max_open_files
            && (gzip.is_none() || self.gzip_open < MAX_GZIP_READERS);
        let reader = if !open {
            None
        } else if let Some(g) = &gzip {
            Some(Source::Gzip(Box::new(if start.to_end {
                GzipReader::open_at_end(file)
            } else {
                open_gzip_at(file, start.offset, Some(&g.members))
            })))
        } else {
            let mut file = file;
            if let Err(e) = file.seek(SeekFrom::Start(start.offset)) {
                tracing::warn!(path = %f.path.display(), error = %e, "cannot seek");
                return Tracking::Skipped;
            }
            Some(Source::Plain(file))
        };
        if reader.is_some() {
            self.open_files += 1;
            if gzip.is_some() {
                self.gzip_open += 1;
            }
        }
        let attrs = source_attrs(&f.path);
        tracing::info!(path = %f.path.display(), offset = start.offset, compressed = gzip.is_some(), "tailing file");
        self.files.insert(
            key,
            Tracked {
                path: f.path,
                input: f.input,
                reader,
                offset: start.offset,
                read_pos: if gzip.is_some() { 0 } else { start.offset },
                size,
                mtime_ns: 0,
                fingerprint,
                kind,
                gzip,
                failed: false,
                unsaved: start.unsaved || start.to_end,
                splitter: LineSplitter::new(self.limits.max_line),
                decode: self.plans[f.input].start(),
                last_event_end: start.offset,
                matched: true,
                last_data: Instant::now(),
                deleted_since: None,
                attrs,
            },
        );
        if start.unsaved {
            self.save_position(key);
        }
        Tracking::Tracked
    }

    /// Where reading a compressed file starts: its stored position; else, for a
    /// compressed copy of a plain file already read, where that file's reading stands;
    /// else its start (or its end, for `read_from = "end"`). `None` when it cannot be
    /// told yet: its start is still being written, or it is a copy of a plain file still
    /// being read (the copy is read once that file is let go, from where it stopped).
    fn gzip_start(
        &mut self,
        key: FileKey,
        f: &Found,
        file: &File,
        fingerprint: Fingerprint,
        start_at_end: bool,
    ) -> Option<Start> {
        let fresh = |offset| Start {
            offset,
            member: None,
            unsaved: false,
            to_end: false,
        };
        // The stored position of a plain file that was empty identifies nothing (its empty
        // fingerprint matches any file): a compressed file that took its inode after it was
        // deleted would be read as its continuation, from the start, and never be checked
        // for being a compressed copy below. Its position is 0, so nothing is lost.
        if self
            .checkpoints
            .get(&key)
            .is_some_and(|cp| cp.gzip.is_none() && cp.fingerprint.len == 0)
        {
            if let Some(cp) = self.checkpoints.remove(&key) {
                let _ = self.spool.forget(&cp.key());
            }
        }
        if let Some(cp) = self.claim_checkpoint(key, file, fingerprint) {
            return Some(match cp.gzip {
                Some(member) if member.content_offset <= cp.offset => Start {
                    member: Some(member),
                    ..fresh(cp.offset)
                },
                Some(_) => fresh(cp.offset),
                None => {
                    tracing::info!(path = %f.path.display(), "the stored position counts the file's raw bytes but the file is read decompressed now; reading from the start");
                    fresh(0)
                }
            });
        }
        let content = match gzip::content_prefix(file) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "cannot read file");
                return None;
            }
        };
        match content {
            Content::Known(prefix) => match self.compressed_copy(key, &f.path, &prefix) {
                Copy::Of(offset) => {
                    return Some(Start {
                        unsaved: true,
                        ..fresh(offset)
                    })
                }
                Copy::Wait => return None,
                Copy::None => {}
            },
            Content::NotYet
                if age(&f.meta).is_none_or(|a| a < self.limits.gzip_incomplete_timeout) =>
            {
                // Not enough decodes yet to tell whose copy it is: looked at again at the
                // next scan.
                return None;
            }
            Content::NotYet | Content::Corrupt => {}
        }
        if start_at_end {
            return Some(Start {
                to_end: true,
                ..fresh(0)
            });
        }
        Some(fresh(0))
    }

    /// Makes the position of a file none of whose lines are in a batch durable: with the
    /// open batch (so after the lines read before it, e.g. the plain file's last lines
    /// when this is its compressed copy), or on its own when nothing waits.
    pub(super) fn save_position(&mut self, key: FileKey) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        t.unsaved = false;
        let origin = Origin {
            key,
            path: &t.path,
            fingerprint: t.fingerprint,
            attrs: &t.attrs,
            gzip: t.gzip.as_ref().map(|g| &g.members),
        };
        if self.batcher.note_position(&origin, t.last_event_end) {
            return;
        }
        let cp = t.checkpoint(key);
        if let Err(e) = self.spool.save_checkpoint(&cp) {
            tracing::error!(path = %t.path.display(), error = %e, "cannot store a file's position; after a restart its lines may be read again");
        }
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
            if self.keep_deleted_positions && cp.gzip.is_none() {
                // A compressed copy of that earlier file may still turn up.
                if self.displaced.len() >= MAX_DISPLACED {
                    self.displaced.pop_front();
                }
                self.displaced.push_back(cp);
            }
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
