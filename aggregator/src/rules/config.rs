//! What a user writes for a rule: `[[rules]]` in the config file, or the JSON body of
//! the rules API. Every struct refuses unknown keys, so a typo is an error that names the
//! key; checks serde cannot make (exactly one operator, a regex that compiles, a known
//! sink or notifier) happen when the rule is compiled, and name the rule and the key.
//!
//! ```toml
//! [[rules]]
//! name = "drop-health-checks"
//! when = { all = [{ field = "path", starts_with = "/healthz" }, { field = "status", lt = 400 }] }
//! actions = [{ type = "drop" }]
//!
//! [[rules]]
//! name = "page-on-errors"
//! when = { field = "level", gte = "error" }
//! actions = [{ type = "tag", tags = ["page"] }, { type = "notify", notifier = "oncall" }]
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One rule: a name, an optional condition (absent: every event) and actions applied in
/// order when the condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; also the rule's id in the API. Letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A disabled rule is kept but not evaluated. Default true.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// The condition; absent means every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<ConditionConfig>,
    /// What to do with a matching event, in order. At least one.
    pub actions: Vec<ActionConfig>,
}

fn default_enabled() -> bool {
    true
}

/// A condition: either one test on a field (`field` plus exactly one operator) or a
/// combination (`all`, `any`, `not`).
///
/// Fields: `message`, `level`, `host`, `format`, `source.path`, `k8s.namespace`,
/// `k8s.pod`, `k8s.container`, `tags`, `fields.<name>`, or a bare `<name>` meaning
/// `fields.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// The field tested by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Equal to a value (a number matches a numeric field or its text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Literal>,
    /// Present and not equal to the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<Literal>,
    /// Equal to one of the values.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub in_list: Option<Vec<Literal>>,
    /// Contains the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Starts with the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    /// Ends with the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<String>,
    /// Matches the regular expression (Rust `regex` syntax; `(?i)` for any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Less than a number (or, for `level`, a level name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<Literal>,
    /// Less than or equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<Literal>,
    /// Greater than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<Literal>,
    /// Greater than or equal (`{ field = "level", gte = "warn" }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<Literal>,
    /// `true`: the field is present; `false`: it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// Every condition holds (true when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<ConditionConfig>>,
    /// At least one condition holds (false when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<ConditionConfig>>,
    /// The condition does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<ConditionConfig>>,
}

/// A value written in a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text.
    Str(String),
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x}"),
            Literal::Str(s) => f.write_str(s),
        }
    }
}

/// One action, selected by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionConfig {
    /// Drop the event; later actions and rules do not run.
    Drop {},
    /// Keep one event in `one_in`; drop the others. With `key`, the choice is made by a
    /// hash of that field's value (all events with one value are kept or dropped
    /// together, e.g. a trace id); without it (or when the field is absent), by a counter.
    Sample {
        /// Keep 1 in this many (at least 1).
        one_in: u64,
        /// Field whose value decides.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Keep at most `per_second` events per second on average, with bursts up to `burst`,
    /// for each value of `key` (one budget for all events without `key`); drop the rest.
    RateLimit {
        /// Sustained events per second (greater than 0).
        per_second: f64,
        /// Bucket size; default: `per_second` rounded up, at least 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        burst: Option<u64>,
        /// Field whose value selects the budget.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// Most key values tracked; the least recently seen is forgotten. Default 10,000.
        #[serde(default = "default_max_keys")]
        max_keys: usize,
    },
    /// Set a field (`fields.<name>`, a bare name, `message` or `level`).
    Set {
        /// Target field.
        field: String,
        /// The value.
        value: Literal,
    },
    /// Rename a field (both `fields.<name>` or bare names). An existing target is replaced.
    Rename {
        /// Current name.
        from: String,
        /// New name.
        to: String,
    },
    /// Remove fields.
    Remove {
        /// Fields to remove.
        fields: Vec<String>,
    },
    /// Add tags (a tag already present is not repeated).
    Tag {
        /// Tags to add.
        tags: Vec<String>,
    },
    /// Replace sensitive text with `[REDACTED:<kind>]` in the message and string fields.
    Redact {
        /// Built-in patterns: `email`, `ipv4`, `ipv6`, `credit_card`, `bearer_token`,
        /// `aws_access_key`, or `all`.
        #[serde(default)]
        patterns: Vec<String>,
        /// A custom regular expression; its matches become `[REDACTED:<name>]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        regex: Option<String>,
        /// Kind written for `regex` matches. Default `custom`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Only these fields (`message`, `fields.<name>`, bare names); default: the
        /// message and every string field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fields: Option<Vec<String>>,
    },
    /// Send the event only to these sinks (several route actions add up). Events no
    /// route action touched go to every sink.
    Route {
        /// Sink names from `[sinks]`.
        sinks: Vec<String>,
    },
    /// Tell people: the first match sends a notification at once; further matches within
    /// `interval` are counted and sent as one digest when it has passed.
    Notify {
        /// A notifier name from `[notifiers]`.
        notifier: String,
        /// Shortest time between two notifications of this rule. Default 1 minute.
        #[serde(default = "default_notify_interval", with = "humantime_serde")]
        interval: Duration,
    },
    /// Threshold alert: counts matching events over a sliding `window`; when the count
    /// goes above the threshold one notification fires, and one more when it falls back
    /// to or below it ("recovered", with how long it lasted).
    Alert {
        /// A notifier name from `[notifiers]`.
        notifier: String,
        /// Window length, e.g. `2m`. From 1 s to 24 h.
        #[serde(with = "humantime_serde")]
        window: Duration,
        /// Fire when more than this many events fall in the window.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above: Option<u64>,
        /// Or: fire when the average rate over the window is above this many events/s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate_above: Option<f64>,
        /// Count separately per value of this field (e.g. `host`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_by: Option<String>,
        /// Most groups tracked; events of further groups count in one `(other)` group.
        /// Default 1,000.
        #[serde(default = "default_max_groups")]
        max_groups: usize,
    },
}

fn default_max_keys() -> usize {
    10_000
}

fn default_max_groups() -> usize {
    1_000
}

fn default_notify_interval() -> Duration {
    Duration::from_secs(60)
}

impl ActionConfig {
    /// The `type` name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionConfig::Drop {} => "drop",
            ActionConfig::Sample { .. } => "sample",
            ActionConfig::RateLimit { .. } => "rate_limit",
            ActionConfig::Set { .. } => "set",
            ActionConfig::Rename { .. } => "rename",
            ActionConfig::Remove { .. } => "remove",
            ActionConfig::Tag { .. } => "tag",
            ActionConfig::Redact { .. } => "redact",
            ActionConfig::Route { .. } => "route",
            ActionConfig::Notify { .. } => "notify",
            ActionConfig::Alert { .. } => "alert",
        }
    }
}

/// Parses rules from TOML text holding `[[rules]]` tables; errors name the key path
/// (`rules[1].actions[0]: unknown field ...`). For tests and tools.
pub fn rules_from_toml(text: &str) -> Result<Vec<RuleConfig>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        rules: Vec<RuleConfig>,
    }
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize::<_, Doc>(de)
        .map(|d| d.rules)
        .map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner().message())
        })
}
