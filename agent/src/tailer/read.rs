//! Reading: new bytes of every open file, split into lines and decoded into the open
//! batch; partial lines sent after their timeout.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use super::{Tailer, CHUNKS_PER_TURN, COMMIT_WAIT};
use crate::batcher::{now_ms, Committed, FileKey, Origin};
use crate::container::Entry;
use crate::fingerprint::Fingerprint;

impl Tailer {
    /// Reads new data from every open file; true if anything was read.
    pub(super) fn read_all(&mut self) -> bool {
        let mut read_any = false;
        let keys: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, t)| t.file.is_some())
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
        let Some(file) = t.file.as_mut() else {
            return false;
        };
        if let Ok(meta) = file.metadata() {
            if meta.nlink() == 0 && t.deleted_since.is_none() {
                tracing::debug!(path = %t.path.display(), "file deleted; reading it to its end");
                t.deleted_since = Some(Instant::now());
            }
            t.size = meta.len();
            let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            let changed = meta.len() > t.offset || mtime_ns != t.mtime_ns;
            t.mtime_ns = mtime_ns;
            // Truncated, or truncated and written again up to or past the position
            // before this look (copytruncate under a busy writer): the size alone cannot
            // tell the latter, the first bytes can.
            let rewritten = t.offset > 0
                && changed
                && meta.len() >= t.offset
                && !t.fingerprint.matches(file).unwrap_or(true);
            if meta.len() < t.offset || rewritten {
                tracing::info!(path = %t.path.display(), size = meta.len(), offset = t.offset, "file truncated; reading from the start");
                self.metrics.files_truncated.inc();
                t.offset = 0;
                t.last_event_end = 0;
                t.splitter.reset();
                t.decode.reset();
                if file.seek(SeekFrom::Start(0)).is_err() {
                    return false;
                }
                t.fingerprint = Fingerprint::read(file).unwrap_or_default();
            }
        }
        let mut read_any = false;
        for _ in 0..CHUNKS_PER_TURN {
            let n = match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "read failed");
                    break;
                }
            };
            read_any = true;
            t.last_data = Instant::now();
            self.metrics.bytes_read.inc_by(n as u64);
            let base = t.offset;
            t.offset += n as u64;
            t.size = t.size.max(t.offset);
            if !t.fingerprint.is_full() && u64::from(t.fingerprint.len) < t.offset {
                t.fingerprint = Fingerprint::read(file).unwrap_or(t.fingerprint);
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
                    let _ = file.seek(SeekFrom::Start(resume));
                    return read_any;
                }
            }
        }
        let stats = t.decode.take_stats();
        if stats.decode_errors > 0 {
            self.metrics.lines_undecodable.inc_by(stats.decode_errors);
        }
        read_any
    }

    /// Sends partial last lines that have waited longer than the timeout, and what the
    /// decoders held past theirs.
    pub(super) fn flush_stale_partials(&mut self) {
        let now = Instant::now();
        let observed = now_ms();
        for (key, t) in self.files.iter_mut() {
            let origin = Origin {
                key: *key,
                path: &t.path,
                fingerprint: t.fingerprint,
                attrs: &t.attrs,
            };
            let batcher = &mut self.batcher;
            let last_end = &mut t.last_event_end;
            let mut out = |e: Entry<'_>| {
                *last_end = e.end_offset;
                batcher.push(&origin, e, observed);
            };
            if t.splitter.pending() > 0 && t.last_data.elapsed() >= self.limits.partial_timeout {
                let end = t.offset;
                if let Some(line) = t.splitter.flush_partial() {
                    t.decode.push(line, end, now, &mut out);
                }
            }
            t.decode.flush_due(now, &mut out);
        }
    }
}
