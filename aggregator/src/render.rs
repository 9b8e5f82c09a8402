//! Turns the records of a decoded batch into output events, written straight as JSON lines.
//!
//! This is the hot path: one batch holds thousands of lines, so each record is written
//! into one output buffer with no per-record allocation (strings are escaped in place by
//! serde_json). The shape is exactly [`logferry_shared::event::Event`]'s; a test parses the
//! output back into `Event` to keep the two in step.
//!
//! Until the parsing stage exists every line is `format: "raw"`: the message is the line
//! (invalid UTF-8 replaced by U+FFFD and flagged), the timestamp is the time the agent
//! read it, and flags from the agent become boolean fields.

use std::io::Write;

use logferry_shared::event::Timestamp;
use logferry_shared::wire::{Batch, SourceRef, FLAG_INVALID_UTF8, FLAG_NO_NEWLINE, FLAG_TRUNCATED};

/// Kubernetes attribute keys the agent may attach to a source, in output order.
const K8S_ATTRS: [(&str, &str); 4] = [
    ("k8s.namespace", "namespace"),
    ("k8s.pod", "pod"),
    ("k8s.container", "container"),
    ("k8s.pod_uid", "pod_uid"),
];

/// Pre-rendered JSON for one source: `"source":{...}` and the optional `"k8s":{...}`.
struct SourceJson {
    source: Vec<u8>,
    k8s: Vec<u8>,
}

fn source_json(src: &SourceRef<'_>) -> SourceJson {
    let mut source = Vec::with_capacity(src.path.len() + 40);
    source.extend_from_slice(br#","source":{"type":"file","path":"#);
    write_str(&mut source, src.path);
    source.push(b'}');
    let mut k8s = Vec::new();
    for (attr, name) in K8S_ATTRS {
        if let Some((_, v)) = src.attrs.iter().find(|(k, _)| *k == attr) {
            k8s.extend_from_slice(if k8s.is_empty() { br#","k8s":{"# } else { b"," });
            write_str(&mut k8s, name);
            k8s.push(b':');
            write_str(&mut k8s, v);
        }
    }
    if !k8s.is_empty() {
        k8s.push(b'}');
    }
    SourceJson { source, k8s }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec through serde_json cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends one JSON line per record of `batch` to `out`; returns the number written.
pub fn render_batch(batch: &Batch<'_>, out: &mut Vec<u8>) -> usize {
    let sources: Vec<SourceJson> = batch.sources.iter().map(source_json).collect();
    let mut host = Vec::with_capacity(batch.host.len() + 10);
    if !batch.host.is_empty() {
        host.extend_from_slice(br#","host":"#);
        write_str(&mut host, batch.host);
    }
    let mut last_ms = u64::MAX;
    let mut ts = String::new();
    for rec in &batch.records {
        if rec.observed_ms != last_ms {
            last_ms = rec.observed_ms;
            ts.clear();
            use std::fmt::Write as _;
            let _ = write!(ts, "\"{}\"", Timestamp::from_millis(rec.observed_ms));
        }
        let mut flags = rec.flags;
        let message = match std::str::from_utf8(rec.line) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => {
                flags |= FLAG_INVALID_UTF8;
                String::from_utf8_lossy(rec.line)
            }
        };
        out.extend_from_slice(br#"{"timestamp":"#);
        out.extend_from_slice(ts.as_bytes());
        out.extend_from_slice(br#","observed_timestamp":"#);
        out.extend_from_slice(ts.as_bytes());
        out.extend_from_slice(br#","message":"#);
        write_str(out, &message);
        out.extend_from_slice(&host);
        out.extend_from_slice(br#","format":"raw""#);
        // parse_body guarantees every record's source index is in range.
        if let Some(src) = sources.get(rec.source as usize) {
            out.extend_from_slice(&src.source);
            out.extend_from_slice(&src.k8s);
        }
        out.extend_from_slice(br#","fields":{"#);
        let mut first = true;
        for (bit, name) in [
            (FLAG_TRUNCATED, "truncated"),
            (FLAG_INVALID_UTF8, "invalid_utf8"),
            (FLAG_NO_NEWLINE, "no_newline"),
        ] {
            if flags & bit != 0 {
                if !first {
                    out.push(b',');
                }
                first = false;
                let _ = write!(out, "\"{name}\":true");
            }
        }
        out.extend_from_slice(b"}}\n");
    }
    batch.records.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use logferry_shared::codec::{Codec, Compressor};
    use logferry_shared::event::{Event, K8s, Source};
    use logferry_shared::wire::{decode_frame, BatchBuilder, DecodeLimits};

    #[test]
    fn rendered_lines_are_events_in_the_documented_shape() {
        let mut b = BatchBuilder::new("node-\"1\"", 1_795_341_600_123, 256);
        let plain = b.add_source("/var/log/app.log", &[]);
        let pod = b.add_source(
            "/var/log/pods/shop_api-7d9_u1/api/0.log",
            &[
                ("k8s.namespace", "shop"),
                ("k8s.pod", "api-7d9"),
                ("k8s.container", "api"),
                ("other", "x"),
            ],
        );
        b.push(plain, 1_795_341_600_123, 0, b"db timeout \"quoted\"\ttab");
        b.push(pod, 1_795_341_600_130, FLAG_TRUNCATED, b"bad \xff byte");
        let mut c = Compressor::new(Codec::None, 0).unwrap();
        let frame = b.seal("a", "s", 1, &mut c).unwrap();
        let decoded = decode_frame(&frame, &DecodeLimits::default()).unwrap();
        let mut out = Vec::new();
        assert_eq!(render_batch(&decoded.batch().unwrap(), &mut out), 2);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"timestamp":"2026-11-22T10:00:00.123Z","observed_timestamp":"2026-11-22T10:00:00.123Z","message":"db timeout \"quoted\"\ttab","host":"node-\"1\"","format":"raw","source":{"type":"file","path":"/var/log/app.log"},"fields":{}}"#
        );
        let e0: Event = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            e0.source,
            Source {
                kind: "file".into(),
                path: Some("/var/log/app.log".into())
            }
        );
        let e1: Event = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(e1.message, "bad \u{fffd} byte");
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
        assert_eq!(e1.observed_timestamp.as_millis(), 1_795_341_600_130);
    }
}
