//! Body compression for batches: `none`, `gzip` and `zstd`.
//!
//! Decompression is always capped: the caller states how many bytes it expects (the frame
//! header declares it) and the decoder refuses to produce one byte more. A "zip bomb" — a
//! small body that inflates past the cap — therefore costs at most `cap + 1` bytes of
//! memory and a little CPU, and yields [`DecompressError::TooLarge`].

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// How a batch body is compressed. The numeric ids are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Stored as is.
    None,
    /// gzip (RFC 1952), one or more members.
    Gzip,
    /// Zstandard frame.
    #[default]
    Zstd,
}

impl Codec {
    /// The id written in the frame header.
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Zstd => 2,
        }
    }

    /// The codec for a header id, or `None` for an id this version does not know.
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// The lowercase name used in configs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }
}

/// Largest zstd window the decoder accepts (2^23 = 8 MiB). Our encoder never needs more
/// for 1 MiB-class batches; a frame asking for more is refused instead of allocating it.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// zstd hash table size (log2 of entries) used at level 1 instead of the library's
/// choice. A 2^12-entry table (16 KiB) stays in the L1 cache: on the benchmark's mixed
/// lines in 2 MiB pieces, level 1 compressed about 8% faster (1.55 instead of 1.69 CPU-s
/// per GiB); the agent's batches shipped 5.0 times smaller than their lines instead of
/// 5.2. Other levels keep the library's tables: their trade-off was not measured.
const ZSTD_LEVEL1_HASH_LOG: u32 = 12;

/// Why a body could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The body inflates past the cap.
    #[error("body decompresses to more than {cap} bytes")]
    TooLarge {
        /// The cap that was hit.
        cap: usize,
    },
    /// The body is not valid data for its codec.
    #[error("body is not valid {codec}: {source}")]
    Corrupt {
        /// Codec name.
        codec: &'static str,
        /// Underlying decoder error.
        source: io::Error,
    },
}

/// A reusable compressor for one codec and level. Keeping it across batches keeps the
/// zstd context (about 1 MiB) instead of allocating one per batch.
pub struct Compressor {
    codec: Codec,
    level: i32,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    /// Output buffer of the last zstd compression, kept for the next.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("codec", &self.codec)
            .field("level", &self.level)
            .finish()
    }
}

impl Compressor {
    /// `level` is the zstd level (1..=19, negative for the fast levels) or the gzip level
    /// (0..=9); it is ignored for `none`.
    pub fn new(codec: Codec, level: i32) -> io::Result<Compressor> {
        let zstd = match codec {
            Codec::Zstd => {
                let mut z = zstd::bulk::Compressor::new(level)?;
                if level == 1 {
                    z.set_parameter(zstd::zstd_safe::CParameter::HashLog(ZSTD_LEVEL1_HASH_LOG))?;
                }
                Some(z)
            }
            _ => None,
        };
        Ok(Compressor {
            codec,
            level,
            zstd,
            scratch: Vec::new(),
        })
    }

    /// The codec this compressor writes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Compresses `input`, appending to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match (self.codec, self.zstd.as_mut()) {
            (Codec::Zstd, Some(z)) => {
                // Into the kept scratch buffer (sized for the worst case once, not per
                // batch), then only the compressed bytes into `out`.
                let bound = zstd::zstd_safe::compress_bound(input.len());
                self.scratch.clear();
                self.scratch.reserve(bound);
                z.compress_to_buffer(input, &mut self.scratch)?;
                out.extend_from_slice(&self.scratch);
            }
            (Codec::Gzip, _) => {
                let gz_level = flate2::Compression::new(self.level.clamp(0, 9) as u32);
                let mut enc = flate2::write::GzEncoder::new(out, gz_level);
                io::Write::write_all(&mut enc, input)?;
                enc.finish()?;
            }
            _ => out.extend_from_slice(input),
        }
        Ok(())
    }
}

/// One-shot convenience over [`Compressor`].
pub fn compress(codec: Codec, level: i32, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    Compressor::new(codec, level)?.compress(input, out)
}

/// Decompresses `input` into `out` (cleared first), producing at most `cap` bytes.
pub fn decompress_capped(
    codec: Codec,
    input: &[u8],
    cap: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    out.clear();
    let corrupt = |source| DecompressError::Corrupt {
        codec: codec.name(),
        source,
    };
    match codec {
        Codec::None => {
            if input.len() > cap {
                return Err(DecompressError::TooLarge { cap });
            }
            out.extend_from_slice(input);
        }
        Codec::Gzip => {
            let dec = flate2::read::MultiGzDecoder::new(input);
            read_capped(dec, cap, out).map_err(corrupt)?;
        }
        Codec::Zstd => {
            if !zstd_in_one_call(input, cap, out) {
                out.clear();
                let mut dec = zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?;
                dec.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(corrupt)?;
                read_capped(dec, cap, out).map_err(corrupt)?;
            }
        }
    }
    if out.len() > cap {
        out.clear();
        return Err(DecompressError::TooLarge { cap });
    }
    Ok(())
}

/// Decompresses a zstd body whose first frame declares a content size of at most `cap`
/// (the agent's frames do) in one call, straight into `out`'s spare capacity: no window
/// buffer to copy out of, and no zeroing of the output first, which the streaming reader
/// needs. It allocates at most the declared size (and writes only into what `out` already
/// holds besides), so the window limit has nothing to guard; the caller's check of the
/// result against `cap` still applies.
/// Answers false, with `out` in any state, when the body does not qualify or fails;
/// the caller then decodes it with the streaming reader, which tells a body too large for
/// `cap` from a corrupt one exactly as for any other body.
fn zstd_in_one_call(input: &[u8], cap: usize, out: &mut Vec<u8>) -> bool {
    let declared = match zstd::zstd_safe::get_frame_content_size(input) {
        Ok(Some(n)) if n <= cap as u64 => n as usize,
        _ => return false,
    };
    out.reserve(declared);
    // More frames after the first, or a frame producing more than it declared, end with
    // "destination too small": an error, so the streaming reader decides.
    zstd::zstd_safe::decompress(out, input).is_ok()
}

/// Reads at most `cap + 1` bytes so that "exactly at the cap" and "past the cap" differ.
fn read_capped(reader: impl Read, cap: usize, out: &mut Vec<u8>) -> io::Result<()> {
    out.reserve(cap.min(4 << 20));
    reader.take(cap as u64 + 1).read_to_end(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..5000)
            .flat_map(|i| format!("line {i} some log text level=info\n").into_bytes())
            .collect()
    }

    #[test]
    fn round_trip_every_codec() {
        let input = sample();
        for codec in [Codec::None, Codec::Gzip, Codec::Zstd] {
            let mut packed = Vec::new();
            compress(codec, 3, &input, &mut packed).unwrap();
            if codec != Codec::None {
                assert!(packed.len() < input.len() / 4, "{codec:?} did not compress");
            }
            let mut out = Vec::new();
            decompress_capped(codec, &packed, input.len(), &mut out).unwrap();
            assert_eq!(out, input, "{codec:?}");
        }
    }

    #[test]
    fn compress_appends_after_existing_bytes() {
        let input = sample();
        let mut packed = b"HEADER".to_vec();
        compress(Codec::Zstd, 1, &input, &mut packed).unwrap();
        assert_eq!(&packed[..6], b"HEADER");
        let mut out = Vec::new();
        decompress_capped(Codec::Zstd, &packed[6..], input.len(), &mut out).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn a_kept_compressor_leaves_nothing_of_a_longer_input_in_a_shorter_one() {
        let long = sample();
        let short = &long[..1000];
        let mut c = Compressor::new(Codec::Zstd, 1).unwrap();
        for input in [&long[..], short, &long[..], short] {
            let mut packed = Vec::new();
            c.compress(input, &mut packed).unwrap();
            let mut out = Vec::new();
            decompress_capped(Codec::Zstd, &packed, input.len(), &mut out).unwrap();
            assert_eq!(out, input);
        }
    }

    #[test]
    fn level_1_compresses_with_the_smaller_hash_table() {
        // Varied lines, enough of them that the table size changes the matches found.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let input: Vec<u8> = (0..40_000)
            .flat_map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!(
                    "{i} user={} path=/api/{} took={}ms\n",
                    x % 9973,
                    x % 613,
                    x % 997
                )
                .into_bytes()
            })
            .collect();
        let with_hash_log = |log: Option<u32>| {
            let mut z = zstd::bulk::Compressor::new(1).unwrap();
            if let Some(log) = log {
                z.set_parameter(zstd::zstd_safe::CParameter::HashLog(log))
                    .unwrap();
            }
            z.compress(&input).unwrap()
        };
        let mut ours = Vec::new();
        Compressor::new(Codec::Zstd, 1)
            .unwrap()
            .compress(&input, &mut ours)
            .unwrap();
        assert_eq!(ours, with_hash_log(Some(ZSTD_LEVEL1_HASH_LOG)));
        assert_ne!(
            ours,
            with_hash_log(None),
            "the library's own table gives the same frame"
        );
        let mut out = Vec::new();
        decompress_capped(Codec::Zstd, &ours, input.len(), &mut out).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn bomb_is_refused_at_the_cap() {
        // 64 MiB of zeros compresses to a few KiB; the cap is 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        for codec in [Codec::Gzip, Codec::Zstd] {
            let mut packed = Vec::new();
            compress(codec, 3, &zeros, &mut packed).unwrap();
            assert!(packed.len() < 256 << 10);
            let mut out = Vec::new();
            let err = decompress_capped(codec, &packed, 1 << 20, &mut out).unwrap_err();
            assert!(matches!(err, DecompressError::TooLarge { cap } if cap == 1 << 20));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn sized_frames_decode_in_one_call_and_every_other_body_as_before() {
        let input = sample();
        let mut one = Vec::new();
        Compressor::new(Codec::Zstd, 1)
            .unwrap()
            .compress(&input, &mut one)
            .unwrap();
        let mut out = Vec::new();
        assert!(zstd_in_one_call(&one, input.len(), &mut out));
        assert_eq!(out, input);
        // Declared above the cap: not in one call, and refused as too large.
        assert!(!zstd_in_one_call(&one, input.len() - 1, &mut out));
        let err = decompress_capped(Codec::Zstd, &one, input.len() - 1, &mut out).unwrap_err();
        assert!(matches!(err, DecompressError::TooLarge { .. }), "{err}");

        // Two frames: the first declares only its own size, so the streaming reader
        // decodes both.
        let mut two = one.clone();
        compress(Codec::Zstd, 1, b"and one more line\n", &mut two).unwrap();
        let mut both = input.clone();
        both.extend_from_slice(b"and one more line\n");
        assert!(!zstd_in_one_call(&two, both.len(), &mut out));
        decompress_capped(Codec::Zstd, &two, both.len(), &mut out).unwrap();
        assert_eq!(out, both);
        // ...and a second frame that is a bomb is still stopped at the cap.
        let mut bomb = one.clone();
        compress(Codec::Zstd, 3, &vec![0u8; 64 << 20], &mut bomb).unwrap();
        let err = decompress_capped(Codec::Zstd, &bomb, 1 << 20, &mut out).unwrap_err();
        assert!(matches!(err, DecompressError::TooLarge { .. }), "{err}");
        assert!(out.is_empty());

        // A streamed frame declares no size.
        let streamed = zstd::stream::encode_all(&input[..], 1).unwrap();
        assert!(!zstd_in_one_call(&streamed, input.len(), &mut out));
        decompress_capped(Codec::Zstd, &streamed, input.len(), &mut out).unwrap();
        assert_eq!(out, input);

        // A cut frame still declares its size; it fails in one call and is corrupt.
        let cut = &one[..one.len() - 10];
        assert!(!zstd_in_one_call(cut, input.len(), &mut out));
        let err = decompress_capped(Codec::Zstd, cut, input.len(), &mut out).unwrap_err();
        assert!(matches!(err, DecompressError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let mut out = Vec::new();
            assert!(decompress_capped(codec, &garbage, 1 << 20, &mut out).is_err());
        }
    }
}
