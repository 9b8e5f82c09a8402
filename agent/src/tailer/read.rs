//! Reading: new bytes of every open file (decompressed, for a compressed one), split into
//! lines and decoded into the open batch; partial lines sent after their timeout; a
//! compressed file that does not decode reported and skipped.

use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use super::source::{Kind, ReadError, Source};
use super::track::first_bytes;
use super::{GzipState, Tailer, CHUNKS_PER_TURN, COMMIT_WAIT};
use crate::batcher::{now_ms, Committed, FileKey, Origin};
use crate::config::InputCompression;
use crate::container::Entry;
use crate::fingerprint::Fingerprint;
use crate::gzip::{GzipError, MemberLog, MemberStart, Step};

impl Tailer {
    /// Reads new data from every open file; true if anything was read.
    pub(super) fn read_all(&mut self) -> bool {
        let mut read_any = false;
        let keys: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, t)| t.reader.is_some())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if self.shutdown.is_triggered() || self.batcher.has_pending() {
                break;
            }
            read_any |= self.read_file(key);
        }
        read_any
    }

    fn read_file(&mut self, key: FileKey) -> bool {
        let Some(t) = self.files.get_mut(&key) else {
            return false;
        };
        let Some(meta) = t.reader.as_ref().and_then(|r| r.file()?.metadata().ok()) else {
            return false;
        };
        if meta.nlink() == 0 && t.deleted_since.is_none() {
            tracing::debug!(path = %t.path.display(), "file deleted; reading it to its end");
            t.deleted_since = Some(Instant::now());
        }
        t.size = meta.len();
        let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
        let changed = meta.len() > t.read_pos || mtime_ns != t.mtime_ns;
        t.mtime_ns = mtime_ns;
        // Truncated, or truncated and written again up to or past the position before
        // this look (copytruncate under a busy writer): the size alone cannot tell the
        // latter, the first bytes can.
        let rewritten = t.read_pos > 0
            && changed
            && meta.len() >= t.read_pos
            && !t
                .reader
                .as_ref()
                .and_then(Source::file)
                .is_none_or(|f| t.fingerprint.matches(f).unwrap_or(true));
        if meta.len() < t.read_pos || rewritten {
            tracing::info!(path = %t.path.display(), size = meta.len(), offset = t.read_pos, "file truncated; reading from the start");
            self.metrics.files_truncated.inc();
            t.offset = 0;
            t.read_pos = 0;
            t.last_event_end = 0;
            t.splitter.reset();
            t.decode.reset();
            if let Some(g) = t.gzip.as_mut() {
                *g = GzipState {
                    members: MemberLog::new(MemberStart::default()),
                    reported_incomplete: false,
                };
            }
            if !self.seek(key, 0) {
                return false;
            }
            let Some(t) = self.files.get_mut(&key) else {
                return false;
            };
            t.fingerprint = t
                .reader
                .as_ref()
                .and_then(Source::file)
                .and_then(|f| Fingerprint::read(f).ok())
                .unwrap_or_default();
        }
        if !self.decide_kind(key) {
            return false;
        }
        let Some(t) = self.files.get_mut(&key) else {
            return false;
        };
        let mut read_any = false;
        let mut corrupt = None;
        for _ in 0..CHUNKS_PER_TURN {
            let Some(reader) = t.reader.as_mut() else {
                break;
            };
            let step = match reader.read(&mut self.buf, t.gzip.as_mut().map(|g| &mut g.members)) {
                Ok(step) => step,
                Err(ReadError::Io(e)) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "read failed");
                    break;
                }
                Err(ReadError::Corrupt(e)) => {
                    corrupt = Some(e);
                    break;
                }
            };
            if let Some(p) = reader.file_position() {
                if p > t.read_pos {
                    // Compressed bytes read count as data even before they decode, so a
                    // slowly written compressed file is not taken for one that stopped.
                    t.last_data = Instant::now();
                }
                t.read_pos = p;
            }
            let n = match step {
                Step::Data(n) => n,
                Step::Skipped(_) => {
                    // Progress on the way to the resume offset: counts as reading, so the
                    // tailer does not sleep between turns of a long skip.
                    read_any = true;
                    t.offset = reader.gzip_position().unwrap_or(t.offset);
                    continue;
                }
                Step::Pending | Step::Complete => break,
            };
            read_any = true;
            t.last_data = Instant::now();
            self.metrics.bytes_read.inc_by(n as u64);
            let base = t.offset;
            t.offset += n as u64;
            if t.gzip.is_none() {
                t.read_pos = t.offset;
            }
            t.size = t.size.max(t.read_pos);
            if !t.fingerprint.is_full() && u64::from(t.fingerprint.len) < t.read_pos {
                if let Some(f) = reader.file() {
                    t.fingerprint = Fingerprint::read(f).unwrap_or(t.fingerprint);
                }
            }
            let observed = now_ms();
            let now = Instant::now();
            let data = &self.buf[..n];
            let mut pos = 0;
            let origin = Origin {
                key,
                path: &t.path,
                fingerprint: t.fingerprint,
                attrs: &t.attrs,
                gzip: t.gzip.as_ref().map(|g| &g.members),
            };
            while let Some(line) = t.splitter.next_line(data, &mut pos) {
                let batcher = &mut self.batcher;
                let last_end = &mut t.last_event_end;
                t.decode
                    .push(line, base + pos as u64, now, &mut |e: Entry<'_>| {
                        *last_end = e.end_offset;
                        batcher.push(&origin, e, observed);
                    });
                if self.batcher.is_full() && self.batcher.seal(COMMIT_WAIT) != Committed::Done {
                    // The sealed batch waits for room. What follows its last event is in
                    // no batch: drop what the splitter and decoders hold, rewind to just
                    // after that event, and read it again once the batch is in the spool.
                    let resume = t.last_event_end;
                    t.offset = resume;
                    t.splitter.reset();
                    t.decode.reset();
                    self.seek(key, resume);
                    return read_any;
                }
            }
        }
        let stats = t.decode.take_stats();
        if stats.decode_errors > 0 {
            self.metrics.lines_undecodable.inc_by(stats.decode_errors);
        }
        if let Some(g) = t.gzip.as_mut() {
            g.members.prune(t.last_event_end);
        }
        let skipped_to_end = t.unsaved
            && t.splitter.pending() == 0
            && !t.decode.is_holding()
            && t.reader.as_ref().is_some_and(|r| !r.is_skipping());
        if skipped_to_end {
            // A compressed file skipped to its end (`read_from = "end"`): that is its
            // position now.
            t.last_event_end = t.offset;
            self.save_position(key);
        }
        if let Some(e) = corrupt {
            self.fail(key, e);
        }
        read_any
    }

    /// Moves `key`'s reader to content offset `offset`; false (and the file closed, to be
    /// opened again) when that fails.
    fn seek(&mut self, key: FileKey, offset: u64) -> bool {
        let Some(t) = self.files.get_mut(&key) else {
            return false;
        };
        let Some(reader) = t.reader.take() else {
            return false;
        };
        match reader.seek(offset, t.gzip.as_ref().map(|g| &g.members)) {
            Ok(r) => {
                t.read_pos = r.file_position().unwrap_or(offset);
                t.reader = Some(r);
                true
            }
            Err(e) => {
                tracing::warn!(path = %t.path.display(), error = %e, "cannot seek; closing the file to open it again");
                t.read_pos = offset.min(t.read_pos);
                self.close(key);
                false
            }
        }
    }

    /// For a file of an `auto` input too short to tell at first: decides how it is read
    /// once it has two bytes. A compressed one is let go, to be met again by the next
    /// scan as a compressed file (nothing of it was read). False when the file is not to
    /// be read now.
    fn decide_kind(&mut self, key: FileKey) -> bool {
        let Some(t) = self.files.get_mut(&key) else {
            return false;
        };
        if t.kind != Kind::Undecided {
            return true;
        }
        let prefix = t
            .reader
            .as_ref()
            .and_then(Source::file)
            .map(first_bytes)
            .unwrap_or_default();
        match Kind::of(InputCompression::Auto, &t.path, &prefix) {
            Kind::Undecided => false,
            Kind::Plain => {
                t.kind = Kind::Plain;
                true
            }
            Kind::Gzip => {
                tracing::debug!(path = %t.path.display(), "the file turned out gzip-compressed; meeting it again as such");
                if self.files.remove(&key).is_some_and(|t| t.reader.is_some()) {
                    self.open_files -= 1;
                }
                self.next_scan = Instant::now();
                false
            }
        }
    }

    /// A compressed file that does not decode: its lines so far are kept (a last partial
    /// line goes out as it is), the rest is skipped, and it is reported.
    fn fail(&mut self, key: FileKey, error: GzipError) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        self.metrics.gzip_corrupt_files.inc();
        tracing::error!(path = %t.path.display(), error = %error, offset = t.offset,
            "a compressed file does not decode; its lines before the damage were sent, the rest of it is skipped");
        t.failed = true;
        t.flush_held(key, &mut self.batcher);
        self.close(key);
    }

    /// Sends partial last lines that have waited longer than the timeout (in a compressed
    /// file, only at the end of a member or once it is reported as cut short), and what
    /// the decoders held past theirs.
    pub(super) fn flush_stale_partials(&mut self) {
        let now = Instant::now();
        let observed = now_ms();
        for (key, t) in self.files.iter_mut() {
            let origin = Origin {
                key: *key,
                path: &t.path,
                fingerprint: t.fingerprint,
                attrs: &t.attrs,
                gzip: t.gzip.as_ref().map(|g| &g.members),
            };
            let batcher = &mut self.batcher;
            let last_end = &mut t.last_event_end;
            let mut out = |e: Entry<'_>| {
                *last_end = e.end_offset;
                batcher.push(&origin, e, observed);
            };
            // Inside a gzip member the rest of the line is known to follow (the member is
            // not complete): it waits until the file is reported as cut short.
            let mid_member = t.reader.as_ref().is_some_and(Source::in_member)
                && t.gzip.as_ref().is_some_and(|g| !g.reported_incomplete);
            if t.splitter.pending() > 0
                && !mid_member
                && t.last_data.elapsed() >= self.limits.partial_timeout
            {
                let end = t.offset;
                if let Some(line) = t.splitter.flush_partial() {
                    t.decode.push(line, end, now, &mut out);
                }
            }
            t.decode.flush_due(now, &mut out);
        }
    }
}
