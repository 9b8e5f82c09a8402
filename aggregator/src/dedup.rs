//! Which batches have been accepted, per (agent id, stream), so a retried batch is
//! answered 2xx and dropped instead of written twice.
//!
//! Agents number batches 1, 2, 3, … per stream with no gaps, but several may be in flight
//! and arrive out of order. Per stream we keep `floor` (every seq ≤ floor was accepted)
//! and the set of accepted seqs above it; the set folds into `floor` as gaps fill, so it
//! stays as small as the agent's in-flight window. A stream whose set reaches
//! [`MAX_PENDING`] (a batch lost for good, e.g. dead-lettered by the agent) moves `floor` up
//! past the oldest gap, so memory stays bounded.
//!
//! Durability: the table is saved to `<data_dir>/dedup.json` (temp file, fsync, rename)
//! after the batches it records are durable in the sinks. A crash between the two can let
//! one retried batch through twice (at-least-once); the durable inbox replaces this.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Most out-of-order seqs remembered per stream before the oldest gap is given up.
pub const MAX_PENDING: usize = 65_536;
const FILE_VERSION: u32 = 1;

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct StreamState {
    floor: u64,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    above: BTreeSet<u64>,
}

impl StreamState {
    fn contains(&self, seq: u64) -> bool {
        seq <= self.floor || self.above.contains(&seq)
    }

    fn insert(&mut self, seq: u64) {
        if seq <= self.floor {
            return;
        }
        self.above.insert(seq);
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
        while self.above.len() > MAX_PENDING {
            if let Some(first) = self.above.pop_first() {
                self.floor = first;
                while self.above.remove(&(self.floor + 1)) {
                    self.floor += 1;
                }
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DedupFile {
    version: u32,
    streams: Vec<(String, String, StreamState)>,
}

/// The accepted-batch table, persisted in the data dir.
#[derive(Debug)]
pub struct Dedup {
    path: PathBuf,
    streams: HashMap<(String, String), StreamState>,
    dirty: bool,
}

impl Dedup {
    /// Opens the table in `data_dir`, empty when there is none yet. A file that cannot be
    /// read is an error: starting empty would silently re-accept old batches.
    pub fn open(data_dir: &Path) -> std::io::Result<Dedup> {
        let path = data_dir.join("dedup.json");
        let streams = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: DedupFile = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                if file.version != FILE_VERSION {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: unsupported version {}", path.display(), file.version),
                    ));
                }
                file.streams
                    .into_iter()
                    .map(|(a, s, st)| ((a, s), st))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Dedup {
            path,
            streams,
            dirty: false,
        })
    }

    /// True if this batch was accepted before.
    pub fn seen(&self, agent: &str, stream: &str, seq: u64) -> bool {
        self.streams
            .get(&(agent.to_owned(), stream.to_owned()))
            .is_some_and(|s| s.contains(seq))
    }

    /// Records a batch as accepted (in memory until [`Dedup::save`]).
    pub fn insert(&mut self, agent: &str, stream: &str, seq: u64) {
        self.streams
            .entry((agent.to_owned(), stream.to_owned()))
            .or_default()
            .insert(seq);
        self.dirty = true;
    }

    /// Writes the table durably if it changed.
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let file = DedupFile {
            version: FILE_VERSION,
            streams: self
                .streams
                .iter()
                .map(|((a, s), st)| (a.clone(), s.clone(), st.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_seqs_fold_into_the_floor() {
        let mut s = StreamState::default();
        for seq in [2, 4, 1, 3] {
            assert!(!s.contains(seq));
            s.insert(seq);
            assert!(s.contains(seq));
        }
        assert_eq!(s.floor, 4);
        assert!(s.above.is_empty());
        assert!(!s.contains(5));
        s.insert(7);
        assert!(s.contains(7) && !s.contains(6) && !s.contains(5));
    }

    #[test]
    fn a_permanent_gap_does_not_grow_memory_forever() {
        let mut s = StreamState::default();
        // seq 1 never arrives.
        for seq in 2..(MAX_PENDING as u64 + 10) {
            s.insert(seq);
        }
        assert!(s.above.len() <= MAX_PENDING);
        assert!(s.contains(2));
    }

    #[test]
    fn survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Dedup::open(dir.path()).unwrap();
        d.insert("agent", "default", 1);
        d.insert("agent", "default", 3);
        d.save().unwrap();
        let d = Dedup::open(dir.path()).unwrap();
        assert!(d.seen("agent", "default", 1));
        assert!(!d.seen("agent", "default", 2));
        assert!(d.seen("agent", "default", 3));
        assert!(!d.seen("other", "default", 1));
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dedup.json"), "{not json").unwrap();
        assert!(Dedup::open(dir.path()).is_err());
    }
}
