//! Fuzzes the batch frame decoder and body parser end to end: any input must give an
//! error or a batch, never a panic, a hang or an unbounded allocation.
//!
//! Run: `cargo +nightly fuzz run decode_frame -- -max_total_time=60` from the repo root
//! (needs `cargo install cargo-fuzz`). Seeds: `fuzz/seeds/decode_frame/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    logferry_shared::wire::fuzz_decode(data);
});
