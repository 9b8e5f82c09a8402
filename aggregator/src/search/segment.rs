//! Segment files: `<dir>/<id>.seg` (the id in 20 digits, increasing), each a header and
//! then sealed blocks back to back. Only the newest segment is ever written; older ones
//! are only read, and deleted whole by retention.
//!
//! File header: `"LFSEARCH" | version u32 | 0u32`. Block record, version 2: `"LFBK" |
//! summary length u32 | summary CRC-32 u32 | summary | text filter | meta section | lines
//! section` (little-endian; the summary says how long the filter and the sections are and
//! holds their CRC-32s). Version 1, which this store wrote before blocks had a text filter,
//! has the shorter summary ([`SUMMARY_LEN_V1`]) and no filter; such segments are still read
//! (their blocks may contain any text) until retention deletes them, and new blocks always
//! go to a new segment, written in version 2.
//!
//! Recovery ([`Segments::open`]) reads every block header. A header that is cut short,
//! fails its checksum or promises more bytes than the file has ends the segment: the file
//! is cut back to the last good block, with a warning. In the newest segment — the one a
//! crash can have left half-written — the sections' checksums are checked too. A file with
//! an unreadable header or an unknown version is deleted, with a warning: this is a
//! cache. Sections of older segments are checked when a query reads them.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use super::block::SealedBlock;
use super::summary::{Summary, SUMMARY_LEN, SUMMARY_LEN_V1};

const FILE_MAGIC: &[u8; 8] = b"LFSEARCH";
/// The version written. Version 1 is still read.
pub const VERSION: u32 = 2;
const FILE_HEADER_LEN: u64 = 16;
const BLOCK_MAGIC: &[u8; 4] = b"LFBK";
const RECORD_PREFIX: usize = 12;

/// An open segment file, shared by the writer and by queries reading it (a query that
/// still holds it after retention deleted the file reads on through the open handle).
#[derive(Debug)]
pub struct SegmentFile {
    /// The segment's id.
    pub id: u64,
    /// Its path.
    pub path: PathBuf,
    file: File,
}

impl SegmentFile {
    /// Reads `len` bytes at `at` into `out` (replacing its contents).
    pub fn read_at(&self, at: u64, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        out.resize(len, 0);
        self.file.read_exact_at(out, at)
    }
}

/// Where a sealed block's sections are.
#[derive(Debug, Clone)]
pub struct Location {
    /// The segment holding the block.
    pub segment: Arc<SegmentFile>,
    /// Offset of the meta section; the text filter ends there and the lines section
    /// follows it.
    pub meta_at: u64,
}

/// One segment as retention sees it.
#[derive(Debug)]
pub struct SegmentInfo {
    /// The file.
    pub file: Arc<SegmentFile>,
    /// Its length.
    pub bytes: u64,
    /// Blocks in it.
    pub blocks: usize,
    /// When its newest block was sealed (ms).
    pub newest_sealed_ms: u64,
}

/// The segment files of a store, oldest first; the newest is written while `active`.
#[derive(Debug)]
pub struct Segments {
    dir: PathBuf,
    list: VecDeque<SegmentInfo>,
    active: bool,
    next_id: u64,
    buf: Vec<u8>,
}

/// The path of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn segment_id(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Segments {
    /// Opens the segments in `dir` (creating it), recovering each as described in the module
    /// docs; returns them with every good block's summary and location, oldest first.
    /// Errors only when `dir` cannot be created or listed.
    pub fn open(dir: &Path) -> io::Result<(Segments, Vec<(Summary, Location)>)> {
        fs::create_dir_all(dir)?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(id) = entry.file_name().to_str().and_then(segment_id) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut segments = Segments {
            dir: dir.to_owned(),
            list: VecDeque::new(),
            active: false,
            next_id: ids.last().map_or(1, |id| id + 1),
            buf: Vec::new(),
        };
        let mut blocks = Vec::new();
        let newest = ids.last().copied();
        for id in ids {
            let path = segment_path(dir, id);
            match recover(&path, id, Some(id) == newest) {
                Ok((info, found)) if info.blocks > 0 => {
                    blocks.extend(found);
                    segments.list.push_back(info);
                }
                Ok(_) => remove(&path),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "search segment unreadable; deleting it");
                    remove(&path);
                }
            }
        }
        Ok((segments, blocks))
    }

    /// Bytes of all segment files.
    pub fn bytes(&self) -> u64 {
        self.list.iter().map(|s| s.bytes).sum()
    }

    /// Segment files.
    pub fn count(&self) -> usize {
        self.list.len()
    }

    /// The oldest segment.
    pub fn oldest(&self) -> Option<&SegmentInfo> {
        self.list.front()
    }

    /// Deletes the oldest segment file; returns its id.
    pub fn remove_oldest(&mut self) -> Option<u64> {
        let oldest = self.list.pop_front()?;
        if self.list.is_empty() {
            self.active = false;
        }
        remove(&oldest.file.path);
        Some(oldest.file.id)
    }

    /// Writes a block at the end of the newest segment (starting a new one when there is
    /// none being written); once a segment reaches `segment_bytes` the next block starts
    /// another. On a failed write the segment is cut back to where the block began (or, if
    /// that fails too, no longer written), so no torn block stays in the middle of a file.
    pub fn append(&mut self, block: &SealedBlock<'_>, segment_bytes: u64) -> io::Result<Location> {
        if !self.active {
            self.start()?;
        }
        let Some(seg) = self.list.back_mut() else {
            return Err(invalid("no segment"));
        };
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(BLOCK_MAGIC);
        buf.extend_from_slice(&(SUMMARY_LEN as u32).to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        block.summary.encode(buf);
        let crc = crc32fast::hash(&buf[RECORD_PREFIX..]);
        buf[8..12].copy_from_slice(&crc.to_le_bytes());
        let at = seg.bytes;
        let filter_at = at + buf.len() as u64;
        let meta_at = filter_at + block.filter.len() as u64;
        let lines_at = meta_at + block.meta.len() as u64;
        let end = lines_at + block.lines.len() as u64;
        let file = &seg.file.file;
        let written = file
            .write_all_at(buf, at)
            .and_then(|()| file.write_all_at(block.filter, filter_at))
            .and_then(|()| file.write_all_at(block.meta, meta_at))
            .and_then(|()| file.write_all_at(block.lines, lines_at));
        if let Err(e) = written {
            if file.set_len(at).is_err() {
                self.active = false;
            }
            return Err(e);
        }
        seg.bytes = end;
        seg.blocks += 1;
        seg.newest_sealed_ms = seg.newest_sealed_ms.max(block.summary.sealed_ms);
        let location = Location {
            segment: seg.file.clone(),
            meta_at,
        };
        if seg.bytes >= segment_bytes {
            self.active = false;
        }
        Ok(location)
    }

    fn start(&mut self) -> io::Result<()> {
        let id = self.next_id;
        let path = segment_path(&self.dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut header = [0u8; FILE_HEADER_LEN as usize];
        header[..8].copy_from_slice(FILE_MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        if let Err(e) = file.write_all_at(&header, 0) {
            remove(&path);
            return Err(e);
        }
        self.next_id += 1;
        self.list.push_back(SegmentInfo {
            file: Arc::new(SegmentFile { id, path, file }),
            bytes: FILE_HEADER_LEN,
            blocks: 0,
            newest_sealed_ms: 0,
        });
        self.active = true;
        Ok(())
    }
}

fn remove(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            warn!(path = %path.display(), error = %e, "cannot delete search segment");
        }
    }
}

/// Reads a segment's blocks, cutting off a damaged tail (see the module docs); `verify`
/// also checks the sections' checksums. Errors when the file header is unusable.
fn recover(
    path: &Path,
    id: u64,
    verify: bool,
) -> io::Result<(SegmentInfo, Vec<(Summary, Location)>)> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    if len < FILE_HEADER_LEN {
        return Err(invalid("shorter than its header"));
    }
    file.read_exact_at(&mut header, 0)?;
    if &header[..8] != FILE_MAGIC {
        return Err(invalid("not a search segment"));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let summary_len = match version {
        1 => SUMMARY_LEN_V1,
        VERSION => SUMMARY_LEN,
        _ => return Err(invalid(&format!("unknown version {version}"))),
    };
    let file = Arc::new(SegmentFile {
        id,
        path: path.to_owned(),
        file,
    });
    let mut blocks = Vec::new();
    let mut info = SegmentInfo {
        file: file.clone(),
        bytes: FILE_HEADER_LEN,
        blocks: 0,
        newest_sealed_ms: 0,
    };
    let mut pos = FILE_HEADER_LEN;
    let mut record = Vec::new();
    let mut section = Vec::new();
    let damage = loop {
        if pos == len {
            break None;
        }
        let head = (RECORD_PREFIX + summary_len) as u64;
        if len - pos < head {
            break Some("block header cut short");
        }
        file.read_at(pos, head as usize, &mut record)?;
        let (prefix, body) = record.split_at(RECORD_PREFIX);
        if &prefix[..4] != BLOCK_MAGIC || prefix[4..8] != (summary_len as u32).to_le_bytes() {
            break Some("no block header");
        }
        if prefix[8..12] != crc32fast::hash(body).to_le_bytes() {
            break Some("block header checksum mismatch");
        }
        let Some(summary) = Summary::decode(body) else {
            break Some("block header inconsistent");
        };
        let filter_at = pos + head;
        let meta_at = filter_at + u64::from(summary.filter_len);
        let end = meta_at + u64::from(summary.meta_len) + u64::from(summary.lines_len);
        if end > len {
            break Some("block cut short");
        }
        if verify {
            file.read_at(filter_at, summary.filter_len as usize, &mut section)?;
            let filter_ok = crc32fast::hash(&section) == summary.filter_crc;
            file.read_at(meta_at, summary.meta_len as usize, &mut section)?;
            let meta_ok = filter_ok && crc32fast::hash(&section) == summary.meta_crc;
            let lines_at = meta_at + u64::from(summary.meta_len);
            file.read_at(lines_at, summary.lines_len as usize, &mut section)?;
            if !meta_ok || crc32fast::hash(&section) != summary.lines_crc {
                break Some("block checksum mismatch");
            }
        }
        info.blocks += 1;
        info.newest_sealed_ms = info.newest_sealed_ms.max(summary.sealed_ms);
        blocks.push((
            summary,
            Location {
                segment: file.clone(),
                meta_at,
            },
        ));
        pos = end;
    };
    if let Some(reason) = damage {
        warn!(
            path = %path.display(),
            offset = pos,
            dropped_bytes = len - pos,
            reason,
            "search segment damaged; cutting it back to its last good block"
        );
        file.file.set_len(pos)?;
    }
    info.bytes = pos;
    Ok((info, blocks))
}
