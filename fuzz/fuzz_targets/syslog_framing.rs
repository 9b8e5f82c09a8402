//! Fuzzes the syslog stream decoder (octet counting and line feeds, detected per
//! message): any bytes, fed in any pieces, must never panic, must keep the decoder's
//! buffer bounded and must give the same messages however the stream is split; see
//! `logferry_aggregator::input::syslog::framing::fuzz_check`, which
//! `aggregator/tests/fuzz_seeds.rs` also runs on stable over the seeds and mutations.
//!
//! Input layout: byte 0 picks the message limit (1..=256), byte 1 the piece length
//! (1..=256); the rest is the stream.
//!
//! Run from the repo root (README, "Fuzzing"): `mkdir -p fuzz/corpus/syslog_framing`, then
//! `cargo +nightly fuzz run syslog_framing fuzz/corpus/syslog_framing fuzz/seeds/syslog_framing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    logferry_aggregator::input::syslog::framing::fuzz_check(data);
});
