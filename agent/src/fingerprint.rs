//! File identity: which file on disk is the one a checkpoint was written for.
//!
//! The scheme, in the order the tailer applies it when it meets a file it is not
//! already reading (at start, or when a path starts pointing at another file):
//!
//! 1. The **fingerprint** is the length and the 64-bit XXH3 hash of the file's first
//!    `min(size, FINGERPRINT_BYTES)` bytes (1 KiB). It is stored with every checkpoint.
//! 2. A checkpoint belongs to the file when the file has at least the checkpoint's
//!    fingerprint length and the hash of that many first bytes is equal, **and**
//!    - the fingerprint is full (1 KiB): the first kilobyte identifies the file, whatever
//!      its device, inode or path (the file was moved, restored, or the agent restarted);
//!    - or the fingerprint is short (the file was smaller than 1 KiB when checkpointed):
//!      device and inode must match too, because short prefixes such as a shared header
//!      line are not unique.
//! 3. Otherwise it is a new file. In particular, an inode reused by a new file is
//!    recognised as new: its first bytes differ from the old file's.
//!
//! Two live files whose first kilobyte is identical (e.g. `copy`-rotated duplicates)
//! have the same full fingerprint: the tailer then reads only the one it met first and
//! counts the other as a duplicate, as a copy must not be sent twice.
//!
//! While a file is open, the tailer knows it by its open descriptor (device and inode),
//! so renames and deletion never confuse it; fingerprints matter only for files it meets
//! again after a restart or after closing an idle file.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes hashed from the start of a file.
pub const FINGERPRINT_BYTES: usize = 1024;

/// Length and hash of a file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// Bytes hashed: `min(size, FINGERPRINT_BYTES)` when taken.
    pub len: u16,
    /// XXH3-64 of those bytes.
    pub hash: u64,
}

impl Fingerprint {
    /// Fingerprint of `bytes`, which are at most [`FINGERPRINT_BYTES`] long.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let bytes = &bytes[..bytes.len().min(FINGERPRINT_BYTES)];
        Fingerprint {
            len: bytes.len() as u16,
            hash: xxhash_rust::xxh3::xxh3_64(bytes),
        }
    }

    /// True when this fingerprint covers the full [`FINGERPRINT_BYTES`].
    pub fn is_full(&self) -> bool {
        usize::from(self.len) >= FINGERPRINT_BYTES
    }

    /// Reads the first bytes of `file` (without moving its position).
    pub fn read(file: &File) -> std::io::Result<Fingerprint> {
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let n = read_prefix(file, &mut buf)?;
        Ok(Fingerprint::of(&buf[..n]))
    }

    /// True when `file` starts with the bytes this fingerprint was taken of.
    pub fn matches(&self, file: &File) -> std::io::Result<bool> {
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let want = usize::from(self.len).min(FINGERPRINT_BYTES);
        let n = read_prefix(file, &mut buf[..want])?;
        Ok(n == want && Fingerprint::of(&buf[..n]) == *self)
    }
}

/// Fills `buf` from offset 0 of `file` as far as the file goes; returns the bytes read.
fn read_prefix(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        let r = File::open(f.path()).unwrap();
        (f, r)
    }

    #[test]
    fn short_file_fingerprint_grows_and_still_matches_its_prefix() {
        let (mut tmp, f) = file_with(b"header\nline 1\n");
        let short = Fingerprint::read(&f).unwrap();
        assert_eq!(short.len, 14);
        assert!(!short.is_full());
        tmp.write_all(&[b'x'; 2000]).unwrap();
        tmp.flush().unwrap();
        assert!(short.matches(&f).unwrap(), "a grown file keeps its prefix");
        let full = Fingerprint::read(&f).unwrap();
        assert!(full.is_full());
        assert!(full.matches(&f).unwrap());
    }

    #[test]
    fn different_content_does_not_match() {
        let (_a, fa) = file_with(&[b'a'; 1500]);
        let (_b, fb) = file_with(&[b'b'; 1500]);
        let fp = Fingerprint::read(&fa).unwrap();
        assert!(!fp.matches(&fb).unwrap());
    }

    #[test]
    fn a_file_shorter_than_the_fingerprint_does_not_match() {
        let (_a, fa) = file_with(&[b'a'; 1500]);
        let (_b, fb) = file_with(&[b'a'; 100]);
        let fp = Fingerprint::read(&fa).unwrap();
        assert!(!fp.matches(&fb).unwrap());
    }

    #[test]
    fn reading_does_not_move_the_file_position() {
        use std::io::{Read, Seek, SeekFrom};
        let (_a, mut fa) = file_with(b"0123456789");
        fa.seek(SeekFrom::Start(4)).unwrap();
        Fingerprint::read(&fa).unwrap();
        let mut rest = String::new();
        fa.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "456789");
    }
}
