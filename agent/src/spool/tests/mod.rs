//! Spool tests: the API as the tailer and the shipper use it, and segment files. Crashes,
//! damage and upgrades are in `recovery`, random sequences against a model in `model`.

mod model;
mod recovery;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dead_letter::unix_ms;
use super::open::is_lock_error;
use super::*;
use crate::fingerprint::Fingerprint;

pub(super) fn cp(offset: u64) -> Checkpoint {
    Checkpoint {
        offset,
        path: PathBuf::from("/var/log/a.log"),
        dev: 7,
        ino: 1234,
        fingerprint: Fingerprint::of(b"first line"),
        updated_ms: 1_800_000_000_000,
        gzip: None,
    }
}

pub(super) fn frame(records: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(20)];
    f[16..20].copy_from_slice(&records.to_be_bytes());
    f
}

#[test]
fn commit_survives_reopen_with_checkpoints_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    {
        let (s, moved) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
        assert!(moved.is_none());
        assert_eq!(s.next_seq().unwrap(), 1);
        s.commit(1, &frame(3, 100), &[cp(42)], &|| false).unwrap();
        s.commit(2, &frame(2, 50), &[cp(80)], &|| false).unwrap();
        s.ack(1).unwrap();
    }
    let (s, _) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
    assert_eq!(s.next_seq().unwrap(), 3);
    assert_eq!(s.checkpoints().unwrap(), vec![cp(80)]);
    let (seq, v) = s.next_after(0).unwrap().unwrap();
    assert_eq!((seq, v.len()), (2, 50));
    assert!(s.next_after(2).unwrap().is_none());
    assert_eq!(s.bytes(), 50);
}

#[test]
fn agent_id_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let id = Spool::open(&path, 1 << 20, WhenFull::Block)
        .unwrap()
        .0
        .agent_id(None)
        .unwrap();
    let again = Spool::open(&path, 1 << 20, WhenFull::Block)
        .unwrap()
        .0
        .agent_id(None)
        .unwrap();
    assert_eq!(id, again);
    assert_eq!(id.len(), 32);
}

#[test]
fn drop_oldest_counts_what_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(&dir.path().join("spool"), 250, WhenFull::DropOldest).unwrap();
    s.commit(1, &frame(10, 100), &[], &|| false).unwrap();
    s.commit(2, &frame(20, 100), &[], &|| false).unwrap();
    let r = s.commit(3, &frame(30, 100), &[], &|| false).unwrap();
    assert_eq!((r.dropped_batches, r.dropped_lines), (1, 10));
    assert_eq!(s.next_after(0).unwrap().unwrap().0, 2);
    assert_eq!(s.bytes(), 200);
}

#[test]
fn block_waits_for_an_ack_and_can_be_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(&dir.path().join("spool"), 150, WhenFull::Block).unwrap();
    s.commit(1, &frame(1, 100), &[], &|| false).unwrap();
    // Full, and stop() is already true: interrupted, nothing written.
    assert!(matches!(
        s.commit(2, &frame(1, 100), &[], &|| true),
        Err(SpoolError::Interrupted)
    ));
    assert_eq!(s.len(), 1);
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| s.commit(2, &frame(1, 100), &[], &|| false));
        // The waiter cannot finish until seq 1 is acknowledged; it reports itself
        // blocked although the spool is below its limit (the next batch does not fit).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !s.is_blocked() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(s.is_blocked(), "the second commit waits for room");
        assert!(s.bytes() < 150);
        assert_eq!(s.len(), 1);
        s.ack(1).unwrap();
        waiter.join().unwrap().unwrap();
    });
    assert!(!s.is_blocked());
    assert_eq!(s.next_after(0).unwrap().unwrap().0, 2);
}

#[test]
fn dead_letter_moves_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(&dir.path().join("spool"), 1 << 20, WhenFull::Block).unwrap();
    s.commit(1, &frame(1, 30), &[], &|| false).unwrap();
    s.dead_letter(1, Some(400), "400 Bad Request: bad body")
        .unwrap();
    assert!(s.is_empty());
    assert_eq!(s.dead_letter_len(), 1);
    assert_eq!(s.bytes(), 0);
}

#[test]
fn dead_letters_keep_why_and_when_and_can_be_purged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let before = unix_ms();
    {
        let (s, _) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
        s.commit(1, &frame(7, 30), &[], &|| false).unwrap();
        s.commit(2, &frame(3, 40), &[], &|| false).unwrap();
        s.commit(3, &frame(1, 50), &[], &|| false).unwrap();
        s.dead_letter(3, None, &"é".repeat(600)).unwrap();
        s.dead_letter(1, Some(413), "413 Payload Too Large: frame")
            .unwrap();
        s.dead_letter(9, Some(400), "no such batch: nothing happens")
            .unwrap();
        // A batch dead-lettered by an agent that kept no reason.
        s.dead.insert(5u64.to_be_bytes(), frame(2, 20)).unwrap();
    }
    // Reopened for inspection: what was recorded is still there.
    let s = Spool::open_existing(&path).unwrap();
    let list = s.dead_letters().unwrap();
    let short: Vec<(u64, u64, u32)> = list.iter().map(|d| (d.seq, d.bytes, d.records)).collect();
    assert_eq!(short, vec![(1, 30, 7), (3, 50, 1), (5, 20, 2)]);
    let info = list[0].info.clone().unwrap();
    assert_eq!(info.status, Some(413));
    assert_eq!(info.reason, "413 Payload Too Large: frame");
    assert!(info.time_ms >= before && info.time_ms <= unix_ms());
    let long = list[1].info.clone().unwrap();
    assert_eq!((long.status, long.reason.len()), (None, MAX_REASON_BYTES));
    assert_eq!(list[2].info, None);
    assert_eq!(s.dead_letter_frame(1).unwrap().unwrap().len(), 30);
    assert!(s.dead_letter_frame(2).unwrap().is_none());
    assert_eq!(s.len(), 1, "batch 2 is still queued");
    assert_eq!(s.purge_dead_letters().unwrap(), 3);
    assert!(s.dead_letters().unwrap().is_empty());
    assert!(s.dead_info.is_empty());
    assert_eq!(s.len(), 1);
}

#[test]
fn open_existing_refuses_a_missing_or_locked_spool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    assert!(matches!(
        Spool::open_existing(&path),
        Err(SpoolError::Missing(_))
    ));
    assert!(!path.exists(), "nothing created");
    let (held, _) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
    // sled's lock is a flock on its own open file, so a second open is refused even
    // from the same process.
    assert!(matches!(
        Spool::open_existing(&path),
        Err(SpoolError::Locked(_))
    ));
    drop(held);
    assert!(Spool::open_existing(&path).is_ok());
    let locked = sled::Error::Io(std::io::Error::other(
        "could not acquire lock on \"/x/db\": Os { code: 11 }",
    ));
    assert!(is_lock_error(&locked));
    assert!(!is_lock_error(&sled::Error::Unsupported("x".into())));
}

#[test]
fn dead_letter_info_encoding() {
    let i = DeadLetterInfo {
        status: Some(400),
        reason: "bad".into(),
        time_ms: 1_800_000_000_000,
    };
    assert_eq!(DeadLetterInfo::decode(&i.encode()), Some(i));
    assert_eq!(DeadLetterInfo::decode(b""), None);
    assert_eq!(DeadLetterInfo::decode(b"\x02abcdefghijkl"), None);
    assert_eq!(DeadLetterInfo::decode(b"\x01\x00"), None);
}

#[test]
fn a_damaged_spool_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    std::fs::create_dir_all(&path).unwrap();
    // sled keeps its config in `conf` and data in `db`; garbage in both.
    std::fs::write(path.join("conf"), b"\xff\xfe garbage").unwrap();
    std::fs::write(path.join("db"), vec![0xa5u8; 4096]).unwrap();
    let (s, moved) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
    let moved = moved.expect("damaged spool should have been moved aside");
    assert!(moved.exists());
    assert!(s.is_empty());
    s.commit(1, &frame(1, 10), &[], &|| false).unwrap();
}

#[test]
fn checkpoint_encoding_round_trips() {
    let c = cp(u64::MAX - 3);
    assert_eq!(Checkpoint::decode(&c.key(), &c.encode()), Some(c));
    assert_eq!(Checkpoint::decode(&[0; 16], b"\x02abc"), None);
    assert_eq!(Checkpoint::decode(&[0; 16], b"\x09abc"), None);
    // A gzip file's position: version 3, read back with its member start; cut short, it
    // is unreadable rather than misread.
    let g = Checkpoint {
        gzip: Some(crate::gzip::MemberStart {
            file_offset: 123_456,
            content_offset: u64::MAX - 7,
        }),
        ..cp(u64::MAX - 3)
    };
    let bytes = g.encode();
    assert_eq!(bytes[0], 3);
    assert_eq!(Checkpoint::decode(&g.key(), &bytes), Some(g.clone()));
    assert_eq!(Checkpoint::decode(&g.key(), &bytes[..50]), None);
    // Plain files keep version 2, which earlier agents read.
    assert_eq!(cp(1).encode()[0], 2);
}

#[test]
fn version_1_checkpoints_are_still_read() {
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&500u64.to_be_bytes());
    v1.extend_from_slice(b"/var/log/old.log");
    let c = Checkpoint::decode(&file_key(3, 99), &v1).unwrap();
    assert_eq!((c.offset, c.dev, c.ino), (500, 3, 99));
    assert_eq!(c.path, PathBuf::from("/var/log/old.log"));
    assert_eq!(c.fingerprint.len, 0);
}

/// A frame of `len` bytes (at least 20) saying it holds `records` lines, its other bytes
/// derived from `seed`, so that frames differ.
pub(super) fn distinct(seed: u64, records: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut f: Vec<u8> = (0..len.max(20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f[16..20].copy_from_slice(&records.to_be_bytes());
    f
}

/// Segment roll size small enough that a few frames fill a segment.
pub(super) const SMALL_ROLL: u64 = 1000;

pub(super) fn open_small(path: &Path, max_bytes: u64, when_full: WhenFull) -> Spool {
    let (s, moved) = Spool::open_with(path, max_bytes, when_full, SMALL_ROLL).unwrap();
    assert!(moved.is_none());
    s
}

pub(super) fn segment_files(path: &Path) -> Vec<u64> {
    segment::list(&path.join(segment::DIR)).unwrap()
}

pub(super) fn location(s: &Spool, seq: u64) -> Location {
    Location::decode(&s.index.get(seq.to_be_bytes()).unwrap().unwrap()).unwrap()
}

/// Every batch served from the start, in order.
pub(super) fn drain(s: &Spool) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cursor = 0;
    while let Some((seq, f)) = s.next_after(cursor).unwrap() {
        out.push((seq, f.to_vec()));
        cursor = seq;
    }
    out
}

/// The files on disk are exactly the segments in use, and only the active one may be
/// empty.
pub(super) fn check_segments(s: &Spool, path: &Path) {
    let t = lock(&s.table);
    assert_eq!(
        segment_files(path),
        t.segments.keys().copied().collect::<Vec<_>>()
    );
    for (id, e) in &t.segments {
        assert!(e.live > 0 || t.active == Some(*id), "segment {id} is empty");
    }
}

#[test]
fn frames_go_to_segments_and_acks_delete_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let frames: Vec<Vec<u8>> = (1..=10).map(|i| distinct(i, 1, 300)).collect();
    {
        let s = open_small(&path, 1 << 20, WhenFull::Block);
        for (i, f) in frames.iter().enumerate() {
            s.commit(i as u64 + 1, f, &[cp(i as u64)], &|| false)
                .unwrap();
        }
        // Three 316-byte records a segment: 1-3, 4-6, 7-9, 10.
        assert_eq!(segment_files(&path), vec![1, 4, 7, 10]);
        assert_eq!(s.len(), 10);
        assert_eq!(s.bytes(), 3000);
        for seq in [1, 2, 4] {
            s.ack(seq).unwrap();
        }
        assert_eq!(
            segment_files(&path),
            vec![1, 4, 7, 10],
            "1 and 4 not empty yet"
        );
        s.ack(3).unwrap();
        assert_eq!(segment_files(&path), vec![4, 7, 10]);
        check_segments(&s, &path);
        // The active segment stays while it is appended to.
        s.ack(10).unwrap();
        assert_eq!(segment_files(&path), vec![4, 7, 10]);
        assert_eq!(s.next_after(3).unwrap().unwrap().0, 5);
    }
    // Reopened: what is left is served byte for byte; the empty segment is gone.
    let s = open_small(&path, 1 << 20, WhenFull::Block);
    assert_eq!(segment_files(&path), vec![4, 7]);
    let want: Vec<(u64, Vec<u8>)> = (5..=9)
        .map(|i| (i, frames[i as usize - 1].clone()))
        .collect();
    assert_eq!(drain(&s), want);
    assert_eq!((s.len(), s.bytes()), (5, 1500));
    assert_eq!(s.next_seq().unwrap(), 11);
    assert_eq!(s.checkpoints().unwrap(), vec![cp(9)]);
    // New commits go into a new segment, never into one written before the restart.
    s.commit(11, &frames[0], &[], &|| false).unwrap();
    assert_eq!(segment_files(&path), vec![4, 7, 11]);
    for seq in 5..=11 {
        s.ack(seq).unwrap();
    }
    assert!(s.is_empty());
    assert_eq!(segment_files(&path), vec![11]);
    check_segments(&s, &path);
}

#[test]
fn drop_oldest_leaves_a_batch_being_sent_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let s = open_small(&path, 250, WhenFull::DropOldest);
    s.commit(1, &frame(10, 100), &[], &|| false).unwrap();
    s.commit(2, &frame(20, 100), &[], &|| false).unwrap();
    assert!(s.begin_send(1).unwrap());
    // 1 is being sent: 2 goes instead.
    let r = s.commit(3, &frame(30, 100), &[], &|| false).unwrap();
    assert_eq!((r.dropped_batches, r.dropped_lines), (1, 20));
    assert!(!s.begin_send(2).unwrap(), "a dropped batch is not sent");
    // The attempt failed: 1 may go now.
    s.end_send(1);
    let r = s.commit(4, &frame(40, 100), &[], &|| false).unwrap();
    assert_eq!((r.dropped_batches, r.dropped_lines), (1, 10));
    // Everything held is being sent: the bound gives way rather than lose lines that may
    // arrive.
    assert!(s.begin_send(3).unwrap() && s.begin_send(4).unwrap());
    let r = s.commit(5, &frame(50, 100), &[], &|| false).unwrap();
    assert_eq!(r.dropped_batches, 0);
    s.ack(3).unwrap();
    s.dead_letter(4, Some(400), "refused").unwrap();
    assert!(lock(&s.sending).is_empty());
    let served: Vec<u64> = drain(&s).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(served, vec![5]);
}

#[test]
fn drop_oldest_works_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let s = open_small(&path, 1000, WhenFull::DropOldest);
    let mut dropped = (0, 0);
    for seq in 1..=9u64 {
        let r = s
            .commit(seq, &distinct(seq, seq as u32, 300), &[], &|| false)
            .unwrap();
        dropped.0 += r.dropped_batches;
        dropped.1 += r.dropped_lines;
        assert!(s.bytes() <= 1000);
        check_segments(&s, &path);
    }
    // Room for three: 1 to 6 were dropped, 21 lines.
    assert_eq!(dropped, (6, 21));
    let served: Vec<u64> = drain(&s).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(served, vec![7, 8, 9]);
    assert_eq!(segment_files(&path), vec![7]);
}

#[test]
fn dead_letter_keeps_the_frame_from_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let s = open_small(&path, 1 << 20, WhenFull::Block);
    let f = distinct(1, 4, 700);
    s.commit(1, &f, &[], &|| false).unwrap();
    s.commit(2, &distinct(2, 1, 700), &[], &|| false).unwrap();
    s.dead_letter(1, Some(400), "400 Bad Request").unwrap();
    assert_eq!(s.dead_letter_frame(1).unwrap().unwrap().to_vec(), f);
    assert_eq!(s.dead_letters().unwrap()[0].records, 4);
    assert_eq!(
        segment_files(&path),
        vec![2],
        "segment 1 went with its only batch"
    );
    assert_eq!(s.damaged_batches(), 0);
}
