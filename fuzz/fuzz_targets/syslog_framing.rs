//! Fuzzes the syslog stream decoder (octet counting and line feeds, detected per
//! message): any bytes, fed in any pieces, must never panic, must keep the decoder's
//! buffer bounded (checked inside `decode_all`), and must give the same messages however
//! the stream is split.
//!
//! Input layout: byte 0 picks the message limit (1..=256), byte 1 the piece length
//! (1..=256); the rest is the stream.
//!
//! Run: `cargo +nightly fuzz run syslog_framing -- -max_total_time=60` from the repo root
//! (needs `cargo install cargo-fuzz`). Seeds: `fuzz/seeds/syslog_framing/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logferry_aggregator::input::syslog::framing::decode_all;

fuzz_target!(|data: &[u8]| {
    let [max, piece, stream @ ..] = data else {
        return;
    };
    let max = usize::from(*max) + 1;
    let piece = usize::from(*piece) + 1;
    let whole = decode_all(max, &[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(piece).collect();
    assert_eq!(decode_all(max, &pieces), whole);
});
