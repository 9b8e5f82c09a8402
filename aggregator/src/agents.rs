//! What the aggregator knows of each agent that sent it batches, for `GET /api/agents`:
//! first and last seen, batches (accepted and duplicate), events and bytes, the last
//! sequence number, the agent's version (its `User-Agent`), its host, and the delay of its
//! last batch (receive time minus the newest line's read time: how far behind the agent
//! is, spool backlog included).
//!
//! Bounded: at most [`MAX_AGENTS`] agents are tracked; a new one then replaces the one
//! seen longest ago. Kept in memory only: counters restart with the process.

use std::collections::HashMap;
use std::sync::Mutex;

use logferry_shared::event::Timestamp;
use serde::Serialize;

/// Most agents tracked.
pub const MAX_AGENTS: usize = 10_000;
/// Longest version and host strings kept (longer ones are cut).
const MAX_TEXT: usize = 128;

/// One agent, as `GET /api/agents` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentInfo {
    /// The agent's id (from its batches).
    pub agent_id: String,
    /// Its host name (from its batches), when it sends one.
    pub host: String,
    /// Its `User-Agent` (e.g. `logferry-agent/0.1.0`), when it sends one.
    pub version: String,
    /// First batch since this aggregator started.
    pub first_seen: Timestamp,
    /// Last batch.
    pub last_seen: Timestamp,
    /// Batches accepted.
    pub batches: u64,
    /// Batches that were retries of accepted ones.
    pub duplicates: u64,
    /// Events in accepted batches.
    pub events: u64,
    /// Request bytes (compressed) of every batch.
    pub bytes: u64,
    /// Sequence number of the last batch.
    pub last_seq: u64,
    /// Receive time minus the read time of the newest line of the last accepted batch,
    /// milliseconds (0 when the agent's clock is ahead).
    pub last_batch_delay_ms: u64,
}

/// One batch as ingest saw it.
#[derive(Debug, Clone, Copy)]
pub struct BatchSeen<'a> {
    /// Agent id.
    pub agent_id: &'a str,
    /// Host from the batch.
    pub host: &'a str,
    /// `User-Agent` header.
    pub version: &'a str,
    /// Sequence number.
    pub seq: u64,
    /// Events in it.
    pub events: u64,
    /// Request bytes.
    pub bytes: u64,
    /// Read time of its newest line, ms since the epoch.
    pub newest_ms: u64,
    /// True when it was a duplicate.
    pub duplicate: bool,
}

/// The agents seen.
#[derive(Debug, Default)]
pub struct AgentRegistry {
    agents: Mutex<HashMap<String, AgentInfo>>,
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl AgentRegistry {
    /// Records a batch received at `now_ms`.
    pub fn record(&self, b: &BatchSeen<'_>, now_ms: u64) {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        if !agents.contains_key(b.agent_id) && agents.len() >= MAX_AGENTS {
            let oldest = agents
                .iter()
                .min_by_key(|(_, a)| a.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                agents.remove(&k);
            }
        }
        let now = Timestamp::from_millis(now_ms);
        let a = agents
            .entry(b.agent_id.to_owned())
            .or_insert_with(|| AgentInfo {
                agent_id: b.agent_id.to_owned(),
                host: String::new(),
                version: String::new(),
                first_seen: now,
                last_seen: now,
                batches: 0,
                duplicates: 0,
                events: 0,
                bytes: 0,
                last_seq: 0,
                last_batch_delay_ms: 0,
            });
        a.last_seen = now;
        a.bytes += b.bytes;
        a.last_seq = b.seq;
        if !b.host.is_empty() && a.host != b.host {
            a.host = cut(b.host);
        }
        if !b.version.is_empty() && a.version != b.version {
            a.version = cut(b.version);
        }
        if b.duplicate {
            a.duplicates += 1;
        } else {
            a.batches += 1;
            a.events += b.events;
            a.last_batch_delay_ms = now_ms.saturating_sub(b.newest_ms);
        }
    }

    /// Every agent, most recently seen first.
    pub fn list(&self) -> Vec<AgentInfo> {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<AgentInfo> = agents.values().cloned().collect();
        out.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| a.agent_id.cmp(&b.agent_id))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(agent: &str, seq: u64, duplicate: bool) -> BatchSeen<'_> {
        BatchSeen {
            agent_id: agent,
            host: "node-1",
            version: "logferry-agent/9.9.9",
            seq,
            events: 10,
            bytes: 100,
            newest_ms: 1_000,
            duplicate,
        }
    }

    #[test]
    fn counts_batches_duplicates_and_delay() {
        let r = AgentRegistry::default();
        r.record(&seen("a", 1, false), 1_500);
        r.record(&seen("a", 1, true), 1_600);
        r.record(&seen("b", 7, false), 2_000);
        let list = r.list();
        assert_eq!(list[0].agent_id, "b", "most recently seen first");
        let a = &list[1];
        assert_eq!(
            (a.batches, a.duplicates, a.events, a.bytes),
            (1, 1, 10, 200)
        );
        assert_eq!(a.last_batch_delay_ms, 500);
        assert_eq!(a.version, "logferry-agent/9.9.9");
        assert_eq!(a.first_seen.as_millis(), 1_500);
        assert_eq!(a.last_seen.as_millis(), 1_600);
    }

    #[test]
    fn bounded_by_evicting_the_longest_unseen() {
        let r = AgentRegistry::default();
        for i in 0..MAX_AGENTS + 5 {
            let id = format!("agent-{i}");
            r.record(&seen(&id, 1, false), 1_000 + i as u64);
        }
        let list = r.list();
        assert_eq!(list.len(), MAX_AGENTS);
        assert!(list.iter().all(|a| a.agent_id != "agent-0"));
        assert!(list
            .iter()
            .any(|a| a.agent_id == format!("agent-{}", MAX_AGENTS + 4)));
        let long = "é".repeat(200);
        r.record(
            &BatchSeen {
                version: &long,
                ..seen("x", 1, false)
            },
            5_000_000,
        );
        assert!(r.list()[0].version.len() <= MAX_TEXT);
    }
}
