//! Turns the records of a decoded batch into output events, written straight as JSON lines.
//!
//! This is the hot path: one batch holds thousands of lines, so each record is written
//! into one output buffer with no per-record allocation: strings, numbers and timestamps
//! are written in place by [`json`] (a table-driven escaper, integer formatting, and
//! calendar arithmetic for timestamps). The shape is exactly [`logferry_shared::event::Event`]'s; a test parses the
//! output back into `Event` to keep the two in step.
//!
//! Each line goes through the [`Detector`]: `format` names the parser that matched,
//! `timestamp` is the line's own time (or the time the agent read it), `level` and
//! `message` come from the parser, and `fields` holds the agent's flags (`truncated`,
//! `invalid_utf8` — bytes replaced by U+FFFD —, `no_newline`, and `"stream":"stderr"` for
//! a container's stderr lines), `parse_error` when the line did not parse as expected, and
//! what the parser extracted.
//!
//! Between parsing and writing, each event goes through the rules ([`RenderRules`]): they
//! may drop it, change its message, level and fields, add `tags`, and route it to some of
//! the sinks. Routed output is kept as runs of consecutive lines with the same set of
//! sinks ([`RenderedLines`]), so a batch with no routing rules is still one buffer that
//! every sink takes whole.

mod json;

use std::io::Write;

use logferry_shared::event::{Level, Timestamp};
use logferry_shared::wire::{
    Batch, SourceRef, FLAG_INVALID_UTF8, FLAG_NO_NEWLINE, FLAG_STDERR, FLAG_TRUNCATED,
};

use crate::parse::detect::{Detector, SourcePlan};
use crate::parse::Value;
use crate::rules::{Engine, K8sRef, RuleEvent, Verdict};
use crate::stats::{Request, SourceKeys, TrafficStats};
use json::{timestamp_text, write_i64, write_str, TimestampCache, TIMESTAMP_LEN};

/// Kubernetes attribute keys the agent may attach to a source, in output order.
const K8S_ATTRS: [(&str, &str); 4] = [
    ("k8s.namespace", "namespace"),
    ("k8s.pod", "pod"),
    ("k8s.container", "container"),
    ("k8s.pod_uid", "pod_uid"),
];

/// Source attribute that sets `source.type` (default `file`), e.g. `syslog` for inputs.
pub const SOURCE_TYPE_ATTR: &str = "source.type";
/// Source attribute that sets the event's `host` for that source's lines, over the batch's.
pub const HOST_ATTR: &str = "host";

/// Pre-rendered JSON for one source: `"source":{...}` and the optional `"k8s":{...}`,
/// and, per format seen on the source, everything from `"host"` to the end of `"k8s"`
/// (those keys follow one another and change only with the format), so each line copies
/// them in one piece.
struct SourceJson {
    /// `,"source":{...}` and the optional `,"k8s":{...}`.
    source: Vec<u8>,
    /// `,"host":..` from the source's `host` attribute (an input's peer), which then
    /// stands for the batch's host.
    host: Option<Vec<u8>>,
    /// (format, `,"host":..,"format":"<format>"` + `source`): at most one per parser.
    by_format: Vec<(&'static str, Vec<u8>)>,
}

impl SourceJson {
    fn new(src: &SourceRef<'_>) -> SourceJson {
        let attr = |name: &str| src.attrs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let mut source = Vec::with_capacity(src.path.len() + 40);
        source.extend_from_slice(br#","source":{"type":"#);
        write_str(&mut source, attr(SOURCE_TYPE_ATTR).unwrap_or("file"));
        source.extend_from_slice(br#","path":"#);
        write_str(&mut source, src.path);
        source.push(b'}');
        let mut k8s = false;
        for (attr, name) in K8S_ATTRS {
            if let Some((_, v)) = src.attrs.iter().find(|(k, _)| *k == attr) {
                source.extend_from_slice(if k8s { b"," } else { br#","k8s":{"# });
                k8s = true;
                write_str(&mut source, name);
                source.push(b':');
                write_str(&mut source, v);
            }
        }
        if k8s {
            source.push(b'}');
        }
        let host = attr(HOST_ATTR).map(|h| {
            let mut j = br#","host":"#.to_vec();
            write_str(&mut j, h);
            j
        });
        SourceJson {
            source,
            host,
            by_format: Vec::new(),
        }
    }

    /// `,"host":..,"format":"<format>","source":{..}[,"k8s":{..}]`.
    fn tail(&mut self, host: &[u8], format: &'static str) -> &[u8] {
        let at = match self.by_format.iter().position(|(f, _)| *f == format) {
            Some(at) => at,
            None => {
                let host = self.host.as_deref().unwrap_or(host);
                let mut t = Vec::with_capacity(host.len() + format.len() + self.source.len() + 12);
                t.extend_from_slice(host);
                t.extend_from_slice(br#","format":""#);
                t.extend_from_slice(format.as_bytes());
                t.push(b'"');
                t.extend_from_slice(&self.source);
                self.by_format.push((format, t));
                self.by_format.len() - 1
            }
        };
        &self.by_format[at].1
    }
}

/// `,"level":"<level>"`, written without looking at the level's name.
fn level_json(level: Level) -> &'static [u8] {
    match level {
        Level::Trace => br#","level":"trace""#,
        Level::Debug => br#","level":"debug""#,
        Level::Info => br#","level":"info""#,
        Level::Warn => br#","level":"warn""#,
        Level::Error => br#","level":"error""#,
        Level::Fatal => br#","level":"fatal""#,
    }
}

/// What rendering a batch found, for the metrics.
#[derive(Debug, Default)]
pub struct RenderStats {
    /// Events per format name.
    pub per_format: Vec<(&'static str, u64)>,
    /// Lines kept as plain text because they did not parse as expected.
    pub parse_errors: u64,
    /// Events the rules dropped (counted in `per_format` too: they were parsed).
    pub dropped: u64,
}

impl RenderStats {
    fn count(&mut self, format: &'static str) {
        match self.per_format.iter_mut().find(|(f, _)| *f == format) {
            Some((_, n)) => *n += 1,
            None => self.per_format.push((format, 1)),
        }
    }

    /// Total events.
    pub fn events(&self) -> u64 {
        self.per_format.iter().map(|(_, n)| n).sum()
    }
}

/// Every sink: the route of an event no rule routed.
const ALL_SINKS: u64 = u64::MAX;

/// Rendered JSON lines, with the sinks each line goes to.
///
/// Lines are kept in one buffer; `runs` splits it into runs of consecutive lines bound for
/// the same sinks. With no routing rules `runs` stays empty and every sink takes the
/// whole buffer.
#[derive(Debug, Default)]
pub struct RenderedLines {
    /// JSON lines, each ending with `\n`.
    pub bytes: Vec<u8>,
    /// (sink set as a bit mask by sink index, end offset in `bytes`, lines in the run).
    runs: Vec<(u64, usize, u64)>,
    /// Lines in `bytes`.
    lines: u64,
}

impl RenderedLines {
    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.runs.clear();
        self.lines = 0;
    }

    /// True when no line was rendered.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Capacity of the line buffer (to decide whether to keep it for reuse).
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Records that the line ending at the buffer's current end goes to `sinks`.
    fn routed(&mut self, sinks: u64) {
        let end = self.bytes.len();
        match self.runs.last_mut() {
            Some((mask, run_end, n)) if *mask == sinks => {
                *run_end = end;
                *n += 1;
            }
            _ => {
                // Lines before the first routed one went to every sink.
                if self.runs.is_empty() && self.lines > 0 {
                    let start = self.line_start(end);
                    self.runs.push((ALL_SINKS, start, self.lines));
                }
                self.runs.push((sinks, end, 1));
            }
        }
    }

    /// Where the last line (ending at `end`) starts.
    fn line_start(&self, end: usize) -> usize {
        match end.checked_sub(1) {
            Some(last) => memchr::memrchr(b'\n', &self.bytes[..last]).map_or(0, |i| i + 1),
            None => 0,
        }
    }

    /// Ends a line that goes where the one before it went (or everywhere).
    fn line_done(&mut self, sinks: u64) {
        if !self.runs.is_empty() || sinks != ALL_SINKS {
            self.routed(sinks);
        }
        self.lines += 1;
    }

    /// The lines for sink `index`, as slices of whole lines in order, and how many lines
    /// they hold.
    pub fn for_sink(&self, index: usize) -> (Vec<&[u8]>, u64) {
        if self.runs.is_empty() {
            return if self.bytes.is_empty() {
                (Vec::new(), 0)
            } else {
                (vec![&self.bytes[..]], self.lines)
            };
        }
        let bit = if index < 64 { 1u64 << index } else { 0 };
        let mut out: Vec<&[u8]> = Vec::new();
        let mut lines = 0;
        let mut start = 0;
        let mut open: Option<usize> = None;
        for &(mask, end, n) in &self.runs {
            if mask & bit != 0 {
                open.get_or_insert(start);
                lines += n;
            } else if let Some(from) = open.take() {
                out.push(&self.bytes[from..start]);
            }
            start = end;
        }
        if let Some(from) = open {
            out.push(&self.bytes[from..start]);
        }
        (out, lines)
    }
}

/// What the rules and the traffic summaries need while a batch is rendered.
pub struct RenderRules<'e> {
    /// The rules in force for this batch.
    pub engine: &'e Engine,
    /// "Now" for the batch: rule windows, rate limits and summaries read it once.
    pub now_ms: u64,
    /// Where events are counted, when summaries are kept.
    pub traffic: Option<&'e mut TrafficStats>,
}

/// Parses every record of `batch`, runs the rules over each event, and appends one JSON
/// line per kept event to `out`.
pub fn render_batch(
    batch: &Batch<'_>,
    detector: &mut Detector,
    rules: &mut RenderRules<'_>,
    out: &mut RenderedLines,
) -> RenderStats {
    let engine = rules.engine;
    let mut sources: Vec<SourceJson> = batch.sources.iter().map(SourceJson::new).collect();
    let k8s: Vec<K8sRef<'_>> = batch.sources.iter().map(k8s_of).collect();
    // What rules see as the host: the source's own (an input's peer), else the batch's.
    let hosts: Vec<&str> = batch
        .sources
        .iter()
        .map(|s| {
            s.attrs
                .iter()
                .find(|(k, _)| *k == HOST_ATTR)
                .map_or(batch.host, |(_, v)| *v)
        })
        .collect();
    let mut plans: Vec<SourcePlan> = batch
        .sources
        .iter()
        .map(|s| detector.plan(s.path))
        .collect();
    let mut host = Vec::with_capacity(batch.host.len() + 10);
    if !batch.host.is_empty() {
        host.extend_from_slice(br#","host":"#);
        write_str(&mut host, batch.host);
    }
    let mut stats = RenderStats::default();
    let now_ms = rules.now_ms;
    let mut tally = rules.traffic.as_deref_mut().map(|t| {
        let keys = batch
            .sources
            .iter()
            .zip(&k8s)
            .zip(&hosts)
            .map(|((s, k), h)| SourceKeys {
                path: s.path,
                namespace: k.namespace,
                host: h,
            })
            .collect();
        t.tally(now_ms, keys)
    });
    // The observed time changes every few hundred lines at most, and a line's own time
    // often repeats its predecessor's (second-resolution formats) or at least its day:
    // each is formatted once per change, the date once per day.
    let mut observed: (u64, [u8; TIMESTAMP_LEN]) = (u64::MAX, [0; TIMESTAMP_LEN]);
    let mut own = TimestampCache::default();
    for rec in &batch.records {
        let src = rec.source as usize;
        let (Some(plan), Some(source), Some(k8s), Some(src_ref), Some(ev_host)) = (
            plans.get_mut(src),
            sources.get_mut(src),
            k8s.get(src),
            batch.sources.get(src),
            hosts.get(src),
        ) else {
            // parse_body guarantees every record's source index is in range.
            continue;
        };
        let mut flags = rec.flags;
        let text = match std::str::from_utf8(rec.line) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => {
                flags |= FLAG_INVALID_UTF8;
                String::from_utf8_lossy(rec.line)
            }
        };
        let d = detector.detect(plan, &text);
        stats.count(d.format);
        if d.parse_error {
            stats.parse_errors += 1;
        }
        let mut ev = RuleEvent::new(d.parsed, d.format, ev_host, src_ref.path, *k8s);
        if engine.apply_at(&mut ev, rules.now_ms) == Verdict::Drop {
            stats.dropped += 1;
            continue;
        }
        if let Some(tally) = tally.as_mut() {
            tally.add(src, ev.parsed.level, Request::of(&ev));
        }
        if rec.observed_ms != observed.0 {
            observed = (
                rec.observed_ms,
                timestamp_text(Timestamp::from_millis(rec.observed_ms)),
            );
        }
        let bytes = &mut out.bytes;
        bytes.extend_from_slice(br#"{"timestamp":"#);
        match ev.parsed.timestamp {
            Some(t) => bytes.extend_from_slice(own.text(t)),
            None => bytes.extend_from_slice(&observed.1),
        }
        bytes.extend_from_slice(br#","observed_timestamp":"#);
        bytes.extend_from_slice(&observed.1);
        if let Some(level) = ev.parsed.level {
            bytes.extend_from_slice(level_json(level));
        }
        bytes.extend_from_slice(br#","message":"#);
        write_str(bytes, &ev.parsed.message);
        bytes.extend_from_slice(source.tail(&host, d.format));
        write_fields(bytes, &ev.parsed.fields, flags, d.parse_error);
        write_tags(bytes, &ev.tags);
        bytes.extend_from_slice(b"}\n");
        out.line_done(ev.route.map_or(ALL_SINKS, |r| r.0));
    }
    if let Some(tally) = tally {
        tally.finish();
    }
    for (s, plan) in batch.sources.iter().zip(&plans) {
        detector.remember(s.path, plan);
    }
    stats
}

/// The Kubernetes attributes the agent attached to a source.
fn k8s_of<'a>(src: &SourceRef<'a>) -> K8sRef<'a> {
    let attr = |name: &str| src.attrs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    K8sRef {
        namespace: attr("k8s.namespace"),
        pod: attr("k8s.pod"),
        container: attr("k8s.container"),
    }
}

/// `,"tags":[..]` when rules added tags.
fn write_tags(out: &mut Vec<u8>, tags: &[std::borrow::Cow<'_, str>]) {
    if tags.is_empty() {
        return;
    }
    out.extend_from_slice(br#","tags":["#);
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, t);
    }
    out.push(b']');
}

/// Agent flags and the parse flag, as (bit or marker, field name).
const FLAG_FIELDS: [(u8, &str); 3] = [
    (FLAG_TRUNCATED, "truncated"),
    (FLAG_INVALID_UTF8, "invalid_utf8"),
    (FLAG_NO_NEWLINE, "no_newline"),
];

fn write_fields(
    out: &mut Vec<u8>,
    fields: &[(std::borrow::Cow<'_, str>, Value<'_>)],
    flags: u8,
    parse_error: bool,
) {
    out.extend_from_slice(br#","fields":{"#);
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    let mut reserved: [&str; 5] = [""; 5];
    let mut n_reserved = 0;
    for (bit, name) in FLAG_FIELDS {
        if flags & bit != 0 {
            sep(out);
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":true");
            reserved[n_reserved] = name;
            n_reserved += 1;
        }
    }
    if flags & FLAG_STDERR != 0 {
        sep(out);
        out.extend_from_slice(br#""stream":"stderr""#);
        reserved[n_reserved] = "stream";
        n_reserved += 1;
    }
    if parse_error {
        sep(out);
        out.extend_from_slice(br#""parse_error":true"#);
        reserved[n_reserved] = "parse_error";
        n_reserved += 1;
    }
    for (k, v) in fields {
        // A flag set above wins over a parsed field of the same name (keys stay unique).
        if reserved[..n_reserved].contains(&k.as_ref()) {
            continue;
        }
        sep(out);
        write_str(out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Str(s) => write_str(out, s),
        Value::Int(i) => write_i64(out, *i),
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        Value::Float(_) | Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Json(raw) => out.extend_from_slice(raw.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logferry_shared::codec::{Codec, Compressor};
    use logferry_shared::event::{Event, K8s, Source};
    use logferry_shared::wire::{decode_frame, BatchBuilder, DecodeLimits};

    fn render(lines: &[(u32, u8, &[u8])]) -> (Vec<String>, RenderStats) {
        let ctx = crate::rules::tests::ctx();
        let (out, stats) = render_with(lines, &Engine::empty(&ctx), None);
        let text = String::from_utf8(out.bytes).unwrap();
        (text.lines().map(str::to_owned).collect(), stats)
    }

    fn render_with(
        lines: &[(u32, u8, &[u8])],
        engine: &Engine,
        traffic: Option<&mut TrafficStats>,
    ) -> (RenderedLines, RenderStats) {
        let mut b = BatchBuilder::new("node-\"1\"", 1_795_341_600_123, 256);
        b.add_source("/var/log/app.log", &[]);
        b.add_source(
            "/var/log/pods/shop_api-7d9_u1/api/0.log",
            &[
                ("k8s.namespace", "shop"),
                ("k8s.pod", "api-7d9"),
                ("k8s.container", "api"),
                ("other", "x"),
            ],
        );
        for (i, (src, flags, line)) in lines.iter().enumerate() {
            b.push(*src, 1_795_341_600_123 + i as u64, *flags, line);
        }
        let mut c = Compressor::new(Codec::None, 0).unwrap();
        let frame = b.seal("a", "s", 1, &mut c).unwrap();
        let decoded = decode_frame(&frame, &DecodeLimits::default()).unwrap();
        let mut detector = Detector::new(crate::parse::Zone::Utc, &[], &[]).unwrap();
        let mut out = RenderedLines::default();
        let mut rules = RenderRules {
            engine,
            now_ms: 1_795_341_600_000,
            traffic,
        };
        let stats = render_batch(
            &decoded.batch().unwrap(),
            &mut detector,
            &mut rules,
            &mut out,
        );
        (out, stats)
    }

    fn sink_lines(out: &RenderedLines, sink: usize) -> (Vec<String>, u64) {
        let (parts, n) = out.for_sink(sink);
        let text: String = parts
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect();
        (text.lines().map(str::to_owned).collect(), n)
    }

    fn messages_of(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| serde_json::from_str::<Event>(l).unwrap().message)
            .collect()
    }

    #[test]
    fn rules_drop_change_tag_and_route_events_as_they_are_rendered() {
        let rules = crate::rules::config::rules_from_toml(
            r#"
[[rules]]
name = "drop-debug"
when = { field = "level", lte = "debug" }
actions = [{ type = "drop" }]

[[rules]]
name = "errors"
when = { field = "level", gte = "error" }
actions = [{ type = "tag", tags = ["page", "error"] }, { type = "set", field = "team", value = "db" }, { type = "redact", patterns = ["email"] }]

[[rules]]
name = "shop-to-cloudwatch"
when = { field = "k8s.namespace", equals = "shop" }
actions = [{ type = "route", sinks = ["cloudwatch"] }]

[[rules]]
name = "payments-also-to-debug"
when = { field = "message", contains = "payment" }
actions = [{ type = "route", sinks = ["debug"] }]
"#,
        )
        .unwrap();
        let engine = Engine::build(&rules, &crate::rules::tests::ctx(), None).unwrap();
        let mut traffic = TrafficStats::new(crate::stats::StatsSettings::default());
        let (out, stats) = render_with(
            &[
                (0, 0, br#"{"level":"info","msg":"a"}"#),
                (0, 0, br#"{"level":"debug","msg":"dropped"}"#),
                (
                    0,
                    0,
                    br#"{"level":"error","msg":"mail bob@example.com failed"}"#,
                ),
                (1, 0, br#"{"level":"info","msg":"b shop"}"#),
                (1, 0, br#"{"level":"info","msg":"c shop payment"}"#),
                (0, 0, br#"{"level":"info","msg":"d payment"}"#),
                (0, 0, br#"{"level":"info","msg":"e"}"#),
            ],
            &engine,
            Some(&mut traffic),
        );
        assert_eq!(stats.dropped, 1);
        assert_eq!(stats.events(), 7, "parsed, including the dropped one");
        // Sinks by index: archive, cloudwatch, debug.
        let (archive, n0) = sink_lines(&out, 0);
        let (cloudwatch, n1) = sink_lines(&out, 1);
        let (debug, n2) = sink_lines(&out, 2);
        assert_eq!(
            messages_of(&archive),
            ["a", "mail [REDACTED:email] failed", "e"].map(String::from)
        );
        assert_eq!(
            messages_of(&cloudwatch),
            [
                "a",
                "mail [REDACTED:email] failed",
                "b shop",
                "c shop payment",
                "e"
            ]
            .map(String::from)
        );
        assert_eq!(
            messages_of(&debug),
            [
                "a",
                "mail [REDACTED:email] failed",
                "c shop payment",
                "d payment",
                "e"
            ]
            .map(String::from)
        );
        assert_eq!((n0, n1, n2), (3, 5, 5));
        let error: Event = serde_json::from_str(&archive[1]).unwrap();
        assert_eq!(error.tags, ["page", "error"]);
        assert_eq!(error.fields["team"], "db");
        assert!(
            archive[1].ends_with(r#","tags":["page","error"]}"#),
            "{}",
            archive[1]
        );
        let plain: Event = serde_json::from_str(&archive[0]).unwrap();
        assert!(plain.tags.is_empty() && !archive[0].contains("\"tags\""));
        let snap = traffic.snapshot(1_795_341_600_000, None);
        assert_eq!(snap.total.events, 6, "kept events only");
        assert_eq!(snap.total.levels.debug, 0);
        assert_eq!(snap.total.levels.error, 1);
    }

    #[test]
    fn without_routes_every_sink_takes_the_whole_buffer() {
        let (out, _) = render_with(
            &[(0, 0, b"one"), (0, 0, b"two")],
            &Engine::empty(&crate::rules::tests::ctx()),
            None,
        );
        assert!(out.runs.is_empty());
        for sink in 0..3 {
            let (parts, n) = out.for_sink(sink);
            assert_eq!(parts, vec![&out.bytes[..]]);
            assert_eq!(n, 2);
        }
    }

    proptest::proptest! {
        #[test]
        fn each_sink_gets_exactly_its_lines_in_order(
            masks in proptest::collection::vec(
                proptest::prop_oneof![proptest::strategy::Just(ALL_SINKS), 0u64..8],
                0..40,
            ),
        ) {
            let mut out = RenderedLines::default();
            for (i, &m) in masks.iter().enumerate() {
                out.bytes.extend_from_slice(format!("line {i}\n").as_bytes());
                out.line_done(m);
            }
            for sink in 0..4usize {
                let want: String = masks
                    .iter()
                    .enumerate()
                    .filter(|(_, &m)| m & (1 << sink) != 0)
                    .map(|(i, _)| format!("line {i}\n"))
                    .collect();
                let (parts, n) = out.for_sink(sink);
                let got: Vec<u8> = parts.concat();
                proptest::prop_assert_eq!(String::from_utf8(got).unwrap(), want.clone());
                proptest::prop_assert_eq!(n as usize, want.lines().count());
            }
        }
    }

    #[test]
    fn rendered_lines_are_events_in_the_documented_shape() {
        let (lines, stats) = render(&[
            (0, 0, br#"{"time":"2026-11-22T10:00:00.5Z","level":"error","msg":"db \"timeout\"","user_id":42,"ctx":{"a":[1,2]}}"#),
            (1, FLAG_TRUNCATED, b"bad \xff byte"),
            (0, 0, br#"{"level":"info", broken}"#),
        ]);
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            r#"{"timestamp":"2026-11-22T10:00:00.500Z","observed_timestamp":"2026-11-22T10:00:00.123Z","level":"error","message":"db \"timeout\"","host":"node-\"1\"","format":"json","source":{"type":"file","path":"/var/log/app.log"},"fields":{"user_id":42,"ctx":{"a":[1,2]}}}"#
        );
        let e0: Event = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            e0.source,
            Source {
                kind: "file".into(),
                path: Some("/var/log/app.log".into())
            }
        );
        let e1: Event = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(e1.message, "bad \u{fffd} byte");
        assert_eq!(e1.format, "plain");
        assert_eq!(e1.fields["truncated"], true);
        assert_eq!(e1.fields["invalid_utf8"], true);
        assert_eq!(
            e1.k8s,
            Some(K8s {
                namespace: Some("shop".into()),
                pod: Some("api-7d9".into()),
                container: Some("api".into()),
                pod_uid: None
            })
        );
        assert_eq!(e1.observed_timestamp.as_millis(), 1_795_341_600_124);
        assert_eq!(
            e1.timestamp, e1.observed_timestamp,
            "no time in the line: observed time"
        );
        let e2: Event = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(e2.fields["parse_error"], true, "looks like JSON but is not");
        assert_eq!(e2.message, r#"{"level":"info", broken}"#);
        assert_eq!(stats.events(), 3);
        assert_eq!(stats.parse_errors, 1);
    }

    #[test]
    fn a_source_may_name_its_type_and_host() {
        let mut b = BatchBuilder::new("", 1_795_341_600_123, 256);
        b.add_source(
            "syslog+tcp://10.0.0.5/edge",
            &[(SOURCE_TYPE_ATTR, "syslog"), (HOST_ATTR, "10.0.0.5")],
        );
        b.add_source("/var/log/app.log", &[]);
        b.push(0, 1_795_341_600_123, 0, b"<13>Nov 22 10:00:00 sw1 app: up");
        b.push(1, 1_795_341_600_123, 0, b"plain words");
        let mut c = Compressor::new(Codec::None, 0).unwrap();
        let frame = b.seal("a", "s", 1, &mut c).unwrap();
        let decoded = decode_frame(&frame, &DecodeLimits::default()).unwrap();
        let mut detector = Detector::new(crate::parse::Zone::Utc, &[], &[]).unwrap();
        let mut out = RenderedLines::default();
        let engine = crate::rules::engine::Engine::build(
            &crate::rules::config::rules_from_toml(
                "[[rules]]\nname = \"h\"\nwhen = { field = \"host\", equals = \"10.0.0.5\" }\nactions = [{ type = \"tag\", tags = [\"peer\"] }]\n",
            )
            .unwrap(),
            &crate::rules::tests::ctx(),
            None,
        )
        .unwrap();
        let mut rules = RenderRules {
            engine: &engine,
            now_ms: 1_795_341_600_000,
            traffic: None,
        };
        render_batch(
            &decoded.batch().unwrap(),
            &mut detector,
            &mut rules,
            &mut out,
        );
        let text = String::from_utf8(out.bytes).unwrap();
        let events: Vec<Event> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events[0].source.kind, "syslog");
        assert_eq!(events[0].host.as_deref(), Some("10.0.0.5"));
        assert_eq!(events[0].fields["hostname"], "sw1");
        assert_eq!(events[0].tags, ["peer"], "rules see the source's host");
        assert!(events[1].tags.is_empty());
        // Without the attributes: a file, and the batch's host (none here).
        assert_eq!(events[1].source.kind, "file");
        assert_eq!(events[1].host, None);
    }

    #[test]
    fn stderr_lines_get_a_stream_field() {
        let (lines, _) = render(&[
            (1, FLAG_STDERR, b"boom"),
            (1, 0, b"fine"),
            (
                1,
                FLAG_STDERR | FLAG_NO_NEWLINE,
                br#"{"msg":"x","stream":"other"}"#,
            ),
        ]);
        let e0: Event = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(e0.fields["stream"], "stderr");
        let e1: Event = serde_json::from_str(&lines[1]).unwrap();
        assert!(e1.fields.get("stream").is_none(), "stdout is the default");
        let v: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(v["fields"]["stream"], "stderr");
        assert_eq!(v["fields"]["no_newline"], true);
        assert_eq!(lines[2].matches("\"stream\"").count(), 1);
    }

    #[test]
    fn level_keys_spell_the_level() {
        for level in [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
            Level::Fatal,
        ] {
            assert_eq!(
                level_json(level),
                format!(r#","level":"{}""#, level.as_str()).as_bytes()
            );
        }
    }

    #[test]
    fn a_parsed_field_named_like_a_flag_does_not_duplicate_the_key() {
        let (lines, _) = render(&[(0, FLAG_TRUNCATED, br#"{"msg":"x","truncated":"no"}"#)]);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["fields"]["truncated"], true);
        assert_eq!(lines[0].matches("\"truncated\"").count(), 1);
    }
}
