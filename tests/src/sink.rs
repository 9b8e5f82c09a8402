//! Reading the aggregator's file sink (one JSON event per line).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

/// The complete lines of `path` (a last line without its newline is still being written
/// and is left out); a missing file has none.
fn complete_lines(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(keep);
    Ok(bytes)
}

/// Number of complete lines in the sink, without parsing them (cheap enough to poll).
pub fn count_lines(path: &Path) -> anyhow::Result<usize> {
    Ok(complete_lines(path)?
        .iter()
        .filter(|b| **b == b'\n')
        .count())
}

/// Every complete line of the sink parsed as JSON; an error names a line that is not.
pub fn read_events(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let bytes = complete_lines(path)?;
    let mut events = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line).with_context(|| {
            format!(
                "{} line {}: not JSON: {}",
                path.display(),
                i + 1,
                String::from_utf8_lossy(line)
            )
        })?;
        events.push(v);
    }
    Ok(events)
}

/// The `message` of every event, counted.
pub fn message_counts(events: &[serde_json::Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in events {
        let m = e
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("<no message>");
        *counts.entry(m.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Messages seen more than once, with their counts (at most `limit`, for messages).
pub fn duplicates(counts: &HashMap<String, usize>, limit: usize) -> Vec<(String, usize)> {
    let mut d: Vec<(String, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(m, n)| (m.clone(), *n))
        .collect();
    d.sort();
    d.truncate(limit);
    d
}

/// `source.path` of an event.
pub fn source_path(event: &serde_json::Value) -> Option<&str> {
    event.get("source")?.get("path")?.as_str()
}
