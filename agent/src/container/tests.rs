use super::*;
use logferry_shared::wire::FLAG_INVALID_UTF8;
use proptest::prelude::*;

const T0: &str = "2026-11-22T10:00:00.123456789Z";
const T0_MS: u64 = 1_795_341_600_123;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    text: String,
    flags: u8,
    time_ms: Option<u64>,
    stream: Option<Stream>,
    end: u64,
}

fn out(e: Entry<'_>) -> Out {
    Out {
        text: String::from_utf8_lossy(e.bytes).into_owned(),
        flags: e.flags,
        time_ms: e.time_ms,
        stream: e.stream,
        end: e.end_offset,
    }
}

/// Feeds `lines` (offsets as if each ends with a newline) and collects what comes out,
/// checking that each call either emits nothing or leaves nothing held.
struct Feed {
    dec: ContainerDecoder,
    offset: u64,
    now: Instant,
    outs: Vec<Out>,
}

impl Feed {
    fn new(format: Format, max: usize) -> Feed {
        Feed {
            dec: ContainerDecoder::new(format, max, Duration::from_secs(1)),
            offset: 0,
            now: Instant::now(),
            outs: Vec::new(),
        }
    }

    fn line_flags(&mut self, line: &[u8], flags: u8) -> Vec<Out> {
        self.offset += line.len() as u64 + 1;
        let mut got = Vec::new();
        self.dec.push(
            Line { bytes: line, flags },
            self.offset,
            self.now,
            &mut |e| got.push(out(e)),
        );
        assert!(
            got.is_empty() || !self.dec.is_holding(),
            "emitted while holding"
        );
        self.outs.extend(got.iter().cloned());
        got
    }

    fn line(&mut self, line: &str) -> Vec<Out> {
        self.line_flags(line.as_bytes(), 0)
    }

    fn take_pending(&mut self) -> Vec<Out> {
        let mut got = Vec::new();
        self.dec.take_pending(&mut |e| got.push(out(e)));
        assert!(!self.dec.is_holding());
        self.outs.extend(got.iter().cloned());
        got
    }
}

fn o(text: &str, flags: u8, time_ms: Option<u64>, stream: Option<Stream>, end: u64) -> Out {
    Out {
        text: text.to_owned(),
        flags,
        time_ms,
        stream,
        end,
    }
}

fn cri(stream: &str, tag: &str, msg: &str) -> String {
    format!("{T0} {stream} {tag} {msg}")
}

#[test]
fn cri_lines_decode_with_stream_time_and_flags() {
    let mut f = Feed::new(Format::Cri, 1024);
    let l1 = cri("stdout", "F", "hello world");
    let got = f.line(&l1);
    let end1 = l1.len() as u64 + 1;
    assert_eq!(
        got,
        vec![o("hello world", 0, Some(T0_MS), Some(Stream::Stdout), end1)]
    );
    let l2 = cri("stderr", "F:x:y", " boom ");
    let got = f.line(&l2);
    assert_eq!(got[0].text, " boom ");
    assert_eq!(got[0].flags, FLAG_STDERR);
    assert_eq!(got[0].stream, Some(Stream::Stderr));
    // Empty messages, with and without the space after the tag.
    assert_eq!(f.line(&format!("{T0} stdout F"))[0].text, "");
    assert_eq!(f.line(&format!("{T0} stdout F "))[0].text, "");
    // Offsets in CRI-O style.
    let got = f.line("2026-11-22T12:00:00.5+02:00 stdout F x");
    assert_eq!(got[0].time_ms, Some(1_795_341_600_500));
    assert_eq!(f.dec.take_stats(), DecodeStats::default());
}

#[test]
fn a_complete_line_is_passed_on_without_copying() {
    let mut dec = ContainerDecoder::new(Format::Cri, 1024, Duration::from_secs(1));
    let line = cri("stdout", "F", "zero copy");
    let range = line.as_bytes().as_ptr_range();
    let mut borrowed = false;
    dec.push(
        Line {
            bytes: line.as_bytes(),
            flags: 0,
        },
        10,
        Instant::now(),
        &mut |e| borrowed = range.contains(&e.bytes.as_ptr()),
    );
    assert!(borrowed);
    let mut raw = ContainerDecoder::new(Format::Raw, 1024, Duration::from_secs(1));
    let mut borrowed = false;
    raw.push(
        Line {
            bytes: line.as_bytes(),
            flags: 0,
        },
        10,
        Instant::now(),
        &mut |e| borrowed = e.bytes.as_ptr() == line.as_ptr() && e.bytes.len() == line.len(),
    );
    assert!(borrowed);
}

#[test]
fn cri_partials_are_joined_per_stream() {
    let mut f = Feed::new(Format::Cri, 1024);
    assert!(f.line(&cri("stdout", "P", "one ")).is_empty());
    assert!(f.line(&cri("stdout", "P", "two ")).is_empty());
    let last = cri("stdout", "F", "three");
    let got = f.line(&last);
    assert_eq!(
        got,
        vec![o(
            "one two three",
            0,
            Some(T0_MS),
            Some(Stream::Stdout),
            f.offset
        )]
    );
    assert_eq!(f.dec.take_stats().joined_lines, 1);

    // Interleaved: stdout pieces around a whole stderr line and a joined stderr line.
    let mut f = Feed::new(Format::Cri, 1024);
    assert!(f.line(&cri("stdout", "P", "a1 ")).is_empty());
    assert!(f.line(&cri("stderr", "F", "err whole")).is_empty());
    let err_end = f.offset;
    assert!(f.line(&cri("stderr", "P", "e1 ")).is_empty());
    assert!(f.line(&cri("stdout", "P", "a2 ")).is_empty());
    assert!(f.line(&cri("stderr", "F", "e2")).is_empty());
    let e_end = f.offset;
    let got = f.line(&cri("stdout", "F", "a3"));
    assert_eq!(
        got,
        vec![
            o(
                "err whole",
                FLAG_STDERR,
                Some(T0_MS),
                Some(Stream::Stderr),
                err_end
            ),
            o(
                "e1 e2",
                FLAG_STDERR,
                Some(T0_MS),
                Some(Stream::Stderr),
                e_end
            ),
            o("a1 a2 a3", 0, Some(T0_MS), Some(Stream::Stdout), f.offset),
        ]
    );
    assert!(!f.dec.is_holding());
}

#[test]
fn the_time_of_a_joined_line_is_its_first_piece() {
    let mut f = Feed::new(Format::Cri, 1024);
    f.line("2026-11-22T10:00:00Z stdout P a");
    let got = f.line("2026-11-22T10:00:07Z stdout F b");
    assert_eq!(got[0].time_ms, Some(1_795_341_600_000));
}

#[test]
fn lines_that_do_not_decode_pass_through_and_are_counted() {
    let mut f = Feed::new(Format::Cri, 1024);
    for (line, flags) in [
        (&b"garbage"[..], 0),
        (b"2026-11-22T10:00:00Z stdin F x", 0),
        (b"2026-11-22T10:00:00Z stdout X x", 0),
        (b"2026-13-22T10:00:00Z stdout F x", 0),
        (b"\xff\xfe not text", FLAG_INVALID_UTF8),
        (b"", 0),
    ] {
        let got = f.line_flags(line, flags);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].text, String::from_utf8_lossy(line));
        assert_eq!(
            (got[0].flags, got[0].stream, got[0].time_ms),
            (flags, None, None)
        );
    }
    assert_eq!(f.dec.take_stats().decode_errors, 6);
    assert_eq!(f.dec.take_stats().decode_errors, 0, "taken");

    // A line that does not decode, while a piece is pending, keeps its place in order.
    let mut f = Feed::new(Format::Cri, 1024);
    f.line(&cri("stdout", "P", "a"));
    assert!(f.line("junk").is_empty());
    let got = f.line(&cri("stdout", "F", "b"));
    assert_eq!(
        got.iter().map(|o| o.text.as_str()).collect::<Vec<_>>(),
        ["junk", "ab"]
    );
}

#[test]
fn auto_decides_from_the_first_line_and_sticks() {
    let cases = [
        (cri("stdout", "F", "x"), Format::Cri),
        (
            r#"{"log":"x\n","stream":"stdout","time":"2026-11-22T10:00:00Z"}"#.to_owned(),
            Format::Docker,
        ),
        ("2026-11-22 10:00:00 INFO plain".to_owned(), Format::Raw),
        ("{\"level\":\"info\"}".to_owned(), Format::Raw),
    ];
    for (first, format) in cases {
        let mut f = Feed::new(Format::Auto, 1024);
        assert_eq!(f.dec.format(), Format::Auto);
        f.line(&first);
        assert_eq!(f.dec.format(), format, "{first}");
    }
    let mut f = Feed::new(Format::Auto, 1024);
    f.line(&cri("stdout", "F", "x"));
    let got = f.line(r#"{"log":"x\n","stream":"stdout"}"#);
    assert_eq!(got[0].stream, None, "not decoded as Docker in a CRI file");
    assert_eq!(f.dec.take_stats().decode_errors, 1);
    // Raw never decodes anything.
    let mut f = Feed::new(Format::Raw, 1024);
    let got = f.line(&cri("stderr", "F", "x"));
    assert_eq!(got[0].text, cri("stderr", "F", "x"));
    assert_eq!(f.dec.take_stats(), DecodeStats::default());
}

#[test]
fn docker_lines_and_partials() {
    let mut f = Feed::new(Format::Docker, 1024);
    let got =
        f.line(r#"{"log":"GET / 200\r\n","stream":"stdout","time":"2026-11-22T10:00:00.123Z"}"#);
    assert_eq!(
        got,
        vec![o(
            "GET / 200",
            0,
            Some(T0_MS),
            Some(Stream::Stdout),
            f.offset
        )]
    );
    assert!(f
        .line(r#"{"log":"part one, ","stream":"stderr","time":"2026-11-22T10:00:00.123Z"}"#)
        .is_empty());
    assert!(f
        .line(r#"{"log":"out\n","stream":"stdout","time":"2026-11-22T10:00:01Z"}"#)
        .is_empty());
    let out_end = f.offset;
    let got = f.line(r#"{"log":"part \"two\"\n","stream":"stderr","time":"2026-11-22T10:00:02Z"}"#);
    assert_eq!(
        got,
        vec![
            o(
                "out",
                0,
                Some(1_795_341_601_000),
                Some(Stream::Stdout),
                out_end
            ),
            o(
                "part one, part \"two\"",
                FLAG_STDERR,
                Some(T0_MS),
                Some(Stream::Stderr),
                f.offset
            ),
        ]
    );
    let got = f.line(r#"{"log":"not json"#);
    assert_eq!(got[0].text, r#"{"log":"not json"#);
    assert_eq!(f.dec.take_stats().decode_errors, 1);
}

#[test]
fn joined_lines_are_cut_at_max_bytes_and_offsets_still_advance() {
    let mut f = Feed::new(Format::Cri, 8);
    f.line(&cri("stdout", "P", "12345"));
    f.line(&cri("stdout", "P", "67890"));
    f.line(&cri("stdout", "P", "abcdef"));
    let got = f.line(&cri("stdout", "F", "gh"));
    assert_eq!(
        got,
        vec![o(
            "12345678",
            FLAG_TRUNCATED,
            Some(T0_MS),
            Some(Stream::Stdout),
            f.offset
        )]
    );
    // A whole message over the bound (possible with Docker escapes) is cut too.
    let got = f.line(&cri("stdout", "F", "0123456789"));
    assert_eq!(
        (got[0].text.as_str(), got[0].flags),
        ("01234567", FLAG_TRUNCATED)
    );
    // A line the splitter already cut keeps its flag.
    let got = f.line_flags(cri("stderr", "F", "cut").as_bytes(), FLAG_TRUNCATED);
    assert_eq!(got[0].flags, FLAG_TRUNCATED | FLAG_STDERR);
}

#[test]
fn pending_pieces_are_flushed_after_the_timeout() {
    let mut f = Feed::new(Format::Cri, 1024);
    let t0 = f.now;
    assert_eq!(f.dec.next_deadline(), None);
    f.line(&cri("stderr", "P", "waiting"));
    let end = f.offset;
    assert_eq!(f.dec.next_deadline(), Some(t0 + Duration::from_secs(1)));
    let mut got = Vec::new();
    f.dec
        .flush_due(t0 + Duration::from_millis(999), &mut |e| got.push(out(e)));
    assert!(got.is_empty());
    f.dec
        .flush_due(t0 + Duration::from_secs(1), &mut |e| got.push(out(e)));
    assert_eq!(
        got,
        vec![o(
            "waiting",
            FLAG_STDERR | FLAG_NO_NEWLINE,
            Some(T0_MS),
            Some(Stream::Stderr),
            end
        )]
    );
    assert_eq!(f.dec.next_deadline(), None);
    assert_eq!(f.dec.take_stats().flushed_partials, 1);
    // The final piece arriving later is a line of its own.
    let got = f.line(&cri("stderr", "F", " done"));
    assert_eq!(got[0].text, " done");
}

#[test]
fn take_pending_emits_everything_in_offset_order() {
    let mut f = Feed::new(Format::Cri, 1024);
    f.line(&cri("stdout", "P", "out1"));
    f.line(&cri("stderr", "P", "err1"));
    f.line(&cri("stdout", "P", "out2"));
    let out_end = f.offset;
    f.line(&cri("stdout", "F", "whole-out"));
    let q1 = f.offset;
    f.line(&cri("stdout", "P", "out3"));
    let out3_end = f.offset;
    f.line(&cri("stderr", "P", "err2"));
    let err_end = f.offset;
    let got = f.take_pending();
    let ends: Vec<u64> = got.iter().map(|o| o.end).collect();
    let texts: Vec<&str> = got.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(ends, vec![q1, out3_end, err_end]);
    assert_eq!(texts, vec!["out1out2whole-out", "out3", "err1err2"]);
    assert_eq!(got[1].flags, FLAG_NO_NEWLINE);
    assert!(out_end < q1);
    assert!(f.take_pending().is_empty());
}

#[test]
fn the_queue_is_bounded() {
    let mut f = Feed::new(Format::Cri, 1 << 20);
    f.line(&cri("stdout", "P", "held"));
    for i in 0..MAX_QUEUED_LINES {
        assert!(f.line(&cri("stderr", "F", &i.to_string())).is_empty());
    }
    let got = f.line(&cri("stderr", "F", "one too many"));
    assert_eq!(got.len(), MAX_QUEUED_LINES + 2);
    assert_eq!(got[0].text, "held");
    assert_eq!(got[0].flags, FLAG_NO_NEWLINE);
    assert_eq!(got[MAX_QUEUED_LINES + 1].text, "one too many");
    assert!(!f.dec.is_holding());
    // By bytes: the queue holds at most max_bytes.
    let mut f = Feed::new(Format::Cri, 10);
    f.line(&cri("stdout", "P", "held"));
    assert!(f.line(&cri("stderr", "F", "123456")).is_empty());
    let got = f.line(&cri("stderr", "F", "78901"));
    let texts: Vec<&str> = got.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(texts, ["held", "123456", "78901"]);
}

#[test]
fn reset_forgets_what_is_held() {
    let mut f = Feed::new(Format::Cri, 1024);
    f.line(&cri("stdout", "P", "a"));
    f.line(&cri("stderr", "F", "b"));
    f.dec.reset();
    assert!(!f.dec.is_holding());
    assert!(f.take_pending().is_empty());
    assert_eq!(f.line(&cri("stdout", "F", "c"))[0].text, "c");
}

#[test]
fn detect_formats() {
    assert_eq!(detect(cri("stdout", "P", "").as_bytes()), Format::Cri);
    assert_eq!(detect(b"{\"log\":\"\"}"), Format::Docker);
    assert_eq!(detect(b"2026-11-22T10:00:00Z stdout"), Format::Raw);
    assert_eq!(detect(b""), Format::Raw);
}

#[test]
fn format_config_values() {
    #[derive(Deserialize)]
    struct C {
        format: Format,
    }
    for (text, want) in [
        ("auto", Format::Auto),
        ("raw", Format::Raw),
        ("cri", Format::Cri),
        ("docker", Format::Docker),
    ] {
        let c: C = serde_json::from_str(&format!("{{\"format\":\"{text}\"}}")).unwrap();
        assert_eq!(c.format, want);
    }
    assert!(serde_json::from_str::<C>(r#"{"format":"json"}"#).is_err());
}

/// One physical line of the model: which stream, the piece text, whether it is final.
type Op = (bool, String, bool);

fn encode(format: Format, (stderr, text, last): &Op) -> String {
    let stream = if *stderr { "stderr" } else { "stdout" };
    match format {
        Format::Docker => {
            let log = if *last {
                format!("{text}\n")
            } else {
                text.clone()
            };
            serde_json::json!({"log": log, "stream": stream, "time": T0}).to_string()
        }
        _ => cri(stream, if *last { "F" } else { "P" }, text),
    }
}

proptest! {
    #[test]
    fn pieces_join_back_into_the_messages_in_order(
        ops in proptest::collection::vec((any::<bool>(), "[a-z é]{0,6}", any::<bool>()), 0..60),
        docker in any::<bool>(),
    ) {
        let format = if docker { Format::Docker } else { Format::Cri };
        let mut f = Feed::new(format, 1 << 20);
        // The model: per stream, the messages in order (a pending one flushed at the end).
        let mut want: [Vec<String>; 2] = Default::default();
        let mut pending: [Option<String>; 2] = Default::default();
        for op in &ops {
            let s = usize::from(op.0);
            pending[s].get_or_insert_with(String::new).push_str(&op.1);
            if op.2 {
                want[s].extend(pending[s].take());
            }
            f.line(&encode(format, op));
        }
        f.take_pending();
        for s in 0..2 {
            want[s].extend(pending[s].take());
        }
        let total = f.offset;
        let outs = f.outs;
        for (s, want) in want.iter().enumerate() {
            let got: Vec<&str> = outs
                .iter()
                .filter(|o| usize::from(o.flags & FLAG_STDERR != 0) == s)
                .map(|o| o.text.as_str())
                .collect();
            prop_assert_eq!(&got, want);
        }
        prop_assert!(outs.windows(2).all(|w| w[0].end <= w[1].end), "offsets go back");
        prop_assert_eq!(outs.last().map_or(total, |o| o.end), total);
        prop_assert!(outs.iter().all(|o| o.flags & FLAG_TRUNCATED == 0));
    }

    #[test]
    fn bounds_hold_and_offsets_stay_ordered_for_any_input(
        lines in proptest::collection::vec(
            prop_oneof![
                (any::<bool>(), "[a-z]{0,20}", any::<bool>()).prop_map(|op| encode(Format::Cri, &op).into_bytes()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ],
            0..80,
        ),
        max in 1usize..24,
        flush_every in 1usize..10,
    ) {
        let mut f = Feed::new(Format::Auto, max);
        for (i, line) in lines.iter().enumerate() {
            f.line_flags(line, 0);
            if i % flush_every == 0 {
                let mut got = Vec::new();
                f.dec.flush_due(f.now + Duration::from_secs(2), &mut |e| got.push(out(e)));
                f.outs.extend(got);
            }
        }
        f.take_pending();
        let total = f.offset;
        let outs = f.outs;
        prop_assert!(outs.windows(2).all(|w| w[0].end <= w[1].end));
        prop_assert_eq!(outs.last().map_or(total, |o| o.end), total);
        if f.dec.format() == Format::Cri {
            prop_assert!(outs.iter().all(|o| o.stream.is_none() || o.text.len() <= max));
        }
    }
}
