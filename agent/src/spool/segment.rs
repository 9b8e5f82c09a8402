//! Append-only segment files holding the spool's frames.
//!
//! A segment is `segments/<id>.seg` in the spool directory (`id` zero-padded to 20 digits,
//! the seq of its first batch or the next free id above the last segment). It starts with
//! [`MAGIC`], then holds records, each a [`HEADER_LEN`]-byte header — `seq` (u64),
//! frame length (u32) and a CRC32 of those twelve bytes and the frame (u32), big-endian —
//! followed by the frame.
//!
//! Invariants:
//! - Bytes are only appended, and a record is synced ([`Writer::sync`]) before any
//!   index entry points at it; the sled index is the only way to a record, so bytes
//!   appended but never indexed (a crash before the commit, a failed commit) are dead.
//! - A segment is appended to only while it is the [`Writer`]'s active segment, and
//!   never again after the process that wrote it stops; segments found at open are
//!   read-only.
//! - A new segment's directory entry is synced before its first record is indexed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// First bytes of every segment file (format of the file, not of the spool).
pub(super) const MAGIC: [u8; 8] = *b"LFSEG\x00\x00\x01";
/// Bytes of a record header.
pub(super) const HEADER_LEN: u64 = 16;
/// Name of the directory holding the segments, inside the spool directory.
pub(super) const DIR: &str = "segments";

/// Where a batch's frame is: the spool's index maps `seq` to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    /// Segment id.
    pub segment: u64,
    /// Offset of the record header in the segment.
    pub offset: u64,
    /// Frame length (without the header).
    pub len: u32,
    /// Records (lines) in the frame, from its header, for counting dropped lines.
    pub records: u32,
}

/// Encoding version of [`Location`].
const LOCATION_VERSION: u8 = 1;
const LOCATION_LEN: usize = 25;

impl Location {
    /// `1 | segment (u64) | offset (u64) | len (u32) | records (u32)`, big-endian.
    pub fn encode(&self) -> [u8; LOCATION_LEN] {
        let mut v = [0u8; LOCATION_LEN];
        v[0] = LOCATION_VERSION;
        v[1..9].copy_from_slice(&self.segment.to_be_bytes());
        v[9..17].copy_from_slice(&self.offset.to_be_bytes());
        v[17..21].copy_from_slice(&self.len.to_be_bytes());
        v[21..25].copy_from_slice(&self.records.to_be_bytes());
        v
    }

    /// Inverse of [`Location::encode`]; `None` for bytes it cannot read.
    pub fn decode(b: &[u8]) -> Option<Location> {
        if b.len() != LOCATION_LEN || b[0] != LOCATION_VERSION {
            return None;
        }
        Some(Location {
            segment: u64::from_be_bytes(b[1..9].try_into().ok()?),
            offset: u64::from_be_bytes(b[9..17].try_into().ok()?),
            len: u32::from_be_bytes(b[17..21].try_into().ok()?),
            records: u32::from_be_bytes(b[21..25].try_into().ok()?),
        })
    }
}

/// Why a record could not be read back.
#[derive(Debug, thiserror::Error)]
pub(super) enum Damage {
    /// The file is shorter than the record.
    #[error("the segment ends inside the record")]
    Truncated,
    /// The header names another batch or length.
    #[error("the record header does not match the index (seq {seq}, length {len})")]
    Header { seq: u64, len: u32 },
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// The segment file is gone.
    #[error("segment {0} is missing")]
    Missing(u64),
    /// The index entry cannot be decoded.
    #[error("the index entry is unreadable")]
    Index,
    /// Reading failed.
    #[error("cannot read the segment: {0}")]
    Io(io::Error),
}

fn header(seq: u64, frame: &[u8]) -> [u8; HEADER_LEN as usize] {
    let len = frame.len() as u32;
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&seq.to_be_bytes());
    h[8..12].copy_from_slice(&len.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..12]);
    crc.update(frame);
    h[12..].copy_from_slice(&crc.finalize().to_be_bytes());
    h
}

/// Reads and checks the record of batch `seq` at `loc`, returning its frame.
pub(super) fn read(file: &File, seq: u64, loc: &Location) -> Result<Vec<u8>, Damage> {
    let io = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Damage::Truncated
        } else {
            Damage::Io(e)
        }
    };
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut h, loc.offset).map_err(io)?;
    let h_seq = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    let h_len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    if h_seq != seq || h_len != loc.len {
        return Err(Damage::Header {
            seq: h_seq,
            len: h_len,
        });
    }
    let mut frame = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut frame, loc.offset + HEADER_LEN)
        .map_err(io)?;
    let want = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..12]);
    crc.update(&frame);
    if crc.finalize() != want {
        return Err(Damage::Checksum);
    }
    Ok(frame)
}

/// Whatever bytes of the frame at `loc` can still be read (for the dead-letter copy of
/// a damaged batch): up to `loc.len` bytes after the header, possibly none.
pub(super) fn salvage(file: &File, loc: &Location) -> Vec<u8> {
    let mut buf = vec![0u8; loc.len as usize];
    let mut got = 0usize;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], loc.offset + HEADER_LEN + got as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    buf.truncate(got);
    buf
}

/// Path of segment `id` in `dir` (the segments directory).
pub(super) fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The segment files in `dir`, by id. Other files are left alone.
pub(super) fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(id) = id {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Opens segment `id` for reading.
pub(super) fn open(dir: &Path, id: u64) -> io::Result<File> {
    File::open(path(dir, id))
}

/// fsyncs a directory, making the entries created or removed in it durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A record appended by [`Writer::append`].
#[derive(Debug)]
pub(super) struct Appended {
    /// Where it is.
    pub location: Location,
    /// The segment it went into, the first time a record went into it (to be added to
    /// the spool's table of segments).
    pub new_segment: Option<Arc<File>>,
}

/// The active segment, being appended to.
#[derive(Debug)]
struct Active {
    id: u64,
    file: Arc<File>,
    len: u64,
    /// Appended to since the last sync.
    dirty: bool,
    /// Its directory entry is not synced yet.
    new: bool,
    /// Returned as [`Appended::new_segment`] already.
    announced: bool,
}

/// Appends records to the active segment, starting a new one past `roll_at` bytes.
#[derive(Debug)]
pub(super) struct Writer {
    dir: PathBuf,
    roll_at: u64,
    /// No segment id at or below this is used again.
    last_id: u64,
    active: Option<Active>,
}

impl Writer {
    /// A writer in `dir` (the segments directory) whose segments get ids above
    /// `last_id`; it starts a segment with its first append.
    pub fn new(dir: PathBuf, roll_at: u64, last_id: u64) -> Writer {
        Writer {
            dir,
            roll_at,
            last_id,
            active: None,
        }
    }

    /// Appends the record of batch `seq`. Not durable until [`Writer::sync`]. On an error
    /// nothing indexable was written: the next append writes over whatever this one left.
    pub fn append(&mut self, seq: u64, frame: &[u8], records: u32) -> io::Result<Appended> {
        let len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
        let need = HEADER_LEN + u64::from(len);
        let full = self
            .active
            .as_ref()
            .is_some_and(|a| a.len > MAGIC.len() as u64 && a.len + need > self.roll_at);
        if full {
            self.seal()?;
        }
        let a = match self.active.as_mut() {
            Some(a) => a,
            None => {
                let id = seq.max(self.last_id + 1);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(path(&self.dir, id))?;
                self.last_id = id;
                file.write_all_at(&MAGIC, 0)?;
                self.active.insert(Active {
                    id,
                    file: Arc::new(file),
                    len: MAGIC.len() as u64,
                    dirty: true,
                    new: true,
                    announced: false,
                })
            }
        };
        a.dirty = true;
        a.file.write_all_at(&header(seq, frame), a.len)?;
        a.file.write_all_at(frame, a.len + HEADER_LEN)?;
        let location = Location {
            segment: a.id,
            offset: a.len,
            len,
            records,
        };
        a.len += need;
        let new_segment = (!a.announced).then(|| a.file.clone());
        a.announced = true;
        Ok(Appended {
            location,
            new_segment,
        })
    }

    /// Makes everything appended so far durable (fdatasync; for a new segment also its
    /// directory entry).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(a) = self.active.as_mut() {
            if a.dirty {
                a.file.sync_data()?;
                a.dirty = false;
            }
            if a.new {
                sync_dir(&self.dir)?;
                a.new = false;
            }
        }
        Ok(())
    }

    /// Syncs and stops appending to the active segment; the next append starts a new one.
    /// Returns the id of the segment sealed, if there was one.
    pub fn seal(&mut self) -> io::Result<Option<u64>> {
        self.sync()?;
        Ok(self.active.take().map(|a| a.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_round_trips() {
        let l = Location {
            segment: 7,
            offset: 1 << 40,
            len: 123_456,
            records: 1000,
        };
        assert_eq!(Location::decode(&l.encode()), Some(l));
        assert_eq!(Location::decode(&l.encode()[..24]), None);
        let mut v2 = l.encode();
        v2[0] = 2;
        assert_eq!(Location::decode(&v2), None);
    }

    #[test]
    fn records_read_back_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path().to_owned(), 100, 0);
        let a = w.append(5, b"hello", 1).unwrap();
        assert!(a.new_segment.is_some());
        assert_eq!(a.location.segment, 5);
        let b = w.append(6, &[7u8; 90], 2).unwrap();
        // Over 100 bytes: 6 went into a new segment.
        assert!(b.new_segment.is_some());
        assert_eq!(b.location.segment, 6);
        assert_eq!(w.seal().unwrap(), Some(6));
        assert_eq!(list(dir.path()).unwrap(), vec![5, 6]);
        let f5 = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path(dir.path(), 5))
            .unwrap();
        assert_eq!(read(&f5, 5, &a.location).unwrap(), b"hello");
        assert!(matches!(
            read(&f5, 4, &a.location),
            Err(Damage::Header { seq: 5, .. })
        ));
        // Flip a frame byte: checksum.
        f5.write_all_at(b"j", a.location.offset + HEADER_LEN)
            .unwrap();
        assert!(matches!(read(&f5, 5, &a.location), Err(Damage::Checksum)));
        // Cut the second segment inside its record.
        let f6 = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path(dir.path(), 6))
            .unwrap();
        f6.set_len(b.location.offset + HEADER_LEN + 40).unwrap();
        assert!(matches!(read(&f6, 6, &b.location), Err(Damage::Truncated)));
        assert_eq!(salvage(&f6, &b.location), vec![7u8; 40]);
        // A new writer never reuses an id.
        let mut w = Writer::new(dir.path().to_owned(), 100, 6);
        assert_eq!(w.append(3, b"x", 1).unwrap().location.segment, 7);
    }
}
