//! The rule set changed at run time, kept in sled so it survives restarts.
//!
//! One key, `ruleset`, holds the whole ordered list: a format version byte, then JSON
//! `{"generation": N, "rules": [...]}`. Each change writes the new list and flushes
//! before the new engine is used, so what runs is never ahead of what is on disk. A
//! reader meets an unknown version as an error, never as an empty set.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::RuleConfig;

const KEY: &[u8] = b"ruleset";
const FORMAT_VERSION: u8 = 1;

/// Errors from the rule store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("rule store: {0}")]
    Storage(#[from] sled::Error),
    /// The stored value cannot be read.
    #[error("rule store: stored rules cannot be read: {0}")]
    Corrupt(String),
    /// Written by a newer version.
    #[error("rule store: format version {0} is not supported")]
    Format(u8),
}

/// A stored rule list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRules {
    /// Increases with every change.
    pub generation: u64,
    /// The rules, in order.
    pub rules: Vec<RuleConfig>,
}

/// Where run-time rule changes are kept.
#[derive(Debug, Clone)]
pub struct RuleStore {
    tree: sled::Tree,
}

impl RuleStore {
    /// Opens (or creates) a store in its own sled database at `dir`
    /// (the aggregator uses `<data_dir>/rules`).
    pub fn open(dir: &Path) -> Result<RuleStore, StoreError> {
        let db = logferry_shared::store::open(&sled::Config::new().path(dir), &dir.display())?;
        Ok(RuleStore {
            tree: db.open_tree("rules")?,
        })
    }

    /// A store in a tree of an open database.
    pub fn from_tree(tree: sled::Tree) -> RuleStore {
        RuleStore { tree }
    }

    /// The stored list, or `None` if the rules were never changed at run time.
    pub fn load(&self) -> Result<Option<StoredRules>, StoreError> {
        let Some(v) = self.tree.get(KEY)? else {
            return Ok(None);
        };
        let (&version, body) = v
            .split_first()
            .ok_or_else(|| StoreError::Corrupt("empty value".into()))?;
        if version != FORMAT_VERSION {
            return Err(StoreError::Format(version));
        }
        serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Writes the list and flushes.
    pub fn save(&self, stored: &StoredRules) -> Result<(), StoreError> {
        let mut value = vec![FORMAT_VERSION];
        serde_json::to_writer(&mut value, stored)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.tree.insert(KEY, value)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Forgets the stored list: the config's rules apply again at the next start.
    pub fn clear(&self) -> Result<(), StoreError> {
        self.tree.remove(KEY)?;
        self.tree.flush()?;
        Ok(())
    }
}
