//! Reading gzip-compressed log files (rotated `*.gz`) as a stream of decompressed bytes,
//! for inputs with `compression = "gzip"` or `"auto"`.
//!
//! **Streaming, bounded memory.** A file is decompressed member by member as it is read,
//! into the tailer's one read buffer: what one file costs is its inflate state and a
//! 32 KiB input buffer (about 100 KiB), whatever the file's size. Nothing is ever
//! decompressed whole into memory. Files made of several members (`gzip -c a b`,
//! `cat a.gz b.gz`, what logrotate's `compress` and some writers produce) are read member
//! after member.
//!
//! **A file still being written.** The end of the bytes on disk is "no data yet", never
//! the end of the stream: a member cut short is waited for, like a plain file that has
//! not grown yet ([`Step::Pending`]), and reading goes on when more bytes arrive. Only a
//! member whose bytes do not decode (or whose checksum is wrong) is an error
//! ([`GzipError::Corrupt`]); what decoded before it has been returned already (the last
//! bytes before the damage may be garbled: deflate carries no checksum until the end of
//! a member).
//!
//! **Positions.** gzip is not seekable, so a file's position is counted in decompressed
//! bytes (the content offset), and the file offset of each member's start is noted
//! ([`MemberLog`]): a member is decodable on its own, so resuming at a content offset
//! decodes from the start of the member holding it and discards the bytes before the
//! offset. For a file of one member (what `gzip` writes) that means decompressing the
//! file again up to the offset; a file read to its end resumes at its end for free.
//!
//! **Identity.** The tailer fingerprints a compressed file by its compressed first bytes
//! like any file (see [`crate::fingerprint`]); [`content_prefix`] gives its decompressed
//! first bytes, which start like the plain file it was compressed from, so a rotated copy
//! (`app.log.1` → `app.log.2.gz`) can be recognised as a file already read
//! ([`starts_like`]).

mod reader;
#[cfg(test)]
mod tests;

pub use reader::{GzipError, GzipReader, MemberLog, MemberStart, Step};

use std::fs::File;

use crate::fingerprint::{Fingerprint, FINGERPRINT_BYTES};

/// The first two bytes of every gzip member (RFC 1952).
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// True when `prefix` starts like a gzip member.
pub fn has_magic(prefix: &[u8]) -> bool {
    prefix.starts_with(&MAGIC)
}

/// What the start of a compressed file decompresses to, as far as it can be told now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The first decompressed bytes: [`FINGERPRINT_BYTES`] of them, or the whole content
    /// when the file ends cleanly before that.
    Known(Vec<u8>),
    /// Not enough is decodable yet (the file is being written).
    NotYet,
    /// The start of the file does not decode.
    Corrupt,
}

/// The first decompressed bytes of `file` (read with `pread`, so the file's position is
/// left alone). Costs decoding at most a few kilobytes.
pub fn content_prefix(file: &File) -> std::io::Result<Content> {
    // An empty file is one whose writer has only just created it (`gzip` and logrotate
    // create the copy, then write it): not "a file with no content", which would match
    // no plain file and have the copy read as a file of its own.
    if file.metadata()?.len() == 0 {
        return Ok(Content::NotYet);
    }
    let clone = file.try_clone()?;
    let mut reader = GzipReader::open(clone, MemberStart::default(), 0);
    let mut members = MemberLog::new(MemberStart::default());
    let mut buf = vec![0u8; FINGERPRINT_BYTES];
    let mut have = 0;
    while have < buf.len() {
        match reader.read(&mut buf[have..], &mut members) {
            Ok(Step::Data(n)) | Ok(Step::Skipped(n)) => have += n,
            Ok(Step::Complete) => break,
            Ok(Step::Pending) => return Ok(Content::NotYet),
            Err(GzipError::Corrupt { .. }) => return Ok(Content::Corrupt),
            Err(GzipError::Io(e)) => return Err(e),
        }
    }
    buf.truncate(have);
    Ok(Content::Known(buf))
}

/// True when `content` (a file's first bytes) starts with the bytes `fp` was taken of, as
/// [`Fingerprint::matches`] tells for a file on disk. An empty fingerprint matches nothing.
pub fn starts_like(fp: &Fingerprint, content: &[u8]) -> bool {
    let len = usize::from(fp.len);
    len > 0 && content.len() >= len && Fingerprint::of(&content[..len]) == *fp
}
