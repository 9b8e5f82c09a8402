//! What the input benchmark sends, built before any timing starts: syslog lines (RFC 5424
//! and RFC 3164) split over connections in both TCP framings, NDJSON bodies (plain and
//! gzip) and OTLP `ExportLogsServiceRequest` protobuf bodies. Every event carries
//! `seq=<n>` in its message, `n` from 0 to the phase's count, so the receiving file can be
//! checked for every event exactly once.

use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const APPS: [&str; 4] = ["checkout", "search", "payments", "auth"];
const HOSTS: [&str; 3] = ["web01.example.com", "web02.example.com", "db01"];
const PATHS: [&str; 4] = ["/api/v1/items", "/api/v1/cart", "/login", "/static/app.js"];
/// Nanoseconds of 2026-11-22T10:00:00Z.
const BASE_NS: u64 = 1_795_341_600_000_000_000;

/// The text of event `seq`: an access-log-like message of about 90 bytes.
fn message(seq: usize) -> String {
    format!(
        "request {} {} handled for user u{} in {} ms status={} seq={seq}",
        ["GET", "POST", "GET", "PUT"][seq % 4],
        PATHS[seq % PATHS.len()],
        seq % 977,
        seq % 300,
        if seq.is_multiple_of(40) { 500 } else { 200 },
    )
}

/// Syslog line `seq` without framing: RFC 5424 with and without structured data, RFC 3164
/// with and without a PID, in turn.
pub fn syslog_line(seq: usize) -> String {
    let app = APPS[seq % APPS.len()];
    let host = HOSTS[seq % HOSTS.len()];
    let (ms, s) = (seq % 1000, (seq / 1000) % 60);
    let pri = 8 * [16, 17, 1, 3][seq % 4] + [6, 4, 3, 7][seq % 4];
    match seq % 4 {
        0 => format!(
            "<{pri}>1 2026-11-22T10:00:{s:02}.{ms:03}Z {host} {app} {} ID47 [req@32473 id=\"r{seq}\" zone=\"eu\"] {}",
            1000 + seq % 50,
            message(seq)
        ),
        1 => format!(
            "<{pri}>1 2026-11-22T10:00:{s:02}.{ms:03}+01:00 {host} {app} - - - {}",
            message(seq)
        ),
        2 => format!(
            "<{pri}>Nov 22 10:00:{s:02} {host} {app}[{}]: {}",
            1000 + seq % 50,
            message(seq)
        ),
        _ => format!("<{pri}>Nov 22 10:00:{s:02} {host} {app}: {}", message(seq)),
    }
}

/// Events `0..n` as syslog over `connections` TCP streams (event `i` on stream
/// `i % connections`): even streams octet-counted, odd ones line-feed framed.
pub fn syslog_streams(n: usize, connections: usize) -> Vec<Vec<u8>> {
    let mut streams = vec![Vec::new(); connections];
    for seq in 0..n {
        let k = seq % connections;
        let line = syslog_line(seq);
        let out = &mut streams[k];
        if k.is_multiple_of(2) {
            out.extend_from_slice(format!("{} ", line.len()).as_bytes());
            out.extend_from_slice(line.as_bytes());
        } else {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    streams
}

/// Events `0..n` as syslog datagrams, one message each.
pub fn syslog_datagrams(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|seq| syslog_line(seq).into_bytes()).collect()
}

/// A JSON record as an application would log it, about 230 bytes.
fn json_record(seq: usize) -> String {
    let level = ["info", "info", "warn", "error", "debug"][seq % 5];
    format!(
        r#"{{"time":"2026-11-22T10:00:{:02}.{:03}Z","level":"{level}","msg":"{}","service":"{}","host":"{}","trace_id":"{:032x}","duration_ms":{}}}"#,
        (seq / 1000) % 60,
        seq % 1000,
        message(seq),
        APPS[seq % APPS.len()],
        HOSTS[seq % HOSTS.len()],
        seq as u128 * 7919,
        seq % 300,
    )
}

/// Events `0..n` as NDJSON bodies of `per_body` records, gzip-compressed when `gzip`.
pub fn ndjson_bodies(n: usize, per_body: usize, gzip: bool) -> Vec<Vec<u8>> {
    (0..n)
        .step_by(per_body)
        .map(|start| {
            let mut body = String::new();
            for seq in start..(start + per_body).min(n) {
                body.push_str(&json_record(seq));
                body.push('\n');
            }
            if !gzip {
                return body.into_bytes();
            }
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(body.as_bytes()).expect("gzip in memory");
            z.finish().expect("gzip in memory")
        })
        .collect()
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

/// Events `0..n` as OTLP/HTTP protobuf bodies of `per_body` records: one resource
/// (service, host, k8s attributes) and one scope per body, as an SDK's batch exporter
/// sends them; records with time, severity, a string body, trace context and attributes.
pub fn otlp_bodies(n: usize, per_body: usize) -> Vec<Vec<u8>> {
    (0..n)
        .step_by(per_body)
        .enumerate()
        .map(|(b, start)| {
            let records = (start..(start + per_body).min(n))
                .map(|seq| {
                    let sev = [9, 9, 13, 17, 5][seq % 5];
                    LogRecord {
                        time_unix_nano: BASE_NS + seq as u64 * 1_000_000,
                        observed_time_unix_nano: BASE_NS + seq as u64 * 1_000_000 + 250_000,
                        severity_number: sev,
                        severity_text: ["INFO", "INFO", "WARN", "ERROR", "DEBUG"][seq % 5].into(),
                        body: Some(AnyValue {
                            value: Some(text(&message(seq))),
                        }),
                        attributes: vec![
                            kv("http.method", text(["GET", "POST", "GET", "PUT"][seq % 4])),
                            kv(
                                "http.status_code",
                                any_value::Value::IntValue(if seq.is_multiple_of(40) {
                                    500
                                } else {
                                    200
                                }),
                            ),
                            kv("user.id", text(&format!("u{}", seq % 977))),
                        ],
                        trace_id: (seq as u128 * 7919 + 1).to_be_bytes().to_vec(),
                        span_id: (seq as u64 + 1).to_be_bytes().to_vec(),
                        ..Default::default()
                    }
                })
                .collect();
            let request = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", text(APPS[b % APPS.len()])),
                            kv("host.name", text(HOSTS[b % HOSTS.len()])),
                            kv("k8s.namespace.name", text("shop")),
                            kv("k8s.pod.name", text(&format!("api-7d9-{b}"))),
                        ],
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "shop.orders".into(),
                            version: "1.4.2".into(),
                            ..Default::default()
                        }),
                        log_records: records,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            request.encode_to_vec()
        })
        .collect()
}
