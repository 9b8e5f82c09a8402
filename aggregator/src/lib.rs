//! The Logferry aggregator as a library: the binary in `main.rs` only parses flags and
//! calls [`app::start`]; tests drive the same code in-process.
//!
//! Data path: [`ingest`] (HTTPS, auth, limits) → [`wire`](logferry_shared::wire) decode →
//! [`inbox`] (sled: durable, dedup, bounded) → 2xx; then [`pipeline`]: [`render`] →
//! [`sink`]s → progress recorded in the inbox. [`input`]s (syslog) feed the same inbox.
//!
//! Alongside: [`rules`] (filter, route, redact, sample, enrich, alert on parsed events),
//! [`notify`] (delivering the rules' notifications) and [`stats`] (traffic summaries);
//! they are built and tested on their own and are not yet called by the pipeline.

pub mod admin;
pub mod app;
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
pub mod sink;
pub mod stats;
