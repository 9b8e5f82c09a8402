//! The text filter of a sealed block: a Bloom filter (one hash per entry) of the byte
//! trigrams of its lines, ASCII-lower-cased, so a text query skips blocks that cannot
//! contain its needle without reading them.
//!
//! # Why it never misses a match
//!
//! A query's needle is JSON-escaped and ASCII-lower-cased, and matches where it occurs in
//! the ASCII-lower-cased line ([`super::query::TextFilter`]: when the needle has no ASCII
//! letter the line is searched as stored, which finds the same places, since lower-casing
//! changes only bytes `A`-`Z` and such a needle has none of them). So every 3-byte window
//! of a needle found in a line is a 3-byte window of that lower-cased line, and the filter
//! holds every such window of every line (bytes as they are: non-ASCII and invalid UTF-8
//! bytes are not folded, as the search does not fold them). A block whose filter lacks
//! any of the needle's trigrams cannot hold a match. Windows across two lines are added
//! too (the lines are read back to back): they can only add false positives. Needles
//! shorter than three bytes have no trigram and do not use the filter.
//!
//! # Format (part of the segment format, version 2)
//!
//! `m` bits, `m` a power of two from 64 to [`MAX_FILTER_BYTES`] × 8, stored as `m / 8`
//! bytes, bit `i` being bit `i % 8` of byte `i / 8`. Trigram `t` (its three bytes as a
//! big-endian 24-bit number) sets bit `hash(t) % m`, where `hash(t)` is bits 40 to 63 of
//! `t × 0x9E37_79B9_7F4A_7C15` (wrapping 64-bit product). Since `m` is a power of two, a
//! filter of `m` bits folds into one of `m / 2` by OR-ing its halves, and the result is
//! the filter `m / 2` bits would have given: the builder fills the largest size and folds
//! it while the share of bits set stays at most [`MAX_FILL`], so a block's filter is as
//! small as its variety of text allows.
//!
//! # Cost
//!
//! With a share `f` of the bits set, a needle with `k` distinct trigrams passes a block
//! that does not hold it with a chance of about `f^k`. Building costs one pass over the
//! block's lines when it is sealed; checking costs one read of the filter (a few KiB) per
//! block a text query would otherwise decompress.

/// Largest filter: 32 KiB, 262,144 bits (a block of 1 MiB of varied text has some 20,000
/// distinct trigrams; random text can have up to a million, which fills it and so only
/// costs the read).
pub const MAX_FILTER_BYTES: usize = 32 << 10;
/// Smallest filter, 64 bits.
pub const MIN_FILTER_BYTES: usize = 8;
/// Largest share of bits set that a fold may reach: a needle of three trigrams (five
/// letters) then passes a block without it about one time in 64 or less.
pub const MAX_FILL: f64 = 0.25;

const MAX_WORDS: usize = MAX_FILTER_BYTES / 8;
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// Hash of a trigram: 24 well-mixed bits.
fn hash(t: u32) -> u32 {
    (u64::from(t).wrapping_mul(MULTIPLIER) >> 40) as u32
}

/// The trigram hashes a needle needs, deduplicated; empty when it is shorter than three
/// bytes (the filter cannot say anything then).
pub fn needle_hashes(needle: &[u8]) -> Vec<u32> {
    let mut out: Vec<u32> = needle
        .windows(3)
        .map(|w| {
            let t = u32::from_be_bytes([
                0,
                w[0].to_ascii_lowercase(),
                w[1].to_ascii_lowercase(),
                w[2].to_ascii_lowercase(),
            ]);
            hash(t)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// False only if some trigram of the needle (given by [`needle_hashes`]) is not in the
/// block. A filter of an impossible size (see [`valid_len`]) may contain anything.
pub fn may_contain(filter: &[u8], hashes: &[u32]) -> bool {
    if !valid_len(filter.len()) {
        return true;
    }
    let mask = (filter.len() * 8 - 1) as u32;
    hashes.iter().all(|h| {
        let bit = h & mask;
        filter[(bit >> 3) as usize] & (1 << (bit & 7)) != 0
    })
}

/// Whether a stored filter may be `len` bytes long.
pub fn valid_len(len: usize) -> bool {
    len.is_power_of_two() && (MIN_FILTER_BYTES..=MAX_FILTER_BYTES).contains(&len)
}

/// Builds filters, keeping its buffer (32 KiB) from block to block.
#[derive(Debug, Default)]
pub struct FilterBuilder {
    words: Vec<u64>,
}

impl FilterBuilder {
    /// Writes the filter of `lines` (the block's lines back to back) into `out`,
    /// replacing what it held.
    pub fn build(&mut self, lines: &[u8], out: &mut Vec<u8>) {
        let words = &mut self.words;
        words.clear();
        words.resize(MAX_WORDS, 0);
        let mask = (MAX_WORDS * 64 - 1) as u32;
        if let [a, b, rest @ ..] = lines {
            let mut t = u32::from(a.to_ascii_lowercase()) << 8 | u32::from(b.to_ascii_lowercase());
            for &c in rest {
                t = (t << 8 | u32::from(c.to_ascii_lowercase())) & 0xff_ffff;
                let bit = hash(t) & mask;
                words[(bit >> 6) as usize] |= 1 << (bit & 63);
            }
        }
        let mut len = MAX_WORDS;
        while len * 8 > MIN_FILTER_BYTES {
            let half = len / 2;
            let folded: u32 = (0..half)
                .map(|i| (words[i] | words[i + half]).count_ones())
                .sum();
            if f64::from(folded) > MAX_FILL * (half * 64) as f64 {
                break;
            }
            for i in 0..half {
                words[i] |= words[i + half];
            }
            len = half;
        }
        out.clear();
        out.reserve(len * 8);
        for w in &words[..len] {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::query::TextFilter;
    use super::*;

    /// Share of the bits set in a filter.
    fn fill(filter: &[u8]) -> f64 {
        let set: u32 = filter.iter().map(|b| b.count_ones()).sum();
        f64::from(set) / (filter.len() * 8).max(1) as f64
    }

    fn filter_of(lines: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FilterBuilder::default().build(lines, &mut out);
        out
    }

    fn has(filter: &[u8], needle: &str) -> bool {
        may_contain(filter, &needle_hashes(needle.as_bytes()))
    }

    #[test]
    fn every_trigram_of_the_lines_is_found_in_any_case() {
        let lines = "{\"message\":\"DB Timeout on shard 7\"}{\"m\":\"café Ünïcode \\\"x\\\"\"}";
        let f = filter_of(lines.as_bytes());
        assert!(valid_len(f.len()), "{}", f.len());
        for needle in [
            "db timeout",
            "DB TIMEOUT",
            "Timeout",
            "café",
            "Ünï",
            "ÜNï",
            "\\\"x\\\"",
            "}{\"",
            "7\"}",
        ] {
            assert!(has(&f, needle), "{needle}");
        }
        // Only ASCII letters fold, as in the search.
        for needle in ["zebra", "timeout in shard", "cafÉ", "ünï"] {
            assert!(!has(&f, needle), "{needle}");
        }
        // Too short to say anything.
        assert!(has(&f, "zz") && has(&f, "") && has(&f, "q"));
    }

    #[test]
    fn invalid_utf8_and_every_byte_value_are_kept() {
        let lines: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0x41]).collect();
        let f = filter_of(&lines);
        for w in lines.windows(3) {
            assert!(may_contain(&f, &needle_hashes(w)), "{w:?}");
        }
    }

    #[test]
    fn folding_keeps_the_fill_bounded_and_the_size_small() {
        assert_eq!(filter_of(b"").len(), MIN_FILTER_BYTES);
        assert_eq!(filter_of(b"ab").len(), MIN_FILTER_BYTES);
        let small = filter_of(b"{\"message\":\"hello\"}");
        assert_eq!(small.len(), MIN_FILTER_BYTES);
        // Many distinct trigrams: pseudo-random letters.
        let mut x: u64 = 7;
        let text: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'a' + (x % 26) as u8
            })
            .collect();
        let f = filter_of(&text);
        assert!(valid_len(f.len()));
        assert!(fill(&f) <= MAX_FILL || f.len() == MAX_FILTER_BYTES);
        // Folded as far as the fill allows: one more fold would pass it.
        assert!(
            f.len() < MAX_FILTER_BYTES && fill(&f) > MAX_FILL / 2.5,
            "{}",
            fill(&f)
        );
        for w in text.windows(3).step_by(97) {
            assert!(may_contain(&f, &needle_hashes(w)));
        }
    }

    #[test]
    fn filters_of_impossible_sizes_may_contain_anything() {
        let h = needle_hashes(b"zebra");
        assert!(may_contain(&[], &h));
        assert!(may_contain(&[0; 12], &h));
        assert!(may_contain(&vec![0; MAX_FILTER_BYTES * 2], &h));
        assert!(!may_contain(&[0; 64], &h));
    }

    /// Bytes lines are made of: ASCII letters in both cases, bytes JSON escapes produce,
    /// UTF-8 of letters ASCII folding leaves alone, and bytes that are not UTF-8.
    const BYTES: &[u8] = b"aAbBzZ\\\"tn0}{ \xc3\xa9\x89\x9f\xff\x80";

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// A block holding a line that the text search matches is never excluded: lines
        /// of arbitrary bytes, one of them holding the needle as lines escape it, with its
        /// ASCII case changed at random; the search itself decides what matches.
        #[test]
        fn a_block_with_a_match_is_never_excluded(
            text in "[aAbBzZ\"\\\\\t0}{ éÉß]{0,8}",
            flips in proptest::collection::vec(any::<bool>(), 48),
            with_needle in any::<bool>(),
            lines in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(BYTES), 0..40),
                1..12,
            ),
            at in any::<proptest::sample::Index>(),
            filler in 0..120_000usize,
        ) {
            let mut lines = lines;
            if with_needle {
                let quoted = serde_json::to_string(&text).unwrap();
                let mut bytes = quoted.as_bytes()[1..quoted.len() - 1].to_vec();
                for (b, flip) in bytes.iter_mut().zip(&flips) {
                    if *flip && b.is_ascii_alphabetic() {
                        *b ^= 0x20;
                    }
                }
                let i = at.index(lines.len());
                lines[i].extend_from_slice(&bytes);
            }
            // Enough other text, sometimes, for the larger sizes.
            let mut x = filler as u64 | 1;
            lines.push((0..filler).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                BYTES[(x % BYTES.len() as u64) as usize] ^ (x >> 32) as u8 & 0x1f
            }).collect());
            let Some(search) = TextFilter::new(&text) else {
                return Ok(());
            };
            let f = filter_of(&lines.concat());
            prop_assert!(valid_len(f.len()));
            let mut scratch = Vec::new();
            let found = lines.iter().any(|l| search.matches(l, &mut scratch));
            prop_assert!(!with_needle || found, "the needle was put in a line");
            if found {
                prop_assert!(may_contain(&f, search.trigrams()));
            }
        }
    }
}
