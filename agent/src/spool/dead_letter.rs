//! The dead-letter store: batches the aggregator refused for good, and batches found
//! damaged in the spool, with why and when.

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use std::sync::atomic::Ordering;

use super::segment::{self, Damage, Location};
use super::{frame_record_count, seq_of, Spool, SpoolError};

/// Longest refusal reason kept with a dead-lettered batch.
pub const MAX_REASON_BYTES: usize = 1024;

/// Why and when a batch was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    /// The HTTP status of the refusal, if there was one.
    pub status: Option<u16>,
    /// The refusal as the agent logged it.
    pub reason: String,
    /// Unix milliseconds when it was dead-lettered.
    pub time_ms: u64,
}

/// Encoding version of [`DeadLetterInfo`].
const DEAD_LETTER_INFO_VERSION: u8 = 1;

impl DeadLetterInfo {
    /// `1 | status (u16, 0: none) | time_ms (u64) | reason bytes`, integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(11 + self.reason.len());
        v.push(DEAD_LETTER_INFO_VERSION);
        v.extend_from_slice(&self.status.unwrap_or(0).to_be_bytes());
        v.extend_from_slice(&self.time_ms.to_be_bytes());
        v.extend_from_slice(self.reason.as_bytes());
        v
    }

    /// Inverse of [`DeadLetterInfo::encode`]; `None` for bytes it cannot read.
    pub fn decode(b: &[u8]) -> Option<DeadLetterInfo> {
        if *b.first()? != DEAD_LETTER_INFO_VERSION {
            return None;
        }
        let status = u16::from_be_bytes(b.get(1..3)?.try_into().ok()?);
        Some(DeadLetterInfo {
            status: (status != 0).then_some(status),
            time_ms: u64::from_be_bytes(b.get(3..11)?.try_into().ok()?),
            reason: String::from_utf8_lossy(b.get(11..)?).into_owned(),
        })
    }
}

/// A dead-lettered batch, as [`Spool::dead_letters`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The batch's sequence number.
    pub seq: u64,
    /// Size of its frame.
    pub bytes: u64,
    /// Records in it, from the frame header.
    pub records: u32,
    /// Why and when it was refused (`None` for batches dead-lettered by older agents).
    pub info: Option<DeadLetterInfo>,
}

impl Spool {
    /// Moves a batch whose bytes do not check out to the dead-letter store, with what
    /// could be read of it.
    pub(super) fn set_aside_damaged(
        &self,
        seq: u64,
        v: &[u8],
        damage: &Damage,
    ) -> Result<(), SpoolError> {
        let salvaged = Location::decode(v)
            .and_then(|loc| {
                let file = self.segment_file(loc.segment).ok()?;
                Some(segment::salvage(&file, &loc))
            })
            .unwrap_or_default();
        let info = DeadLetterInfo {
            status: None,
            reason: format!("damaged in the spool: {damage}"),
            time_ms: unix_ms(),
        };
        if self.move_to_dead_letter(seq, v, &salvaged, &info)? {
            self.damaged.fetch_add(1, Ordering::Relaxed);
            tracing::error!(seq, error = %damage,
                "a spooled batch is damaged and cannot be sent; moved to the dead-letter store");
        }
        Ok(())
    }

    /// Moves batch `seq`, if its index entry is still `v`, to the dead-letter store in
    /// one transaction, flushed. Returns whether it moved.
    pub(super) fn move_to_dead_letter(
        &self,
        seq: u64,
        v: &[u8],
        frame: &[u8],
        info: &DeadLetterInfo,
    ) -> Result<bool, SpoolError> {
        let key = seq.to_be_bytes();
        let info = info.encode();
        let moved = (&self.index, &self.dead, &self.dead_info)
            .transaction(|(i, d, di)| {
                if i.get(&key[..])?.as_deref() != Some(v) {
                    return Ok(false);
                }
                i.remove(&key[..])?;
                d.insert(&key[..], frame)?;
                di.insert(&key[..], info.as_slice())?;
                Ok::<_, ConflictableTransactionError<SpoolError>>(true)
            })
            .map_err(SpoolError::from)?;
        if moved {
            self.db.flush()?;
            let doomed = self.forget_entry(v);
            self.delete_segments(doomed);
            self.room.1.notify_all();
        }
        self.end_send(seq);
        Ok(moved)
    }

    /// Moves a batch the aggregator refused for good into the dead-letter tree, with why
    /// (`status`: the HTTP status, if there was one; `reason`: the refusal, cut to
    /// [`MAX_REASON_BYTES`]) and when, in one transaction.
    pub fn dead_letter(
        &self,
        seq: u64,
        status: Option<u16>,
        reason: &str,
    ) -> Result<(), SpoolError> {
        let Some(v) = self.index.get(seq.to_be_bytes())? else {
            return Ok(());
        };
        let info = DeadLetterInfo {
            status,
            reason: cut_at_char(reason, MAX_REASON_BYTES).to_owned(),
            time_ms: unix_ms(),
        };
        match self.load(seq, &v) {
            Ok(frame) => {
                self.move_to_dead_letter(seq, &v, &frame, &info)?;
            }
            Err(damage) => self.set_aside_damaged(seq, &v, &damage)?,
        }
        Ok(())
    }

    /// Number of dead-lettered batches.
    pub fn dead_letter_len(&self) -> usize {
        self.dead.len()
    }

    /// The dead-lettered batches, oldest first. Batches dead-lettered before their reason
    /// was recorded have `info: None`.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        let mut out = Vec::new();
        for item in self.dead.iter() {
            let (k, v) = item?;
            let info = self
                .dead_info
                .get(&k)?
                .and_then(|i| DeadLetterInfo::decode(&i));
            out.push(DeadLetter {
                seq: seq_of(&k),
                bytes: v.len() as u64,
                records: frame_record_count(&v),
                info,
            });
        }
        Ok(out)
    }

    /// The frame of dead-lettered batch `seq`.
    pub fn dead_letter_frame(&self, seq: u64) -> Result<Option<sled::IVec>, SpoolError> {
        Ok(self.dead.get(seq.to_be_bytes())?)
    }

    /// Deletes every dead-lettered batch; returns how many there were.
    pub fn purge_dead_letters(&self) -> Result<usize, SpoolError> {
        let n = self.dead.len();
        // Frames first: an entry of `dead_letter_info` left by a crash in between is
        // never listed (listing walks the frames) and its seq is never reused.
        self.dead.clear()?;
        self.dead_info.clear()?;
        self.db.flush()?;
        Ok(n)
    }
}

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn cut_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
