//! Splitting a byte stream into lines: a pure core with no I/O.
//!
//! The tailer feeds whatever `read` returned; complete lines come back one by one,
//! borrowed from the chunk when they lie wholly inside it (no copy), or from an internal
//! buffer when they started in an earlier chunk. The newline (and a `\r` before it) is
//! removed.
//!
//! Bounds: at most `max_line` bytes are buffered. A longer line yields its first
//! `max_line` bytes flagged [`FLAG_TRUNCATED`], and the rest up to the next newline is
//! skipped. [`LineSplitter::pending`] tells how many bytes are buffered, so the caller can
//! checkpoint the offset of the first byte not yet emitted.

use logferry_shared::wire::{FLAG_NO_NEWLINE, FLAG_TRUNCATED};

/// A line produced by [`LineSplitter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line without its newline.
    pub bytes: &'a [u8],
    /// `FLAG_*` bits for the wire record.
    pub flags: u8,
}

/// Incremental line splitter with a line length bound.
#[derive(Debug)]
pub struct LineSplitter {
    max_line: usize,
    partial: Vec<u8>,
    out: Vec<u8>,
    skipping: bool,
}

impl LineSplitter {
    /// A splitter that cuts lines at `max_line` bytes.
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter {
            max_line: max_line.max(1),
            partial: Vec::new(),
            out: Vec::new(),
            skipping: false,
        }
    }

    /// Bytes of an unfinished line held back (not yet emitted).
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Forgets any buffered partial line (after a truncation of the file).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.skipping = false;
    }

    /// Next complete line in `data[*pos..]`, advancing `*pos` past what it consumed.
    /// Returns `None` once `data` is used up (the tail is buffered as a partial line).
    pub fn next_line<'a>(&'a mut self, data: &'a [u8], pos: &mut usize) -> Option<Line<'a>> {
        loop {
            let rest = data.get(*pos..).unwrap_or_default();
            if rest.is_empty() {
                return None;
            }
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                *pos = data.len();
                if self.skipping {
                    return None;
                }
                let room = self.max_line - self.partial.len();
                if rest.len() < room {
                    self.partial.extend_from_slice(rest);
                    return None;
                }
                // The line reaches the bound without a newline: emit what fits, skip the rest.
                self.partial.extend_from_slice(&rest[..room]);
                self.skipping = true;
                return Some(self.emit_partial(FLAG_TRUNCATED));
            };
            *pos += nl + 1;
            if self.skipping {
                self.skipping = false;
                continue;
            }
            let body = strip_cr(&rest[..nl]);
            if self.partial.is_empty() {
                if body.len() > self.max_line {
                    return Some(Line {
                        bytes: &body[..self.max_line],
                        flags: FLAG_TRUNCATED,
                    });
                }
                return Some(Line {
                    bytes: body,
                    flags: 0,
                });
            }
            let room = self.max_line - self.partial.len();
            let take = &rest[..nl];
            if take.len() > room {
                self.partial.extend_from_slice(&take[..room]);
                return Some(self.emit_partial(FLAG_TRUNCATED));
            }
            self.partial.extend_from_slice(take);
            if self.partial.last() == Some(&b'\r') {
                self.partial.pop();
            }
            return Some(self.emit_partial(0));
        }
    }

    /// Emits the buffered partial line as is, flagged as having no newline (used when a
    /// writer left a last line unfinished for longer than the timeout).
    pub fn flush_partial(&mut self) -> Option<Line<'_>> {
        if self.partial.is_empty() {
            return None;
        }
        Some(self.emit_partial(FLAG_NO_NEWLINE))
    }

    fn emit_partial(&mut self, flags: u8) -> Line<'_> {
        std::mem::swap(&mut self.partial, &mut self.out);
        self.partial.clear();
        Line {
            bytes: &self.out,
            flags,
        }
    }
}

fn strip_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` and collects (line, flags), plus the pending count at the end.
    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<(Vec<u8>, u8)>, usize) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            let mut pos = 0;
            while let Some(l) = s.next_line(chunk, &mut pos) {
                out.push((l.bytes.to_vec(), l.flags));
            }
            assert_eq!(pos, chunk.len());
        }
        (out, s.pending())
    }

    fn plain(lines: &[&str]) -> Vec<(Vec<u8>, u8)> {
        lines.iter().map(|l| (l.as_bytes().to_vec(), 0)).collect()
    }

    #[test]
    fn splits_whole_and_partial_lines() {
        let (lines, pending) = split(100, &[b"a\nbb\ncc", b"c\n\nd\r\ne", b"e"]);
        assert_eq!(lines, plain(&["a", "bb", "ccc", "", "d"]));
        assert_eq!(pending, 2);
    }

    #[test]
    fn crlf_split_across_chunks() {
        let (lines, _) = split(100, &[b"abc\r", b"\nx\n"]);
        assert_eq!(lines, plain(&["abc", "x"]));
    }

    #[test]
    fn long_lines_are_truncated_and_the_rest_skipped() {
        let (lines, pending) = split(4, &[b"abcdefgh\nok\n"]);
        assert_eq!(
            lines,
            vec![(b"abcd".to_vec(), FLAG_TRUNCATED), (b"ok".to_vec(), 0)]
        );
        assert_eq!(pending, 0);
        // Across chunks: the bound is hit while buffering.
        let (lines, pending) = split(4, &[b"ab", b"cdef", b"gh", b"i\nok\n"]);
        assert_eq!(
            lines,
            vec![(b"abcd".to_vec(), FLAG_TRUNCATED), (b"ok".to_vec(), 0)]
        );
        assert_eq!(pending, 0);
        // Partial, then a newline-terminated piece that overflows.
        let (lines, _) = split(4, &[b"ab", b"cdefg\nz\n"]);
        assert_eq!(
            lines,
            vec![(b"abcd".to_vec(), FLAG_TRUNCATED), (b"z".to_vec(), 0)]
        );
        // Exactly max_line bytes is not truncated.
        let (lines, _) = split(4, &[b"abcd\n"]);
        assert_eq!(lines, plain(&["abcd"]));
    }

    #[test]
    fn a_50_mib_line_costs_at_most_the_bound() {
        let mut s = LineSplitter::new(1 << 20);
        let chunk = vec![b'x'; 1 << 20];
        let mut emitted = Vec::new();
        for _ in 0..50 {
            let mut pos = 0;
            while let Some(l) = s.next_line(&chunk, &mut pos) {
                emitted.push((l.bytes.len(), l.flags));
            }
            assert!(s.pending() <= 1 << 20);
        }
        let mut pos = 0;
        let end = b"\nnext\n";
        while let Some(l) = s.next_line(end, &mut pos) {
            emitted.push((l.bytes.len(), l.flags));
        }
        assert_eq!(emitted, vec![(1 << 20, FLAG_TRUNCATED), (4, 0)]);
    }

    #[test]
    fn flush_partial_emits_an_unfinished_line_once() {
        let mut s = LineSplitter::new(100);
        let mut pos = 0;
        assert!(s.next_line(b"no newline", &mut pos).is_none());
        let l = s.flush_partial().unwrap();
        assert_eq!((l.bytes, l.flags), (&b"no newline"[..], FLAG_NO_NEWLINE));
        assert!(s.flush_partial().is_none());
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn arbitrary_chunking_gives_the_same_lines() {
        let text: Vec<u8> = (0..300)
            .flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 17)).into_bytes())
            .collect();
        let (whole, _) = split(1000, &[&text]);
        for size in [1, 2, 3, 7, 64, 1000] {
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            let (parts, pending) = split(1000, &chunks);
            assert_eq!(parts, whole, "chunk size {size}");
            assert_eq!(pending, 0);
        }
    }
}
