//! The Logferry aggregator as a library: the binary in `main.rs` only parses flags and
//! calls [`app::start`]; tests drive the same code in-process.
//!
//! Data path: [`ingest`] (HTTPS, auth, limits) → [`wire`](logferry_shared::wire) decode →
//! [`render`] → [`writer`] (group commit, dedup) → [`sink`]s.

pub mod admin;
pub mod app;
pub mod config;
pub mod dedup;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod parse;
pub mod render;
pub mod sink;
pub mod writer;
