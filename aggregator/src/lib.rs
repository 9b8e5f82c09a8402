//! The Logferry aggregator as a library: the binary in `main.rs` only parses flags and
//! calls [`app::start`]; tests drive the same code in-process.
//!
//! Data path: [`ingest`] (HTTPS, auth, limits) → [`wire`](logferry_shared::wire) decode →
//! [`inbox`] (sled: durable, dedup, bounded) → 2xx; then [`pipeline`]: [`parse`] →
//! [`rules`] (filter, route, redact, sample, enrich, alert) → [`render`] → [`sink`]s →
//! progress recorded in the inbox. [`input`]s (syslog, HTTP JSON, OTLP) feed the same inbox. Kept events
//! are counted in the [`stats`] (traffic summaries) and indexed for log [`search`]; the
//! rules' notifications are delivered by [`notify`] on its own thread.

pub mod admin;
pub mod agents;
pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod inbox;
pub mod ingest;
pub mod input;
pub mod metrics;
pub mod notify;
pub mod parse;
pub mod pipeline;
pub mod render;
pub mod rules;
pub mod search;
pub mod sink;
pub mod stats;
