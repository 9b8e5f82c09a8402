//! The `decode_frame` fuzz target's check on stable: its seeds and 4,000 deterministic
//! mutations of them through `wire::fuzz_decode`, the function the target calls (see
//! `logferry_shared::fuzzing`).

use std::path::PathBuf;

use logferry_shared::fuzzing;
use logferry_shared::wire::{decode_frame, fuzz_decode, DecodeLimits};

fn seeds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_frame")
}

#[test]
fn decode_frame_target_holds_on_seeds_and_mutations() {
    assert_eq!(fuzzing::run(&seeds(), 4000, fuzz_decode), 4000 + 6);
}

/// The seeds are what they say: `frame_*` decode to a batch, `bad_*` are refused.
#[test]
fn decode_frame_seeds_are_frames_and_broken_frames() {
    let seeds = fuzzing::read_seeds(&seeds()).expect("seeds");
    assert_eq!(seeds.len(), 6);
    for (name, bytes) in seeds {
        let decoded = decode_frame(&bytes, &DecodeLimits::default());
        let parsed = decoded.as_ref().map(|f| f.batch().is_ok());
        match name.split('_').next() {
            Some("frame") => assert!(matches!(parsed, Ok(true)), "{name}: {decoded:?}"),
            Some("bad") => assert!(decoded.is_err(), "{name} decodes"),
            _ => panic!("seed {name}: name it frame_* or bad_*"),
        }
    }
}
