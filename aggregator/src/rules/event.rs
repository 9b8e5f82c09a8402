//! The event as rules see it: the parser's output plus what the renderer knows (host,
//! source, Kubernetes attributes, format), and what rules add (tags, a route). Rules read
//! and change it in place, before it is rendered; reading never allocates.

use std::borrow::Cow;

use logferry_shared::event::Level;

use crate::parse::{Parsed, Value};

/// Kubernetes attributes of the event's source, when it came from a pod's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct K8sRef<'a> {
    /// Namespace.
    pub namespace: Option<&'a str>,
    /// Pod name.
    pub pod: Option<&'a str>,
    /// Container name.
    pub container: Option<&'a str>,
}

/// A set of sinks, by their index in the list given to [`RuleSet`](super::RuleSet) (at
/// most 64 sinks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SinkSet(pub u64);

impl SinkSet {
    /// True if sink `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }
}

/// One event on its way through the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvent<'a> {
    /// What the parser found; rules may change the message, level and fields.
    pub parsed: Parsed<'a>,
    /// The parser's name (`json`, `access`, ...).
    pub format: &'static str,
    /// The node the line came from (empty when unknown).
    pub host: &'a str,
    /// The file the line came from.
    pub source_path: &'a str,
    /// Kubernetes attributes, when known.
    pub k8s: K8sRef<'a>,
    /// Tags added by rules, in order, without repeats.
    pub tags: Vec<Cow<'a, str>>,
    /// The sinks chosen by route actions; `None`: every sink.
    pub route: Option<SinkSet>,
}

impl<'a> RuleEvent<'a> {
    /// An event with no tags and the default route.
    pub fn new(
        parsed: Parsed<'a>,
        format: &'static str,
        host: &'a str,
        source_path: &'a str,
        k8s: K8sRef<'a>,
    ) -> Self {
        RuleEvent {
            parsed,
            format,
            host,
            source_path,
            k8s,
            tags: Vec::new(),
            route: None,
        }
    }

    /// True if the event goes to sink `index`.
    pub fn goes_to(&self, index: usize) -> bool {
        self.route.is_none_or(|r| r.contains(index))
    }

    /// The parsed field `name`.
    pub fn field(&self, name: &str) -> Option<&Value<'a>> {
        self.parsed
            .fields
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v)
    }

    /// Reads a field by path, without allocating.
    pub fn get(&self, path: &FieldRef) -> Option<View<'_>> {
        match path {
            FieldRef::Message => Some(View::Str(&self.parsed.message)),
            FieldRef::Level => self.parsed.level.map(View::Level),
            FieldRef::Host => (!self.host.is_empty()).then_some(View::Str(self.host)),
            FieldRef::Format => Some(View::Str(self.format)),
            FieldRef::SourcePath => Some(View::Str(self.source_path)),
            FieldRef::K8sNamespace => self.k8s.namespace.map(View::Str),
            FieldRef::K8sPod => self.k8s.pod.map(View::Str),
            FieldRef::K8sContainer => self.k8s.container.map(View::Str),
            FieldRef::Tags => (!self.tags.is_empty()).then_some(View::Tags(&self.tags)),
            FieldRef::Field(name) => self.field(name).map(View::from_value),
        }
    }

    /// Sets the parsed field `name`, replacing an existing one in place.
    pub fn set_field(&mut self, name: Cow<'a, str>, value: Value<'a>) {
        match self.parsed.fields.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value,
            None => self.parsed.fields.push((name, value)),
        }
    }

    /// Removes the parsed field `name`, returning its value.
    pub fn remove_field(&mut self, name: &str) -> Option<Value<'a>> {
        let i = self
            .parsed
            .fields
            .iter()
            .position(|(k, _)| k.as_ref() == name)?;
        Some(self.parsed.fields.remove(i).1)
    }

    /// Adds a tag unless present.
    pub fn add_tag(&mut self, tag: Cow<'a, str>) {
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
    }
}

/// A field path, resolved when a rule is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    /// `message`.
    Message,
    /// `level`.
    Level,
    /// `host`.
    Host,
    /// `format`.
    Format,
    /// `source.path`.
    SourcePath,
    /// `k8s.namespace`.
    K8sNamespace,
    /// `k8s.pod`.
    K8sPod,
    /// `k8s.container`.
    K8sContainer,
    /// `tags` (tests whether one tag matches).
    Tags,
    /// `fields.<name>` or a bare `<name>`.
    Field(Box<str>),
}

impl FieldRef {
    /// Resolves a path as written in a rule.
    pub fn parse(path: &str) -> Result<FieldRef, String> {
        let path = path.trim();
        Ok(match path {
            "" => return Err("empty field name".into()),
            "message" => FieldRef::Message,
            "level" => FieldRef::Level,
            "host" => FieldRef::Host,
            "format" => FieldRef::Format,
            "source.path" => FieldRef::SourcePath,
            "k8s.namespace" => FieldRef::K8sNamespace,
            "k8s.pod" => FieldRef::K8sPod,
            "k8s.container" => FieldRef::K8sContainer,
            "tags" => FieldRef::Tags,
            _ => match path.strip_prefix("fields.") {
                Some("") => return Err("`fields.` needs a field name".into()),
                Some(name) => FieldRef::Field(name.into()),
                None if path.starts_with("source.") || path.starts_with("k8s.") => {
                    return Err(format!(
                        "unknown field `{path}` (known: source.path, k8s.namespace, k8s.pod, k8s.container)"
                    ))
                }
                None => FieldRef::Field(path.into()),
            },
        })
    }

    /// True for fields an action may write: `message`, `level`, parsed fields.
    pub fn is_writable(&self) -> bool {
        matches!(
            self,
            FieldRef::Message | FieldRef::Level | FieldRef::Field(_)
        )
    }
}

/// A borrowed view of one field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View<'e> {
    /// Text.
    Str(&'e str),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// JSON null.
    Null,
    /// Raw JSON (object or array).
    Json(&'e str),
    /// The event's level.
    Level(Level),
    /// The event's tags.
    Tags(&'e [Cow<'e, str>]),
}

impl<'e> View<'e> {
    fn from_value(v: &'e Value<'_>) -> View<'e> {
        match v {
            Value::Str(s) => View::Str(s),
            Value::Int(i) => View::Int(*i),
            Value::Float(f) => View::Float(*f),
            Value::Bool(b) => View::Bool(*b),
            Value::Null => View::Null,
            Value::Json(j) => View::Json(j),
        }
    }

    /// The value as a number, when it is one or is text that reads as one.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            View::Int(i) => Some(i as f64),
            View::Float(f) => Some(f),
            View::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    /// Calls `f` with the value as text (numbers formatted on the stack), or with each
    /// tag for `tags` until `f` answers true. Answers whether `f` did.
    pub fn any_text(&self, mut f: impl FnMut(&str) -> bool) -> bool {
        let mut buf = NumBuf::default();
        match *self {
            View::Str(s) | View::Json(s) => f(s),
            View::Int(i) => f(buf.int(i)),
            View::Float(x) => f(buf.float(x)),
            View::Bool(b) => f(if b { "true" } else { "false" }),
            View::Null => f("null"),
            View::Level(l) => f(l.as_str()),
            View::Tags(tags) => tags.iter().any(|t| f(t)),
        }
    }
}

/// A stack buffer for formatting a number as text.
pub(crate) struct NumBuf {
    buf: [u8; 40],
    len: usize,
}

impl Default for NumBuf {
    fn default() -> Self {
        NumBuf {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl NumBuf {
    pub(crate) fn int(&mut self, i: i64) -> &str {
        self.write(format_args!("{i}"))
    }

    pub(crate) fn float(&mut self, x: f64) -> &str {
        self.write(format_args!("{x}"))
    }

    fn write(&mut self, args: std::fmt::Arguments<'_>) -> &str {
        use std::io::Write;
        let mut cur = std::io::Cursor::new(&mut self.buf[..]);
        // Any i64 or shortest f64 fits in 40 bytes; on overflow the text is cut, never wrong
        // memory.
        let _ = cur.write_fmt(args);
        self.len = cur.position() as usize;
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}
