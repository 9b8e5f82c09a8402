//! A tracked file's bytes as the tailer reads them: as they are on disk, or decompressed
//! ([`crate::gzip`]). Offsets are content offsets: file offsets for a plain file,
//! decompressed bytes for a compressed one.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::InputCompression;
use crate::gzip::{self, GzipError, GzipReader, MemberLog, MemberStart, Step};

/// Opens a tailed file for reading without updating its access time (`O_NOATIME`), as
/// the kernel allows for files this process owns or when it has `CAP_FOWNER` (the agent
/// running as root); other files are opened as usual.
///
/// On a `relatime` mount (the usual default) every read after a write would otherwise
/// update the inode's access time, and a tailer reads right after writes.
pub(crate) fn open_read(path: &Path) -> std::io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        opened => opened,
    }
}

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// As it is.
    Plain,
    /// Decompressed.
    Gzip,
    /// Not known yet (`compression = "auto"`, a file without the `.gz` suffix too short
    /// to tell): read as plain once it has two bytes that are not the gzip magic.
    Undecided,
}

impl Kind {
    /// How a file at `path` whose first bytes are `prefix` is read by an input with
    /// `compression`.
    pub(super) fn of(compression: InputCompression, path: &Path, prefix: &[u8]) -> Kind {
        match compression {
            InputCompression::None => Kind::Plain,
            InputCompression::Gzip => Kind::Gzip,
            InputCompression::Auto => {
                if path.extension().is_some_and(|e| e == "gz") || gzip::has_magic(prefix) {
                    Kind::Gzip
                } else if prefix.len() >= 2 || prefix.first().is_some_and(|b| *b != gzip::MAGIC[0])
                {
                    Kind::Plain
                } else {
                    Kind::Undecided
                }
            }
        }
    }
}

/// An open file and how it is read.
pub(super) enum Source {
    /// Read as it is; the descriptor's position is the read position.
    Plain(File),
    /// Read decompressed (boxed: the decoder's state is large).
    Gzip(Box<GzipReader>),
}

/// Why a read failed.
pub(super) enum ReadError {
    /// The file could not be read; retried at the next round.
    Io(std::io::Error),
    /// A compressed file that does not decode: nothing more is read from it.
    Corrupt(GzipError),
}

impl Source {
    /// The open file, if any (a failed reader may have none).
    pub(super) fn file(&self) -> Option<&File> {
        match self {
            Source::Plain(f) => Some(f),
            Source::Gzip(r) => r.file(),
        }
    }

    /// Reads into `buf`: data, bytes skipped on the way to a resume offset, or nothing more
    /// for now ([`Step::Pending`] in the middle of a gzip member, [`Step::Complete`]
    /// otherwise).
    pub(super) fn read(
        &mut self,
        buf: &mut [u8],
        members: Option<&mut MemberLog>,
    ) -> Result<Step, ReadError> {
        match self {
            Source::Plain(f) => loop {
                match f.read(buf) {
                    Ok(0) => return Ok(Step::Complete),
                    Ok(n) => return Ok(Step::Data(n)),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ReadError::Io(e)),
                }
            },
            Source::Gzip(r) => {
                let mut spare;
                let members = match members {
                    Some(m) => m,
                    None => {
                        spare = MemberLog::new(MemberStart::default());
                        &mut spare
                    }
                };
                r.read(buf, members).map_err(|e| match e {
                    GzipError::Io(e) => ReadError::Io(e),
                    e => ReadError::Corrupt(e),
                })
            }
        }
    }

    /// Bytes of the file read so far (compressed bytes for a compressed file).
    pub(super) fn file_position(&self) -> Option<u64> {
        match self {
            Source::Plain(_) => None,
            Source::Gzip(r) => Some(r.file_position()),
        }
    }

    /// Content offset reading stands at, for a compressed file (bytes still to be
    /// skipped count as passed).
    pub(super) fn gzip_position(&self) -> Option<u64> {
        match self {
            Source::Plain(_) => None,
            Source::Gzip(r) => Some(r.position()),
        }
    }

    /// True while a compressed file's bytes are discarded on the way to its resume offset.
    pub(super) fn is_skipping(&self) -> bool {
        matches!(self, Source::Gzip(r) if r.is_skipping())
    }

    /// True while a compressed file is read up to the end of a member and no more is on
    /// disk: it is being written, or was cut short.
    pub(super) fn in_member(&self) -> bool {
        matches!(self, Source::Gzip(r) if r.in_member())
    }

    /// Moves the read position to content offset `offset` (a compressed file is decoded
    /// again from the member start at or before it, see `members`).
    pub(super) fn seek(self, offset: u64, members: Option<&MemberLog>) -> std::io::Result<Source> {
        match self {
            Source::Plain(mut f) => {
                f.seek(SeekFrom::Start(offset))?;
                Ok(Source::Plain(f))
            }
            Source::Gzip(r) => {
                let file = r
                    .into_file()
                    .ok_or_else(|| std::io::Error::other("the compressed file is gone"))?;
                Ok(Source::Gzip(Box::new(open_gzip_at(file, offset, members))))
            }
        }
    }
}

/// A reader of compressed `file` that returns content from `offset` on, decoding from the
/// member start `members` gives for it (from the file's start without one).
pub(super) fn open_gzip_at(file: File, offset: u64, members: Option<&MemberLog>) -> GzipReader {
    let start = members.map(|m| m.at(offset)).unwrap_or_default();
    let start = if start.content_offset <= offset {
        start
    } else {
        MemberStart::default()
    };
    GzipReader::open(file, start, offset - start.content_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_setting_name_and_first_bytes() {
        let log = Path::new("/var/log/app.log.1");
        let gz = Path::new("/var/log/app.log.2.gz");
        let magic = &gzip::MAGIC[..];
        assert_eq!(Kind::of(InputCompression::None, gz, magic), Kind::Plain);
        assert_eq!(Kind::of(InputCompression::Gzip, log, b"text"), Kind::Gzip);
        assert_eq!(Kind::of(InputCompression::Auto, gz, b""), Kind::Gzip);
        assert_eq!(Kind::of(InputCompression::Auto, log, magic), Kind::Gzip);
        assert_eq!(Kind::of(InputCompression::Auto, log, b"ab"), Kind::Plain);
        assert_eq!(Kind::of(InputCompression::Auto, log, b"a"), Kind::Plain);
        assert_eq!(Kind::of(InputCompression::Auto, log, b""), Kind::Undecided);
        assert_eq!(
            Kind::of(InputCompression::Auto, log, &magic[..1]),
            Kind::Undecided
        );
    }

    /// Reads all of `path` through `open`, its access time set two days back first (so
    /// that `relatime` would update it), and says whether the read moved it.
    fn read_moves_atime(path: &Path, open: fn(&Path) -> std::io::Result<File>) -> bool {
        use std::os::unix::fs::MetadataExt;
        use std::time::{Duration, SystemTime};
        let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
        let times = std::fs::FileTimes::new().set_accessed(old);
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_times(times)
            .unwrap();
        let before = std::fs::metadata(path).unwrap().atime();
        let mut text = String::new();
        open(path).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "a line\n");
        std::fs::metadata(path).unwrap().atime() != before
    }

    #[test]
    fn tailed_files_are_read_without_touching_their_access_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "a line\n").unwrap();
        // The test owns the file, so O_NOATIME is allowed.
        if !read_moves_atime(&path, |p| File::open(p)) {
            eprintln!("this filesystem does not update access times; nothing to compare");
            return;
        }
        assert!(!read_moves_atime(&path, open_read));
    }
}
