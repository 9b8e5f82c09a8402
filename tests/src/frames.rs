//! Wire frames made by hand: valid batches, and the damaged or hostile ones the
//! aggregator must refuse. Layout: `logferry_shared::wire` (magic at 0..4, version at 4,
//! codec id at 5, raw length at 20..24, CRC-32 trailer over everything before it).

use anyhow::Context;
use logferry_shared::codec::{self, Codec, Compressor};
use logferry_shared::wire::{encode_frame, BatchBuilder, TRAILER_LEN};

/// Byte offset of the version in the header.
pub const VERSION_OFFSET: usize = 4;
/// Byte offset of the codec id in the header.
pub const CODEC_OFFSET: usize = 5;
/// Byte range of the declared uncompressed length.
pub const RAW_LEN_RANGE: std::ops::Range<usize> = 20..24;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A valid zstd frame from `agent`/`stream` number `seq`, host `host`, holding `lines`
/// from the file `path`.
pub fn batch(
    agent: &str,
    stream: &str,
    seq: u64,
    host: &str,
    path: &str,
    lines: &[&str],
) -> anyhow::Result<Vec<u8>> {
    let now = now_ms();
    let mut b = BatchBuilder::new(host, now, 4096);
    let src = b.add_source(path, &[]);
    for l in lines {
        b.push(src, now, 0, l.as_bytes());
    }
    let mut c = Compressor::new(Codec::Zstd, 3).context("zstd compressor")?;
    b.seal(agent, stream, seq, &mut c)
        .context("sealing the batch")
}

/// Rewrites the CRC-32 trailer after a deliberate change, so the check after the CRC is
/// the one that refuses the frame.
pub fn reseal(frame: &mut [u8]) {
    if frame.len() < TRAILER_LEN {
        return;
    }
    let n = frame.len() - TRAILER_LEN;
    let crc = crc32fast::hash(&frame[..n]);
    frame[n..].copy_from_slice(&crc.to_be_bytes());
}

/// A frame whose header declares `codec` and `raw_len` but whose body is `packed` as is.
pub fn frame_with_body(codec: Codec, raw_len: u32, packed: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut none = Compressor::new(Codec::None, 0).context("plain compressor")?;
    let mut f = encode_frame("e2e-bomber", "default", 1, 1, packed, &mut none)
        .context("encoding the frame")?;
    f[CODEC_OFFSET] = codec.id();
    f[RAW_LEN_RANGE].copy_from_slice(&raw_len.to_be_bytes());
    reseal(&mut f);
    Ok(f)
}

/// A compression "bomb": tens of MiB of zeros packed into at most 1 KiB (gzip, which
/// reaches about 1030:1, gets 960 KiB so it fits too), in a frame whose header claims
/// 1,000 raw bytes, within every limit. Honest decompression would inflate past the
/// declared size; the aggregator must stop at it.
pub fn bomb(codec: Codec) -> anyhow::Result<Vec<u8>> {
    let size = if codec == Codec::Gzip {
        960 << 10
    } else {
        24 << 20
    };
    let mut packed = Vec::new();
    codec::compress(codec, 19, &vec![0u8; size], &mut packed).context("compressing zeros")?;
    anyhow::ensure!(
        packed.len() <= 1024,
        "the {} bomb body is {} bytes, over 1 KiB",
        codec.name(),
        packed.len()
    );
    frame_with_body(codec, 1000, &packed)
}
