use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::reader::MAX_MEMBER_STARTS;
use super::*;
use crate::fingerprint::FINGERPRINT_BYTES;

fn gzip(content: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(content).unwrap();
    e.finish().unwrap()
}

fn lines(from: usize, to: usize) -> Vec<u8> {
    (from..to)
        .flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 50)).into_bytes())
        .collect()
}

struct Disk {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Disk {
    fn with(bytes: &[u8]) -> Disk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.gz");
        std::fs::write(&path, bytes).unwrap();
        Disk { _dir: dir, path }
    }

    fn append(&self, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    fn open(&self) -> File {
        File::open(&self.path).unwrap()
    }
}

/// Reads until the reader stops returning bytes: (data, last step).
fn drain(r: &mut GzipReader, members: &mut MemberLog, buf_len: usize) -> (Vec<u8>, Step) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; buf_len];
    for _ in 0..1_000_000 {
        match r.read(&mut buf, members).unwrap() {
            Step::Data(n) => out.extend_from_slice(&buf[..n]),
            Step::Skipped(_) => {}
            step => return (out, step),
        }
    }
    panic!("the reader never stopped");
}

#[test]
fn one_member_reads_whole_and_ends_complete() {
    let content = lines(0, 5000);
    let disk = Disk::with(&gzip(&content));
    let mut members = MemberLog::new(MemberStart::default());
    let mut r = GzipReader::open(disk.open(), MemberStart::default(), 0);
    let (out, step) = drain(&mut r, &mut members, 4096);
    assert_eq!(out, content);
    assert_eq!(step, Step::Complete);
    assert_eq!(r.position(), content.len() as u64);
    assert!(!r.in_member());
    let size = std::fs::metadata(&disk.path).unwrap().len();
    assert_eq!(r.file_position(), size);
    // The end of the member is noted: a resume at the end costs nothing.
    assert_eq!(
        members.at(content.len() as u64),
        MemberStart {
            file_offset: size,
            content_offset: content.len() as u64
        }
    );
}

#[test]
fn members_are_read_one_after_another_and_noted() {
    // What `gzip -c a b > c` and `cat a.gz b.gz` make.
    let parts = [lines(0, 1000), lines(1000, 1001), lines(1001, 3000)];
    let compressed: Vec<Vec<u8>> = parts.iter().map(|p| gzip(p)).collect();
    let disk = Disk::with(&compressed.concat());
    let mut members = MemberLog::new(MemberStart::default());
    let mut r = GzipReader::open(disk.open(), MemberStart::default(), 0);
    let (out, step) = drain(&mut r, &mut members, 1000);
    assert_eq!(out, parts.concat());
    assert_eq!(step, Step::Complete);
    let mut file_offset = 0;
    let mut content_offset = 0;
    for (part, gz) in parts.iter().zip(&compressed) {
        file_offset += gz.len() as u64;
        content_offset += part.len() as u64;
        assert_eq!(
            members.at(content_offset),
            MemberStart {
                file_offset,
                content_offset
            }
        );
    }
    assert_eq!(members.len(), 4);
}

#[test]
fn a_file_cut_anywhere_waits_and_then_reads_on() {
    // Every cut point of a small two-member file, header and trailer included: the
    // reader returns what it can, waits, and once the rest is written returns the rest.
    let content = [lines(0, 40), lines(40, 80)];
    let whole = [gzip(&content[0]), gzip(&content[1])].concat();
    for cut in 0..whole.len() {
        let disk = Disk::with(&whole[..cut]);
        let mut members = MemberLog::new(MemberStart::default());
        let mut r = GzipReader::open(disk.open(), MemberStart::default(), 0);
        let (mut out, step) = drain(&mut r, &mut members, 64);
        let at_boundary = cut == 0 || cut == whole.len() - gzip(&content[1]).len();
        let expect = if at_boundary {
            Step::Complete
        } else {
            Step::Pending
        };
        assert_eq!(step, expect, "cut at {cut}");
        disk.append(&whole[cut..]);
        let (rest, step) = drain(&mut r, &mut members, 64);
        out.extend_from_slice(&rest);
        assert_eq!(step, Step::Complete, "cut at {cut}");
        assert_eq!(out, content.concat(), "cut at {cut}");
    }
}

#[test]
fn corrupt_data_fails_after_the_lines_before_it() {
    let content = lines(0, 200_000);
    let mut bytes = gzip(&content);
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b = !*b;
    }
    let disk = Disk::with(&bytes);
    let mut members = MemberLog::new(MemberStart::default());
    let mut r = GzipReader::open(disk.open(), MemberStart::default(), 0);
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    let err = loop {
        match r.read(&mut buf, &mut members) {
            Ok(Step::Data(n)) => out.extend_from_slice(&buf[..n]),
            Ok(step) => panic!("corrupt data read as {step:?}"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, GzipError::Corrupt { file_offset: 0, .. }),
        "{err}"
    );
    // What came out is the file's true beginning up to about where the damage is (a few
    // bytes just before the decoder notices may be garbled: deflate has no checksum
    // before the member's end).
    let same = out.iter().zip(&content).take_while(|(a, b)| a == b).count();
    assert!(
        same > content.len() / 4,
        "only {same} of {} bytes came out right before the damage",
        content.len()
    );
    assert!(out.len() < content.len(), "the whole content came out");
    // The reader stays failed and keeps its file.
    assert!(matches!(
        r.read(&mut buf, &mut members),
        Err(GzipError::Corrupt { .. })
    ));
    assert!(r.file().is_some());
}

#[test]
fn a_wrong_checksum_fails_after_all_the_data() {
    let content = lines(0, 100);
    let mut bytes = gzip(&content);
    let crc_at = bytes.len() - 8;
    bytes[crc_at] ^= 1;
    let disk = Disk::with(&bytes);
    let mut members = MemberLog::new(MemberStart::default());
    let mut r = GzipReader::open(disk.open(), MemberStart::default(), 0);
    let mut buf = vec![0u8; 1 << 16];
    assert_eq!(
        r.read(&mut buf, &mut members).unwrap(),
        Step::Data(content.len())
    );
    assert!(matches!(
        r.read(&mut buf, &mut members),
        Err(GzipError::Corrupt { .. })
    ));
}

#[test]
fn not_gzip_and_trailing_garbage_are_corrupt() {
    let mut members = MemberLog::new(MemberStart::default());
    let mut buf = vec![0u8; 1 << 16];
    let plain = Disk::with(b"just a log line\n");
    let mut r = GzipReader::open(plain.open(), MemberStart::default(), 0);
    assert!(matches!(
        r.read(&mut buf, &mut members),
        Err(GzipError::Corrupt { .. })
    ));

    let content = lines(0, 10);
    let first = gzip(&content);
    let garbage = Disk::with(&[&first[..], b"PK\x03\x04 not a member"].concat());
    let mut r = GzipReader::open(garbage.open(), MemberStart::default(), 0);
    let mut got = Vec::new();
    let err = loop {
        match r.read(&mut buf, &mut members) {
            Ok(Step::Data(n)) => got.extend_from_slice(&buf[..n]),
            Ok(step) => panic!("garbage read as {step:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(got, content);
    match err {
        GzipError::Corrupt { file_offset, .. } => assert_eq!(file_offset, first.len() as u64),
        e => panic!("{e}"),
    }
}

#[test]
fn resuming_from_a_member_start_gives_the_same_rest() {
    let parts = [lines(0, 3000), lines(3000, 6000), lines(6000, 9000)];
    let whole = parts.iter().map(|p| gzip(p)).collect::<Vec<_>>().concat();
    let content = parts.concat();
    let disk = Disk::with(&whole);
    // Every resume point: in the first member (decoded from the file's start), at a member
    // boundary, inside later members.
    for stop in [
        0,
        1,
        7_000,
        parts[0].len(),
        parts[0].len() + 1,
        150_000,
        content.len(),
    ] {
        let stop = stop as u64;
        let mut members = MemberLog::new(MemberStart::default());
        let mut r = GzipReader::open(disk.open(), MemberStart::default(), 0);
        let _ = drain(&mut r, &mut members, 4096);
        members.prune(stop);
        let start = members.at(stop);
        assert!(start.content_offset <= stop);
        let mut again = MemberLog::new(start);
        let mut r = GzipReader::open(disk.open(), start, stop - start.content_offset);
        assert_eq!(r.position(), stop);
        let (rest, step) = drain(&mut r, &mut again, 4096);
        assert_eq!(step, Step::Complete);
        assert_eq!(rest, content[stop as usize..], "resume at {stop}");
    }
    // A resume point past the content (a plain file longer than its compressed copy):
    // nothing comes, the position stays.
    let mut members = MemberLog::new(MemberStart::default());
    let far = content.len() as u64 + 100;
    let mut r = GzipReader::open(disk.open(), MemberStart::default(), far);
    let (rest, step) = drain(&mut r, &mut members, 4096);
    assert!(rest.is_empty());
    assert_eq!(step, Step::Complete);
    assert_eq!(r.position(), far);
}

#[test]
fn open_at_end_skips_what_is_there_and_reads_what_comes() {
    let disk = Disk::with(&gzip(&lines(0, 1000)));
    let mut members = MemberLog::new(MemberStart::default());
    let mut r = GzipReader::open_at_end(disk.open());
    assert!(r.is_skipping());
    let (out, step) = drain(&mut r, &mut members, 4096);
    assert!(out.is_empty());
    assert_eq!(step, Step::Complete);
    assert!(!r.is_skipping());
    assert_eq!(r.position(), lines(0, 1000).len() as u64);
    disk.append(&gzip(b"appended\n"));
    let (out, step) = drain(&mut r, &mut members, 4096);
    assert_eq!(out, b"appended\n");
    assert_eq!(step, Step::Complete);
}

#[test]
fn member_log_keeps_what_resumes_need_and_stays_bounded() {
    let s = |f, c| MemberStart {
        file_offset: f,
        content_offset: c,
    };
    let mut log = MemberLog::new(s(0, 0));
    log.push(s(100, 1000));
    log.push(s(50, 500)); // met again after a resume: ignored
    log.push(s(120, 1000)); // an empty member: replaces the start before it
    log.push(s(200, 2000));
    assert_eq!(log.at(999), s(0, 0));
    assert_eq!(log.at(1000), s(120, 1000));
    assert_eq!(log.at(5000), s(200, 2000));
    log.prune(1500);
    assert_eq!(log.len(), 2);
    assert_eq!(log.at(1500), s(120, 1000));
    log.prune(2000);
    assert_eq!(log.len(), 1);
    assert_eq!(log.at(2500), s(200, 2000));
    for i in 0..5000u64 {
        log.push(s(300 + i, 3000 + i));
    }
    assert!(log.len() <= MAX_MEMBER_STARTS);
    // The oldest start stays, and the newest: every offset still has a start at or
    // before it.
    assert_eq!(log.at(2500), s(200, 2000));
    assert_eq!(log.at(1_000_000), s(5299, 7999));
}

#[test]
fn content_prefix_starts_like_the_plain_file() {
    let content = lines(0, 500);
    let plain = Disk::with(&content);
    let plain_fp = Fingerprint::read(&plain.open()).unwrap();
    assert!(plain_fp.is_full());
    let gz = Disk::with(&gzip(&content));
    let Content::Known(prefix) = content_prefix(&gz.open()).unwrap() else {
        panic!("not known");
    };
    assert_eq!(prefix, content[..FINGERPRINT_BYTES]);
    assert!(starts_like(&plain_fp, &prefix));
    // The fingerprint of a plain file read while it was shorter matches its start too.
    assert!(starts_like(&Fingerprint::of(&content[..300]), &prefix));
    assert!(!starts_like(&Fingerprint::of(b"other"), &prefix));
    assert!(!starts_like(&Fingerprint::of(b""), &prefix));

    // Short content: known once the member is complete, and then all of it; an empty
    // file (just created by gzip or logrotate, nothing written yet) is not known yet.
    let short = b"one line\ntwo lines\n";
    let whole = gzip(short);
    let gz = Disk::with(b"");
    assert_eq!(content_prefix(&gz.open()).unwrap(), Content::NotYet);
    gz.append(&whole[..whole.len() - 3]);
    assert_eq!(content_prefix(&gz.open()).unwrap(), Content::NotYet);
    gz.append(&whole[whole.len() - 3..]);
    assert_eq!(
        content_prefix(&gz.open()).unwrap(),
        Content::Known(short.to_vec())
    );
    // A full fingerprint does not match content shorter than it.
    assert!(!starts_like(&plain_fp, short));

    let not_gz = Disk::with(b"plain text, not gzip\n");
    assert_eq!(content_prefix(&not_gz.open()).unwrap(), Content::Corrupt);
}
