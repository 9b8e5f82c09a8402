//! Tests of the per-sink durable queue: what is taken, settled, cut back, dropped and kept
//! across reopening.

use std::sync::Arc;

use super::queue::*;
use super::remote::Outcome;

fn lines(range: std::ops::Range<u32>) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    for i in range.clone() {
        out.extend_from_slice(format!("{{\"message\":\"e{i}\"}}\n").as_bytes());
    }
    (out, range.len() as u32)
}

fn open(dir: &std::path::Path, config: &QueueConfig) -> (QueueStore, Arc<SinkQueue>) {
    let store = QueueStore::open(dir).unwrap();
    let q = store.queue("s", config).unwrap();
    (store, q)
}

fn messages(t: &Taken) -> Vec<String> {
    t.pending
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&p.line).unwrap();
            v["message"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn deliver_all(t: &mut Taken) {
    for p in &mut t.pending {
        p.outcome = Outcome::Delivered;
    }
}

#[test]
fn only_committed_entries_are_taken_and_settled_ones_leave() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, q) = open(dir.path(), &QueueConfig::default());
    let (a, n) = lines(0..3);
    q.append(&a, n, 1_000).unwrap();
    let committed = q.position();
    let (b, n) = lines(3..5);
    q.append(&b, n, 2_000).unwrap();
    // Nothing is committed yet: nothing may be sent.
    q.commit(0);
    assert!(q.take(100, 1 << 20).unwrap().is_empty());
    q.commit(committed);
    let mut t = q.take(100, 1 << 20).unwrap();
    assert_eq!(messages(&t), ["e0", "e1", "e2"]);
    assert_eq!(t.oldest_ms, Some(1_000));
    deliver_all(&mut t);
    let s = q.settle(&t, 3_000).unwrap();
    assert_eq!(s.delivered, 3);
    let level = q.level();
    assert_eq!((level.events, level.oldest_ms), (2, Some(2_000)));
    assert!(q.take(100, 1 << 20).unwrap().is_empty());
    q.commit(q.position());
    assert_eq!(messages(&q.take(100, 1 << 20).unwrap()), ["e3", "e4"]);
}

#[test]
fn rewinding_cuts_uncommitted_entries_and_reuses_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, q) = open(dir.path(), &QueueConfig::default());
    let (a, n) = lines(0..2);
    q.append(&a, n, 1).unwrap();
    let pos = q.position();
    q.commit(pos);
    let (b, n) = lines(2..4);
    q.append(&b, n, 2).unwrap();
    q.append(&b, n, 3).unwrap();
    assert_eq!(q.level().events, 6);
    q.rewind_to(pos).unwrap();
    assert_eq!(q.level().events, 2);
    assert_eq!(q.position(), pos);
    let (c, n) = lines(10..11);
    q.append(&c, n, 4).unwrap();
    q.commit(q.position());
    assert_eq!(
        messages(&q.take(100, 1 << 20).unwrap()),
        ["e0", "e1", "e10"]
    );
}

#[test]
fn a_partly_delivered_entry_resumes_after_its_settled_events_even_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_s, q) = open(dir.path(), &QueueConfig::default());
        let (a, n) = lines(0..10);
        q.append(&a, n, 1).unwrap();
        q.commit(q.position());
        let mut t = q.take(4, 1 << 20).unwrap();
        assert_eq!(messages(&t), ["e0", "e1", "e2", "e3"]);
        // The first three went through, the fourth did not.
        for p in &mut t.pending[..3] {
            p.outcome = Outcome::Delivered;
        }
        assert_eq!(q.settle(&t, 5).unwrap().delivered, 3);
        assert_eq!(q.level().events, 7);
        q.flush().unwrap();
    }
    let (_s, q) = open(dir.path(), &QueueConfig::default());
    assert_eq!(
        q.level().events,
        7,
        "the cursor's settled events are not counted"
    );
    assert!(
        q.take(100, 1 << 20).unwrap().is_empty(),
        "nothing is delivered before the pipeline commits the recorded position"
    );
    q.commit(q.position());
    let mut t = q.take(100, 1 << 20).unwrap();
    assert_eq!(messages(&t).first().map(String::as_str), Some("e3"));
    assert_eq!(t.pending.len(), 7);
    deliver_all(&mut t);
    q.settle(&t, 6).unwrap();
    assert!(q.take(100, 1 << 20).unwrap().is_empty());
    assert_eq!(q.level().events, 0);
}

#[test]
fn refused_events_become_dead_letters_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, q) = open(dir.path(), &QueueConfig::default());
    let (a, n) = lines(0..3);
    q.append(&a, n, 1).unwrap();
    q.append(b"not json\n", 1, 1).unwrap();
    q.commit(q.position());
    let mut t = q.take(100, 1 << 20).unwrap();
    t.pending[0].outcome = Outcome::Delivered;
    t.pending[1].outcome = Outcome::Rejected("too old".into());
    t.pending[2].outcome = Outcome::Delivered;
    t.pending[3].outcome = Outcome::Rejected("bad \"event\"".into());
    let s = q.settle(&t, 1_795_341_600_000).unwrap();
    assert_eq!((s.delivered, s.dead_lettered), (2, 2));
    let dead = q.dead_letters(None, 10).unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].1["reason"], "too old");
    assert_eq!(dead[0].1["event"]["message"], "e1");
    assert_eq!(dead[0].1["at"], "2026-11-22T10:00:00.000Z");
    assert_eq!(dead[1].1["reason"], "bad \"event\"");
    assert_eq!(dead[1].1["event"], "not json");
    // Paging.
    let after = q.dead_letters(Some(dead[0].0), 10).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(q.level().dead_letters, 2);
    assert_eq!(q.purge_dead_letters().unwrap(), 2);
    assert!(q.dead_letters(None, 10).unwrap().is_empty());
    // Ids never go back, even after every dead letter was purged and the store reopened.
    drop(q);
    drop(_s);
    let (_s, q) = open(dir.path(), &QueueConfig::default());
    q.append(b"{\"message\":\"late\"}\n", 1, 2).unwrap();
    q.commit(q.position());
    let mut t = q.take(10, 1 << 20).unwrap();
    t.pending[0].outcome = Outcome::Rejected("again".into());
    q.settle(&t, 3).unwrap();
    let again = q.dead_letters(None, 10).unwrap();
    assert!(
        again[0].0 > dead[1].0,
        "dead-letter id {} reused",
        again[0].0
    );
}

#[test]
fn dead_letters_stay_under_their_bound() {
    let dir = tempfile::tempdir().unwrap();
    let config = QueueConfig {
        dead_letter_max_bytes: 400,
        ..QueueConfig::default()
    };
    let (_s, q) = open(dir.path(), &config);
    let (a, n) = lines(0..20);
    q.append(&a, n, 1).unwrap();
    q.commit(q.position());
    let mut t = q.take(100, 1 << 20).unwrap();
    for p in &mut t.pending {
        p.outcome = Outcome::Rejected("no".into());
    }
    let s = q.settle(&t, 1).unwrap();
    assert_eq!(s.dead_lettered, 20);
    assert!(s.evicted > 0);
    let kept = q.dead_letters(None, 100).unwrap();
    assert_eq!(kept.len() as u64, 20 - s.evicted);
    // The newest are kept.
    assert_eq!(kept.last().unwrap().1["event"]["message"], "e19");
    let bytes: usize = kept.iter().map(|(_, v)| v.to_string().len()).sum();
    assert!(bytes <= 400, "{bytes} bytes kept");
}

#[test]
fn a_full_queue_blocks_or_drops_its_oldest_events() {
    let dir = tempfile::tempdir().unwrap();
    let (a, n) = lines(0..10);
    let entry = a.len() as u64 + 13;
    let block = QueueConfig {
        max_bytes: entry * 2,
        ..QueueConfig::default()
    };
    let store = QueueStore::open(dir.path()).unwrap();
    let q = store.queue("block", &block).unwrap();
    q.append(&a, n, 1).unwrap();
    assert!(!q.is_full());
    q.append(&a, n, 2).unwrap();
    assert!(q.is_full());
    let (b, m) = lines(10..20);
    let drop = QueueConfig {
        when_full: WhenFull::DropOldest,
        max_bytes: (b.len() as u64 + 13) * 2,
        ..block
    };
    let q = store.queue("drop", &drop).unwrap();
    assert_eq!(q.append(&a, n, 1).unwrap(), 0);
    assert_eq!(q.append(&b, m, 2).unwrap(), 0);
    // Entries being delivered are left alone: the third append drops the second entry.
    q.commit(q.position());
    let t = q.take(10, 1 << 20).unwrap();
    assert_eq!(messages(&t)[0], "e0");
    let (c, k) = lines(20..30);
    assert_eq!(q.append(&c, k, 3).unwrap(), 10);
    assert!(!q.is_full(), "drop_oldest never reports full");
    assert_eq!(q.level().events, 20);
    let mut t = t;
    deliver_all(&mut t);
    q.settle(&t, 4).unwrap();
    q.commit(q.position());
    assert_eq!(messages(&q.take(100, 1 << 20).unwrap())[0], "e20");
}

#[test]
fn taking_respects_event_and_byte_limits_but_always_takes_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, q) = open(dir.path(), &QueueConfig::default());
    for i in 0..5 {
        let (a, n) = lines(i * 10..i * 10 + 10);
        q.append(&a, n, 1).unwrap();
    }
    q.commit(q.position());
    assert_eq!(q.take(25, 1 << 20).unwrap().pending.len(), 25);
    let one = q.take(100, 1).unwrap();
    assert_eq!(
        one.pending.len(),
        1,
        "an event larger than max_bytes still goes"
    );
    let t = q.take(100, 40).unwrap();
    assert!(t.bytes <= 40 && !t.is_empty());
}

#[test]
fn the_store_names_every_queue_and_counts_what_waits_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = QueueStore::open(dir.path()).unwrap();
    let q = store.queue("old", &QueueConfig::default()).unwrap();
    let (a, n) = lines(0..7);
    q.append(&a, n, 1).unwrap();
    store.queue("new", &QueueConfig::default()).unwrap();
    let mut names = store.names();
    names.sort();
    assert_eq!(names, ["new", "old"]);
    assert_eq!(store.waiting("old").unwrap(), 7);
    assert_eq!(store.waiting("new").unwrap(), 0);
}
