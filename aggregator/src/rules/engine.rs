//! The compiled rule list and its evaluation.
//!
//! An [`Engine`] is immutable once built: changing rules builds a new one (see
//! [`RuleSet`](super::RuleSet)). Rules run in order; a rule whose condition holds runs
//! its actions in order; `drop` (or a sample / rate limit that keeps the event out) ends
//! the evaluation. An event no rule matches costs one condition check per rule and no
//! allocation.
//!
//! A rule whose config is unchanged keeps its state (counters, rate-limit buckets, alert
//! windows, pending digests) across rebuilds, so editing one rule does not reset the
//! others' alerts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::action::{Action, EngineContext, Flow, Now};
use super::condition::Condition;
use super::config::RuleConfig;
use super::event::RuleEvent;
use super::RuleError;

/// What to do with the event after the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Render it and send it to its sinks (see [`RuleEvent::route`]).
    Keep,
    /// Forget it.
    Drop,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    config: RuleConfig,
    condition: Condition,
    actions: Vec<Action>,
    matched: AtomicU64,
    dropped: AtomicU64,
    redacted: AtomicU64,
}

/// Counters of one rule since it was created (or last changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    /// Rule name.
    pub name: String,
    /// Events whose condition held.
    pub matched: u64,
    /// Events this rule dropped (drop, sample, rate limit).
    pub dropped: u64,
    /// Replacements made by redact actions.
    pub redacted: u64,
    /// Alert groups firing now, with the time (ms since the epoch) each started.
    pub firing: Vec<(String, u64)>,
}

impl Rule {
    /// Compiles one rule; errors name the key under the rule.
    pub fn compile(cfg: &RuleConfig, index: usize, ctx: &EngineContext) -> Result<Rule, RuleError> {
        let invalid = |key: String, message: String| RuleError::Invalid {
            index,
            rule: cfg.name.clone(),
            key,
            message,
        };
        check_name(&cfg.name).map_err(|m| invalid("name".into(), m))?;
        let condition = match &cfg.when {
            None => Condition::Always,
            Some(w) => Condition::compile(w, "when").map_err(|e| invalid(e.key, e.message))?,
        };
        if cfg.actions.is_empty() {
            return Err(invalid(
                "actions".into(),
                "a rule needs at least one action".into(),
            ));
        }
        let mut actions = Vec::with_capacity(cfg.actions.len());
        for (i, a) in cfg.actions.iter().enumerate() {
            let action = Action::compile(a, &cfg.name, ctx).map_err(|(k, m)| {
                invalid(
                    format!("actions[{i}].{k}"),
                    format!("{m} ({} action)", a.kind()),
                )
            })?;
            actions.push(action);
        }
        Ok(Rule {
            config: cfg.clone(),
            condition,
            actions,
            matched: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            redacted: AtomicU64::new(0),
        })
    }

    /// The rule as written.
    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    /// Its counters.
    pub fn stats(&self) -> RuleStats {
        let mut firing = Vec::new();
        for a in &self.actions {
            if let Action::Alert(s, _) = a {
                firing.extend(s.firing_groups());
            }
        }
        RuleStats {
            name: self.config.name.clone(),
            matched: self.matched.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            redacted: self.redacted.load(Ordering::Relaxed),
            firing,
        }
    }
}

/// Rule names: 1–128 letters, digits, `-`, `_`, `.` (they appear in URLs).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err("must be 1 to 128 characters".into());
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "`{name}`: use letters, digits, `-`, `_` and `.` only"
        ));
    }
    Ok(())
}

/// A compiled, ordered rule list. `Send + Sync`: worker threads share one through an
/// `Arc` and call [`Engine::apply`] concurrently.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Arc<Rule>>,
    ctx: EngineContext,
    has_routes: bool,
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Engine>();
};

impl Engine {
    /// Compiles `configs` in order. Rules identical to one in `previous` (same name and
    /// config) keep their state. Names must be unique.
    pub fn build(
        configs: &[RuleConfig],
        ctx: &EngineContext,
        previous: Option<&Engine>,
    ) -> Result<Engine, RuleError> {
        if ctx.sinks.len() > 64 {
            return Err(RuleError::Invalid {
                index: 0,
                rule: String::new(),
                key: "sinks".into(),
                message: "rules can route to at most 64 sinks".into(),
            });
        }
        let mut rules: Vec<Arc<Rule>> = Vec::with_capacity(configs.len());
        for (i, cfg) in configs.iter().enumerate() {
            if configs[..i].iter().any(|c| c.name == cfg.name) {
                return Err(RuleError::Invalid {
                    index: i,
                    rule: cfg.name.clone(),
                    key: "name".into(),
                    message: format!("another rule is already named `{}`", cfg.name),
                });
            }
            let kept = previous.and_then(|p| {
                p.rules
                    .iter()
                    .find(|r| r.config == *cfg)
                    .filter(|_| p.ctx.sinks == ctx.sinks && p.ctx.notifiers == ctx.notifiers)
            });
            match kept {
                Some(r) => rules.push(Arc::clone(r)),
                None => rules.push(Arc::new(Rule::compile(cfg, i, ctx)?)),
            }
        }
        let has_routes = rules.iter().any(|r| {
            r.config
                .actions
                .iter()
                .any(|a| matches!(a, super::config::ActionConfig::Route { .. }))
        });
        Ok(Engine {
            rules,
            ctx: ctx.clone(),
            has_routes,
        })
    }

    /// An engine with no rules: every event is kept.
    pub fn empty(ctx: &EngineContext) -> Engine {
        Engine {
            rules: Vec::new(),
            ctx: ctx.clone(),
            has_routes: false,
        }
    }

    /// Runs the rules over `ev`, changing it in place; reads the clock (once) only if a
    /// stateful action needs it. Values the rules write are borrowed from the engine:
    /// hold the engine for as long as the event.
    #[inline]
    pub fn apply<'a>(&'a self, ev: &mut RuleEvent<'a>) -> Verdict {
        self.run(ev, Now::new(self.ctx.clock.as_ref()))
    }

    /// Like [`Engine::apply`] with "now" given: the pipeline reads the clock once per
    /// batch (`engine.context().clock.now_ms()`) instead of once per event, as reading the
    /// clock costs more than most rules.
    #[inline]
    pub fn apply_at<'a>(&'a self, ev: &mut RuleEvent<'a>, now_ms: u64) -> Verdict {
        self.run(ev, Now::fixed(now_ms))
    }

    fn run<'a>(&'a self, ev: &mut RuleEvent<'a>, mut now: Now<'a>) -> Verdict {
        for rule in &self.rules {
            if !rule.config.enabled || !rule.condition.matches(ev) {
                continue;
            }
            rule.matched.fetch_add(1, Ordering::Relaxed);
            let mut redactions = 0u64;
            for action in &rule.actions {
                if action.apply(ev, &mut now, &self.ctx.outbox, &mut redactions) == Flow::Drop {
                    if redactions > 0 {
                        rule.redacted.fetch_add(redactions, Ordering::Relaxed);
                    }
                    rule.dropped.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Drop;
                }
            }
            if redactions > 0 {
                rule.redacted.fetch_add(redactions, Ordering::Relaxed);
            }
        }
        Verdict::Keep
    }

    /// Time-driven work: sends digests that are due and recovery notifications of alerts
    /// whose window emptied. Call about once a second (the pipeline does so once per
    /// round, and a timer when idle).
    pub fn tick(&self) {
        let now = self.ctx.clock.now_ms();
        for rule in &self.rules {
            for a in &rule.actions {
                a.tick(now, &self.ctx.outbox);
            }
        }
    }

    /// The rules as written, in order.
    pub fn configs(&self) -> Vec<RuleConfig> {
        self.rules.iter().map(|r| r.config.clone()).collect()
    }

    /// Each rule's counters, in order.
    pub fn stats(&self) -> Vec<RuleStats> {
        self.rules.iter().map(|r| r.stats()).collect()
    }

    /// True if some rule routes events: then the renderer must honour
    /// [`RuleEvent::route`]; otherwise every kept event goes to every sink.
    pub fn has_routes(&self) -> bool {
        self.has_routes
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The context it was built with.
    pub fn context(&self) -> &EngineContext {
        &self.ctx
    }
}
