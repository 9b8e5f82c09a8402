//! Rules: filter, route, redact, sample, enrich and alert on events before they are
//! rendered.
//!
//! - [`RuleConfig`] is what users write (`[[rules]]` in the config, or the API's JSON).
//! - [`Engine`] is a compiled, immutable rule list; [`Engine::apply`] runs it over one
//!   [`RuleEvent`] and answers [`Verdict::Keep`] or [`Verdict::Drop`]. Conditions and
//!   regexes are compiled once; an event no rule matches is not copied or allocated for.
//! - [`RuleSet`] holds the current engine and makes changes (add, replace, delete,
//!   replace all): each change is validated, compiled into a new engine, persisted in
//!   the [`RuleStore`] (flushed), and only then swapped in, atomically for new events.
//!   Readers take an `Arc<Engine>` (one read lock per batch), so a change never blocks
//!   the pipeline for longer than a pointer swap.
//! - Which set applies at start-up: the config's rules until the first change through
//!   the API; from then on the persisted set wins, across restarts and config reloads,
//!   until [`RuleSet::reset_to`] (or [`RuleStore::clear`]) goes back to the config's.
//! - Notify and alert actions put [`Notification`]s in a bounded [`Outbox`]; the
//!   notifiers deliver them elsewhere, never on the event path. [`Engine::tick`] must be
//!   called about once a second for digests and alert recoveries.

pub mod action;
#[cfg(test)]
mod action_tests;
pub mod alert;
pub mod condition;
pub mod config;
pub mod engine;
pub mod event;
pub mod limits;
pub mod notification;
pub mod redact;
#[cfg(test)]
mod redact_tests;
#[cfg(test)]
mod set_tests;
pub mod store;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::{Arc, Mutex, RwLock};

pub use action::EngineContext;
pub use config::{ActionConfig, ConditionConfig, Literal, RuleConfig};
pub use engine::{Engine, RuleStats, Verdict};
pub use event::{K8sRef, RuleEvent, SinkSet};
pub use notification::{
    Clock, EventSample, ManualClock, Notification, NotificationKind, Outbox, SystemClock,
};
pub use store::{RuleStore, StoreError, StoredRules};

/// Why a rule or a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A rule does not compile.
    #[error("rule `{rule}`: {key}: {message}")]
    Invalid {
        /// Position of the rule in the list.
        index: usize,
        /// Its name.
        rule: String,
        /// The key below the rule (`when.all[0].regex`, `actions[1].sinks[0]`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// `add` with a name already in use.
    #[error("a rule named `{0}` already exists")]
    Duplicate(String),
    /// No rule has that name.
    #[error("no rule named `{0}`")]
    NotFound(String),
    /// The rules persisted by earlier run-time changes do not compile with this config.
    #[error("rules changed at run time (stored in the data dir) no longer load: {0}; fix the config or reset the stored rules")]
    Persisted(Box<RuleError>),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the rules in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "origin")]
pub enum Origin {
    /// The config file (no change made at run time yet).
    Config,
    /// The persisted set, changed at run time `generation` times.
    Persisted {
        /// Number of changes so far.
        generation: u64,
    },
}

/// The current rules and the way to change them.
#[derive(Debug)]
pub struct RuleSet {
    current: RwLock<Arc<Engine>>,
    /// Serialises changes; holds the store and the generation.
    writer: Mutex<Writer>,
    ctx: EngineContext,
}

#[derive(Debug)]
struct Writer {
    store: Option<RuleStore>,
    origin: Origin,
}

impl RuleSet {
    /// Builds the rule set: the persisted rules when `store` has some, otherwise
    /// `config_rules`. Without a store, changes live only in memory.
    pub fn open(
        config_rules: &[RuleConfig],
        store: Option<RuleStore>,
        ctx: EngineContext,
    ) -> Result<RuleSet, RuleError> {
        let stored = match &store {
            Some(s) => s.load()?,
            None => None,
        };
        let (engine, origin) = match stored {
            Some(st) => (
                Engine::build(&st.rules, &ctx, None)
                    .map_err(|e| RuleError::Persisted(Box::new(e)))?,
                Origin::Persisted {
                    generation: st.generation,
                },
            ),
            None => (Engine::build(config_rules, &ctx, None)?, Origin::Config),
        };
        Ok(RuleSet {
            current: RwLock::new(Arc::new(engine)),
            writer: Mutex::new(Writer { store, origin }),
            ctx,
        })
    }

    /// The rule set the config describes, persisted in `<data_dir>/rules`; notifications go
    /// to `outbox`.
    pub fn from_config(
        cfg: &crate::config::AggregatorConfig,
        clock: Arc<dyn Clock>,
        outbox: Arc<Outbox>,
    ) -> Result<RuleSet, RuleError> {
        let store = RuleStore::open(&cfg.data_dir.join("rules"))?;
        RuleSet::open(&cfg.rules, Some(store), cfg.rules_context(clock, outbox))
    }

    /// The engine in force; hold it for a batch, take it again for the next.
    pub fn engine(&self) -> Arc<Engine> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The rules in force, in order.
    pub fn list(&self) -> Vec<RuleConfig> {
        self.engine().configs()
    }

    /// The rule called `name`.
    pub fn get(&self, name: &str) -> Option<RuleConfig> {
        self.list().into_iter().find(|r| r.name == name)
    }

    /// Counters per rule.
    pub fn stats(&self) -> Vec<RuleStats> {
        self.engine().stats()
    }

    /// Where the rules in force came from.
    pub fn origin(&self) -> Origin {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).origin
    }

    /// Adds `rule` at `position` (default: last); answers its position.
    pub fn add(&self, rule: RuleConfig, position: Option<usize>) -> Result<usize, RuleError> {
        self.change(|rules| {
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(RuleError::Duplicate(rule.name.clone()));
            }
            let at = position.unwrap_or(rules.len()).min(rules.len());
            rules.insert(at, rule.clone());
            Ok(at)
        })
    }

    /// Replaces the rule called `name` in place (the new one may have another name).
    pub fn replace(&self, name: &str, rule: RuleConfig) -> Result<(), RuleError> {
        self.change(|rules| {
            let at = rules
                .iter()
                .position(|r| r.name == name)
                .ok_or_else(|| RuleError::NotFound(name.to_owned()))?;
            if rule.name != name && rules.iter().any(|r| r.name == rule.name) {
                return Err(RuleError::Duplicate(rule.name.clone()));
            }
            rules[at] = rule.clone();
            Ok(())
        })
    }

    /// Deletes the rule called `name`; answers it.
    pub fn delete(&self, name: &str) -> Result<RuleConfig, RuleError> {
        self.change(|rules| {
            let at = rules
                .iter()
                .position(|r| r.name == name)
                .ok_or_else(|| RuleError::NotFound(name.to_owned()))?;
            Ok(rules.remove(at))
        })
    }

    /// Replaces the whole list.
    pub fn replace_all(&self, new: Vec<RuleConfig>) -> Result<(), RuleError> {
        self.change(|rules| {
            *rules = new.clone();
            Ok(())
        })
    }

    /// After a config reload: puts `config_rules` in force unless rules were changed at
    /// run time (the persisted set then stays, as at start-up). Answers whether the
    /// config's rules are now in force. Nothing is persisted.
    pub fn reload_config(&self, config_rules: &[RuleConfig]) -> Result<bool, RuleError> {
        let w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if w.origin != Origin::Config {
            return Ok(false);
        }
        let old = self.engine();
        let engine = Engine::build(config_rules, &self.ctx, Some(&old))?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(engine);
        Ok(true)
    }

    /// Goes back to `config_rules` and forgets the persisted set.
    pub fn reset_to(&self, config_rules: &[RuleConfig]) -> Result<(), RuleError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.engine();
        let engine = Engine::build(config_rules, &self.ctx, Some(&old))?;
        if let Some(store) = &w.store {
            store.clear()?;
        }
        w.origin = Origin::Config;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(engine);
        Ok(())
    }

    /// Runs `f` over a copy of the list; if it succeeds and the result compiles, persists
    /// it and swaps it in.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Vec<RuleConfig>) -> Result<T, RuleError>,
    ) -> Result<T, RuleError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.engine();
        let mut rules = old.configs();
        let out = f(&mut rules)?;
        let engine = Engine::build(&rules, &self.ctx, Some(&old))?;
        let generation = match w.origin {
            Origin::Config => 1,
            Origin::Persisted { generation } => generation + 1,
        };
        if let Some(store) = &w.store {
            store.save(&StoredRules {
                generation,
                rules: rules.clone(),
            })?;
        }
        w.origin = Origin::Persisted { generation };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(engine);
        Ok(out)
    }
}
