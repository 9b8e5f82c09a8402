//! The normalised log event and its JSON output shape.
//!
//! The `file` and `stdout` sinks write one [`Event`] per line as JSON:
//!
//! ```json
//! {"timestamp":"2026-11-22T10:00:00.123Z","observed_timestamp":"2026-11-22T10:00:00.130Z",
//!  "level":"error","message":"db timeout","host":"node-1","format":"json",
//!  "source":{"type":"file","path":"/var/log/app.log"},
//!  "k8s":{"namespace":"shop","pod":"api-7d9","container":"api"},
//!  "fields":{"user_id":42},"tags":["critical"]}
//! ```
//!
//! Field order is fixed. `level` is absent when unknown, `k8s` when not from a pod,
//! `tags` when empty; `fields` is always an object. `timestamp` is the event's own time
//! when the parser found one, otherwise the time the agent read the line.
//!
//! Mapping to the OpenTelemetry log data model: `timestamp` → Timestamp,
//! `observed_timestamp` → ObservedTimestamp, `level` → SeverityText (and SeverityNumber by
//! its range: trace 1, debug 5, info 9, warn 13, error 17, fatal 21), `message` → Body,
//! `fields` and `tags` → Attributes, `host`, `source` and `k8s` → Resource
//! (`host.name`, `log.file.path`, `k8s.namespace.name`, `k8s.pod.name`,
//! `k8s.container.name`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, nanoseconds since the Unix epoch (UTC). Serialised as RFC 3339 with
/// millisecond precision and a `Z` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// From milliseconds since the epoch.
    pub fn from_millis(ms: u64) -> Timestamp {
        Timestamp((ms as i64).saturating_mul(1_000_000))
    }

    /// From a `SystemTime`; times before 1970 clamp to the epoch.
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        let nanos = t
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos();
        Timestamp(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0.max(0) as u64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_millis(self.to_system_time())
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&s)
            .map(Timestamp::from_system_time)
            .map_err(serde::de::Error::custom)
    }
}

/// Normalised severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected, handled.
    Warn,
    /// An operation failed.
    Error,
    /// The process cannot go on.
    Fatal,
}

impl Level {
    /// The lowercase name used in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

/// Where an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Kind of origin: `file` for tailed files.
    #[serde(rename = "type")]
    pub kind: String,
    /// File path, for file sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Kubernetes metadata, when the event came from a pod's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct K8s {
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Pod UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

/// One normalised log event. See the module docs for the output shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Event time (parsed), or the observed time when the line carried none.
    pub timestamp: Timestamp,
    /// When the agent read the line.
    pub observed_timestamp: Timestamp,
    /// Severity, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The message text.
    pub message: String,
    /// Host name of the node the line came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The format the line was parsed as (`raw`, `json`, `logfmt`, ...).
    pub format: String,
    /// Origin.
    pub source: Source,
    /// Kubernetes metadata, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s: Option<K8s>,
    /// Fields the parser extracted, and flags such as `truncated`.
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Tags added by rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Event {
    /// Appends the event as one JSON line (with `\n`) to `out`.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        // Serialising these plain types into a Vec cannot fail: every map key is a string
        // and no Serialize impl here returns an error.
        if serde_json::to_writer(&mut *out, self).is_ok() {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Event {
        let mut fields = serde_json::Map::new();
        fields.insert("user_id".into(), 42.into());
        Event {
            timestamp: Timestamp(1_795_341_600_123_000_000),
            observed_timestamp: Timestamp(1_795_341_600_130_000_000),
            level: Some(Level::Error),
            message: "db timeout".into(),
            host: Some("node-1".into()),
            format: "json".into(),
            source: Source {
                kind: "file".into(),
                path: Some("/var/log/app.log".into()),
            },
            k8s: Some(K8s {
                namespace: Some("shop".into()),
                pod: Some("api-7d9".into()),
                container: Some("api".into()),
                pod_uid: None,
            }),
            fields,
            tags: vec!["critical".into()],
        }
    }

    #[test]
    fn output_shape_matches_the_design_exactly() {
        let mut out = Vec::new();
        example().write_json_line(&mut out);
        let expected = concat!(
            r#"{"timestamp":"2026-11-22T10:00:00.123Z","observed_timestamp":"2026-11-22T10:00:00.130Z","#,
            r#""level":"error","message":"db timeout","host":"node-1","format":"json","#,
            r#""source":{"type":"file","path":"/var/log/app.log"},"#,
            r#""k8s":{"namespace":"shop","pod":"api-7d9","container":"api"},"#,
            r#""fields":{"user_id":42},"tags":["critical"]}"#,
            "\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn optional_parts_are_left_out() {
        let mut e = example();
        e.level = None;
        e.k8s = None;
        e.tags.clear();
        e.fields.clear();
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        let obj = v.as_object().unwrap();
        assert!(!obj.contains_key("level"));
        assert!(!obj.contains_key("k8s"));
        assert!(!obj.contains_key("tags"));
        assert_eq!(obj["fields"], serde_json::json!({}));
    }

    #[test]
    fn json_round_trip() {
        let e = example();
        let text = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn levels_order_by_severity() {
        assert!(
            Level::Trace < Level::Debug
                && Level::Warn < Level::Error
                && Level::Error < Level::Fatal
        );
        assert_eq!(Level::Warn.as_str(), "warn");
    }
}
