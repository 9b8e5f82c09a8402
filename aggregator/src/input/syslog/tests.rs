//! Tests of the syslog input: the framing decoder (examples and properties), UDP message
//! cutting and config checks here; the listeners end to end into a real inbox in
//! `tests/listener.rs`.

mod listener;

use proptest::prelude::*;

use super::framing::{decode_all, Decoder, Framing, FramingError};
use super::udp::datagram_message;

type Out = Vec<Result<(Vec<u8>, bool), ()>>;

fn ok(s: &str) -> Result<(Vec<u8>, bool), ()> {
    Ok((s.as_bytes().to_vec(), false))
}

fn cut(s: &str) -> Result<(Vec<u8>, bool), ()> {
    Ok((s.as_bytes().to_vec(), true))
}

fn whole(max: usize, input: &str) -> Out {
    decode_all(max, &[input.as_bytes()])
}

#[test]
fn line_feed_framing_strips_cr_and_skips_blank_lines() {
    assert_eq!(
        whole(100, "<13>one\n\n<13>two\r\n\r\n<13>three"),
        vec![ok("<13>one"), ok("<13>two"), ok("<13>three")]
    );
}

#[test]
fn octet_counting_is_detected_per_message() {
    let input = "8 <13>one\n<13>two\n9 <13>three9 <13>four\n\n";
    assert_eq!(
        whole(100, input),
        vec![
            ok("<13>one"),
            ok("<13>two"),
            ok("<13>three"),
            ok("<13>four")
        ]
    );
}

#[test]
fn digits_without_a_space_or_with_a_leading_zero_start_a_line() {
    assert_eq!(
        whole(100, "2026-11-22 x\n0 <13>y\n123\n"),
        vec![ok("2026-11-22 x"), ok("0 <13>y"), ok("123")]
    );
}

#[test]
fn over_long_lines_are_cut_and_the_rest_skipped() {
    let long = format!("<13>{}\n<13>next\n", "x".repeat(50));
    assert_eq!(whole(10, &long), vec![cut("<13>xxxxxx"), ok("<13>next")]);
    // The same when the line arrives in small pieces with no line feed in sight.
    let pieces: Vec<&[u8]> = long.as_bytes().chunks(3).collect();
    assert_eq!(
        decode_all(10, &pieces),
        vec![cut("<13>xxxxxx"), ok("<13>next")]
    );
}

#[test]
fn over_long_counted_messages_are_cut_and_the_rest_skipped() {
    let input = format!("30 <13>{}5 <13>a", "y".repeat(26));
    assert_eq!(whole(10, &input), vec![cut("<13>yyyyyy"), ok("<13>a")]);
}

#[test]
fn a_huge_octet_count_is_a_framing_error_and_ends_decoding() {
    let mut d = Decoder::new(100);
    d.feed(b"5 <13>a99999999999 <13>b\n<13>c\n");
    assert_eq!(d.next_message().unwrap().unwrap().bytes, b"<13>a");
    assert_eq!(
        d.next_message().unwrap().unwrap_err(),
        FramingError::OctetCountTooLarge {
            count: 99_999_999_999,
            limit: 1600
        }
    );
    assert!(d.next_message().is_none());
    d.feed(b"<13>more\n");
    assert!(d.next_message().is_none());
    assert!(d.finish().is_none());
    assert_eq!(d.buffered(), 0);
}

#[test]
fn finish_returns_the_unfinished_message_without_its_count() {
    let mut d = Decoder::new(100);
    d.feed(b"20 <13>partial");
    assert!(d.next_message().is_none());
    assert!(d.in_message());
    let m = d.finish().unwrap();
    assert_eq!(m.bytes, b"<13>partial");
    assert!(m.incomplete && !m.truncated);
    assert_eq!(m.framing, Framing::OctetCounting);
    assert!(d.finish().is_none());

    let mut d = Decoder::new(100);
    d.feed(b"<13>line without end\r");
    assert!(d.next_message().is_none());
    assert_eq!(d.finish().unwrap().bytes, b"<13>line without end");
}

#[test]
fn counted_messages_may_include_their_line_feed() {
    assert_eq!(
        whole(100, "6 <13>a\n6 <13>b\n"),
        vec![ok("<13>a"), ok("<13>b")]
    );
}

#[test]
fn datagrams_are_trimmed_or_cut() {
    assert_eq!(
        datagram_message(b"<13>a\r\n\0", 100),
        (&b"<13>a"[..], false)
    );
    assert_eq!(datagram_message(b"\n\n", 100), (&b""[..], false));
    assert_eq!(datagram_message(b"<13>abcdef", 6), (&b"<13>ab"[..], true));
}

/// `data` cut at the given points (taken modulo its length, sorted).
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    if data.is_empty() {
        return vec![data];
    }
    let mut points: Vec<usize> = cuts.iter().map(|c| c % data.len()).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for p in points {
        pieces.push(&data[at..p]);
        at = p;
    }
    pieces.push(&data[at..]);
    pieces
}

/// Bytes that look like syslog streams more often than uniform bytes would.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"<13>".to_vec()),
        Just(b" ".to_vec()),
        "[0-9]{1,3} ".prop_map(String::into_bytes),
        "[0-9]{10,25}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(token, 0..30).prop_map(|t| t.concat())
}

/// A message a sender could frame either way: starts with a PRI, no line feed, does not
/// end with a carriage return.
fn message() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..60).prop_map(
        |mut body| {
            while body.last() == Some(&b'\r') {
                body.pop();
            }
            let mut m = b"<34>".to_vec();
            m.append(&mut body);
            m
        },
    )
}

proptest! {
    #[test]
    fn any_split_gives_the_same_output(
        data in stream_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max in 1usize..80,
    ) {
        let expected = decode_all(max, &[&data]);
        let got = decode_all(max, &split(&data, &cuts));
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn valid_frames_come_out_as_sent(
        messages in proptest::collection::vec((message(), any::<bool>()), 0..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for (m, counted) in &messages {
            if *counted {
                stream.extend_from_slice(format!("{} ", m.len()).as_bytes());
                stream.extend_from_slice(m);
            } else {
                stream.extend_from_slice(m);
                stream.push(b'\n');
            }
        }
        let got = decode_all(64, &split(&stream, &cuts));
        let want: Out = messages.iter().map(|(m, _)| Ok((m.clone(), false))).collect();
        prop_assert_eq!(got, want);
    }
}

/// The whole aggregator config with `inputs` appended, loaded and validated.
fn config(inputs: &str) -> Result<crate::config::AggregatorConfig, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for f in ["c.pem", "k.pem"] {
        std::fs::write(dir.path().join(f), "x").map_err(|e| e.to_string())?;
    }
    let d = dir.path().display();
    let text = format!(
        "data_dir = \"{d}/data\"\n[ingest]\ntokens = [\"t\"]\n[ingest.tls]\ncert = \"{d}/c.pem\"\nkey = \"{d}/k.pem\"\n[sinks.out]\ntype = \"stdout\"\n{inputs}"
    );
    let cfg: crate::config::AggregatorConfig =
        logferry_shared::config::from_str(&text, "t.toml", &[], crate::config::ENV_PREFIX)
            .map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

const TCP: &str = "[[inputs]]\ntype = \"syslog\"\nmode = \"tcp\"\nlisten = \"0.0.0.0:5514\"\n";

#[test]
fn a_minimal_input_gets_the_documented_defaults() {
    let cfg = config(TCP).unwrap();
    let crate::input::InputConfig::Syslog(c) = &cfg.inputs[0] else {
        panic!("not a syslog input");
    };
    assert_eq!(c.name(), "syslog_tcp");
    assert_eq!(c.format, "syslog");
    assert_eq!(c.max_message_bytes, 65536);
    assert_eq!(c.max_connections, 512);
    assert_eq!(c.idle_timeout, std::time::Duration::from_secs(600));
    assert_eq!(c.partial_timeout, std::time::Duration::from_secs(30));
    assert_eq!(c.batch_max_bytes, 1 << 20);
    assert_eq!(c.batch_wait, std::time::Duration::from_millis(200));
}

#[test]
fn input_errors_name_the_key() {
    let cases = [
        (format!("{TCP}max_conections = 5\n"), "inputs[0]", "max_conections"),
        ("[[inputs]]\ntype = \"kafka\"\n".to_owned(), "inputs[0]", "kafka"),
        ("[[inputs]]\ntype = \"syslog\"\nmode = \"sctp\"\nlisten = \"0.0.0.0:1\"\n".to_owned(), "inputs[0]", "sctp"),
        ("[[inputs]]\ntype = \"syslog\"\nmode = \"tls\"\nlisten = \"0.0.0.0:1\"\n".to_owned(), "inputs[0].tls: required", ""),
        (format!("{TCP}[inputs.tls]\ncert = \"/c\"\nkey = \"/k\"\n"), "inputs[0].tls: only used", ""),
        ("[[inputs]]\ntype = \"syslog\"\nmode = \"tls\"\nlisten = \"0.0.0.0:1\"\n[inputs.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/k\"\n".to_owned(), "inputs[0].tls.cert", "/nonexistent/c.pem"),
        (format!("{TCP}max_message_bytes = 10\n"), "inputs[0].max_message_bytes: must be between", ""),
        (format!("{TCP}max_connections = 0\n"), "inputs[0].max_connections", ""),
        (format!("{TCP}idle_timeout = \"10ms\"\n"), "inputs[0].idle_timeout", ""),
        (format!("{TCP}idle_timeout = \"soon\"\n"), "inputs[0]: idle_timeout: invalid value", ""),
        (format!("{TCP}batch_max_bytes = 100000000\n"), "inputs[0].batch_max_bytes", "ingest.max_body_bytes"),
        (format!("{TCP}name = \"a b\"\n"), "inputs[0].name", ""),
        (format!("{TCP}{TCP}"), "inputs[1].name: another input is named `syslog_tcp`", ""),
        (format!("{TCP}format = \"yaml\"\n"), "inputs[0].format: unknown format `yaml`", ""),
    ];
    for (text, key, detail) in cases {
        let err = config(&text).unwrap_err();
        assert!(err.starts_with(key), "{err}\n  wanted: {key}");
        assert!(err.contains(detail), "{err}\n  wanted: {detail}");
    }
}

#[test]
fn an_input_forces_its_format_unless_auto_or_overridden() {
    let line = "just words";
    let detect = |cfg: &crate::config::AggregatorConfig, path: &str| {
        let d = cfg.detector().unwrap();
        let mut plan = d.plan(path);
        let got = d.detect(&mut plan, line);
        (got.format, got.parse_error)
    };
    let path = super::origin(super::Mode::Tcp, "syslog_tcp", [10, 0, 0, 1].into())
        .path
        .clone();
    assert_eq!(path, "syslog+tcp://10.0.0.1/syslog_tcp");
    let forced = config(TCP).unwrap();
    assert_eq!(detect(&forced, &path), ("plain", true));
    // Another input's sources are not affected.
    assert_eq!(
        detect(&forced, "syslog+udp://10.0.0.1/other"),
        ("plain", false)
    );
    let auto = config(&format!("{TCP}format = \"auto\"\n")).unwrap();
    assert_eq!(detect(&auto, &path), ("plain", false));
    let user = config(&format!(
        "[[parse.sources]]\npath = \"syslog+*\"\nformat = \"logfmt\"\n{TCP}"
    ))
    .unwrap();
    assert_eq!(detect(&user, &path), ("plain", true));
    let v6 = super::origin(super::Mode::Udp, "u", "::1".parse().unwrap());
    assert_eq!(v6.path, "syslog+udp://[::1]/u");
    assert_eq!(v6.host, "::1");
}
