//! Test helpers shared by the parser modules: a fixed context, field lookups, the corpus
//! files under `tests/corpus/parse/` and the checks run against them, and lines of other
//! formats the specific parsers must refuse.

use std::path::PathBuf;

use logferry_shared::event::Timestamp;

use crate::parse::{ParseContext, Parsed, Parser, Value, Zone};

/// The instant of an RFC 3339 text.
pub fn ts(s: &str) -> Timestamp {
    Timestamp(
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .timestamp_nanos_opt()
            .unwrap(),
    )
}

/// The context the tests and the corpus assume: UTC, now = 2026-11-22T12:00:00Z.
pub fn ctx() -> ParseContext {
    ParseContext {
        zone: Zone::Utc,
        now: ts("2026-11-22T12:00:00Z"),
    }
}

/// A field's value, if present.
pub fn field<'p>(p: &'p Parsed<'_>, key: &str) -> Option<&'p Value<'p>> {
    p.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A field's value, or panics naming the field.
pub fn expect_field<'p>(p: &'p Parsed<'_>, key: &str) -> &'p Value<'p> {
    field(p, key).unwrap_or_else(|| panic!("no field {key} in {:?}", p.fields))
}

/// Whether a field is present.
pub fn has(p: &Parsed<'_>, key: &str) -> bool {
    p.fields.iter().any(|(k, _)| k == key)
}

/// Shorthand for a string value.
pub fn s(v: &str) -> Value<'_> {
    Value::Str(v.into())
}

/// A field value as JSON.
pub fn to_json(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Str(s) => serde_json::Value::String(s.to_string()),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Bool(b) => (*b).into(),
        Value::Null => serde_json::Value::Null,
        Value::Json(raw) => serde_json::from_str(raw).expect("Value::Json holds JSON"),
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/parse")
}

/// One corpus line and the event expected from it.
#[derive(serde::Deserialize)]
pub struct Case {
    pub line: String,
    pub format: String,
    pub timestamp: Option<String>,
    pub level: Option<String>,
    pub message: String,
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// "Now" for year-less timestamps (RFC 3164 syslog); default 2026-11-22T12:00:00Z.
    #[serde(default)]
    pub now: Option<String>,
}

/// Every case of corpus file `name`.
pub fn corpus(name: &str) -> Vec<Case> {
    let path = corpus_dir().join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

/// Checks every case of corpus `name` against `parser` (each with its own "now"); the
/// fields a case lists must be present with these values. Returns the number of cases.
pub fn check_cases(name: &str, parser: &dyn Parser) -> usize {
    let cases = corpus(name);
    for c in &cases {
        assert_eq!(c.format, name, "{}", c.line);
        let ctx = ParseContext {
            zone: Zone::Utc,
            now: ts(c.now.as_deref().unwrap_or("2026-11-22T12:00:00Z")),
        };
        let p = parser
            .parse(&c.line, &ctx)
            .unwrap_or_else(|| panic!("not parsed: {}", c.line));
        assert_eq!(
            p.timestamp,
            c.timestamp.as_deref().map(ts),
            "timestamp: {}",
            c.line
        );
        assert_eq!(
            p.level.map(|l| l.as_str()),
            c.level.as_deref(),
            "level: {}",
            c.line
        );
        assert_eq!(p.message, c.message, "message: {}", c.line);
        for (k, want) in &c.fields {
            let got = field(&p, k).unwrap_or_else(|| panic!("no field {k}: {}", c.line));
            assert_eq!(&to_json(got), want, "field {k}: {}", c.line);
        }
        let mut keys: Vec<&str> = p.fields.iter().map(|(k, _)| k.as_ref()).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys: {}", c.line);
    }
    cases.len()
}

/// Every case of the other formats' corpora must be refused by `parser`.
pub fn check_refuses(others: &[&str], parser: &dyn Parser) {
    for name in others {
        for c in corpus(name) {
            assert!(
                parser.parse(&c.line, &ctx()).is_none(),
                "{} claimed a {name} line: {}",
                parser.name(),
                c.line
            );
        }
    }
}

/// Lines of formats none of the line-prefix parsers (access, web error logs, klog,
/// Python, Java, Go) may claim.
pub const FOREIGN: &[&str] = &[
    r#"{"level":"info"}"#,
    r#"{"time":"2026-11-22T10:00:00.123Z","level":"error","msg":"db timeout","user_id":42}"#,
    "time=2026-11-22T10:00:00Z level=info msg=x",
    r#"time=2026-11-22T10:00:00.123Z level=error msg="db timeout" user_id=42"#,
    "Nov 22 10:00:00 web-1 sshd[22]: x",
    "Nov 22 10:00:03 web-1 kernel: [12345.678901] Out of memory: Killed process 4242 (java)",
    "<34>1 2026-11-22T10:00:00Z host app - - - x",
    "<13>Nov 22 10:00:04 web-1 app[77]: health check ok",
    "just a plain line without timestamp or level",
    "The quick brown fox jumps over the lazy dog.",
    "ERROR: something went wrong",
    "Error: connection refused",
    "2026-11-22 10:00:01 INFO worker 3 picked up job 17",
    "2026-11-22T10:00:00Z",
    "",
    " ",
    "[",
    "\"GET / HTTP/1.1\" 200 12",
];

/// The corpus formats of the line-prefix parsers.
pub const FORMATS: &[&str] = &[
    "access",
    "nginx_error",
    "apache_error",
    "klog",
    "python",
    "java",
    "go",
];

/// (line, expected object) for every case of a corpus file.
fn corpus_values(format: &str) -> Vec<(String, serde_json::Value)> {
    let path = corpus_dir().join(format!("{format}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{format}.jsonl:{}: {e}", n + 1));
            let line = v["line"].as_str().expect("line").to_string();
            assert_eq!(v["format"], format, "{format}.jsonl:{}", n + 1);
            (line, v)
        })
        .collect()
}

/// Checks one line-prefix parser against its corpus file (every expectation exact;
/// `fields` lists the fields that must be present with these values), and that it refuses
/// every line of the other corpus files and [`FOREIGN`].
pub fn check_corpus(parser: &dyn Parser) {
    let ctx = ctx();
    let own = corpus_values(parser.name());
    assert!(
        own.len() >= 12,
        "{}: only {} cases",
        parser.name(),
        own.len()
    );
    for (line, want) in &own {
        let p = parser
            .parse(line, &ctx)
            .unwrap_or_else(|| panic!("{} refused {line}", parser.name()));
        let ts = want["timestamp"].as_str().map(ts);
        assert_eq!(p.timestamp, ts, "timestamp of {line}");
        assert_eq!(
            p.level.map(|l| l.as_str()),
            want["level"].as_str(),
            "level of {line}"
        );
        assert_eq!(
            p.message,
            want["message"].as_str().unwrap(),
            "message of {line}"
        );
        let mut keys: Vec<&str> = p.fields.iter().map(|(k, _)| k.as_ref()).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "duplicate keys in {line}");
        for (k, v) in want["fields"].as_object().expect("fields object") {
            let got = field(&p, k).map(to_json);
            assert_eq!(got.as_ref(), Some(v), "field {k} of {line}");
        }
    }
    for other in FORMATS.iter().filter(|f| **f != parser.name()) {
        for (line, _) in corpus_values(other) {
            assert!(
                parser.parse(&line, &ctx).is_none(),
                "{} claimed {other} line {line}",
                parser.name()
            );
        }
    }
    // Corpus files of the other parsers, when they exist.
    let mut others: Vec<String> = std::fs::read_dir(corpus_dir())
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".jsonl").map(str::to_string))
                .filter(|n| !FORMATS.contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    others.sort();
    let mut claimed = Vec::new();
    for other in &others {
        for (line, _) in corpus_values(other) {
            if parser.parse(&line, &ctx).is_some() {
                claimed.push(format!("{other}: {line}"));
            }
        }
    }
    assert!(
        claimed.is_empty(),
        "{} claimed lines of other corpora:\n{}",
        parser.name(),
        claimed.join("\n")
    );
    for line in FOREIGN {
        assert!(
            parser.parse(line, &ctx).is_none(),
            "{} claimed {line}",
            parser.name()
        );
    }
}
