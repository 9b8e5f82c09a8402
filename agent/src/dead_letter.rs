//! Inspecting the batches the aggregator refused for good (the spool's dead-letter store):
//! what `logferry-agent dead-letter list | show SEQ | purge` prints, and the JSON of the
//! admin endpoint's `GET /dead-letter`.
//!
//! The commands open a stopped agent's spool with [`Spool::open_existing`]: a running agent
//! holds the spool's lock (its admin endpoint lists the same batches instead). Only `purge`
//! changes anything. Log lines are shown by `show` only, never by the list or the endpoint.

use std::io::Write;

use logferry_shared::event::Timestamp;
use logferry_shared::wire::{
    decode_frame, DecodeLimits, FLAG_INVALID_UTF8, FLAG_NO_NEWLINE, FLAG_STDERR, FLAG_TRUNCATED,
};

use crate::spool::{DeadLetter, Spool, SpoolError};

/// What can go wrong while inspecting.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The spool could not be opened or read.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
    /// `show` of a seq that is not dead-lettered.
    #[error("no dead-lettered batch has seq {0}")]
    NotFound(u64),
}

/// The dead-lettered batches as JSON: `{"count": N, "batches": [{"seq", "bytes",
/// "records", "status", "reason", "dead_lettered_at"}]}` (`status`, `reason` and
/// `dead_lettered_at` are `null` for batches dead-lettered by agents that kept no reason).
pub fn to_json(list: &[DeadLetter]) -> serde_json::Value {
    let batches: Vec<serde_json::Value> = list
        .iter()
        .map(|d| {
            let info = d.info.as_ref();
            serde_json::json!({
                "seq": d.seq,
                "bytes": d.bytes,
                "records": d.records,
                "status": info.and_then(|i| i.status),
                "reason": info.map(|i| i.reason.as_str()),
                "dead_lettered_at": info.map(|i| Timestamp::from_millis(i.time_ms).to_string()),
            })
        })
        .collect();
    serde_json::json!({ "count": list.len(), "batches": batches })
}

/// Prints one row per dead-lettered batch.
pub fn list(spool: &Spool, out: &mut dyn Write) -> Result<(), InspectError> {
    let list = spool.dead_letters()?;
    if list.is_empty() {
        writeln!(out, "no dead-lettered batches")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>10} {:>10} {:>8} {:>6}  {:<24}  REASON",
        "SEQ", "BYTES", "RECORDS", "STATUS", "DEAD-LETTERED AT"
    )?;
    for d in &list {
        let info = d.info.as_ref();
        let status = info
            .and_then(|i| i.status)
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        let at = info.map_or_else(
            || "-".to_owned(),
            |i| Timestamp::from_millis(i.time_ms).to_string(),
        );
        let reason = info.map_or("(not recorded)", |i| i.reason.as_str());
        writeln!(
            out,
            "{:>10} {:>10} {:>8} {:>6}  {:<24}  {}",
            d.seq,
            d.bytes,
            d.records,
            status,
            at,
            printable(reason)
        )?;
    }
    writeln!(out, "{} dead-lettered batches", list.len())?;
    Ok(())
}

/// Prints one batch: what was recorded about it, its header, and its lines.
pub fn show(spool: &Spool, seq: u64, out: &mut dyn Write) -> Result<(), InspectError> {
    let Some(frame) = spool.dead_letter_frame(seq)? else {
        return Err(InspectError::NotFound(seq));
    };
    let entry = spool.dead_letters()?.into_iter().find(|d| d.seq == seq);
    writeln!(out, "seq:              {seq}")?;
    writeln!(out, "bytes:            {}", frame.len())?;
    if let Some(info) = entry.and_then(|d| d.info) {
        let status = info
            .status
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        writeln!(out, "status:           {status}")?;
        writeln!(
            out,
            "dead-lettered at: {}",
            Timestamp::from_millis(info.time_ms)
        )?;
        writeln!(out, "reason:           {}", printable(&info.reason))?;
    } else {
        writeln!(out, "reason:           (not recorded)")?;
    }
    let decoded = match decode_frame(&frame, &DecodeLimits::default()) {
        Ok(d) => d,
        Err(e) => {
            writeln!(out, "the frame does not decode: {e}")?;
            return Ok(());
        }
    };
    let h = &decoded.header;
    writeln!(out, "agent id:         {}", h.agent_id)?;
    writeln!(out, "stream:           {}", h.stream)?;
    writeln!(out, "records:          {}", h.record_count)?;
    writeln!(out, "codec:            {}", h.codec.name())?;
    let batch = match decoded.batch() {
        Ok(b) => b,
        Err(e) => {
            writeln!(out, "the body does not decode: {e}")?;
            return Ok(());
        }
    };
    writeln!(out, "host:             {}", batch.host)?;
    writeln!(out, "-- observed time, source, flags, line:")?;
    for r in &batch.records {
        let path = batch.sources.get(r.source as usize).map_or("?", |s| s.path);
        writeln!(
            out,
            "{} {} [{}] {}",
            Timestamp::from_millis(r.observed_ms),
            path,
            flag_names(r.flags),
            printable(&String::from_utf8_lossy(r.line))
        )?;
    }
    Ok(())
}

/// Deletes every dead-lettered batch and says how many.
pub fn purge(spool: &Spool, out: &mut dyn Write) -> Result<usize, InspectError> {
    let n = spool.purge_dead_letters()?;
    writeln!(out, "purged {n} dead-lettered batches")?;
    Ok(n)
}

fn flag_names(flags: u8) -> String {
    let names = [
        (FLAG_TRUNCATED, "truncated"),
        (FLAG_INVALID_UTF8, "invalid_utf8"),
        (FLAG_NO_NEWLINE, "no_newline"),
        (FLAG_STDERR, "stderr"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    set.join(",")
}

/// One line of text for a terminal: newlines, tabs and other control characters escaped.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WhenFull;
    use logferry_shared::codec::{Codec, Compressor};
    use logferry_shared::wire::BatchBuilder;

    fn frame(seq: u64) -> Vec<u8> {
        let mut b = BatchBuilder::new("node-1", 1_795_341_600_000, 256);
        let src = b.add_source("/var/log/app.log", &[]);
        b.push(src, 1_795_341_600_000, 0, b"first line");
        b.push(
            src,
            1_795_341_600_001,
            FLAG_TRUNCATED | FLAG_STDERR,
            b"joined\n\tline",
        );
        let mut c = Compressor::new(Codec::Zstd, 1).unwrap();
        b.seal("agent-a", "default", seq, &mut c).unwrap()
    }

    fn spool_with_dead_letters(dir: &std::path::Path) -> Spool {
        let (s, _) = Spool::open(&dir.join("spool"), 1 << 20, WhenFull::Block).unwrap();
        s.commit(1, &frame(1), &[], &|| false).unwrap();
        s.commit(2, b"not a frame at all, twenty+ bytes", &[], &|| false)
            .unwrap();
        s.dead_letter(1, Some(400), "400 Bad Request: {\"error\":\"bad\"}\n")
            .unwrap();
        s.dead_letter(2, None, "refused").unwrap();
        s
    }

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn list_show_purge() {
        let dir = tempfile::tempdir().unwrap();
        let s = spool_with_dead_letters(dir.path());
        let listed = text(|o| list(&s, o).unwrap());
        let rows: Vec<&str> = listed.lines().collect();
        assert_eq!(rows.len(), 4, "{listed}");
        assert!(rows[0].trim_start().starts_with("SEQ"));
        let row1: Vec<&str> = rows[1].split_whitespace().collect();
        assert_eq!(row1[..4], ["1", &frame(1).len().to_string(), "2", "400"]);
        assert!(rows[1].ends_with("400 Bad Request: {\"error\":\"bad\"}\\n"));
        assert!(rows[2].split_whitespace().nth(3) == Some("-"));
        assert_eq!(rows[3], "2 dead-lettered batches");

        let shown = text(|o| show(&s, 1, o).unwrap());
        assert!(shown.contains("status:           400"), "{shown}");
        assert!(shown.contains("agent id:         agent-a"));
        assert!(shown.contains("codec:            zstd"));
        assert!(shown.contains("/var/log/app.log [] first line"));
        assert!(shown.contains("[truncated,stderr] joined\\n\\tline"));
        let shown = text(|o| show(&s, 2, o).unwrap());
        assert!(shown.contains("the frame does not decode"), "{shown}");
        assert!(matches!(
            show(&s, 3, &mut Vec::new()),
            Err(InspectError::NotFound(3))
        ));

        let json = to_json(&s.dead_letters().unwrap());
        assert_eq!(json["count"], 2);
        assert_eq!(json["batches"][0]["seq"], 1);
        assert_eq!(json["batches"][0]["records"], 2);
        assert_eq!(json["batches"][0]["status"], 400);
        assert!(json["batches"][0]["dead_lettered_at"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
        assert_eq!(json["batches"][1]["status"], serde_json::Value::Null);

        assert_eq!(
            text(|o| assert_eq!(purge(&s, o).unwrap(), 2)),
            "purged 2 dead-lettered batches\n"
        );
        assert_eq!(text(|o| list(&s, o).unwrap()), "no dead-lettered batches\n");
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable("a\tb\nc\u{1b}[0m é"), "a\\tb\\nc\\u{001b}[0m é");
    }
}
