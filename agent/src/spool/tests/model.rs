//! Random sequences of commits, reads, acknowledgements, dead-letters and restarts
//! against a model of what the spool promises.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::*;
use super::{check_segments, cp, distinct, drain, open_small};

#[derive(Debug, Clone)]
enum Op {
    Commit {
        len: usize,
        records: u32,
    },
    /// The shipper reads the next batch.
    Read,
    /// Acknowledge the n-th held batch (modulo how many there are).
    Ack(usize),
    DeadLetter(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (20usize..700, 0u32..50).prop_map(|(len, records)| Op::Commit { len, records }),
        3 => Just(Op::Read),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::DeadLetter),
        1 => Just(Op::Reopen),
    ]
}

/// The spool's promises as plain data: what is held, what was dead-lettered, where the
/// shipper's cursor is in this open.
#[derive(Default)]
struct Model {
    held: BTreeMap<u64, Vec<u8>>,
    dead: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    cursor: u64,
}

fn run_model(ops: &[Op], max_bytes: u64, when_full: WhenFull) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let mut s = open_small(&path, max_bytes, when_full);
    let mut m = Model {
        next_seq: 1,
        ..Model::default()
    };
    let nth = |held: &BTreeMap<u64, Vec<u8>>, n: usize| {
        (!held.is_empty()).then(|| *held.keys().nth(n % held.len()).unwrap_or(&0))
    };
    for op in ops {
        match op {
            Op::Commit { len, records } => {
                let seq = m.next_seq;
                let f = distinct(seq, *records, *len);
                let r = s.commit(seq, &f, &[cp(seq)], &|| false).unwrap();
                let mut dropped = 0;
                let held_bytes =
                    |h: &BTreeMap<u64, Vec<u8>>| -> usize { h.values().map(Vec::len).sum() };
                if when_full == WhenFull::DropOldest {
                    while held_bytes(&m.held) > 0
                        && (held_bytes(&m.held) + f.len()) as u64 > max_bytes
                    {
                        m.held.pop_first();
                        dropped += 1;
                    }
                }
                prop_assert_eq!(r.dropped_batches, dropped);
                m.held.insert(seq, f);
                m.next_seq += 1;
            }
            Op::Read => {
                let want = m
                    .held
                    .range(m.cursor + 1..)
                    .next()
                    .map(|(k, v)| (*k, v.clone()));
                let got = s
                    .next_after(m.cursor)
                    .unwrap()
                    .map(|(k, v)| (k, v.to_vec()));
                prop_assert_eq!(&got, &want);
                if let Some((seq, _)) = got {
                    m.cursor = seq;
                }
            }
            Op::Ack(n) => {
                if let Some(seq) = nth(&m.held, *n) {
                    s.ack(seq).unwrap();
                    m.held.remove(&seq);
                }
            }
            Op::DeadLetter(n) => {
                if let Some(seq) = nth(&m.held, *n) {
                    s.dead_letter(seq, Some(400), "refused").unwrap();
                    m.dead.insert(seq, m.held.remove(&seq).unwrap_or_default());
                }
            }
            Op::Reopen => {
                drop(s);
                s = open_small(&path, max_bytes, when_full);
                m.cursor = 0;
            }
        }
        prop_assert_eq!(s.len(), m.held.len());
        let held_bytes: usize = m.held.values().map(Vec::len).sum();
        prop_assert_eq!(s.bytes(), held_bytes as u64);
        check_segments(&s, &path);
    }
    // The rest of this open, then everything once more after a restart.
    let rest: Vec<(u64, Vec<u8>)> = m
        .held
        .range(m.cursor + 1..)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let mut got = Vec::new();
    while let Some((seq, f)) = s.next_after(m.cursor).unwrap() {
        got.push((seq, f.to_vec()));
        m.cursor = seq;
    }
    prop_assert_eq!(got, rest);
    drop(s);
    let s = open_small(&path, max_bytes, when_full);
    let all: Vec<(u64, Vec<u8>)> = m.held.clone().into_iter().collect();
    prop_assert_eq!(drain(&s), all);
    prop_assert_eq!(s.next_seq().unwrap(), m.next_seq);
    for (seq, f) in &m.dead {
        let kept = s.dead_letter_frame(*seq).unwrap().map(|v| v.to_vec());
        prop_assert_eq!(kept.as_ref(), Some(f));
    }
    prop_assert_eq!(s.dead_letter_len(), m.dead.len());
    prop_assert_eq!(s.damaged_batches(), 0);
    check_segments(&s, &path);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_sequences_agree_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run_model(&ops, 1 << 20, WhenFull::Block)?;
    }

    #[test]
    fn random_sequences_agree_with_the_model_when_dropping(
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run_model(&ops, 2500, WhenFull::DropOldest)?;
    }
}
