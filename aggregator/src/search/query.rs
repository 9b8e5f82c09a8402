//! What a search asks for ([`Query`]), what it returns ([`Page`]), and the cursor that
//! links pages.
//!
//! Results are ordered newest first by event timestamp, ties broken by arrival (later
//! first): the key of an event is `(timestamp_ms, seq)`, where `seq` numbers events in the
//! order they were appended. A cursor is the key of the last event of a page, and the next
//! page holds the events whose keys are below it. Appends never move an event's key, so
//! pages do not shift while events arrive: a new event shows up on a later page only if
//! its timestamp puts it past the cursor.

use logferry_shared::event::Level;
use memchr::memmem;

use super::block::level_code;
use super::trigrams;

/// Events per page when the query does not say.
pub const DEFAULT_LIMIT: usize = 100;
/// Most events per page; larger limits are lowered to it.
pub const MAX_LIMIT: usize = 1000;

/// A set of level codes: bit 0 for events without a level, bits 1 to 6 for trace to fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelSet(u8);

impl LevelSet {
    /// Every event, with a level or without.
    pub const ALL: LevelSet = LevelSet(0x7f);

    /// Events at `level` or more severe (`at_least(Warn)`: warn, error, fatal); events
    /// without a level are not included. This is what `level=` means in `GET /api/logs`.
    pub fn at_least(level: Level) -> LevelSet {
        let code = level_code(Some(level));
        LevelSet(0x7f & !((1u8 << code) - 1))
    }

    /// Events at exactly `level`.
    pub fn only(level: Level) -> LevelSet {
        LevelSet(1 << level_code(Some(level)))
    }

    /// Whether an event of `level` (`None`: without one) is in the set.
    pub fn contains(self, level: Option<Level>) -> bool {
        self.contains_code(level_code(level))
    }

    /// Whether a level code is in the set.
    pub fn contains_code(self, code: u8) -> bool {
        code < 8 && self.0 & (1 << code) != 0
    }

    /// Whether a block whose level bits are `levels` may hold a matching event.
    pub fn meets(self, levels: u8) -> bool {
        self.0 & levels != 0
    }
}

/// A search. Every filter given must hold (they combine with AND); `None` does not filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Text the JSON line must contain, ignoring ASCII case (`q`). It is matched against the
    /// whole line as stored, keys and all, after JSON-escaping it the way lines are
    /// escaped, so `db "timeout"` finds the message `db "timeout"`. Empty: no filter.
    pub text: Option<String>,
    /// Levels to include (`level`); see [`LevelSet::at_least`].
    pub levels: LevelSet,
    /// A prefix of the source path (`source`): `/var/log/pods/shop_` or a whole path.
    pub source: Option<String>,
    /// The host, exactly (`host`).
    pub host: Option<String>,
    /// The Kubernetes namespace, exactly (`namespace`); events without one never match.
    pub namespace: Option<String>,
    /// Events at or after this time, ms (`since`, inclusive).
    pub since_ms: Option<i64>,
    /// Events before this time, ms (`until`, exclusive).
    pub until_ms: Option<i64>,
    /// Events per page (`limit`), 1 to [`MAX_LIMIT`].
    pub limit: usize,
    /// Where the previous page ended (`cursor`), as returned in [`Page::next_cursor`].
    pub cursor: Option<String>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            text: None,
            levels: LevelSet::ALL,
            source: None,
            host: None,
            namespace: None,
            since_ms: None,
            until_ms: None,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// JSON lines, newest first, each exactly as appended.
    pub lines: Vec<Vec<u8>>,
    /// Where the next page starts, when more events matched when this page was made.
    pub next_cursor: Option<String>,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The cursor is not one this store hands out.
    #[error("invalid cursor")]
    InvalidCursor,
}

/// The order of events: greater is newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Timestamp, ms.
    pub ts: i64,
    /// Arrival order.
    pub seq: u64,
}

impl Key {
    /// The opaque cursor for this key: `c1` then the timestamp and seq in hex.
    pub fn cursor(self) -> String {
        format!("c1{:016x}{:016x}", self.ts as u64, self.seq)
    }

    /// Inverse of [`Key::cursor`].
    pub fn from_cursor(s: &str) -> Result<Key, QueryError> {
        let hex = s.strip_prefix("c1").ok_or(QueryError::InvalidCursor)?;
        let valid = hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let (ts, seq) = hex.split_at_checked(16).ok_or(QueryError::InvalidCursor)?;
        match (
            valid,
            u64::from_str_radix(ts, 16),
            u64::from_str_radix(seq, 16),
        ) {
            (true, Ok(ts), Ok(seq)) => Ok(Key { ts: ts as i64, seq }),
            _ => Err(QueryError::InvalidCursor),
        }
    }
}

/// The text filter, ready to run: the needle JSON-escaped and lower-cased.
///
/// A line matches when the needle occurs in it once ASCII-lower-cased (a needle without
/// ASCII letters is looked for in the line as stored, which finds the same places). The
/// blocks' trigram filters (`trigrams.rs`) rely on exactly this.
#[derive(Debug)]
pub struct TextFilter {
    finder: memmem::Finder<'static>,
    /// Whether the needle has ASCII letters (otherwise lines are searched as they are).
    fold: bool,
    /// The needle's trigram hashes, for the blocks' text filters.
    trigrams: Vec<u32>,
}

impl TextFilter {
    /// `None` for empty text.
    pub fn new(text: &str) -> Option<TextFilter> {
        if text.is_empty() {
            return None;
        }
        // Lines hold strings escaped as serde_json escapes them (the renderer uses the
        // same table), so the needle is escaped the same way, without its quotes.
        let quoted = serde_json::to_string(text).ok()?;
        let escaped = quoted.get(1..quoted.len() - 1)?;
        let needle = escaped.to_ascii_lowercase().into_bytes();
        Some(TextFilter {
            fold: needle.iter().any(u8::is_ascii_lowercase),
            trigrams: trigrams::needle_hashes(&needle),
            finder: memmem::Finder::new(&needle).into_owned(),
        })
    }

    /// Needle length in bytes.
    pub fn needle_len(&self) -> usize {
        self.finder.needle().len()
    }

    /// The needle as searched: JSON-escaped and ASCII-lower-cased.
    pub fn needle(&self) -> &[u8] {
        self.finder.needle()
    }

    /// The needle's trigram hashes ([`trigrams::needle_hashes`]): empty for needles
    /// shorter than three bytes.
    pub fn trigrams(&self) -> &[u32] {
        &self.trigrams
    }

    /// Whether the lower-cased form of lines must be searched.
    pub fn folds(&self) -> bool {
        self.fold
    }

    /// Whether `line` contains the text; `scratch` holds the lower-cased line.
    pub fn matches(&self, line: &[u8], scratch: &mut Vec<u8>) -> bool {
        if !self.fold {
            return self.finder.find(line).is_some();
        }
        scratch.clear();
        scratch.extend_from_slice(line);
        scratch.make_ascii_lowercase();
        self.finder.find(scratch).is_some()
    }

    /// The first match in `hay` at or after `from`.
    pub fn find_from(&self, hay: &[u8], from: usize) -> Option<usize> {
        let rest = hay.get(from..)?;
        self.finder.find(rest).map(|at| from + at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_anything_else() {
        for key in [
            Key { ts: 0, seq: 0 },
            Key {
                ts: -1,
                seq: u64::MAX,
            },
            Key {
                ts: 1_795_341_600_123,
                seq: 42,
            },
        ] {
            assert_eq!(Key::from_cursor(&key.cursor()), Ok(key));
        }
        for bad in [
            "",
            "c1",
            "c2000000000000000000000000000000000",
            "c10000000000000000000000000000000",
            "c1000000000000000000000000000000000",
            "c1+0000000000000000000000000000000",
            "c1ééééééééééééééé",
            "c1éééééééééééééééé",
        ] {
            assert_eq!(
                Key::from_cursor(bad),
                Err(QueryError::InvalidCursor),
                "{bad}"
            );
        }
    }

    #[test]
    fn level_sets() {
        let warn = LevelSet::at_least(Level::Warn);
        assert_eq!(
            (0..7)
                .filter(|&c| warn.contains_code(c))
                .collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert!(LevelSet::at_least(Level::Trace).contains_code(1));
        assert!(!LevelSet::at_least(Level::Trace).contains_code(0));
        assert!(LevelSet::ALL.contains_code(0));
        assert!(warn.contains(Some(Level::Fatal)) && !warn.contains(Some(Level::Info)));
        assert!(!warn.contains(None) && LevelSet::ALL.contains(None));
        let error = LevelSet::only(Level::Error);
        assert_eq!(
            (0..7)
                .filter(|&c| error.contains_code(c))
                .collect::<Vec<_>>(),
            [5]
        );
        assert!(error.meets(1 << 5 | 1));
        assert!(!error.meets(1 << 4 | 1 << 6));
    }

    #[test]
    fn text_is_escaped_like_lines_and_ignores_ascii_case() {
        let mut s = Vec::new();
        let line = br#"{"message":"DB \"Timeout\" on\tshard","host":"n"}"#;
        let f = TextFilter::new("db \"timeout\"").unwrap();
        assert!(f.matches(line, &mut s));
        assert!(TextFilter::new("on\tSHARD").unwrap().matches(line, &mut s));
        assert!(!TextFilter::new("on shard").unwrap().matches(line, &mut s));
        let digits = TextFilter::new("\"").unwrap();
        assert!(!digits.folds());
        assert!(digits.matches(line, &mut s));
        assert!(TextFilter::new("").is_none());
        let e = TextFilter::new("é").unwrap();
        assert!(e.matches("{\"message\":\"café\"}".as_bytes(), &mut s));
        assert!(!e.matches("{\"message\":\"cafÉ\"}".as_bytes(), &mut s));
    }
}
