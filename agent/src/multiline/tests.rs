use super::*;
use logferry_shared::wire::{FLAG_NO_NEWLINE, FLAG_STDERR};
use proptest::prelude::*;

fn config(json: &str) -> MultilineConfig {
    serde_json::from_str(json).unwrap()
}

fn preset(p: &str) -> Multiline {
    config(&format!("{{\"preset\":\"{p}\"}}"))
        .build(1 << 20)
        .unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    text: String,
    flags: u8,
    end: u64,
}

fn ev(e: Entry<'_>) -> Ev {
    Ev {
        text: String::from_utf8_lossy(e.bytes).into_owned(),
        flags: e.flags,
        end: e.end_offset,
    }
}

/// Pushes `text`'s lines (offsets as in the file), then takes what is pending.
fn run(m: &mut Multiline, text: &str) -> Vec<Ev> {
    let now = Instant::now();
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.lines() {
        offset += line.len() as u64 + 1;
        let e = Entry {
            bytes: line.as_bytes(),
            flags: 0,
            time_ms: None,
            stream: None,
            end_offset: offset,
        };
        m.push(e, now, &mut |e| out.push(ev(e)));
    }
    m.take_pending(&mut |e| out.push(ev(e)));
    assert!(!m.is_holding());
    out
}

fn texts(events: &[Ev]) -> Vec<&str> {
    events.iter().map(|e| e.text.as_str()).collect()
}

/// The events of `sample` must be exactly the `\n`-separated blocks of `want`.
fn check(m: &mut Multiline, sample: &str, want: &[&str]) {
    let events = run(m, sample);
    assert_eq!(texts(&events), want);
    // Each event ends where its last line ends in the file.
    let mut offset = 0;
    for (e, w) in events.iter().zip(want) {
        offset += w.len() as u64 + 1;
        assert_eq!(e.end, offset, "end of {w:?}");
        assert_eq!(e.flags, 0);
    }
}

const JAVA: &str = "\
2026-11-22 10:00:00.000 INFO  [main] c.e.App - starting
2026-11-22 10:00:01.000 ERROR [main] c.e.App - request failed
java.lang.IllegalStateException: boom
\tat com.example.App.handle(App.java:42)
\tat com.example.App.main(App.java:12)
Caused by: java.io.IOException: disk full
\tat com.example.Store.write(Store.java:88)
\t... 12 more
\tSuppressed: java.lang.RuntimeException: close failed
\t\tat com.example.Store.close(Store.java:99)
\t\t... 13 more
2026-11-22 10:00:02.000 INFO  [main] c.e.App - recovered
Exception in thread \"main\" java.lang.NullPointerException: x is null
    at com.example.App.main(App.java:20)
2026-11-22 10:00:03.000 INFO  [main] c.e.App - java.lang.Error: not a header after line 1
";

#[test]
fn java_stack_traces() {
    let lines: Vec<&str> = JAVA.lines().collect();
    let failed = lines[1..11].join("\n");
    let npe = lines[12..14].join("\n");
    check(
        &mut preset("java"),
        JAVA,
        &[lines[0], &failed, lines[11], &npe, lines[14]],
    );
}

const PYTHON: &str = "\
INFO:root:starting
Traceback (most recent call last):
  File \"/app/main.py\", line 10, in load
    return json.loads(text)
           ^^^^^^^^^^^^^^^^
json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/app/main.py\", line 20, in <module>
    load()
  File \"/app/main.py\", line 12, in load
    raise ConfigError(\"bad config\")
ConfigError: bad config
INFO:root:next
Traceback (most recent call last):
  File \"/app/x.py\", line 1, in <module>
ValueError: x

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File \"/app/x.py\", line 3, in <module>
RuntimeError: y

INFO:root:after a blank line
Traceback (most recent call last):
  File \"/app/y.py\", line 1, in <module>
KeyboardInterrupt
    indented, but after the exception line
  + Exception Group Traceback (most recent call last):
  |   File \"/app/g.py\", line 1, in <module>
  | ExceptionGroup: two (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ValueError: 1
    +------------------------------------
INFO:root:done
";

#[test]
fn python_chained_tracebacks() {
    let lines: Vec<&str> = PYTHON.lines().collect();
    let first = lines[1..15].join("\n");
    let second = lines[16..25].join("\n");
    let third = lines[27..30].join("\n");
    let group = lines[31..37].join("\n");
    check(
        &mut preset("python"),
        PYTHON,
        &[
            lines[0], &first, lines[15], &second, "", lines[26], &third, lines[30], &group,
            lines[37],
        ],
    );
}

const GO: &str = "\
2026/11/22 10:00:00 listening on :8080
panic: runtime error: invalid memory address or nil pointer dereference [recovered]
\tpanic: second
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]

goroutine 1 [running]:
main.(*Server).handle(0x0, {0x6e3c40, 0xc0000a2000})
\t/app/server.go:42 +0x1d
panic({0x4a3f20?, 0x55b1d0?})
\t/usr/local/go/src/runtime/panic.go:770 +0x132
main.main()
\t/app/main.go:12 +0x25

goroutine 18 [chan receive]:
main.worker(0xc000020060)
\t/app/worker.go:30 +0x45
created by main.main in goroutine 1
\t/app/main.go:10 +0x65
exit status 2
2026/11/22 10:00:05 restarted
fatal error: concurrent map writes

goroutine 7 [running]:
main.write(...)
\t/app/map.go:9

{\"level\":\"info\",\"msg\":\"call f(x)\"}
";

#[test]
fn go_panics_with_several_goroutines() {
    let lines: Vec<&str> = GO.lines().collect();
    let panic = lines[1..19].join("\n");
    let fatal = lines[20..25].join("\n");
    check(
        &mut preset("go"),
        GO,
        &[lines[0], &panic, lines[19], &fatal, "", lines[26]],
    );
}

#[test]
fn start_and_continue_patterns() {
    let text = "  orphan\n  orphan 2\n2026 a\n b\nc\n2026 d\n2026 e\n f\n";
    let mut m = config(r#"{"start_pattern":"^\\d{4} "}"#)
        .build(1024)
        .unwrap();
    check(
        &mut m,
        text,
        &[
            "  orphan\n  orphan 2",
            "2026 a\n b\nc",
            "2026 d",
            "2026 e\n f",
        ],
    );
    let mut m = config(r#"{"continue_pattern":"^\\s"}"#)
        .build(1024)
        .unwrap();
    check(
        &mut m,
        text,
        &[
            "  orphan\n  orphan 2",
            "2026 a\n b",
            "c",
            "2026 d",
            "2026 e\n f",
        ],
    );
}

#[test]
fn passed_on_lines_are_not_copied() {
    let mut m = preset("python");
    let line = "INFO:root:plain";
    let mut same = false;
    m.push(
        Entry {
            bytes: line.as_bytes(),
            flags: 0,
            time_ms: None,
            stream: None,
            end_offset: 16,
        },
        Instant::now(),
        &mut |e| same = e.bytes.as_ptr() == line.as_ptr(),
    );
    assert!(same);
}

#[test]
fn another_stream_never_joins() {
    let mut m = config(r#"{"continue_pattern":"^\\s"}"#)
        .build(1024)
        .unwrap();
    let now = Instant::now();
    let mut out = Vec::new();
    for (i, (text, stream)) in [
        ("a", Stream::Stdout),
        (" b", Stream::Stderr),
        (" c", Stream::Stderr),
        (" d", Stream::Stdout),
    ]
    .into_iter()
    .enumerate()
    {
        let e = Entry {
            bytes: text.as_bytes(),
            flags: stream.flag(),
            time_ms: Some(i as u64),
            stream: Some(stream),
            end_offset: i as u64 + 1,
        };
        m.push(e, now, &mut |e| out.push((ev(e), e.time_ms, e.stream)));
    }
    m.take_pending(&mut |e| out.push((ev(e), e.time_ms, e.stream)));
    let got: Vec<(&str, u8, Option<u64>)> = out
        .iter()
        .map(|(e, t, _)| (e.text.as_str(), e.flags, *t))
        .collect();
    assert_eq!(
        got,
        [
            ("a", 0, Some(0)),
            (" b\n c", FLAG_STDERR, Some(1)),
            (" d", 0, Some(3))
        ]
    );
}

#[test]
fn bounds_cut_events_and_keep_offsets() {
    let text = "S1\n a\n b\n c\n d\nS2\n e\n";
    let mut m = config(r#"{"start_pattern":"^S","max_lines":3}"#)
        .build(1024)
        .unwrap();
    let events = run(&mut m, text);
    assert_eq!(texts(&events), ["S1\n a\n b", "S2\n e"]);
    assert_eq!(events[0].flags, FLAG_TRUNCATED);
    assert_eq!(events[0].end, 15, "the dropped lines are accounted");
    assert_eq!((events[1].flags, events[1].end), (0, 21));

    let mut m = config(r#"{"start_pattern":"^S"}"#).build(7).unwrap();
    let events = run(&mut m, "S1\n abcdef\n g\nS234567890\nS3\n");
    assert_eq!(texts(&events), ["S1\n abc", "S234567", "S3"]);
    assert_eq!(events[0].flags, FLAG_TRUNCATED);
    assert_eq!(events[0].end, 14);
    assert_eq!(events[1].flags, FLAG_TRUNCATED);
    assert_eq!(events[2].flags, 0);
    // Exactly full: no room for even the newline of the next line.
    let mut m = config(r#"{"start_pattern":"^S"}"#).build(4).unwrap();
    let events = run(&mut m, "S123\n\nS\n");
    assert_eq!(texts(&events), ["S123", "S"]);
    assert_eq!(events[0].flags, FLAG_TRUNCATED);
}

#[test]
fn timeout_and_flags() {
    let mut m = config(r#"{"preset":"java","timeout":"500ms"}"#)
        .build(1024)
        .unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let entry = |text: &'static str, flags, end| Entry {
        bytes: text.as_bytes(),
        flags,
        time_ms: Some(end),
        stream: None,
        end_offset: end,
    };
    assert_eq!(m.next_deadline(), None);
    m.push(entry("start", 0, 6), t0, &mut |e| out.push(ev(e)));
    m.push(
        entry("\tat x", FLAG_NO_NEWLINE, 12),
        t0 + Duration::from_millis(400),
        &mut |e| out.push(ev(e)),
    );
    assert_eq!(m.next_deadline(), Some(t0 + Duration::from_millis(500)));
    m.flush_due(t0 + Duration::from_millis(499), &mut |e| out.push(ev(e)));
    assert!(out.is_empty());
    m.flush_due(t0 + Duration::from_millis(500), &mut |e| out.push(ev(e)));
    assert_eq!(
        out,
        [Ev {
            text: "start\n\tat x".into(),
            flags: FLAG_NO_NEWLINE,
            end: 12
        }]
    );
    assert!(!m.is_holding());
    // A continuation arriving after the timeout starts an event of its own.
    out.clear();
    m.push(entry("\tat y", 0, 18), t0, &mut |e| out.push(ev(e)));
    m.take_pending(&mut |e| out.push(ev(e)));
    assert_eq!(texts(&out), ["\tat y"]);
}

#[test]
fn fresh_and_reset_start_empty() {
    let mut m = preset("go");
    let now = Instant::now();
    let e = Entry {
        bytes: b"panic: x",
        flags: 0,
        time_ms: None,
        stream: None,
        end_offset: 9,
    };
    m.push(e, now, &mut |_| {});
    assert!(m.is_holding());
    assert!(!m.fresh().is_holding());
    m.reset();
    assert!(!m.is_holding());
    let mut n = 0;
    m.take_pending(&mut |_| n += 1);
    assert_eq!(n, 0);
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        (r#"{}"#, None),
        (r#"{"preset":"java","start_pattern":"x"}"#, None),
        (r#"{"start_pattern":"x","continue_pattern":"y"}"#, None),
        (r#"{"start_pattern":"(unclosed"}"#, Some("start_pattern")),
        (r#"{"continue_pattern":"[z-a]"}"#, Some("continue_pattern")),
        (r#"{"preset":"go","max_lines":0}"#, Some("max_lines")),
        (r#"{"preset":"go","timeout":"0s"}"#, Some("timeout")),
    ];
    for (json, key) in cases {
        let err = config(json).validate().unwrap_err();
        assert_eq!(err.key(), key, "{json}");
        assert!(!err.to_string().is_empty());
    }
    assert!(serde_json::from_str::<MultilineConfig>(r#"{"preset":"rust"}"#).is_err());
    assert!(serde_json::from_str::<MultilineConfig>(r#"{"preset":"go","maxlines":1}"#).is_err());
    let c = config(r#"{"preset":"python"}"#);
    assert_eq!((c.max_lines, c.timeout), (500, Duration::from_secs(1)));
}

/// Lines that exercise every rule.
fn line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("Traceback (most recent call last):".to_owned()),
        Just("During handling of the above exception, another exception occurred:".to_owned()),
        Just("ValueError: x".to_owned()),
        Just("  File \"a.py\", line 1".to_owned()),
        Just("  + Exception Group Traceback (most recent call last):".to_owned()),
        Just("panic: boom".to_owned()),
        Just("goroutine 1 [running]:".to_owned()),
        Just("main.main()".to_owned()),
        Just("\tat com.x.Y(Y.java:1)".to_owned()),
        Just("Caused by: java.io.IOException".to_owned()),
        Just("java.lang.IllegalStateException: x".to_owned()),
        "[ a-zA-Z0-9:.()]{0,12}",
    ]
}

fn rules_strategy() -> impl Strategy<Value = MultilineConfig> {
    prop_oneof![
        Just(config(r#"{"preset":"java"}"#)),
        Just(config(r#"{"preset":"python"}"#)),
        Just(config(r#"{"preset":"go"}"#)),
        Just(config(r#"{"start_pattern":"^[A-Z]"}"#)),
        Just(config(r#"{"continue_pattern":"^\\s"}"#)),
    ]
}

proptest! {
    #[test]
    fn events_give_back_the_lines_in_order(
        cfg in rules_strategy(),
        lines in proptest::collection::vec((line_strategy(), 0u8..3, 0u64..3), 0..80),
        max_lines in prop_oneof![Just(1000usize), 1usize..5],
        max_bytes in prop_oneof![Just(1usize << 20), 1usize..40],
    ) {
        let mut cfg = cfg;
        cfg.max_lines = max_lines;
        let mut m = cfg.build(max_bytes).unwrap();
        let t0 = Instant::now();
        let mut out: Vec<Ev> = Vec::new();
        let mut offset = 0;
        for (i, (text, stream, tick)) in lines.iter().enumerate() {
            offset += text.len() as u64 + 1;
            let stream = match stream {
                0 => None,
                1 => Some(Stream::Stdout),
                _ => Some(Stream::Stderr),
            };
            let e = Entry {
                bytes: text.as_bytes(),
                flags: stream.map_or(0, Stream::flag),
                time_ms: None,
                stream,
                end_offset: offset,
            };
            let now = t0 + Duration::from_millis(400 * i as u64);
            m.push(e, now, &mut |e| out.push(ev(e)));
            if *tick == 0 {
                m.flush_due(now, &mut |e| out.push(ev(e)));
            }
        }
        m.take_pending(&mut |e| out.push(ev(e)));
        prop_assert!(out.windows(2).all(|w| w[0].end < w[1].end), "offsets must increase");
        prop_assert_eq!(out.last().map_or(0, |e| e.end), offset);
        let truncated = out.iter().any(|e| e.flags & FLAG_TRUNCATED != 0);
        prop_assert!(out.iter().all(|e| e.text.len() <= max_bytes));
        if !truncated {
            let back: Vec<&str> = out.iter().flat_map(|e| e.text.split('\n')).collect();
            let input: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
            prop_assert_eq!(back, input);
        }
        if max_lines == 1000 && max_bytes == 1 << 20 {
            prop_assert!(!truncated);
        }
    }
}
