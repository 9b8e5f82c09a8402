//! Fuzzes every built-in parser, through auto-detection and forced to each format: any
//! bytes (made UTF-8 lossily, as the aggregator does) must yield an event and never panic;
//! see `logferry_aggregator::parse::fuzz_check` for the invariants, which
//! `aggregator/tests/fuzz_seeds.rs` also checks on stable over the seeds and mutations.
//!
//! Run from the repo root (README, "Fuzzing"): `mkdir -p fuzz/corpus/parse_line`, then
//! `cargo +nightly fuzz run parse_line fuzz/corpus/parse_line fuzz/seeds/parse_line`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    logferry_aggregator::parse::fuzz_check(data);
});
