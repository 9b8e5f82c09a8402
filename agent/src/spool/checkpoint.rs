//! File checkpoints: where each file's reading stands, committed with the batch holding
//! its lines.

use std::path::PathBuf;

use crate::fingerprint::Fingerprint;
use crate::gzip::MemberStart;

/// Where a file's reading stands, as last committed with a batch. Stored under
/// [`Checkpoint::key`] (device and inode); see [`crate::fingerprint`] for how a file is
/// matched with its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offset of the first byte not yet in a committed batch.
    pub offset: u64,
    /// Path the file had when last read.
    pub path: PathBuf,
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// The file's first bytes when last read.
    pub fingerprint: Fingerprint,
    /// Unix milliseconds of the commit, for pruning checkpoints of files long gone.
    pub updated_ms: u64,
    /// For a file read decompressed (gzip): `offset` counts decompressed bytes, and
    /// reading resumes by decoding from this member start. `None` for a file read as it
    /// is.
    pub gzip: Option<MemberStart>,
}

/// Checkpoint encoding version written for files read as they are. Version 1 (offset and
/// path only, written by earlier agents) is still read: its device and inode come from
/// the key and its fingerprint is empty, so it matches by device and inode alone.
const CHECKPOINT_VERSION: u8 = 2;

/// Version written for gzip files: version 2 with the member start after `updated_ms`.
/// Only these files get it, so an older agent that cannot read it loses no more than
/// its positions in compressed files (which it read as raw bytes anyway).
const CHECKPOINT_VERSION_GZIP: u8 = 3;

impl Checkpoint {
    /// The sled key: device and inode, big-endian.
    pub fn key(&self) -> [u8; 16] {
        file_key(self.dev, self.ino)
    }

    /// `2 | offset | dev | ino | fingerprint len (u16) | fingerprint hash | updated_ms |
    /// path bytes`, integers big-endian; for a gzip file `3 | ... | updated_ms | member
    /// file offset | member content offset | path bytes`.
    pub fn encode(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let path = self.path.as_os_str().as_bytes();
        let mut v = Vec::with_capacity(59 + path.len());
        v.push(match self.gzip {
            None => CHECKPOINT_VERSION,
            Some(_) => CHECKPOINT_VERSION_GZIP,
        });
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.dev.to_be_bytes());
        v.extend_from_slice(&self.ino.to_be_bytes());
        v.extend_from_slice(&self.fingerprint.len.to_be_bytes());
        v.extend_from_slice(&self.fingerprint.hash.to_be_bytes());
        v.extend_from_slice(&self.updated_ms.to_be_bytes());
        if let Some(m) = self.gzip {
            v.extend_from_slice(&m.file_offset.to_be_bytes());
            v.extend_from_slice(&m.content_offset.to_be_bytes());
        }
        v.extend_from_slice(path);
        v
    }

    /// Inverse of [`Checkpoint::encode`] (and reader of version 1 values, which need
    /// their `key`); `None` for bytes it cannot read.
    pub fn decode(key: &[u8], b: &[u8]) -> Option<Checkpoint> {
        use std::os::unix::ffi::OsStrExt;
        let u64_at = |i: usize| {
            b.get(i..i + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_be_bytes)
        };
        match b.first()? {
            1 => {
                let dev = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
                let ino = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
                Some(Checkpoint {
                    offset: u64_at(1)?,
                    path: PathBuf::from(std::ffi::OsStr::from_bytes(b.get(9..)?)),
                    dev,
                    ino,
                    fingerprint: Fingerprint::of(&[]),
                    updated_ms: 0,
                    gzip: None,
                })
            }
            version @ (2 | 3) => {
                let (gzip, path_at) = if *version == CHECKPOINT_VERSION_GZIP {
                    let m = MemberStart {
                        file_offset: u64_at(43)?,
                        content_offset: u64_at(51)?,
                    };
                    (Some(m), 59)
                } else {
                    (None, 43)
                };
                Some(Checkpoint {
                    offset: u64_at(1)?,
                    dev: u64_at(9)?,
                    ino: u64_at(17)?,
                    fingerprint: Fingerprint {
                        len: u16::from_be_bytes(b.get(25..27)?.try_into().ok()?),
                        hash: u64_at(27)?,
                    },
                    updated_ms: u64_at(35)?,
                    path: PathBuf::from(std::ffi::OsStr::from_bytes(b.get(path_at..)?)),
                    gzip,
                })
            }
            _ => None,
        }
    }
}

/// The checkpoint key of a file: device and inode, big-endian.
pub fn file_key(dev: u64, ino: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&dev.to_be_bytes());
    k[8..].copy_from_slice(&ino.to_be_bytes());
    k
}
