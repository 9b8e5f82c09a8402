//! Names made from event fields, for sinks that spread events over several destinations
//! (CloudWatch log groups and streams, Event Hubs partition keys).
//!
//! Syntax: literal text with `{path}` placeholders, where `path` is a dotted path into the
//! output event (`host`, `level`, `format`, `source.path`, `k8s.namespace`,
//! `fields.user_id`, ...). `{path:-default}` renders `default` when the field is missing
//! or null; a missing field without a default renders as [`MISSING`]. `{{` and `}}` are
//! literal braces. Strings render as they are, numbers and booleans as JSON text, objects
//! and arrays as compact JSON.

use serde_json::Value;

/// What a missing field renders as when its placeholder has no default.
pub const MISSING: &str = "unknown";

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field {
        path: Vec<String>,
        default: Option<String>,
    },
}

impl Template {
    /// Parses `text`; the error names what is wrong and where.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => return Err(format!("unmatched '}}' at byte {at} of {text:?}")),
                '{' => {
                    let rest = &text[at + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!("unclosed '{{' at byte {at} of {text:?}"));
                    };
                    let inner = &rest[..end];
                    let (path, default) = match inner.split_once(":-") {
                        Some((p, d)) => (p, Some(d.to_owned())),
                        None => (inner, None),
                    };
                    let path: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
                    if path.iter().any(|p| p.is_empty()) {
                        return Err(format!(
                            "placeholder {{{inner}}} at byte {at} of {text:?} is not a field path"
                        ));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Field { path, default });
                    // Skip the placeholder's characters.
                    while let Some(&(i, _)) = chars.peek() {
                        if i > at + end + 1 {
                            break;
                        }
                        chars.next();
                    }
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// True when the template has no placeholder (every event gets the same name).
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The name for `event` (an output event parsed as JSON).
    pub fn render(&self, event: &Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field { path, default } => match lookup(event, path) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v) => out.push_str(&v.to_string()),
                    None => out.push_str(default.as_deref().unwrap_or(MISSING)),
                },
            }
        }
        out
    }
}

/// The value at `path` in `event`; `None` when missing or null.
pub fn lookup<'v>(event: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut v = event;
    for key in path {
        v = v.get(key.as_str())?;
    }
    (!v.is_null()).then_some(v)
}

/// The event's `timestamp` in milliseconds since the epoch, if it has a valid one.
pub fn event_millis(event: &Value) -> Option<i64> {
    let text = event.get("timestamp")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "timestamp": "2026-11-22T10:00:00.123Z",
            "host": "node-1",
            "source": {"type": "file", "path": "/var/log/app.log"},
            "k8s": {"namespace": "shop"},
            "fields": {"user_id": 42, "ok": true, "none": null}
        })
    }

    #[test]
    fn renders_fields_defaults_and_literals() {
        let ev = event();
        let t = Template::parse("/logferry/{k8s.namespace}").unwrap();
        assert_eq!(t.render(&ev), "/logferry/shop");
        assert!(!t.is_constant());
        let t = Template::parse("{host}/{source.path}").unwrap();
        assert_eq!(t.render(&ev), "node-1//var/log/app.log");
        let t = Template::parse("u{fields.user_id}-{fields.ok}").unwrap();
        assert_eq!(t.render(&ev), "u42-true");
        let t = Template::parse("{k8s.pod:-nopod}|{fields.none:-null}|{fields.x}").unwrap();
        assert_eq!(t.render(&ev), format!("nopod|null|{MISSING}"));
        let t = Template::parse("{{literal}} {host}").unwrap();
        assert_eq!(t.render(&ev), "{literal} node-1");
        let t = Template::parse("fixed").unwrap();
        assert!(t.is_constant());
        assert_eq!(t.render(&ev), "fixed");
        let t = Template::parse("é{host}ü").unwrap();
        assert_eq!(t.render(&ev), "énode-1ü");
    }

    #[test]
    fn refuses_broken_templates() {
        for bad in ["{host", "host}", "{}", "{a..b}", "{.a}", "x{ :-d}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn reads_event_time() {
        assert_eq!(event_millis(&event()), Some(1_795_341_600_123));
        assert_eq!(event_millis(&json!({"timestamp": "junk"})), None);
        assert_eq!(event_millis(&json!({})), None);
    }
}
