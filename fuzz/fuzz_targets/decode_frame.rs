//! Fuzzes the batch frame decoder and body parser end to end: any input must give an
//! error or a batch that encodes back to itself, never a panic, a hang or an unbounded
//! allocation. The check is `logferry_shared::wire::fuzz_decode`, which
//! `shared/tests/fuzz_seeds.rs` also runs on stable over the seeds and mutations of them.
//!
//! Run from the repo root (README, "Fuzzing"): `mkdir -p fuzz/corpus/decode_frame`, then
//! `cargo +nightly fuzz run decode_frame fuzz/corpus/decode_frame fuzz/seeds/decode_frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    logferry_shared::wire::fuzz_decode(data);
});
