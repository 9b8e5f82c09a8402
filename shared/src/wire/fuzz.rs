//! The `decode_frame` fuzz target's check, also run on stable by `shared/tests/fuzz_seeds.rs`
//! over the target's seeds and deterministic mutations of them, so the two cannot drift.

use super::{decode_frame, BatchBuilder, DecodeLimits, TRAILER_LEN};
use crate::codec::{Codec, Compressor};

/// Decodes arbitrary input end to end, twice: as given, and with its CRC-32 trailer
/// rewritten to match (so mutated frames reach the header, codec and body checks rather
/// than stopping at the checksum). It must never panic, and every frame that decodes must
/// round-trip: built again from what was decoded, it decodes to the same header and batch.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    check(data);
    if data.len() >= TRAILER_LEN {
        let mut resealed = data.to_vec();
        let n = resealed.len() - TRAILER_LEN;
        let crc = crc32fast::hash(&resealed[..n]);
        resealed[n..].copy_from_slice(&crc.to_be_bytes());
        check(&resealed);
    }
}

fn check(data: &[u8]) {
    let limits = DecodeLimits {
        max_frame_bytes: 1 << 20,
        max_raw_bytes: 4 << 20,
    };
    let Ok(frame) = decode_frame(data, &limits) else {
        return;
    };
    let Ok(batch) = frame.batch() else {
        return;
    };
    let h = &frame.header;
    assert_eq!(batch.records.len(), h.record_count as usize);
    let base = batch
        .records
        .iter()
        .map(|r| r.observed_ms)
        .min()
        .unwrap_or(0);
    let mut b = BatchBuilder::new(batch.host, base, frame.body.len());
    for s in &batch.sources {
        b.add_source(s.path, &s.attrs);
    }
    for r in &batch.records {
        b.push(r.source, r.observed_ms, r.flags, r.line);
    }
    let mut plain = match Compressor::new(Codec::None, 0) {
        Ok(c) => c,
        Err(e) => panic!("a compressor for codec none: {e}"),
    };
    let again = match b.seal(&h.agent_id, &h.stream, h.seq, &mut plain) {
        Ok(f) => f,
        Err(e) => panic!("a decoded batch does not encode again: {e}"),
    };
    let limits = DecodeLimits {
        max_frame_bytes: usize::MAX,
        max_raw_bytes: usize::MAX,
    };
    let decoded = match decode_frame(&again, &limits) {
        Ok(f) => f,
        Err(e) => panic!("a re-encoded batch does not decode: {e}"),
    };
    assert_eq!(
        (
            &decoded.header.agent_id,
            &decoded.header.stream,
            decoded.header.seq
        ),
        (&h.agent_id, &h.stream, h.seq)
    );
    match decoded.batch() {
        Ok(b) => assert_eq!(b, batch),
        Err(e) => panic!("a re-encoded batch does not parse: {e}"),
    }
}
