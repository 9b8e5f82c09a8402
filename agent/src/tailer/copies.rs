//! Compressed copies of plain files: logrotate's `compress` (with or without
//! `delaycompress`) turns `app.log.1`, already read under its own fingerprint, into
//! `app.log.2.gz`, which has other bytes on disk and so another fingerprint. Reading it as
//! a new file would send its lines twice.
//!
//! The rule, for a compressed file met without a stored position of its own: its
//! decompressed first bytes are compared with the fingerprints of plain files
//! ([`crate::gzip::starts_like`], the same test a plain file's fingerprint passes against
//! the file on disk).
//! - A **tracked** plain file starts like it (its first kilobyte as on disk now; for a file
//!   under 1 KiB, its whole content, as a live file with just a header line must not hold
//!   back every old copy starting with that header): the copy waits (it is not tracked,
//!   and looked at again at each scan) until that file is let go, read to its end. The
//!   decision is then taken on the plain file's final fingerprint and position.
//! - A plain file **read before** (its position stored: renamed out of the globs, deleted,
//!   or read by an agent that was stopped since) starts like it: the copy is read from that
//!   position on, usually its end, so nothing of it is sent again and nothing the plain
//!   file did not get to is lost. The copy's position is stored at once, with the plain
//!   file's last lines if they still wait in the open batch. A full fingerprint (1 KiB)
//!   identifies the plain file on its own; a short one (the plain file was under 1 KiB
//!   when last checkpointed) also needs the copy to lie in the same directory with a name
//!   that starts with the plain file's name up to its first dot (`app.log.1` →
//!   `app.log.2.gz`, `app.log-20260101.gz`): short prefixes such as a header line are not
//!   unique. What a wrong match could skip is only bytes equal to ones already sent.
//! - Otherwise it is a file of its own, read from its start.
//!
//! Positions of deleted plain files are kept for this (while some input reads compressed
//! files), also when a new file takes their inode; they expire after 14 days. A stored
//! position used by a copy is dropped when its file is gone, so that a later file with
//! the same header does not match it too.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::source::Source;
use super::{Tailer, Tracked};
use crate::batcher::FileKey;
use crate::fingerprint::Fingerprint;
use crate::gzip::starts_like;
use crate::spool::{file_key, Checkpoint};

/// What a compressed file is, next to the plain files known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Copy {
    /// A copy of a plain file being read: not read until that file is let go.
    Wait,
    /// A copy of a plain file read up to this content offset.
    Of(u64),
    /// A file of its own.
    None,
}

impl Tailer {
    /// Whether the compressed file `key` at `path`, whose content starts with `prefix`, is
    /// a copy of a plain file (see the module docs).
    pub(super) fn compressed_copy(&mut self, key: FileKey, path: &Path, prefix: &[u8]) -> Copy {
        if let Some((_, plain)) = self
            .files
            .iter()
            .find(|(k, t)| **k != key && t.gzip.is_none() && is_copy_of_tracked(t, prefix))
        {
            tracing::debug!(path = %path.display(), plain = %plain.path.display(), "a compressed copy of a file being read; waiting until that file is let go");
            return Copy::Wait;
        }
        let matches = |cp: &Checkpoint| {
            cp.gzip.is_none()
                && starts_like(&cp.fingerprint, prefix)
                && (cp.fingerprint.is_full() || same_stream(&cp.path, path))
        };
        let best = |a: &&Checkpoint, b: &&Checkpoint| {
            (a.fingerprint.len, a.offset).cmp(&(b.fingerprint.len, b.offset))
        };
        let stored = self
            .checkpoints
            .values()
            .filter(|cp| matches(cp))
            .max_by(best)
            .cloned();
        if let Some(cp) = &stored {
            let found = self.present.get(&(cp.dev, cp.ino));
            if found.is_some_and(|p| still_holds(cp, p)) {
                // The plain file is there, about to be tracked by this scan.
                return Copy::Wait;
            }
        }
        let cp = match stored {
            Some(cp) => cp,
            None => match self.displaced.iter().filter(|cp| matches(cp)).max_by(best) {
                Some(cp) => cp.clone(),
                None => return Copy::None,
            },
        };
        self.metrics.gzip_copies.inc();
        tracing::info!(path = %path.display(), copy_of = %cp.path.display(), offset = cp.offset,
            "a compressed copy of a file already read; reading it past where that file stopped");
        if !holds_file(&cp) {
            self.drop_used_position(&cp);
        }
        Copy::Of(cp.offset)
    }

    /// Forgets the stored position of a plain file that is gone, now that a compressed
    /// copy carries it on. Its stored entry goes once the copy's position is durable (with
    /// the open batch, if there is one).
    fn drop_used_position(&mut self, cp: &Checkpoint) {
        let key = (cp.dev, cp.ino);
        if self
            .checkpoints
            .get(&key)
            .is_some_and(|c| c.fingerprint == cp.fingerprint)
        {
            self.checkpoints.remove(&key);
            if self.batcher.has_open() {
                self.forget_after_seal.push(key);
            } else {
                let _ = self.spool.forget(&file_key(key.0, key.1));
            }
        }
        self.displaced
            .retain(|d| !(d.dev == cp.dev && d.ino == cp.ino && d.fingerprint == cp.fingerprint));
    }
}

/// True when content starting with `prefix` is a copy of the tracked plain file `t`: its
/// first kilobyte, as on disk now, is the same; or, for a file under 1 KiB, its whole
/// content is (a short start alone, such as a header line the live file has, is not
/// enough).
fn is_copy_of_tracked(t: &Tracked, prefix: &[u8]) -> bool {
    // Read again even when the stored fingerprint is full: it predates any truncation the
    // tailer has not looked at yet. A file copytruncated and written again to its old
    // size, then rotated and compressed before the next round, has a copy of its new
    // bytes, which the stored fingerprint (of the old ones) would not recognise.
    let now = t
        .reader
        .as_ref()
        .and_then(Source::file)
        .and_then(|f| Fingerprint::read(f).ok())
        .unwrap_or(t.fingerprint);
    starts_like(&now, prefix) && (now.is_full() || prefix.len() == usize::from(now.len))
}

/// True when the file a checkpoint was written for is still at its last path.
fn holds_file(cp: &Checkpoint) -> bool {
    still_holds(cp, &cp.path)
}

/// True when `path` holds the file `cp` was written for: its device and inode, and first
/// bytes that still match (a new file on a reused inode has others).
fn still_holds(cp: &Checkpoint, path: &Path) -> bool {
    let Ok(file) = super::source::open_read(path) else {
        return false;
    };
    file.metadata()
        .is_ok_and(|m| (m.dev(), m.ino()) == (cp.dev, cp.ino))
        && cp.fingerprint.matches(&file).unwrap_or(false)
}

/// True when `copy` lies in `plain`'s directory and its name starts with `plain`'s name up
/// to the first dot, followed by `.`, `-` or `_` (`app.log.1` → `app.log.2.gz`,
/// `app-2026.gz`).
fn same_stream(plain: &Path, copy: &Path) -> bool {
    let (Some(pname), Some(cname)) = (plain.file_name(), copy.file_name()) else {
        return false;
    };
    let (pname, cname) = (pname.to_string_lossy(), cname.to_string_lossy());
    let stem = pname.split('.').next().unwrap_or_default();
    plain.parent() == copy.parent()
        && !stem.is_empty()
        && cname
            .strip_prefix(stem)
            .is_some_and(|rest| rest.starts_with(['.', '-', '_']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_stream_by_directory_and_name() {
        let yes = [
            ("/l/app.log.1", "/l/app.log.2.gz"),
            ("/l/app.log", "/l/app.log.1.gz"),
            ("/l/app.log", "/l/app-20260101.gz"),
            ("/l/0.log", "/l/0.log.20260101-101010.gz"),
        ];
        for (p, c) in yes {
            assert!(same_stream(Path::new(p), Path::new(c)), "{p} {c}");
        }
        let no = [
            ("/l/app.log", "/m/app.log.1.gz"),
            ("/l/a.log", "/l/access.log.1.gz"),
            ("/l/api.log", "/l/app.log.1.gz"),
            ("/l/.hidden", "/l/.hidden.gz"),
        ];
        for (p, c) in no {
            assert!(!same_stream(Path::new(p), Path::new(c)), "{p} {c}");
        }
    }
}
