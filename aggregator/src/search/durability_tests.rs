//! What survives: reopening, retention by size and by age, segments damaged on disk
//! (torn tails, flipped bytes, files that are not segments), and segments written in the
//! format before blocks had text filters.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use logferry_shared::event::Level;

use super::summary::{Summary, SUMMARY_LEN, SUMMARY_LEN_V1};
use super::tests::{clock, corpus, expected, filled, open, q, settings, walk, Ev, T0};
use super::*;
use crate::rules::ManualClock;

#[test]
fn reopening_finds_the_events_and_numbers_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let (store, mut evs) = filled(dir.path(), 4);
    drop(store);
    let store = open(dir.path(), settings(4), &c);
    assert_eq!(store.stats().events, 60);
    assert_eq!(walk(&store, &q()), expected(&evs, |_| true));
    // Same timestamps as the first events: the order by arrival must carry on.
    let more: Vec<Ev> = evs[..5]
        .iter()
        .map(|e| Ev::new(e.ts, e.level, &e.host, e.namespace.as_deref(), "again"))
        .collect();
    store.append(more.iter().map(Ev::as_new));
    evs.extend(more);
    drop(store);
    let store = open(dir.path(), settings(4), &c);
    assert_eq!(
        walk(&store, &Query { limit: 3, ..q() }),
        expected(&evs, |_| true)
    );
}

#[test]
fn uncompressed_blocks_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let evs = corpus();
    let plain = StoreSettings {
        compression_level: 0,
        ..settings(8)
    };
    let store = open(dir.path(), plain, &c);
    store.append(evs.iter().map(Ev::as_new));
    drop(store);
    // Reopened compressing: old blocks stay readable.
    let store = open(dir.path(), settings(8), &c);
    let query = Query {
        text: Some("expired".into()),
        ..q()
    };
    assert_eq!(
        walk(&store, &query),
        expected(&evs, |e| e.line.contains("expired"))
    );
}

#[test]
fn retention_by_size_deletes_the_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let s = StoreSettings {
        max_bytes: 64 << 10,
        compression_level: 0,
        ..settings(16)
    };
    let store = open(dir.path(), s, &c);
    let evs: Vec<Ev> = (0..2000)
        .map(|i| {
            Ev::new(
                T0 + i,
                Some(Level::Info),
                "h",
                None,
                &format!("event {i:05}"),
            )
        })
        .collect();
    for chunk in evs.chunks(100) {
        store.append(chunk.iter().map(Ev::as_new));
        assert!(store.stats().bytes <= s.max_bytes);
    }
    let stats = store.stats();
    assert!(stats.removed_segments_total > 0);
    assert!(stats.bytes > s.max_bytes / 2, "{stats:?}");
    let kept = walk(&store, &q());
    assert!(kept.len() < 1000, "{}", kept.len());
    // What is left is the newest events, without gaps.
    assert_eq!(kept, expected(&evs[evs.len() - kept.len()..], |_| true));
    let on_disk: u64 = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(on_disk, stats.bytes);
}

#[test]
fn retention_by_age_hides_then_deletes_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let s = StoreSettings {
        max_bytes: 1 << 20,
        ..settings(4)
    };
    let store = open(dir.path(), s, &c);
    let old: Vec<Ev> = (0..40)
        .map(|i| Ev::new(T0 + i, None, "h", None, "old"))
        .collect();
    store.append(old.iter().map(Ev::as_new));
    drop(store);
    // Reopened: the new events go to a segment of their own.
    let store = open(dir.path(), s, &c);
    c.advance(Duration::from_secs(1800));
    let new: Vec<Ev> = (0..40)
        .map(|i| Ev::new(T0 + 100 + i, None, "h", None, "new"))
        .collect();
    store.append(new.iter().map(Ev::as_new));
    store.flush();
    assert_eq!(walk(&store, &q()).len(), 80);
    // The old blocks pass max_age: no longer served, even before their segment goes.
    c.advance(Duration::from_secs(1801));
    assert_eq!(walk(&store, &q()), expected(&new, |_| true));
    let before = store.stats();
    store.expire();
    let after = store.stats();
    assert!(after.segments < before.segments, "{before:?} {after:?}");
    assert_eq!(after.events, 40);
    // Everything expires; the store carries on.
    c.advance(Duration::from_secs(7200));
    store.expire();
    assert_eq!(store.stats().segments, 0);
    assert_eq!(walk(&store, &q()), Vec::<String>::new());
    store.append(old[..3].iter().map(Ev::as_new));
    assert_eq!(walk(&store, &q()).len(), 3);
    drop(store);
    let store = open(dir.path(), s, &c);
    assert_eq!(walk(&store, &q()).len(), 3);
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_torn_or_garbage_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let evs = corpus();
    let store = open(dir.path(), settings(10), &c);
    store.append(evs.iter().map(Ev::as_new));
    drop(store);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let seg = &files[0];
    let good_len = fs::metadata(seg).unwrap().len();
    // Garbage after the last block, as if a write had been cut short.
    OpenOptions::new()
        .append(true)
        .open(seg)
        .unwrap()
        .write_all(b"LFBK\x40\x01\0\0garbage that is not a block")
        .unwrap();
    let store = open(dir.path(), settings(10), &c);
    assert_eq!(walk(&store, &q()), expected(&evs, |_| true));
    assert_eq!(fs::metadata(seg).unwrap().len(), good_len, "cut back");
    drop(store);
    // The last block cut in half: the five blocks before it survive.
    let f = OpenOptions::new().write(true).open(seg).unwrap();
    f.set_len(good_len - 100).unwrap();
    drop(f);
    let store = open(dir.path(), settings(10), &c);
    assert_eq!(walk(&store, &q()), expected(&evs[..50], |_| true));
    // And it writes on after the damage.
    store.append(evs[50..].iter().map(Ev::as_new));
    drop(store);
    let store = open(dir.path(), settings(10), &c);
    assert_eq!(walk(&store, &q()), expected(&evs, |_| true));
}

#[test]
fn a_damaged_section_is_caught_when_opening_the_newest_segment() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let evs = corpus();
    let store = open(dir.path(), settings(10), &c);
    store.append(evs.iter().map(Ev::as_new));
    drop(store);
    let seg = segment_files(dir.path()).remove(0);
    let mut bytes = fs::read(&seg).unwrap();
    // Flip a byte near the end: inside the last block's lines section.
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let store = open(dir.path(), settings(10), &c);
    assert_eq!(walk(&store, &q()), expected(&evs[..50], |_| true));
}

/// Stores `evs` in blocks of 10 through two openings of the store: the first 30 in one
/// segment, the rest in a second. Returns the segment files, oldest first.
fn in_two_segments(dir: &Path, c: &Arc<ManualClock>, evs: &[Ev]) -> Vec<std::path::PathBuf> {
    let store = open(dir, settings(10), c);
    store.append(evs[..30].iter().map(Ev::as_new));
    drop(store);
    let store = open(dir, settings(10), c);
    store.append(evs[30..].iter().map(Ev::as_new));
    drop(store);
    segment_files(dir)
}

#[test]
fn damage_in_an_older_segment_skips_that_block_at_query_time() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let evs = corpus();
    let files = in_two_segments(dir.path(), &c, &evs);
    assert_eq!(files.len(), 2);
    let mut bytes = fs::read(&files[0]).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    fs::write(&files[0], &bytes).unwrap();
    let store = open(dir.path(), settings(10), &c);
    let mut want = evs.clone();
    want.drain(20..30);
    assert_eq!(walk(&store, &q()), expected(&want, |_| true));
    assert_eq!(walk(&store, &q()), expected(&want, |_| true));
    assert_eq!(store.stats().damaged_blocks_total, 1, "reported once");
}

#[test]
fn unreadable_segments_and_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let evs = corpus();
    let store = open(dir.path(), settings(10), &c);
    store.append(evs.iter().map(Ev::as_new));
    drop(store);
    let junk = dir.path().join(format!("{:020}.seg", 7));
    fs::write(&junk, b"not a segment at all").unwrap();
    let short = dir.path().join(format!("{:020}.seg", 8));
    fs::write(&short, b"LFS").unwrap();
    let newer_version = dir.path().join(format!("{:020}.seg", 9));
    fs::write(&newer_version, b"LFSEARCH\x03\0\0\0\0\0\0\0").unwrap();
    let stray = dir.path().join("notes.txt");
    fs::write(&stray, b"left alone").unwrap();
    let store = open(dir.path(), settings(10), &c);
    assert_eq!(walk(&store, &q()), expected(&evs, |_| true));
    assert!(!junk.exists() && !short.exists() && !newer_version.exists());
    assert!(stray.exists());
}

#[test]
fn a_block_that_cannot_be_written_is_dropped_and_the_store_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search");
    let c = clock();
    let store = open(&path, settings(4), &c);
    let evs: Vec<Ev> = (0..12)
        .map(|i| Ev::new(T0 + i, Some(Level::Warn), "h", None, &format!("e{i}")))
        .collect();
    // No directory to start a segment in: the first block is lost, counted.
    fs::remove_dir(&path).unwrap();
    store.append(evs[..4].iter().map(Ev::as_new));
    let stats = store.stats();
    assert_eq!((stats.lost_total, stats.blocks, stats.events), (4, 0, 0));
    assert_eq!(walk(&store, &q()), Vec::<String>::new());
    // Writable again: the next blocks are written, and numbered on.
    fs::create_dir(&path).unwrap();
    store.append(evs[4..].iter().map(Ev::as_new));
    assert_eq!(store.stats().blocks, 2);
    assert_eq!(walk(&store, &q()), expected(&evs[4..], |_| true));
    drop(store);
    let store = open(&path, settings(4), &c);
    assert_eq!(walk(&store, &q()), expected(&evs[4..], |_| true));
}

/// Rewrites a segment in format version 1, as the store wrote it before blocks had text
/// filters: the shorter summary, no filter.
fn rewrite_as_version_1(path: &Path) {
    let b = fs::read(path).unwrap();
    let mut out = b[..16].to_vec();
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    let mut pos = 16;
    while pos < b.len() {
        let body = &b[pos + 12..pos + 12 + SUMMARY_LEN];
        let s = Summary::decode(body).unwrap();
        let v1 = &body[..SUMMARY_LEN_V1];
        out.extend_from_slice(b"LFBK");
        out.extend_from_slice(&(SUMMARY_LEN_V1 as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(v1).to_le_bytes());
        out.extend_from_slice(v1);
        let meta_at = pos + 12 + SUMMARY_LEN + s.filter_len as usize;
        let end = meta_at + (s.meta_len + s.lines_len) as usize;
        out.extend_from_slice(&b[meta_at..end]);
        pos = end;
    }
    assert_eq!(pos, b.len());
    fs::write(path, out).unwrap();
}

fn text(t: &str) -> Query {
    Query {
        text: Some(t.into()),
        ..q()
    }
}

#[test]
fn blocks_written_before_text_filters_are_still_searched() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let evs = corpus();
    let store = open(dir.path(), settings(8), &c);
    store.append(evs[..40].iter().map(Ev::as_new));
    drop(store);
    let old = segment_files(dir.path()).remove(0);
    let before = fs::metadata(&old).unwrap().len();
    rewrite_as_version_1(&old);
    assert!(fs::metadata(&old).unwrap().len() < before);
    let store = open(dir.path(), settings(8), &c);
    assert_eq!(store.stats().blocks, 5, "every old block kept");
    let found = |t: &str, evs: &[Ev]| {
        let t = t.to_ascii_lowercase();
        expected(evs, |e| e.line.to_ascii_lowercase().contains(&t))
    };
    for t in ["expired", "TIMEOUT", "zebra", "ok", "user:3"] {
        assert_eq!(walk(&store, &text(t)), found(t, &evs[..40]), "{t}");
    }
    assert_eq!(
        store.stats().text_skipped_blocks_total,
        0,
        "old blocks have no filter"
    );
    // New blocks go to a new segment, with filters; the old ones are read as before.
    store.append(evs[40..].iter().map(Ev::as_new));
    drop(store);
    let store = open(dir.path(), settings(8), &c);
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_eq!(walk(&store, &q()), expected(&evs, |_| true));
    for t in ["expired", "TIMEOUT", "zebra", "ok", "user:3"] {
        assert_eq!(walk(&store, &text(t)), found(t, &evs), "{t}");
    }
    // A text found nowhere: each of the three new blocks is skipped by its filter, and the
    // five old ones are read.
    let skipped = store.stats().text_skipped_blocks_total;
    assert!(walk(&store, &text("zebra crossing")).is_empty());
    assert_eq!(store.stats().text_skipped_blocks_total - skipped, 3);
    assert_eq!(store.stats().damaged_blocks_total, 0);
}

#[test]
fn a_damaged_text_filter_makes_its_block_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let evs = corpus();
    let files = in_two_segments(dir.path(), &c, &evs);
    let mut bytes = fs::read(&files[0]).unwrap();
    // The first block's filter follows the file header and the block header.
    let filter_at = 16 + 12 + SUMMARY_LEN;
    bytes[filter_at + 3] ^= 0x10;
    fs::write(&files[0], &bytes).unwrap();
    let store = open(dir.path(), settings(10), &c);
    // A query without text does not read filters.
    assert_eq!(walk(&store, &q()), expected(&evs, |_| true));
    let mut want = evs.clone();
    want.drain(..10);
    assert_eq!(
        walk(&store, &text("order")),
        expected(&want, |e| e.line.contains("order"))
    );
    assert_eq!(store.stats().damaged_blocks_total, 1);
    assert_eq!(walk(&store, &q()), expected(&want, |_| true));
}
