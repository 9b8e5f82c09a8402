//! Reading Docker json-file lines: `{"log":"...\n","stream":"stdout","time":"..."}`.
//!
//! A small scanner instead of a general JSON parser, because it runs once per line and
//! must not allocate: the `log` string is unescaped into a buffer the caller reuses, other
//! keys (`attrs` with labels, anything newer Docker adds) are skipped without being
//! decoded. Anything that is not a JSON object with a string `log`, a `stream` of
//! `stdout`/`stderr` and (if present) an RFC 3339 `time` is refused; refusal is cheap and
//! never panics, nesting is skipped iteratively.

use super::time::rfc3339_ms;
use super::Stream;

/// The fields of a Docker log line other than the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DockerFields {
    /// Which output of the container wrote it.
    pub stream: Stream,
    /// The `time` field, Unix milliseconds.
    pub time_ms: Option<u64>,
}

/// Parses one line, leaving the unescaped `log` value in `log` (cleared first). `None`
/// when the line is not a Docker log object or `log` is not valid UTF-8.
pub fn parse_docker(line: &[u8], log: &mut Vec<u8>) -> Option<DockerFields> {
    log.clear();
    let mut seen_log = false;
    let mut stream = None;
    let mut time_ms = None;
    let mut i = ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        let (key, after) = raw_string(line, i)?;
        i = ws(line, after);
        if line.get(i) != Some(&b':') {
            return None;
        }
        i = ws(line, i + 1);
        match key {
            b"log" => {
                log.clear();
                i = unescape(line, i, log)?;
                seen_log = true;
            }
            b"stream" => {
                let (value, after) = raw_string(line, i)?;
                stream = Some(match value {
                    b"stdout" => Stream::Stdout,
                    b"stderr" => Stream::Stderr,
                    _ => return None,
                });
                i = after;
            }
            b"time" => {
                let (value, after) = raw_string(line, i)?;
                time_ms = Some(rfc3339_ms(value)?);
                i = after;
            }
            _ => i = skip_value(line, i)?,
        }
        i = ws(line, i);
        match line.get(i)? {
            b',' => i = ws(line, i + 1),
            b'}' => break,
            _ => return None,
        }
    }
    if ws(line, i + 1) != line.len() || !seen_log || std::str::from_utf8(log).is_err() {
        return None;
    }
    Some(DockerFields {
        stream: stream?,
        time_ms,
    })
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// The bytes between the quotes of the string starting at `b[i]` (escapes left as they
/// are), and the index after its closing quote.
fn raw_string(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let mut j = start;
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some((&b[start..j], j + 1));
        }
        j += 2;
    }
}

/// Unescapes the JSON string starting at `b[i]` onto `out`; returns the index after it.
pub fn unescape(b: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        let rest = b.get(j..)?;
        let n = memchr::memchr2(b'"', b'\\', rest)?;
        out.extend_from_slice(&rest[..n]);
        j += n;
        if b[j] == b'"' {
            return Some(j + 1);
        }
        let c = *b.get(j + 1)?;
        j += 2;
        let byte = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut cp = hex4(b, j)?;
                j += 4;
                if (0xD800..0xDC00).contains(&cp) {
                    if b.get(j..j + 2) != Some(b"\\u") {
                        return None;
                    }
                    let low = hex4(b, j + 2)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    j += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                let ch = char::from_u32(cp)?;
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.push(byte);
    }
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)?.iter().try_fold(0u32, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc * 16 + d)
    })
}

/// Skips one JSON value of any kind starting at `b[i]`; returns the index after it.
/// Structure inside objects and arrays is checked only loosely: enough to find the end.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        i = ws(b, i);
        match *b.get(i)? {
            b'"' => i = raw_string(b, i)?.1,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
                continue;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ => {
                let start = i;
                while b
                    .get(i)
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b':' | b' ' | b'\t'))
                {
                    i += 1;
                }
                if i == start {
                    return None;
                }
            }
        }
        if depth == 0 {
            return Some(i);
        }
        i = ws(b, i);
        match *b.get(i)? {
            b',' | b':' => i += 1,
            b'}' | b']' => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(line: &str) -> Option<(String, DockerFields)> {
        let mut log = Vec::new();
        let f = parse_docker(line.as_bytes(), &mut log)?;
        Some((String::from_utf8(log).unwrap(), f))
    }

    #[test]
    fn docker_lines() {
        let (log, f) = parse(
            r#"{"log":"GET /health 200 \"ok\"\n","stream":"stdout","time":"2026-11-22T10:00:00.123456789Z"}"#,
        )
        .unwrap();
        assert_eq!(log, "GET /health 200 \"ok\"\n");
        assert_eq!(f.stream, Stream::Stdout);
        assert_eq!(f.time_ms, Some(1_795_341_600_123));

        // Other keys in any order, nested values skipped, escapes and surrogate pairs.
        let (log, f) = parse(
            r#" { "attrs" : {"tag":"a,}b","n":[1,{"x":null}],"t":true}, "stream":"stderr", "log":"\u00e9\ud83d\ude00\t\\\/" } "#,
        )
        .unwrap();
        assert_eq!(log, "é😀\t\\/");
        assert_eq!(f.stream, Stream::Stderr);
        assert_eq!(f.time_ms, None);
    }

    #[test]
    fn not_docker_lines() {
        for line in [
            "",
            "{}",
            "{\"log\":\"x\"}",
            "{\"log\":\"x\",\"stream\":\"stdin\"}",
            "{\"log\":\"x\",\"stream\":\"stdout\",\"time\":\"yesterday\"}",
            "{\"log\":\"x\",\"stream\":\"stdout\"} trailing",
            "{\"log\":\"x\",\"stream\":\"stdout\"",
            "{\"log\":\"x\\q\",\"stream\":\"stdout\"}",
            "{\"log\":\"\\ud800\",\"stream\":\"stdout\"}",
            "{\"log\":\"\\ud800\\u0041\",\"stream\":\"stdout\"}",
            "{\"log\":\"x\",\"stream\":\"stdout\",\"a\":}",
            "{\"log\":\"x\",\"stream\":\"stdout\",\"a\":[1,2}",
            "{\"log\":\"x\",\"stream\":\"stdout\",}",
            "{\"log\":1,\"stream\":\"stdout\"}",
            "[\"log\"]",
            "plain text",
        ] {
            assert_eq!(parse(line), None, "{line}");
        }
        let mut log = Vec::new();
        assert!(parse_docker(b"{\"log\":\"\xff\",\"stream\":\"stdout\"}", &mut log).is_none());
    }

    proptest! {
        #[test]
        fn unescape_agrees_with_serde_json(s in any::<String>()) {
            let encoded = serde_json::to_string(&s).unwrap();
            let mut out = Vec::new();
            let end = unescape(encoded.as_bytes(), 0, &mut out);
            prop_assert_eq!(end, Some(encoded.len()));
            prop_assert_eq!(out, s.as_bytes());
        }

        #[test]
        fn docker_round_trip(log in any::<String>(), stderr in any::<bool>(), extra in any::<String>()) {
            let stream = if stderr { "stderr" } else { "stdout" };
            let line = serde_json::json!({
                "log": log, "stream": stream, "attrs": {"k": extra, "v": [1, 2.5, null]},
                "time": "2026-11-22T10:00:00.5Z",
            })
            .to_string();
            let mut out = Vec::new();
            let f = parse_docker(line.as_bytes(), &mut out).unwrap();
            prop_assert_eq!(out, log.as_bytes());
            prop_assert_eq!(f.stream, if stderr { Stream::Stderr } else { Stream::Stdout });
            prop_assert_eq!(f.time_ms, Some(1_795_341_600_500));
        }

        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut out = Vec::new();
            let _ = parse_docker(&line, &mut out);
        }

        #[test]
        fn never_panics_on_json_like_bytes(line in "[{}\\[\\]\",:\\\\a-z0-9 ]{0,60}") {
            let mut out = Vec::new();
            let _ = parse_docker(line.as_bytes(), &mut out);
            let _ = parse_docker(format!("{{\"log\":\"x\",\"stream\":\"stdout\",\"a\":{line}").as_bytes(), &mut out);
        }
    }
}
