//! The parser corpus (`tests/corpus/parse/*.jsonl` at the repository root): real-looking
//! lines of every format, each with the normalised event expected from auto-detection —
//! format, timestamp, level, message and key fields — checked field by field.
//!
//! Each case is checked twice: alone (fresh detection), and with every format's lines
//! interleaved through one source, which exercises the "last format first" fast path on
//! a file that mixes formats.

use std::path::PathBuf;

use logferry_aggregator::parse::detect::{Detected, Detector};
use logferry_aggregator::parse::{Value, Zone};
use logferry_shared::event::Timestamp;
use serde_json::Value as Json;

struct Case {
    file: String,
    line_no: usize,
    expect: Json,
}

fn corpus() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/parse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/corpus/parse exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read corpus file");
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let expect: Json =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
            cases.push(Case {
                file: name.clone(),
                line_no: i + 1,
                expect,
            });
        }
    }
    cases
}

fn value_json(v: &Value<'_>) -> Json {
    match v {
        Value::Str(s) => Json::String(s.to_string()),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bool(b) => Json::Bool(*b),
        Value::Null => Json::Null,
        Value::Json(raw) => {
            serde_json::from_str(raw).unwrap_or_else(|e| panic!("invalid raw JSON {raw}: {e}"))
        }
    }
}

fn ts(s: &str) -> Timestamp {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad expected timestamp {s}: {e}"));
    Timestamp(t.timestamp_nanos_opt().expect("in range"))
}

/// Compares one detection with its case; returns the differences.
fn check(case: &Case, d: &Detected<'_>) -> Vec<String> {
    let e = &case.expect;
    let mut diffs = Vec::new();
    if e["format"].as_str() != Some(d.format) {
        diffs.push(format!(
            "format: expected {}, got {}",
            e["format"], d.format
        ));
    }
    if d.parse_error {
        diffs.push("flagged parse_error".into());
    }
    match e["timestamp"].as_str() {
        Some(want) if d.parsed.timestamp != Some(ts(want)) => diffs.push(format!(
            "timestamp: expected {want}, got {:?}",
            d.parsed.timestamp.map(|t| t.to_string())
        )),
        None if d.parsed.timestamp.is_some() => diffs.push(format!(
            "timestamp: expected none, got {:?}",
            d.parsed.timestamp.map(|t| t.to_string())
        )),
        _ => {}
    }
    let level = d.parsed.level.map(|l| l.as_str());
    if e["level"].as_str() != level {
        diffs.push(format!("level: expected {}, got {level:?}", e["level"]));
    }
    if e["message"].as_str() != Some(d.parsed.message.as_ref()) {
        diffs.push(format!(
            "message: expected {}, got {:?}",
            e["message"], d.parsed.message
        ));
    }
    if let Some(fields) = e["fields"].as_object() {
        for (k, want) in fields {
            match d.parsed.fields.iter().find(|(fk, _)| fk == k) {
                Some((_, v)) if value_json(v) == *want => {}
                Some((_, v)) => {
                    diffs.push(format!("field {k}: expected {want}, got {}", value_json(v)))
                }
                None => diffs.push(format!("field {k}: missing (expected {want})")),
            }
        }
    }
    let keys: Vec<&str> = d.parsed.fields.iter().map(|(k, _)| k.as_ref()).collect();
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != keys.len() {
        diffs.push(format!("duplicate field keys: {keys:?}"));
    }
    diffs
}

fn detector() -> Detector {
    let mut d = Detector::new(Zone::Utc, &[], &[]).expect("detector");
    // Formats without a year (RFC 3164, klog) are read relative to this "now".
    d.set_now(ts("2026-11-22T12:00:00Z"));
    d
}

#[test]
fn every_corpus_line_parses_as_expected() {
    let cases = corpus();
    assert!(
        cases.len() >= 100,
        "the corpus has only {} cases",
        cases.len()
    );
    let det = detector();
    let mut failures = Vec::new();
    for case in &cases {
        let line = case.expect["line"].as_str().expect("case has a line");
        // A case may fix its own "now" (formats without a year are read relative to it).
        let own;
        let det = match case.expect["now"].as_str() {
            Some(now) => {
                let mut d = detector();
                d.set_now(ts(now));
                own = d;
                &own
            }
            None => &det,
        };
        let mut plan = det.plan("/var/log/corpus.log");
        let d = det.detect(&mut plan, line);
        let diffs = check(case, &d);
        if !diffs.is_empty() {
            failures.push(format!(
                "{}:{}: {line}\n    {}",
                case.file,
                case.line_no,
                diffs.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_file_mixing_every_format_parses_the_same() {
    let cases = corpus();
    let det = detector();
    let mut plan = det.plan("/var/log/mixed.log");
    let mut failures = Vec::new();
    // Interleave: round-robin over the formats so consecutive lines differ in format.
    let mut by_file: Vec<Vec<&Case>> = Vec::new();
    for c in &cases {
        match by_file.iter_mut().find(|v| v[0].file == c.file) {
            Some(v) => v.push(c),
            None => by_file.push(vec![c]),
        }
    }
    let longest = by_file.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for group in &by_file {
            if let Some(case) = group.get(i).filter(|c| c.expect.get("now").is_none()) {
                let line = case.expect["line"].as_str().expect("line");
                let d = det.detect(&mut plan, line);
                let diffs = check(case, &d);
                if !diffs.is_empty() {
                    failures.push(format!(
                        "{}:{}: {}",
                        case.file,
                        case.line_no,
                        diffs.join("; ")
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ when mixed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn forced_formats_flag_lines_that_do_not_fit() {
    let det = Detector::new(
        Zone::Utc,
        &[("/var/log/nginx/*.log".into(), "access".into())],
        &[],
    )
    .expect("detector");
    let mut plan = det.plan("/var/log/nginx/access.log");
    let d = det.detect(&mut plan, "this is not an access log line");
    assert_eq!(d.format, "plain");
    assert!(d.parse_error);
    let d = det.detect(
        &mut plan,
        r#"203.0.113.7 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8""#,
    );
    assert_eq!(d.format, "access");
    assert!(!d.parse_error);
    assert!(
        Detector::new(Zone::Utc, &[("/x".into(), "nope".into())], &[])
            .unwrap_err()
            .contains("unknown format `nope`")
    );
}
