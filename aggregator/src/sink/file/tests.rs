//! Tests of the file sink's rotation: naming, size and time rotation, `keep`, and the
//! crash points of a rotation. A crash is simulated as the pipeline sees one: the sink is
//! dropped without its last round being recorded, opened again, and rewound to the last
//! recorded position; the files must then hold exactly the recorded lines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::generations::{first_line, fitting, list_rotated, period, rotated_path};
use super::*;
use crate::rules::ManualClock;

/// The content of every generation, oldest first, the active file last.
fn files(path: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = list_rotated(path)
        .unwrap()
        .into_iter()
        .map(|n| {
            let p = rotated_path(path, n);
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.push((path.to_owned(), std::fs::read(path).unwrap_or_default()));
    out
}

/// Every generation's lines, in order.
fn all_lines(path: &Path) -> Vec<String> {
    files(path)
        .iter()
        .flat_map(|(_, b)| {
            String::from_utf8(b.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn line(i: usize, pad: usize) -> String {
    format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(pad))
}

fn bytes_of(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

fn sized(path: &Path, max: u64) -> FileSinkConfig {
    FileSinkConfig {
        max_bytes: Some(max),
        ..FileSinkConfig::plain(path)
    }
}

/// What the pipeline does at the end of a round: flush, record, tell the sink.
fn commit(sink: &mut FileSink) -> Position {
    sink.flush().unwrap();
    let pos = sink.position().unwrap();
    sink.committed(pos);
    pos
}

/// What a restart does: open again and rewind to the recorded position. Returns the sink
/// and the position the pipeline records afterwards (the same, or renumbered).
fn reopen(
    config: &FileSinkConfig,
    recorded: Position,
    clock: Arc<ManualClock>,
) -> (FileSink, Position) {
    let mut sink = FileSink::with_clock("out", config, clock).unwrap();
    sink.rewind_to(recorded).unwrap();
    let pos = sink.position().unwrap();
    sink.committed(pos);
    (sink, pos)
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_795_341_600_000))
}

#[test]
fn names_periods_and_fitting() {
    assert_eq!(
        rotated_path(Path::new("/a/out.log"), 12),
        PathBuf::from("/a/out.log.12")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    for name in [
        "out.log.3",
        "out.log.10",
        "out.log.01",
        "out.log.x",
        "out.log",
        "other.log.4",
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    assert_eq!(list_rotated(&path).unwrap(), vec![3, 10]);
    assert_eq!(period(7199, 3600), 1);
    assert_eq!(period(7200, 3600), 2);
    assert_eq!(fitting(b"ab\ncd\n", 6), 6);
    assert_eq!(fitting(b"ab\ncd\n", 5), 3);
    assert_eq!(fitting(b"ab\ncd\n", 2), 0);
    assert_eq!(first_line(b"ab\ncd\n"), 3);
}

#[test]
fn config_checks_name_the_key() {
    let parse = |extra: &str| -> anyhow::Result<FileSinkConfig> {
        let c: FileSinkConfig = toml::from_str(&format!("path = \"/tmp/out.log\"\n{extra}"))?;
        c.validate()?;
        Ok(c)
    };
    let c = parse("max_bytes = 1048576\nrotate_every = \"1h\"\nkeep = 3").unwrap();
    assert_eq!(c.max_bytes, Some(1 << 20));
    assert_eq!(c.rotate_every, Some(Duration::from_secs(3600)));
    assert_eq!(c.keep, Some(3));
    assert!(!parse("").unwrap().rotates());
    for (bad, key) in [
        ("max_bytes = 10", "max_bytes"),
        ("rotate_every = \"0s\"", "rotate_every"),
        ("rotate_every = \"1500ms\"", "rotate_every"),
        ("max_bytes = 1048576\nkeep = 0", "keep"),
        ("keep = 2", "keep"),
        ("rotate = true", "rotate"),
    ] {
        let err = format!("{:#}", parse(bad).unwrap_err());
        assert!(err.contains(key), "{bad}: {err}");
    }
}

#[test]
fn size_rotation_keeps_every_file_under_max_bytes_and_lines_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let mut sink = FileSink::new("out", &sized(&path, 4096)).unwrap();
    let lines: Vec<String> = (0..300).map(|i| line(i, i % 50)).collect();
    // Written in uneven chunks, as frames arrive.
    for chunk in lines.chunks(37) {
        sink.write(&bytes_of(chunk)).unwrap();
    }
    // A line longer than max_bytes gets a file of its own.
    let long = line(300, 5000);
    sink.write(&bytes_of(std::slice::from_ref(&long))).unwrap();
    sink.write(&bytes_of(&[line(301, 1)])).unwrap();
    commit(&mut sink);
    let all = files(&path);
    assert!(all.len() > 4, "rotated only {} times", all.len() - 1);
    for (p, bytes) in &all {
        assert!(
            bytes.ends_with(b"\n") || bytes.is_empty(),
            "{p:?} ends mid-line"
        );
        if bytes.len() > 4096 {
            assert_eq!(bytes, &bytes_of(std::slice::from_ref(&long)), "{p:?}");
        }
    }
    // The files are numbered from 1 without a gap.
    let numbers = list_rotated(&path).unwrap();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    let mut want = lines.clone();
    want.extend([long, line(301, 1)]);
    assert_eq!(all_lines(&path), want);
    assert_eq!(
        sink.position().unwrap().generation,
        numbers.len() as u64 + 1
    );
}

#[test]
fn time_rotation_starts_a_file_per_period_and_reads_the_period_back_from_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let config = FileSinkConfig {
        rotate_every: Some(Duration::from_secs(3600)),
        ..FileSinkConfig::plain(&path)
    };
    // 10:00 UTC, on the hour.
    let clock = clock();
    let mut sink = FileSink::with_clock("out", &config, clock.clone()).unwrap();
    sink.write(&bytes_of(&[line(0, 1)])).unwrap();
    clock.advance(Duration::from_secs(3599));
    sink.write(&bytes_of(&[line(1, 1)])).unwrap();
    assert!(
        list_rotated(&path).unwrap().is_empty(),
        "rotated within the hour"
    );
    clock.advance(Duration::from_secs(1));
    sink.write(&bytes_of(&[line(2, 1)])).unwrap();
    assert_eq!(list_rotated(&path).unwrap(), vec![1]);
    // An idle hour, then a line: one rotation, no empty file.
    clock.advance(Duration::from_secs(7200));
    sink.write(&bytes_of(&[line(3, 1)])).unwrap();
    let pos = commit(&mut sink);
    assert_eq!(list_rotated(&path).unwrap(), vec![1, 2]);
    drop(sink);

    // After a restart the active file's period is that of its modification time.
    let file = std::fs::File::options().append(true).open(&path).unwrap();
    let written = std::time::UNIX_EPOCH + Duration::from_millis(clock.now_ms());
    file.set_modified(written).unwrap();
    drop(file);
    let (mut sink, pos2) = reopen(&config, pos, clock.clone());
    assert_eq!(pos2, pos);
    sink.write(&bytes_of(&[line(4, 1)])).unwrap();
    assert_eq!(
        list_rotated(&path).unwrap(),
        vec![1, 2],
        "same hour, same file"
    );
    clock.advance(Duration::from_secs(3600));
    sink.write(&bytes_of(&[line(5, 1)])).unwrap();
    commit(&mut sink);
    assert_eq!(list_rotated(&path).unwrap(), vec![1, 2, 3]);
    let contents: Vec<usize> = files(&path).iter().map(|(_, b)| b.len()).collect();
    assert!(contents.iter().all(|n| *n > 0), "{contents:?}");
    assert_eq!(
        all_lines(&path),
        (0..6).map(|i| line(i, 1)).collect::<Vec<_>>()
    );
}

#[test]
fn keep_deletes_the_oldest_only_once_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let config = FileSinkConfig {
        keep: Some(2),
        ..sized(&path, 4096)
    };
    let mut sink = FileSink::new("out", &config).unwrap();
    for i in 0..6 {
        sink.write(&bytes_of(&[line(i, 4000)])).unwrap();
    }
    // Five rotations, none recorded: nothing may be deleted yet.
    assert_eq!(list_rotated(&path).unwrap(), vec![1, 2, 3, 4, 5]);
    sink.flush().unwrap();
    sink.committed(Position {
        generation: 3,
        offset: 0,
    });
    // Only what lies below the recorded generation goes.
    assert_eq!(list_rotated(&path).unwrap(), vec![3, 4, 5]);
    commit(&mut sink);
    assert_eq!(list_rotated(&path).unwrap(), vec![4, 5]);
    assert_eq!(
        all_lines(&path),
        (3..6).map(|i| line(i, 4000)).collect::<Vec<_>>()
    );
}

/// A crash at each step of a rotation, and after it before the round was recorded: the
/// restart leaves exactly the recorded lines, and writing on gives every line once.
#[test]
fn a_crash_at_any_step_of_a_rotation_loses_and_doubles_nothing() {
    let steps = [
        None,
        Some(Step::Synced),
        Some(Step::Renamed),
        Some(Step::Created),
    ];
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let config = sized(&path, 4096);
        let clock = clock();
        let lines: Vec<String> = (0..400).map(|i| line(i, 30)).collect();
        let mut sink = FileSink::with_clock("out", &config, clock.clone()).unwrap();
        sink.write(&bytes_of(&lines[..100])).unwrap();
        let recorded = commit(&mut sink);
        assert!(recorded.generation > 1);
        if let Some(step) = step {
            sink.crash_at(step);
            // This round rotates three times or more: the crash comes at the first.
            let err = sink.write(&bytes_of(&lines[100..])).unwrap_err();
            assert!(err.to_string().contains("simulated crash"), "{err}");
        } else {
            // Rotations in the round, all complete, the round never recorded.
            sink.write(&bytes_of(&lines[100..])).unwrap();
            sink.flush().unwrap();
            assert!(sink.position().unwrap().generation >= recorded.generation + 2);
        }
        drop(sink);
        let (mut sink, pos) = reopen(&config, recorded, clock.clone());
        assert_eq!(pos, recorded, "{step:?}: the files are as recorded");
        assert_eq!(all_lines(&path), lines[..100], "{step:?}");
        // The round is written again, once.
        sink.write(&bytes_of(&lines[100..])).unwrap();
        commit(&mut sink);
        assert_eq!(all_lines(&path), lines, "{step:?}");
        let rotated = list_rotated(&path).unwrap();
        assert_eq!(
            rotated,
            (1..=rotated.len() as u64).collect::<Vec<_>>(),
            "{step:?}"
        );
    }
}

/// A crash while the restart itself undoes a rotation is followed by the same cut-back.
#[test]
fn a_crash_while_undoing_a_rotation_is_undone_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let config = sized(&path, 4096);
    let lines: Vec<String> = (0..200).map(|i| line(i, 30)).collect();
    let mut sink = FileSink::new("out", &config).unwrap();
    sink.write(&bytes_of(&lines[..100])).unwrap();
    let recorded = commit(&mut sink);
    sink.write(&bytes_of(&lines[100..])).unwrap();
    sink.flush().unwrap();
    drop(sink);
    // The cut-back got as far as removing the later files and the active file.
    let g = recorded.generation;
    for k in list_rotated(&path).unwrap().into_iter().filter(|k| *k > g) {
        std::fs::remove_file(rotated_path(&path, k)).unwrap();
    }
    std::fs::remove_file(&path).unwrap();
    let (_, pos) = reopen(&config, recorded, clock());
    assert_eq!(pos, recorded);
    assert_eq!(all_lines(&path), lines[..100]);
    // ... or as far as the rename back, not the cut.
    let mut sink = FileSink::new("out", &config).unwrap();
    sink.write(&bytes_of(&lines[100..])).unwrap();
    sink.flush().unwrap();
    drop(sink);
    let g_file = rotated_path(&path, g);
    for k in list_rotated(&path).unwrap().into_iter().filter(|k| *k > g) {
        std::fs::remove_file(rotated_path(&path, k)).unwrap();
    }
    std::fs::rename(&g_file, &path).unwrap();
    let (_, pos) = reopen(&config, recorded, clock());
    assert_eq!(pos, recorded);
    assert_eq!(all_lines(&path), lines[..100]);
}

#[test]
fn files_it_did_not_make_are_never_overwritten_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let config = sized(&path, 4096);
    let mut sink = FileSink::new("out", &config).unwrap();
    sink.write(&bytes_of(&[line(0, 10)])).unwrap();
    let recorded = commit(&mut sink);
    assert_eq!(recorded.generation, 1);
    drop(sink);
    // Someone put a file where a later generation would go.
    std::fs::write(rotated_path(&path, 2), b"theirs\n").unwrap();
    let (mut sink, pos) = reopen(&config, recorded, clock());
    assert_eq!(
        pos,
        Position {
            generation: 3,
            offset: recorded.offset
        },
        "renumbered past the foreign file"
    );
    // Each line takes a file of its own.
    for i in 1..4 {
        sink.write(&bytes_of(&[line(i, 4080)])).unwrap();
    }
    commit(&mut sink);
    assert_eq!(std::fs::read(rotated_path(&path, 2)).unwrap(), b"theirs\n");
    assert_eq!(list_rotated(&path).unwrap(), vec![2, 3, 4, 5]);

    // A position recorded before generations existed (generation 0) is renumbered too.
    let (_, pos) = reopen(&config, Position::at(0), clock());
    assert_eq!(pos.generation, 6);
    assert_eq!(std::fs::read(&path).unwrap(), b"");
}

#[derive(Debug, Clone)]
enum Op {
    /// Write lines of these pad lengths in one call.
    Write(Vec<usize>),
    /// End the round: flush, record.
    Commit,
    /// Stop the next rotation at this step (or not at all), write, then restart.
    Crash(Option<u8>, Vec<usize>),
    /// Move the clock on by this many minutes.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let pads = proptest::collection::vec(0usize..600, 1..40);
    prop_oneof![
        4 => pads.clone().prop_map(Op::Write),
        2 => Just(Op::Commit),
        1 => (proptest::option::of(0u8..3), pads).prop_map(|(s, p)| Op::Crash(s, p)),
        1 => (0u64..90).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random writes, rounds, crashes at random rotation steps and clock moves, with size
    /// and time rotation: after every restart the files hold exactly the recorded lines,
    /// and no file is over max_bytes unless it is one line.
    #[test]
    fn rotation_agrees_with_a_model_through_crashes(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let config = FileSinkConfig {
            max_bytes: Some(4096),
            rotate_every: Some(Duration::from_secs(3600)),
            ..FileSinkConfig::plain(&path)
        };
        let clock = clock();
        let mut sink = FileSink::with_clock("out", &config, clock.clone()).unwrap();
        let mut recorded = sink.position().unwrap();
        let (mut durable, mut pending): (Vec<String>, Vec<String>) = Default::default();
        let mut n = 0;
        let mut make = |pads: &[usize]| -> Vec<String> {
            pads.iter().map(|p| { n += 1; line(n, *p) }).collect()
        };
        for op in ops {
            match op {
                Op::Write(pads) => {
                    let lines = make(&pads);
                    sink.write(&bytes_of(&lines)).unwrap();
                    pending.extend(lines);
                }
                Op::Commit => {
                    recorded = commit(&mut sink);
                    durable.append(&mut pending);
                }
                Op::Crash(step, pads) => {
                    if let Some(s) = step {
                        sink.crash_at([Step::Synced, Step::Renamed, Step::Created][s as usize]);
                    }
                    let _ = sink.write(&bytes_of(&make(&pads)));
                    drop(sink);
                    let (s, pos) = reopen(&config, recorded, clock.clone());
                    sink = s;
                    recorded = pos;
                    pending.clear();
                    prop_assert_eq!(all_lines(&path), durable.clone());
                }
                Op::Advance(minutes) => clock.advance(Duration::from_secs(minutes * 60)),
            }
        }
        commit(&mut sink);
        durable.append(&mut pending);
        prop_assert_eq!(all_lines(&path), durable);
        for (p, bytes) in files(&path) {
            let lines = bytes.iter().filter(|b| **b == b'\n').count();
            prop_assert!(bytes.len() <= 4096 || lines == 1, "{:?}: {} bytes", p, bytes.len());
            prop_assert!(bytes.ends_with(b"\n") || bytes.is_empty());
        }
    }
}

#[test]
fn readme_example_is_a_valid_config() {
    let doc = include_str!("../../../../README.md");
    let start = doc.find("[sinks.archive]\ntype = \"file\"").unwrap();
    let end = start + doc[start..].find("```").unwrap();
    let table: toml::Table = toml::from_str(&doc[start..end]).unwrap();
    let mut sink = table["sinks"]["archive"].as_table().unwrap().clone();
    assert_eq!(sink.remove("type").unwrap().as_str(), Some("file"));
    let c: FileSinkConfig = sink.try_into().unwrap();
    c.validate().unwrap();
    assert_eq!(c.keep, Some(24));
    assert_eq!(c.rotate_every, Some(Duration::from_secs(3600)));
}

/// How many of the file's pages are in the page cache (`mincore` of a mapping, which
/// faults nothing in).
fn resident_pages(path: &Path) -> usize {
    use std::os::fd::AsRawFd;
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    if len == 0 {
        return 0;
    }
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of `len` bytes of an open file, only inspected by
    // mincore (never dereferenced) and unmapped before returning; `vec` has a byte per page.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap {}", path.display());
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(rc, 0, "mincore {}", path.display());
    }
    vec.iter().filter(|b| **b & 1 == 1).count()
}

/// Whether this filesystem frees a file's clean pages on `POSIX_FADV_DONTNEED` (tmpfs,
/// for one, keeps them: they are the file).
fn dontneed_frees_pages(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::write(&probe, vec![b'x'; 64 * 4096]).unwrap();
    let file = File::open(&probe).unwrap();
    file.sync_all().unwrap();
    let before = resident_pages(&probe);
    drop_cached(&file, 0, &probe);
    let after = resident_pages(&probe);
    std::fs::remove_file(&probe).unwrap();
    before == 64 && after == 0
}

#[test]
fn flushed_and_rotated_pages_leave_the_page_cache_unless_kept() {
    let dir = tempfile::tempdir().unwrap();
    if !dontneed_frees_pages(dir.path()) {
        eprintln!(
            "{}: this filesystem keeps a file's pages after POSIX_FADV_DONTNEED; nothing to check",
            dir.path().display()
        );
        return;
    }
    let lines: Vec<String> = (0..200).map(|i| line(i, 1000)).collect();
    for drop in [true, false] {
        let path = dir.path().join(format!("drop-{drop}.log"));
        let config = FileSinkConfig {
            drop_page_cache: drop,
            ..sized(&path, 64 * 1024)
        };
        let mut sink = FileSink::new("out", &config).unwrap();
        sink.write(&bytes_of(&lines)).unwrap();
        // (Reading the files would bring their pages back: only their names are listed.)
        let generations = list_rotated(&path).unwrap();
        assert!(
            generations.len() >= 2,
            "{} rotated files",
            generations.len()
        );
        // Not yet fsynced: the active file's pages are all cached.
        let active = std::fs::metadata(&path).unwrap().len() as usize;
        assert_eq!(resident_pages(&path), active.div_ceil(4096));
        let rotated: usize = generations
            .iter()
            .map(|&n| resident_pages(&rotated_path(&path, n)))
            .sum();
        commit(&mut sink);
        sink.write(&bytes_of(&lines[..3])).unwrap();
        commit(&mut sink);
        let active = std::fs::metadata(&path).unwrap().len() as usize;
        if drop {
            // A rotation fsyncs and drops the whole file; a flush all but the last page.
            assert_eq!(rotated, 0);
            assert!(resident_pages(&path) <= 1, "{}", resident_pages(&path));
        } else {
            assert!(rotated >= 16 * generations.len(), "{rotated}");
            assert_eq!(resident_pages(&path), active.div_ceil(4096));
        }
        // Dropped or not, every line is there, once.
        let mut want: Vec<String> = lines.clone();
        want.extend_from_slice(&lines[..3]);
        assert_eq!(all_lines(&path), want);
    }
}
