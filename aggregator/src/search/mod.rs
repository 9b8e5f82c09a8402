//! The bounded local store of recent events behind the admin endpoint's log search
//! (`GET /api/logs`): the pipeline appends every rendered event ([`EventStore::append`]),
//! the admin endpoint pages through them newest first ([`EventStore::search`]).
//!
//! # Shape
//!
//! Events go into an open block in memory; a full block (4,096 events or 256 KiB of lines)
//! is sealed: its fields are written column by column into a meta section, its JSON lines
//! back to back into a lines section, each zstd-compressed with a CRC-32, and appended to
//! the newest segment file in `<data_dir>/search` (`segment.rs`), after a text filter: a
//! Bloom filter of the lower-cased trigrams of its lines, 64 bytes to 32 KiB
//! (`trigrams.rs`). A segment is closed at an eighth of `max_bytes` (at most 64 MiB) and
//! the next one begun. For each sealed block a summary (`summary.rs`) stays in memory:
//! sequence numbers, time range, levels present and a Bloom filter of hosts and
//! namespaces, so queries skip blocks without reading them. A text query (of three bytes
//! or more) then reads each remaining block's text filter, and skips the block when it
//! cannot hold the text; a block that may match has its small meta section read first,
//! and its lines only when the text filter needs them or one of its events makes the page
//! (`scan.rs`).
//!
//! A query ([`Query`]) filters on text (`q`: the JSON line contains it, ignoring ASCII
//! case), levels (at least a level), a source path prefix, the exact host and namespace
//! and a time range on the event timestamp; results come newest first by event timestamp
//! and then by arrival, with an opaque cursor to the next page that appends do not
//! disturb (`query.rs` says how).
//!
//! # Durability
//!
//! This is a cache of recent events; the sinks are the record. Nothing is fsynced:
//! - the open block lives only in memory until it is sealed (when full, at
//!   [`EventStore::flush`], and when the store is dropped); a crash loses it;
//! - a sealed block is in the segment file (the page cache) once `append` returns; a crash
//!   of the machine can lose or tear the newest blocks;
//! - at start, every block header is checked, and the sections of the newest segment too:
//!   a torn or corrupt tail is cut off with a warning, an unreadable segment is deleted
//!   with a warning. Damage further back is found by the checksums when a query reads the
//!   block (its text filter or a section), which is then skipped with a warning. Damage never panics and never stops
//!   the aggregator; opening fails only when the directory itself cannot be used.
//!
//! # Bounds
//!
//! - Disk: segment files total at most `max_bytes` (the oldest segments are deleted, whole,
//!   after each seal), and segments whose newest block was sealed more than `max_age` ago
//!   are deleted after each seal and at [`EventStore::expire`]; queries skip expired blocks
//!   even before that.
//! - Memory: the open block (at most 4,096 events and 256 KiB of lines plus one line of at
//!   most 1 MiB, ~19 bytes of columns per event and its distinct names), a second such
//!   block while it is being sealed and a third kept empty for reuse, the sealer's
//!   compression buffers (about one more block) and text filter (32 KiB), and about 380
//!   bytes of summary per sealed block, at most [`MAX_BLOCKS`] of them (12 MiB; 1 GiB of
//!   full blocks of ~300-byte lines is about 30,000). Text filters stay on disk: kept in memory
//!   they would cost up to 32 KiB a block, a few tens of MiB for a full 1 GiB store. A
//!   query holds, per thread it scans with (at most [`MAX_SCAN_THREADS`]), the newest
//!   `limit + 1` matching lines (`limit` ≤ 1,000) and one block's sections.
//!
//! # Concurrency
//!
//! One `RwLock` guards the index and the blocks in memory. Appends take it for writing
//! while they copy a batch into the open block and, briefly, twice per seal; compressing
//! and writing a block happen outside it (the block stays readable from memory meanwhile).
//! A query takes it for reading to scan the blocks in memory and clone the index (one
//! `Arc`), then reads sealed blocks with no lock held, on its own thread and, when the
//! scan goes past the newest blocks, on helper threads too. Appends, seals and retention
//! are serialised by a separate mutex that queries never take.
//!
//! Sealing runs on the appending thread: an append costs about 2 µs of CPU per 300-byte
//! event on this machine, most of it zstd and the text filter's pass over the lines (about
//! 1 µs and 0.8 µs; measured by `benches/search.rs`). A caller that must never wait for it
//! can feed `append` from a thread of its own.
//!
//! # Why not tantivy
//!
//! A full-text engine would bring a large dependency tree that takes minutes to compile
//! on this two-core machine, a second copy of every line in its own format, and segment
//! merging in the background. Recent-log search needs structured filters and substring
//! matching over a bounded window, newest first: block summaries and per-event columns
//! answer the filters reading little, and a page usually ends within the newest blocks.
//! The text filters answer text found in no block for one small read per block (about
//! 2 µs of CPU per block of ~3,300 events). The cost of going without a full index is the
//! remaining worst case: text found in many blocks but few events, and text shorter than
//! three bytes, decompress and search every block that may hold it (about 0.5 µs of CPU
//! per stored event, `benches/search.rs`); a time range, or a host or namespace found in
//! few blocks, bounds it.

mod block;
mod config;
mod query;
mod scan;
mod segment;
mod store;
mod summary;
mod trigrams;

#[cfg(test)]
mod durability_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use block::{NewEvent, MAX_LINE_BYTES, MAX_NAME_BYTES};
pub use config::{SearchConfig, StoreSettings};
pub use query::{LevelSet, Page, Query, QueryError, TextFilter, DEFAULT_LIMIT, MAX_LIMIT};
pub use store::{EventStore, StoreStats, MAX_BLOCKS, MAX_SCAN_THREADS};
