//! From OTLP log records to our events. Pure: an `ExportLogsServiceRequest` in, one JSON
//! line per record (which the `json` parser reads) and one source per resource out.
//!
//! | OTLP | event |
//! |---|---|
//! | `timeUnixNano`, else `observedTimeUnixNano`, else the time received | `timestamp` (line key `time`, RFC 3339 with nanoseconds) |
//! | `observedTimeUnixNano`, else the time received | `observed_timestamp` (milliseconds) |
//! | `severityNumber` 1–4, 5–8, 9–12, 13–16, 17–20, 21–24 | `level` `trace`, `debug`, `info`, `warn`, `error`, `fatal` |
//! | `severityText` (when `severityNumber` is unset) | `level` if it is a level word |
//! | `severityText`, `severityNumber` | `fields.severity_text`, `fields.severity_number` |
//! | `body`: a string | `message` |
//! | `body`: anything else | `message`: its JSON text (`{"a":1}`, `[1,2]`, `42`); none: `""` |
//! | `traceId`, `spanId` | `fields.trace_id`, `fields.span_id` (lowercase hex) |
//! | `flags` | `fields.trace_flags` (when not 0) |
//! | `eventName` | `fields.event_name` |
//! | `droppedAttributesCount` | `fields.dropped_attributes_count` (when not 0) |
//! | log attributes | `fields.<key>`; a key our own keys use is `fields.attributes.<key>` |
//! | resource `service.name` | `fields.service.name` |
//! | resource `host.name` | `host` (else the peer's address) |
//! | resource `k8s.namespace.name`, `k8s.pod.name`, `k8s.container.name`, `k8s.pod.uid` | `k8s.namespace`, `k8s.pod`, `k8s.container`, `k8s.pod_uid` |
//! | other resource attributes | `fields.resource.<key>` |
//! | scope name, version, attributes | `fields.scope.name`, `fields.scope.version`, `fields.scope.<key>` |
//!
//! Attribute values: strings, booleans, integers and doubles as JSON scalars (a NaN or
//! infinite double as the string `NaN`, `Infinity`, `-Infinity`), bytes as base64,
//! arrays and key-value lists as JSON arrays and objects, an empty value (or a profile's
//! string-table reference) as `null`.
//!
//! A record whose trace or span id has the wrong length (not 16 or 8 bytes) is refused:
//! counted in the answer's `partial_success`, not stored.

use std::fmt::Write as _;

use base64::Engine;
use chrono::{DateTime, SecondsFormat};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{Map, Value};

/// Fields in the order they are written.
type Fields = Vec<(String, Value)>;

/// Source attributes from resource attributes: (OTLP key, our attribute).
const K8S_RESOURCE: [(&str, &str); 4] = [
    ("k8s.namespace.name", "k8s.namespace"),
    ("k8s.pod.name", "k8s.pod"),
    ("k8s.container.name", "k8s.container"),
    ("k8s.pod.uid", "k8s.pod_uid"),
];

/// Line keys the mapping writes itself; a log attribute with one of these keys (ASCII
/// case aside) goes under `attributes.`.
const OWN_KEYS: &[&str] = &[
    "time",
    "level",
    "msg",
    "severity_text",
    "severity_number",
    "trace_id",
    "span_id",
    "trace_flags",
    "event_name",
    "dropped_attributes_count",
    "service.name",
];

/// One resource's source: where its records came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// Source attributes (`host`, `k8s.*`).
    pub attrs: Vec<(&'static str, String)>,
}

/// What mapping one request gave.
#[derive(Debug, Default)]
pub struct Mapped {
    /// Records kept.
    pub accepted: u64,
    /// Records refused.
    pub rejected: u64,
    /// Why the first refused record was refused.
    pub first_error: Option<String>,
}

/// Where mapped records go.
pub trait Records {
    /// Why the mapping must stop (e.g. too many bytes).
    type Error;
    /// Registers a resource's source; returns its index for [`Records::record`].
    fn source(&mut self, spec: &SourceSpec) -> u32;
    /// Takes one record's line, observed at `observed_ms`.
    fn record(&mut self, source: u32, observed_ms: u64, line: &[u8]) -> Result<(), Self::Error>;
}

/// Maps every record of `req` into `records`; `now_ns` is the time received. Stops at
/// `records`' first error.
pub fn map_request<R: Records>(
    req: &ExportLogsServiceRequest,
    now_ns: u64,
    records: &mut R,
) -> Result<Mapped, R::Error> {
    let mut out = Mapped::default();
    let mut line = Vec::new();
    for (ri, rl) in req.resource_logs.iter().enumerate() {
        let mut spec = SourceSpec { attrs: Vec::new() };
        let mut resource_fields = Fields::new();
        for kv in rl.resource.iter().flat_map(|r| &r.attributes) {
            let mapped = K8S_RESOURCE.iter().find(|(k, _)| *k == kv.key);
            match (kv.key.as_str(), mapped, text_of(kv.value.as_ref())) {
                ("host.name", _, Some(h)) => spec.attrs.push((crate::render::HOST_ATTR, h)),
                (_, Some((_, ours)), Some(v)) => spec.attrs.push((ours, v)),
                ("service.name", _, _) => {
                    resource_fields.push(("service.name".into(), json_of(kv.value.as_ref())));
                }
                _ => {
                    resource_fields
                        .push((format!("resource.{}", kv.key), json_of(kv.value.as_ref())));
                }
            }
        }
        let mut src: Option<u32> = None;
        for sl in &rl.scope_logs {
            let mut scope_fields = Fields::new();
            if let Some(scope) = &sl.scope {
                for kv in &scope.attributes {
                    scope_fields.push((format!("scope.{}", kv.key), json_of(kv.value.as_ref())));
                }
                if !scope.name.is_empty() {
                    scope_fields.push(("scope.name".into(), Value::from(scope.name.as_str())));
                }
                if !scope.version.is_empty() {
                    scope_fields
                        .push(("scope.version".into(), Value::from(scope.version.as_str())));
                }
            }
            for (li, rec) in sl.log_records.iter().enumerate() {
                if let Err(why) = check_ids(rec) {
                    out.rejected += 1;
                    out.first_error
                        .get_or_insert_with(|| format!("resource {ri}, record {li}: {why}"));
                    continue;
                }
                let observed_ns = match rec.observed_time_unix_nano {
                    0 => now_ns,
                    t => t,
                };
                line.clear();
                write_line(rec, observed_ns, &resource_fields, &scope_fields, &mut line);
                let index = *src.get_or_insert_with(|| records.source(&spec));
                records.record(index, observed_ns / 1_000_000, &line)?;
                out.accepted += 1;
            }
        }
    }
    Ok(out)
}

/// The earliest observed time (ms) of `req`'s records, or `now_ns`'s: a batch's base
/// time must not be later than any of its records'.
pub fn earliest_observed_ms(req: &ExportLogsServiceRequest, now_ns: u64) -> u64 {
    req.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .map(|r| match r.observed_time_unix_nano {
            0 => now_ns,
            t => t,
        })
        .fold(now_ns, u64::min)
        / 1_000_000
}

fn check_ids(rec: &LogRecord) -> Result<(), String> {
    if !matches!(rec.trace_id.len(), 0 | 16) {
        return Err(format!(
            "trace_id has {} bytes; it must have 16",
            rec.trace_id.len()
        ));
    }
    if !matches!(rec.span_id.len(), 0 | 8) {
        return Err(format!(
            "span_id has {} bytes; it must have 8",
            rec.span_id.len()
        ));
    }
    Ok(())
}

/// Our level word for an OTLP severity number.
pub fn level_of(severity: i32) -> Option<&'static str> {
    Some(match severity {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => return None,
    })
}

/// Writes one record's line (see the module docs for the keys), keys in this order: ours,
/// the log attributes, then the resource's and the scope's.
fn write_line(
    rec: &LogRecord,
    observed_ns: u64,
    resource_fields: &Fields,
    scope_fields: &Fields,
    out: &mut Vec<u8>,
) {
    let time_ns = match rec.time_unix_nano {
        0 => observed_ns,
        t => t,
    };
    let mut obj = JsonObject::new(out);
    obj.field("time", &Value::from(rfc3339(time_ns)));
    match level_of(rec.severity_number) {
        Some(level) => obj.field("level", &Value::from(level)),
        None if !rec.severity_text.is_empty() => {
            obj.field("level", &Value::from(rec.severity_text.as_str()))
        }
        None => {}
    }
    let message = match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::from(s.as_str()),
        Some(_) => Value::from(json_of(rec.body.as_ref()).to_string()),
        None => Value::from(""),
    };
    obj.field("msg", &message);
    if !rec.severity_text.is_empty() {
        obj.field("severity_text", &Value::from(rec.severity_text.as_str()));
    }
    if rec.severity_number != 0 {
        obj.field("severity_number", &Value::from(rec.severity_number));
    }
    if !rec.trace_id.is_empty() {
        obj.field("trace_id", &Value::from(hex(&rec.trace_id)));
    }
    if !rec.span_id.is_empty() {
        obj.field("span_id", &Value::from(hex(&rec.span_id)));
    }
    if rec.flags != 0 {
        obj.field("trace_flags", &Value::from(rec.flags));
    }
    if !rec.event_name.is_empty() {
        obj.field("event_name", &Value::from(rec.event_name.as_str()));
    }
    if rec.dropped_attributes_count != 0 {
        obj.field(
            "dropped_attributes_count",
            &Value::from(rec.dropped_attributes_count),
        );
    }
    for kv in &rec.attributes {
        let own = OWN_KEYS.iter().any(|k| k.eq_ignore_ascii_case(&kv.key))
            || ["resource.", "scope.", "attributes."]
                .iter()
                .any(|p| kv.key.starts_with(p));
        let value = json_of(kv.value.as_ref());
        match own {
            true => obj.field(&format!("attributes.{}", kv.key), &value),
            false => obj.field(&kv.key, &value),
        }
    }
    for (k, v) in resource_fields.iter().chain(scope_fields) {
        obj.field(k, v);
    }
    obj.end();
}

/// Writes a JSON object member by member, in the order given.
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, first: true }
    }

    fn field(&mut self, key: &str, value: &Value) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        // Strings and JSON values always serialize into a Vec.
        let _ = serde_json::to_writer(&mut *self.out, key);
        self.out.push(b':');
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// RFC 3339 UTC with nanoseconds; times past chrono's range are clamped to it.
fn rfc3339(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let nanos = (ns % 1_000_000_000) as u32;
    DateTime::from_timestamp(secs, nanos)
        .unwrap_or(DateTime::<chrono::Utc>::MAX_UTC)
        .to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A string value as it is, any other scalar as its JSON text (for source attributes).
fn text_of(v: Option<&AnyValue>) -> Option<String> {
    match v.and_then(|v| v.value.as_ref())? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// An attribute value as JSON (see the module docs).
pub fn json_of(v: Option<&AnyValue>) -> Value {
    let Some(v) = v.and_then(|v| v.value.as_ref()) else {
        return Value::Null;
    };
    match v {
        any_value::Value::StringValue(s) => Value::from(s.as_str()),
        any_value::Value::BoolValue(b) => Value::from(*b),
        any_value::Value::IntValue(i) => Value::from(*i),
        any_value::Value::DoubleValue(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => Value::Number(n),
            None if d.is_nan() => Value::from("NaN"),
            None if *d > 0.0 => Value::from("Infinity"),
            None => Value::from("-Infinity"),
        },
        any_value::Value::BytesValue(b) => {
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }
        any_value::Value::ArrayValue(a) => {
            Value::Array(a.values.iter().map(|v| json_of(Some(v))).collect())
        }
        any_value::Value::KvlistValue(l) => Value::Object(object_of(&l.values)),
        // A reference into a profile's string table: meaningless in a log record.
        any_value::Value::StringValueStrindex(_) => Value::Null,
    }
}

fn object_of(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), json_of(kv.value.as_ref())))
        .collect()
}
