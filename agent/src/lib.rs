//! The Logferry agent as a library: the binary in `main.rs` only parses flags and calls
//! [`app::start`]; tests drive the same code in-process.
//!
//! Data path: [`tailer`] (discover, read, [`lines`] split, batch) → [`spool`] (sled,
//! durable before shipping) → [`ship`] (HTTPS, retries) → delete on acknowledgement.

pub mod admin;
pub mod app;
pub mod batcher;
pub mod config;
pub mod container;
pub mod dead_letter;
pub mod decode;
pub mod discover;
pub mod fingerprint;
pub mod gzip;
pub mod k8s;
pub mod lines;
pub mod metrics;
pub mod multiline;
pub mod ship;
pub mod spool;
pub mod tailer;
