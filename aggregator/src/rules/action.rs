//! Actions, compiled once from [`ActionConfig`], and applied to a matching event.
//!
//! Stateful actions (sample, rate limit, notify, alert) keep their state here, behind
//! atomics or a mutex taken only when the rule matched; the rest only touch the event.

use std::borrow::Cow;
use std::sync::Arc;

use super::alert::{AlertSpec, AlertState, NotifyState};
use super::config::{ActionConfig, Literal};
use super::event::{FieldRef, NumBuf, RuleEvent, SinkSet, View};
use super::limits::{RateLimiter, Sampler};
use super::notification::{Clock, Outbox};
use super::redact::{Pattern, Redactor};
use crate::parse::{level, Value};

/// What the engine needs to compile and run actions.
#[derive(Debug, Clone)]
pub struct EngineContext {
    /// Sink names, in the order the pipeline numbers them (at most 64).
    pub sinks: Vec<String>,
    /// Notifier names that exist.
    pub notifiers: Vec<String>,
    /// Time for rate limits, digests and alert windows.
    pub clock: Arc<dyn Clock>,
    /// Where notifications go.
    pub outbox: Arc<Outbox>,
}

/// A compiled action.
#[derive(Debug)]
pub enum Action {
    /// Drop the event.
    Drop,
    /// Keep 1 in N.
    Sample(Sampler, Option<FieldRef>),
    /// Token bucket per key.
    RateLimit(RateLimiter, Option<FieldRef>),
    /// Set a field.
    Set(FieldRef, Literal),
    /// Rename a parsed field.
    Rename(Box<str>, Box<str>),
    /// Remove fields.
    Remove(Vec<FieldRef>),
    /// Add tags.
    Tag(Vec<Box<str>>),
    /// Redact the message and string fields (all when `None`).
    Redact(Redactor, Option<Vec<FieldRef>>),
    /// Restrict the sinks.
    Route(SinkSet),
    /// Notify, coalescing into digests.
    Notify(NotifyState),
    /// Threshold alert.
    Alert(AlertState, Option<FieldRef>),
}

/// What an action decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next action.
    Continue,
    /// Drop the event.
    Drop,
}

/// A compile error: the key below the action (e.g. `regex`) and why.
pub type ActionError = (String, String);

fn field(key: &str, path: &str) -> Result<FieldRef, ActionError> {
    FieldRef::parse(path).map_err(|m| (key.to_owned(), m))
}

fn parsed_field(key: &str, path: &str) -> Result<Box<str>, ActionError> {
    match field(key, path)? {
        FieldRef::Field(name) => Ok(name),
        _ => Err((
            key.to_owned(),
            format!("`{path}` is not a parsed field; use fields.<name>"),
        )),
    }
}

impl Action {
    /// Compiles one action of rule `rule`.
    pub fn compile(
        cfg: &ActionConfig,
        rule: &str,
        ctx: &EngineContext,
    ) -> Result<Action, ActionError> {
        let bad = |key: &str, m: String| Err((key.to_owned(), m));
        Ok(match cfg {
            ActionConfig::Drop {} => Action::Drop,
            ActionConfig::Sample { one_in, key } => {
                if *one_in == 0 {
                    return bad("one_in", "must be at least 1".into());
                }
                let key = key.as_deref().map(|k| field("key", k)).transpose()?;
                Action::Sample(Sampler::new(*one_in), key)
            }
            ActionConfig::RateLimit {
                per_second,
                burst,
                key,
                max_keys,
            } => {
                if !(per_second.is_finite() && *per_second > 0.0) {
                    return bad("per_second", "must be a number above 0".into());
                }
                if *max_keys == 0 || *max_keys > 1_000_000 {
                    return bad("max_keys", "must be between 1 and 1000000".into());
                }
                let burst = burst.unwrap_or(per_second.ceil() as u64).max(1);
                let key = key.as_deref().map(|k| field("key", k)).transpose()?;
                Action::RateLimit(RateLimiter::new(*per_second, burst, *max_keys), key)
            }
            ActionConfig::Set { field: f, value } => {
                let target = field("field", f)?;
                if !target.is_writable() {
                    return bad(
                        "field",
                        format!("`{f}` cannot be set; set message, level or a field"),
                    );
                }
                if target == FieldRef::Level
                    && !matches!(value, Literal::Str(s) if level::from_word(s).is_some())
                {
                    return bad("value", format!("`{value}` is not a level"));
                }
                Action::Set(target, value.clone())
            }
            ActionConfig::Rename { from, to } => {
                Action::Rename(parsed_field("from", from)?, parsed_field("to", to)?)
            }
            ActionConfig::Remove { fields } => {
                let mut out = Vec::new();
                for (i, f) in fields.iter().enumerate() {
                    let r = field(&format!("fields[{i}]"), f)?;
                    if !matches!(r, FieldRef::Level | FieldRef::Field(_)) {
                        return bad(&format!("fields[{i}]"), format!("`{f}` cannot be removed"));
                    }
                    out.push(r);
                }
                Action::Remove(out)
            }
            ActionConfig::Tag { tags } => {
                if tags.iter().any(|t| t.trim().is_empty()) {
                    return bad("tags", "tags must not be empty".into());
                }
                Action::Tag(tags.iter().map(|t| t.as_str().into()).collect())
            }
            ActionConfig::Redact {
                patterns,
                regex,
                name,
                fields,
            } => {
                let mut pats = Vec::new();
                for (i, p) in patterns.iter().enumerate() {
                    if p == "all" {
                        pats.extend(Pattern::ALL);
                    } else {
                        pats.push(Pattern::from_name(p).ok_or_else(|| {
                            (
                                format!("patterns[{i}]"),
                                format!(
                                    "unknown pattern `{p}` (known: all, email, ipv4, ipv6, credit_card, bearer_token, aws_access_key)"
                                ),
                            )
                        })?);
                    }
                }
                let custom = match regex {
                    Some(r) => Some(
                        regex::RegexBuilder::new(r)
                            .size_limit(1 << 20)
                            .build()
                            .map_err(|e| ("regex".to_owned(), format!("invalid regex: {e}")))?,
                    ),
                    None => None,
                };
                if pats.is_empty() && custom.is_none() {
                    return bad("patterns", "name at least one pattern, or a regex".into());
                }
                let kind = name.as_deref().unwrap_or("custom");
                if kind.is_empty() || !kind.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    return bad("name", "letters, digits and `_` only".into());
                }
                let targets = match fields {
                    Some(list) => {
                        let mut out = Vec::new();
                        for (i, f) in list.iter().enumerate() {
                            let r = field(&format!("fields[{i}]"), f)?;
                            if !matches!(r, FieldRef::Message | FieldRef::Field(_)) {
                                return bad(
                                    &format!("fields[{i}]"),
                                    format!("`{f}` cannot be redacted; name message or fields"),
                                );
                            }
                            out.push(r);
                        }
                        Some(out)
                    }
                    None => None,
                };
                Action::Redact(Redactor::new(&pats, custom.map(|re| (re, kind))), targets)
            }
            ActionConfig::Route { sinks } => {
                if sinks.is_empty() {
                    return bad(
                        "sinks",
                        "name at least one sink (use drop to send nowhere)".into(),
                    );
                }
                let mut set = 0u64;
                for (i, s) in sinks.iter().enumerate() {
                    match ctx.sinks.iter().position(|k| k == s) {
                        Some(idx) if idx < 64 => set |= 1 << idx,
                        _ => {
                            return bad(
                                &format!("sinks[{i}]"),
                                format!("no sink named `{s}` (configured: {})", list(&ctx.sinks)),
                            )
                        }
                    }
                }
                Action::Route(SinkSet(set))
            }
            ActionConfig::Notify { notifier, interval } => {
                known_notifier(notifier, ctx)?;
                Action::Notify(NotifyState::new(
                    rule,
                    notifier,
                    interval.as_millis() as u64,
                ))
            }
            ActionConfig::Alert {
                notifier,
                window,
                above,
                rate_above,
                group_by,
                max_groups,
            } => {
                known_notifier(notifier, ctx)?;
                let window_ms = window.as_millis() as u64;
                if !(1000..=86_400_000).contains(&window_ms) {
                    return bad("window", "must be between 1s and 24h".into());
                }
                let threshold = match (above, rate_above) {
                    (Some(n), None) => *n,
                    (None, Some(r)) if r.is_finite() && *r >= 0.0 => {
                        (r * window_ms as f64 / 1000.0).floor() as u64
                    }
                    (None, Some(_)) => {
                        return bad("rate_above", "must be a number of 0 or more".into())
                    }
                    _ => return bad("above", "set exactly one of above and rate_above".into()),
                };
                if *max_groups == 0 || *max_groups > 100_000 {
                    return bad("max_groups", "must be between 1 and 100000".into());
                }
                let group_by = group_by
                    .as_deref()
                    .map(|g| field("group_by", g))
                    .transpose()?;
                Action::Alert(
                    AlertState::new(AlertSpec {
                        rule: rule.to_owned(),
                        notifier: notifier.clone(),
                        window_ms,
                        threshold,
                        max_groups: *max_groups,
                    }),
                    group_by,
                )
            }
        })
    }

    /// Applies the action to `ev`. `now` reads the clock once per event, when needed.
    /// Values the action writes (set, rename, tag) are borrowed from the action, so the
    /// event may not outlive the engine.
    pub fn apply<'a>(
        &'a self,
        ev: &mut RuleEvent<'a>,
        now: &mut Now<'_>,
        outbox: &Outbox,
        redactions: &mut u64,
    ) -> Flow {
        match self {
            Action::Drop => return Flow::Drop,
            Action::Sample(s, key) => {
                let keep = match key.as_ref().and_then(|k| ev.get(k)) {
                    Some(v) => with_text(&v, |t| s.keep_key(t)),
                    None => s.keep_next(),
                };
                if !keep {
                    return Flow::Drop;
                }
            }
            Action::RateLimit(l, key) => {
                let t = now.get();
                let allowed = match key.as_ref().and_then(|k| ev.get(k)) {
                    Some(v) => with_text(&v, |k| l.allow(k, t)),
                    None => l.allow("", t),
                };
                if !allowed {
                    return Flow::Drop;
                }
            }
            Action::Set(target, value) => set(ev, target, value),
            Action::Rename(from, to) => {
                if let Some(v) = ev.remove_field(from) {
                    ev.set_field(Cow::Borrowed(to), v);
                }
            }
            Action::Remove(fields) => {
                for f in fields {
                    match f {
                        FieldRef::Level => ev.parsed.level = None,
                        FieldRef::Field(name) => {
                            ev.remove_field(name);
                        }
                        _ => {}
                    }
                }
            }
            Action::Tag(tags) => {
                for t in tags {
                    ev.add_tag(Cow::Borrowed(t));
                }
            }
            Action::Redact(r, targets) => *redactions += redact(ev, r, targets.as_deref()),
            Action::Route(set) => {
                let cur = ev.route.map_or(0, |s| s.0);
                ev.route = Some(SinkSet(cur | set.0));
            }
            Action::Notify(state) => state.record(now.get(), ev, outbox),
            Action::Alert(state, group_by) => {
                let t = now.get();
                match group_by {
                    None => state.record("", t, ev, outbox),
                    Some(g) => match ev.get(g) {
                        Some(v) => with_text(&v, |k| state.record(k, t, ev, outbox)),
                        None => state.record("(none)", t, ev, outbox),
                    },
                }
            }
        }
        Flow::Continue
    }

    /// Time-driven work: digests due, alerts that recovered.
    pub fn tick(&self, now_ms: u64, outbox: &Outbox) {
        match self {
            Action::Notify(s) => s.tick(now_ms, outbox),
            Action::Alert(s, _) => s.tick(now_ms, outbox),
            _ => {}
        }
    }
}

/// The clock, read at most once per event.
pub struct Now<'c> {
    clock: Option<&'c dyn Clock>,
    value: Option<u64>,
}

impl<'c> Now<'c> {
    /// Not read yet.
    pub fn new(clock: &'c dyn Clock) -> Now<'c> {
        Now {
            clock: Some(clock),
            value: None,
        }
    }

    /// A time given by the caller.
    pub fn fixed(now_ms: u64) -> Now<'c> {
        Now {
            clock: None,
            value: Some(now_ms),
        }
    }

    /// The time, read on first use.
    pub fn get(&mut self) -> u64 {
        let clock = self.clock;
        *self
            .value
            .get_or_insert_with(|| clock.map_or(0, |c| c.now_ms()))
    }
}

fn known_notifier(name: &str, ctx: &EngineContext) -> Result<(), ActionError> {
    if ctx.notifiers.iter().any(|n| n == name) {
        Ok(())
    } else {
        Err((
            "notifier".to_owned(),
            format!(
                "no notifier named `{name}` (configured: {})",
                list(&ctx.notifiers)
            ),
        ))
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Calls `f` with one text for the value (the first tag for `tags`).
fn with_text<R>(v: &View<'_>, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = NumBuf::default();
    match *v {
        View::Str(s) | View::Json(s) => f(s),
        View::Int(i) => f(buf.int(i)),
        View::Float(x) => f(buf.float(x)),
        View::Bool(b) => f(if b { "true" } else { "false" }),
        View::Null => f("null"),
        View::Level(l) => f(l.as_str()),
        View::Tags(t) => f(t.first().map_or("", |t| t)),
    }
}

fn set<'a>(ev: &mut RuleEvent<'a>, target: &'a FieldRef, value: &'a Literal) {
    match target {
        FieldRef::Message => {
            ev.parsed.message = match value {
                Literal::Str(s) => Cow::Borrowed(s),
                other => Cow::Owned(other.to_string()),
            }
        }
        FieldRef::Level => {
            if let Literal::Str(s) = value {
                ev.parsed.level = level::from_word(s);
            }
        }
        FieldRef::Field(name) => {
            let v = match value {
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Int(i) => Value::Int(*i),
                Literal::Float(f) => Value::Float(*f),
                Literal::Str(s) => Value::Str(Cow::Borrowed(s)),
            };
            ev.set_field(Cow::Borrowed(name), v);
        }
        _ => {}
    }
}

fn redact(ev: &mut RuleEvent<'_>, r: &Redactor, targets: Option<&[FieldRef]>) -> u64 {
    let mut n = 0u64;
    let wants = |f: &FieldRef| targets.is_none_or(|t| t.contains(f));
    if wants(&FieldRef::Message) {
        if let Some((s, k)) = r.redact(&ev.parsed.message, false) {
            ev.parsed.message = Cow::Owned(s);
            n += k as u64;
        }
    }
    for (name, value) in ev.parsed.fields.iter_mut() {
        if let Some(t) = targets {
            if !t
                .iter()
                .any(|f| matches!(f, FieldRef::Field(x) if **x == **name))
            {
                continue;
            }
        }
        let (text, json) = match value {
            Value::Str(s) => (s, false),
            Value::Json(s) => (s, true),
            _ => continue,
        };
        if let Some((s, k)) = r.redact(text, json) {
            *text = Cow::Owned(s);
            n += k as u64;
        }
    }
    n
}
