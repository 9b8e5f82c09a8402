//! glog / klog: the header Kubernetes components (and other glog users) write.
//!
//! ```text
//! E1122 10:00:00.123456   4242 controller.go:42] failed to sync pod shop/api-7d9
//! I1122 10:00:00.123456       1 leaderelection.go:258] "Successfully acquired lease" lease="kube-system/kube-scheduler" attempt=3
//! ^severity, month, day, time, thread id, file:line, `] `, then the message
//! ```
//!
//! Extracted: level from the severity letter (`I` info, `W` warn, `E` error, `F` fatal),
//! timestamp (the line has no year: it is inferred with [`time::infer_year`] from the
//! context's `now`; the time is read in the context's zone), and the fields `thread_id`
//! (Int), `source_file` and `source_line` (Int).
//!
//! Structured klog (`InfoS`, `ErrorS`): when the text after `] ` is a Go-quoted string
//! followed only by `key=value` pairs, the message is the unquoted string and every pair
//! becomes a field: quoted values are unquoted (Str), bare integers become Int, finite
//! decimals Float, `true`/`false` Bool, anything else Str; `{...}` and `[...]` values
//! (structs and slices printed with `%+v`) are kept verbatim as Str. A key repeating an
//! earlier field is dropped. If any part does not read that way, the whole text is the
//! message and no pairs are extracted.
//!
//! Not handled: klog's multi-line values (`key=<` followed by indented lines: each line
//! arrives on its own), glog's `Log file created at:` file headers, and the JSON format of
//! `--logging-format=json` (the JSON parser takes those).

use std::borrow::Cow;

use logferry_shared::event::Level;

use super::{time, ParseContext, Parsed, Parser, Value};

/// glog/klog lines (`klog`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KlogParser;

impl Parser for KlogParser {
    fn name(&self) -> &'static str {
        "klog"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        parse(line, ctx)
    }
}

fn two(b: &[u8]) -> Option<u32> {
    match b {
        [x, y] if x.is_ascii_digit() && y.is_ascii_digit() => {
            Some(u32::from(x - b'0') * 10 + u32::from(y - b'0'))
        }
        _ => None,
    }
}

fn parse<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let b = line.as_bytes();
    let level = match b.first()? {
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' => Level::Fatal,
        _ => return None,
    };
    // `1122 10:00:00.123456`
    let head = b.get(1..16)?;
    if head[4] != b' ' || head[7] != b':' || head[10] != b':' || head[13] != b'.' {
        return None;
    }
    let (month, day) = (two(&head[0..2])?, two(&head[2..4])?);
    let (h, mi, s) = (two(&head[5..7])?, two(&head[8..10])?, two(&head[11..13])?);
    let mut i = 15;
    let frac_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if frac_len == 0 || frac_len > 9 {
        return None;
    }
    let nanos = b[i..i + frac_len]
        .iter()
        .fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'))
        * 10u32.pow(9 - frac_len as u32);
    i += frac_len;

    // `   4242 `
    let spaces = b[i..].iter().take_while(|&&c| c == b' ').count();
    if spaces == 0 {
        return None;
    }
    i += spaces;
    let tid_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if tid_len == 0 || tid_len > 18 || b.get(i + tid_len) != Some(&b' ') {
        return None;
    }
    let thread_id: i64 = line.get(i..i + tid_len)?.parse().ok()?;
    i += tid_len + 1;

    // `controller.go:42] `
    let loc_len = b[i..]
        .iter()
        .take_while(|&&c| c != b']' && c != b' ')
        .count();
    if b.get(i + loc_len) != Some(&b']') {
        return None;
    }
    let loc = line.get(i..i + loc_len)?;
    let colon = loc.rfind(':')?;
    let (file, line_text) = (loc.get(..colon)?, loc.get(colon + 1..)?);
    if file.is_empty()
        || line_text.is_empty()
        || line_text.len() > 9
        || !line_text.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let source_line: i64 = line_text.parse().ok()?;
    i += loc_len + 1;
    let text = match b.get(i) {
        None => "",
        Some(b' ') => line.get(i + 1..)?,
        _ => return None,
    };

    let year = time::infer_year(month, day, ctx.now);
    let timestamp = time::local(&ctx.zone, year, month, day, (h, mi, s.min(59), nanos))?;

    // Room for the header fields and, for structured lines, a few pairs.
    let mut fields = Vec::with_capacity(if text.starts_with('"') { 10 } else { 3 });
    fields.push((Cow::Borrowed("thread_id"), Value::Int(thread_id)));
    fields.push((
        Cow::Borrowed("source_file"),
        Value::Str(Cow::Borrowed(file)),
    ));
    fields.push((Cow::Borrowed("source_line"), Value::Int(source_line)));
    let mut message = Cow::Borrowed(text);
    if text.starts_with('"') {
        let before = fields.len();
        match structured(text, &mut fields) {
            Some(msg) => message = msg,
            None => fields.truncate(before),
        }
    }
    Some(Parsed {
        timestamp: Some(timestamp),
        level: Some(level),
        message,
        fields,
    })
}

/// `"msg" key="value" n=3 ...`: pushes the pairs and returns the message, or `None` if
/// the text is not entirely in that form.
fn structured<'a>(
    text: &'a str,
    fields: &mut Vec<(Cow<'a, str>, Value<'a>)>,
) -> Option<Cow<'a, str>> {
    let (msg, used) = go_string(text)?;
    let b = text.as_bytes();
    let mut i = used;
    while i < b.len() {
        if b[i] != b' ' {
            return None;
        }
        i += 1;
        let key_len = b[i..]
            .iter()
            .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'/'))
            .count();
        if key_len == 0 || b.get(i + key_len) != Some(&b'=') {
            return None;
        }
        let key = text.get(i..i + key_len)?;
        i += key_len + 1;
        let rest = text.get(i..)?;
        let (value, used) = match b.get(i) {
            Some(b'"') => {
                let (s, used) = go_string(rest)?;
                (Value::Str(s), used)
            }
            Some(b'{') | Some(b'[') => {
                let used = balanced(rest.as_bytes())?;
                (Value::Str(Cow::Borrowed(rest.get(..used)?)), used)
            }
            _ => {
                let used = rest.bytes().take_while(|&c| c != b' ').count();
                (bare(rest.get(..used)?), used)
            }
        };
        i += used;
        if !fields.iter().any(|(k, _)| k == key) {
            fields.push((Cow::Borrowed(key), value));
        }
    }
    Some(msg)
}

/// A bare klog value: Int, finite Float (only with a decimal point), Bool, or Str.
/// Numbers that would not survive the conversion (leading zeros, integers beyond i64)
/// stay strings.
fn bare(v: &str) -> Value<'_> {
    match v {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = v.strip_prefix('-').unwrap_or(v);
    let b = digits.as_bytes();
    let leading_zero = b.len() > 1 && b[0] == b'0' && b[1] != b'.';
    if b.first().is_some_and(u8::is_ascii_digit)
        && !leading_zero
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'.')
    {
        if !b.contains(&b'.') {
            if let Ok(n) = v.parse::<i64>() {
                return Value::Int(n);
            }
        } else if let Ok(f) = v.parse::<f64>() {
            if f.is_finite() {
                return Value::Float(f);
            }
        }
    }
    Value::Str(Cow::Borrowed(v))
}

/// Length of a `{...}` or `[...]` value, brackets nested and quotes respected.
fn balanced(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' => {
                i += 1;
                while let Some(&q) = b.get(i) {
                    match q {
                        b'\\' => i += 1,
                        b'"' => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn hex_value(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// A Go-quoted string (`strconv.Quote`) at the start of `s`: its text and the bytes used.
/// Borrows when there are no escapes. `\xHH` escapes of non-ASCII bytes are kept as
/// written, since the bytes need not form UTF-8.
fn go_string(s: &str) -> Option<(Cow<'_, str>, usize)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    // Fast path: no escapes.
    let mut i = 1 + b[1..].iter().position(|&c| c == b'"' || c == b'\\')?;
    if b[i] == b'"' {
        return Some((Cow::Borrowed(s.get(1..i)?), i + 1));
    }
    let mut out = String::with_capacity(s.len());
    out.push_str(s.get(1..i)?);
    loop {
        let c = *b.get(i)?;
        match c {
            b'"' => return Some((Cow::Owned(out), i + 1)),
            b'\\' => {
                let e = *b.get(i + 1)?;
                let simple = match e {
                    b'a' => Some('\u{7}'),
                    b'b' => Some('\u{8}'),
                    b'f' => Some('\u{c}'),
                    b'n' => Some('\n'),
                    b'r' => Some('\r'),
                    b't' => Some('\t'),
                    b'v' => Some('\u{b}'),
                    b'\\' => Some('\\'),
                    b'\'' => Some('\''),
                    b'"' => Some('"'),
                    _ => None,
                };
                if let Some(ch) = simple {
                    out.push(ch);
                    i += 2;
                    continue;
                }
                let (digits, radix_len) = match e {
                    b'x' => (2, 16),
                    b'u' => (4, 16),
                    b'U' => (8, 16),
                    b'0'..=b'7' => (3, 8),
                    _ => return None,
                };
                let start = if radix_len == 8 { i + 1 } else { i + 2 };
                let body = b.get(start..start + digits)?;
                let v = if radix_len == 8 {
                    body.iter().try_fold(0u32, |v, &c| {
                        (b'0'..=b'7')
                            .contains(&c)
                            .then(|| v * 8 + u32::from(c - b'0'))
                    })?
                } else {
                    hex_value(body)?
                };
                if (e == b'x' || radix_len == 8) && v >= 0x80 {
                    // A raw byte: keep the escape as written.
                    out.push_str(s.get(i..start + digits)?);
                } else {
                    out.push(char::from_u32(v)?);
                }
                i = start + digits;
            }
            _ => {
                let run = b[i..]
                    .iter()
                    .take_while(|&&c| c != b'"' && c != b'\\')
                    .count();
                out.push_str(s.get(i..i + run)?);
                i += run;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testkit::{check_corpus, ctx, expect_field as field, has, s, ts};
    use proptest::prelude::*;

    fn p(line: &str) -> Parsed<'_> {
        KlogParser
            .parse(line, &ctx())
            .unwrap_or_else(|| panic!("refused {line}"))
    }

    #[test]
    fn classic() {
        let e = p("E1122 10:00:00.123456   4242 controller.go:42] failed to sync pod shop/api-7d9: context deadline exceeded");
        assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123456Z")));
        assert_eq!(e.level, Some(Level::Error));
        assert_eq!(
            e.message,
            "failed to sync pod shop/api-7d9: context deadline exceeded"
        );
        let want = vec![
            ("thread_id", Value::Int(4242)),
            ("source_file", s("controller.go")),
            ("source_line", Value::Int(42)),
        ];
        let got: Vec<_> = e
            .fields
            .iter()
            .map(|(k, v)| (k.as_ref(), v.clone()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn severities_and_years() {
        assert_eq!(
            p("I1122 10:00:00.000001 1 a.go:1] x").level,
            Some(Level::Info)
        );
        assert_eq!(
            p("W1122 10:00:00.000001 1 a.go:1] x").level,
            Some(Level::Warn)
        );
        assert_eq!(
            p("F1122 10:00:00.000001 1 a.go:1] x").level,
            Some(Level::Fatal)
        );
        // December read on 22 November: last year.
        assert_eq!(
            p("I1231 23:59:59.999999 1 a.go:1] x").timestamp,
            Some(ts("2025-12-31T23:59:59.999999Z"))
        );
        // Within a day ahead: this year.
        assert_eq!(
            p("I1123 01:00:00.000000 1 a.go:1] x").timestamp,
            Some(ts("2026-11-23T01:00:00Z"))
        );
        let c = ParseContext {
            zone: crate::parse::Zone::parse("+02:00").unwrap(),
            ..ctx()
        };
        let e = KlogParser
            .parse("I1122 10:00:00.5 1 a.go:1] x", &c)
            .unwrap();
        assert_eq!(e.timestamp, Some(ts("2026-11-22T08:00:00.5Z")));
        // Empty message.
        assert_eq!(p("I1122 10:00:00.000001 1 a.go:1]").message, "");
        assert_eq!(p("I1122 10:00:00.000001 1 a.go:1] ").message, "");
    }

    #[test]
    fn structured() {
        let e = p(
            r#"I1122 10:00:00.123456       1 leaderelection.go:258] "Successfully acquired lease" lease="kube-system/kube-scheduler" attempt=3 ratio=0.5 ok=true dur=1.5s node={Name:n1 Labels:map[a:b]} ids=[1 2 3]"#,
        );
        assert_eq!(e.message, "Successfully acquired lease");
        assert!(matches!(e.message, Cow::Borrowed(_)));
        assert_eq!(*field(&e, "lease"), s("kube-system/kube-scheduler"));
        assert_eq!(*field(&e, "attempt"), Value::Int(3));
        assert_eq!(*field(&e, "ratio"), Value::Float(0.5));
        assert_eq!(*field(&e, "ok"), Value::Bool(true));
        assert_eq!(*field(&e, "dur"), s("1.5s"));
        assert_eq!(*field(&e, "node"), s("{Name:n1 Labels:map[a:b]}"));
        assert_eq!(*field(&e, "ids"), s("[1 2 3]"));
        let e = p(
            r#"I1122 10:00:00.1 1 a.go:1] "x" trace=12345678901234567890123 code=007 zero=0 neg=-3 f=0.25 v=1.2.3 dash=-"#,
        );
        assert_eq!(*field(&e, "trace"), s("12345678901234567890123"));
        assert_eq!(*field(&e, "code"), s("007"));
        assert_eq!(*field(&e, "zero"), Value::Int(0));
        assert_eq!(*field(&e, "neg"), Value::Int(-3));
        assert_eq!(*field(&e, "f"), Value::Float(0.25));
        assert_eq!(*field(&e, "v"), s("1.2.3"));
        assert_eq!(*field(&e, "dash"), s("-"));
        assert_eq!(*field(&e, "thread_id"), Value::Int(1));
        // Escapes in message and values; a key repeating a header field is dropped.
        let e = p(
            r#"E1122 10:00:00.1 7 x.go:9] "Failed \"x\"\n\tdone \u00e9 \xff" err="open \"/a\": no such file" thread_id=99"#,
        );
        assert_eq!(e.message, "Failed \"x\"\n\tdone \u{e9} \\xff");
        assert_eq!(*field(&e, "err"), s("open \"/a\": no such file"));
        assert_eq!(*field(&e, "thread_id"), Value::Int(7));
        // Not entirely structured: the whole text is the message.
        for text in [
            r#""GET /x" 200 OK"#,
            r#""unterminated"#,
            r#""a" b"#,
            r#""a" k="v"x"#,
            r#""a" k={unbalanced"#,
            r#""bad \q escape" k=1"#,
        ] {
            let line = format!("I1122 10:00:00.1 7 x.go:9] {text}");
            let e = p(&line);
            assert_eq!(e.message, text);
            assert_eq!(e.fields.len(), 3, "{text}");
        }
    }

    #[test]
    fn refuses_near_misses() {
        for bad in [
            "X1122 10:00:00.123456 1 a.go:1] x",
            "I1122 10:00:00 1 a.go:1] x",
            "I1122 10:00:00.123456 a.go:1] x",
            "I1122 10:00:00.123456 1 a.go] x",
            "I1122 10:00:00.123456 1 a.go:1]x",
            "I1122 10:00:00.123456 1 a.go:x] x",
            "I1122 10:00:00.123456 1 a.go:1 x",
            "I1322 10:00:00.123456 1 a.go:1] x",
            "I1122 25:00:00.123456 1 a.go:1] x",
            "I1122T10:00:00.123456 1 a.go:1] x",
            "INFO 10:00:00.123456 1 a.go:1] x",
            "I1122 10:00:00.123456 1 :1] x",
        ] {
            assert!(KlogParser.parse(bad, &ctx()).is_none(), "{bad}");
        }
        assert!(!has(&p("I1122 10:00:00.1 1 a.go:1] x"), "lease"));
    }

    #[test]
    fn corpus() {
        check_corpus(&KlogParser);
    }

    fn go_quote(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC*") {
            let _ = KlogParser.parse(&line, &ctx());
        }

        #[test]
        fn never_panics_on_near_lines(line in r#"[IWEF][0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{0,7} {0,3}[0-9]{0,4} ?[a-z_.:0-9]{0,10}\]? ?"?([a-zé\\"ux0-9 ]{0,10}"?( [a-z]{1,4}=("[a-z\\"x0-9é ]{0,6}"?|[{\[][a-z\[\]{} "]{0,6}|[0-9.a-z-]{0,5}))*)?"#) {
            let _ = KlogParser.parse(&line, &ctx());
        }

        #[test]
        fn round_trips(
            back in 0i64..300 * 86_400,
            micros in 0u32..1_000_000,
            sev in prop::sample::select(vec!['I', 'W', 'E', 'F']),
            thread in 0i64..10_000_000,
            file in "[a-z_]{1,12}\\.go",
            line_no in 1i64..100_000,
            msg in "[^\"]\\PC{0,40}|",
            pairs in prop::collection::vec(("[a-z][a-zA-Z0-9_]{0,8}", prop_oneof![
                "\\PC{0,20}".prop_map(|s| (go_quote(&s), Value::Str(s.into()))),
                any::<i64>().prop_map(|n| (n.to_string(), Value::Int(n))),
                any::<bool>().prop_map(|b| (b.to_string(), Value::Bool(b))),
            ]), 0..5),
            structured in any::<bool>(),
        ) {
            let now = ctx().now.0 / 1_000_000_000;
            let t = chrono::DateTime::from_timestamp(now - back, micros * 1000).unwrap();
            let header = format!(
                "{sev}{} {:>7} {file}:{line_no}]",
                t.format("%m%d %H:%M:%S%.6f"),
                thread,
            );
            let text = if structured {
                let mut s = go_quote(&msg);
                for (k, (v, _)) in &pairs {
                    s.push_str(&format!(" {k}={v}"));
                }
                s
            } else {
                msg.clone()
            };
            let line = format!("{header} {text}");
            let e = KlogParser.parse(&line, &ctx()).unwrap();
            prop_assert_eq!(e.timestamp, Some(logferry_shared::event::Timestamp((now - back) * 1_000_000_000 + i64::from(micros) * 1000)));
            prop_assert_eq!(e.level, super::super::level::from_word(&sev.to_string()));
            prop_assert_eq!(field(&e, "thread_id"), &Value::Int(thread));
            prop_assert_eq!(field(&e, "source_file"), &s(&file));
            prop_assert_eq!(field(&e, "source_line"), &Value::Int(line_no));
            prop_assert_eq!(e.message.as_ref(), msg.as_str());
            if structured {
                let mut seen = vec!["thread_id", "source_file", "source_line"];
                for (k, (_, v)) in &pairs {
                    if seen.contains(&k.as_str()) {
                        continue;
                    }
                    seen.push(k);
                    prop_assert_eq!(field(&e, k), v);
                }
            }
        }
    }
}
