//! Logferry's shared crate: what the agent and the aggregator must agree on.
//!
//! - [`event`]: the normalised event and its JSON output shape;
//! - [`wire`]: the batch frame agents send, with its decoder's limits;
//! - [`codec`]: body compression with capped decompression;
//! - [`tls`]: rustls configs and development certificates;
//! - [`config`]: TOML loading with environment interpolation and overrides;
//! - [`runtime`]: logging set-up and shutdown signals common to both binaries;
//! - `fuzzing`: the `fuzz/` targets' checks run on stable by ordinary tests;
//! - [`store`]: opening sled databases, waiting for a lock a previous holder still has.

pub mod codec;
pub mod config;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod runtime;
pub mod store;
pub mod tls;
pub mod wire;
