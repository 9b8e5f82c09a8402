//! What the store keeps in memory for each sealed block, and writes in the block's header:
//! its sequence numbers, time range, levels, a Bloom filter of its hosts and namespaces,
//! and where its sections are and how to check them. Queries read summaries to skip
//! blocks without touching the disk.
//!
//! Two layouts: version 1 (segment format 1) ends after the Bloom filter; version 2 adds
//! the length and CRC-32 of the block's text filter (`trigrams.rs`), which is stored on
//! disk before the meta section and read only by text queries. A version 1 block has no
//! text filter: it may contain any text.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::trigrams;

/// Bytes of a [`Summary`] encoded in the version 1 layout (without a text filter).
pub const SUMMARY_LEN_V1: usize = 64 + BLOOM_WORDS * 8;
/// Bytes of an encoded [`Summary`] (version 2: the version 1 layout, then the text
/// filter's length and CRC-32).
pub const SUMMARY_LEN: usize = SUMMARY_LEN_V1 + 8;
/// 64-bit words of a [`Bloom`] filter: 2,048 bits, so a block with up to ~200 distinct
/// hosts and namespaces gives a false positive for about one name in fifty.
pub const BLOOM_WORDS: usize = 32;
const BLOOM_BITS: u32 = (BLOOM_WORDS * 64) as u32;
const BLOOM_HASHES: u32 = 4;

/// `flags` bit: both sections are zstd frames (otherwise stored as they are).
pub const FLAG_ZSTD: u8 = 1;

/// Which name a Bloom filter entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A host name.
    Host = 1,
    /// A Kubernetes namespace.
    Namespace = 2,
}

/// A Bloom filter over the (kind, name) pairs of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom(pub [u64; BLOOM_WORDS]);

impl Default for Bloom {
    fn default() -> Self {
        Bloom([0; BLOOM_WORDS])
    }
}

impl Bloom {
    fn bits(kind: NameKind, name: &[u8]) -> impl Iterator<Item = u32> {
        let h = xxh3_64_with_seed(name, kind as u64);
        let (h1, h2) = (h as u32, (h >> 32) as u32 | 1);
        (0..BLOOM_HASHES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % BLOOM_BITS)
    }

    /// Adds a name.
    pub fn insert(&mut self, kind: NameKind, name: &[u8]) {
        for b in Bloom::bits(kind, name) {
            self.0[(b / 64) as usize] |= 1 << (b % 64);
        }
    }

    /// False only if the name was never added.
    pub fn may_contain(&self, kind: NameKind, name: &[u8]) -> bool {
        Bloom::bits(kind, name).all(|b| self.0[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }
}

/// One sealed block, as queries see it before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Sequence number of the block's first event; the others follow without gaps.
    pub first_seq: u64,
    /// Events in the block (at least one).
    pub count: u32,
    /// Earliest event timestamp (ms).
    pub min_ts: i64,
    /// Latest event timestamp (ms).
    pub max_ts: i64,
    /// When the block was sealed (ms, the store's clock): what `max_age` counts from.
    pub sealed_ms: u64,
    /// Bit `1 << code` for every level code present (see [`super::query::level_code`]).
    pub levels: u8,
    /// [`FLAG_ZSTD`] or 0.
    pub flags: u8,
    /// Bytes of the meta section once decompressed.
    pub meta_raw_len: u32,
    /// Bytes of the meta section as stored.
    pub meta_len: u32,
    /// CRC-32 of the stored meta section.
    pub meta_crc: u32,
    /// Bytes of the lines section once decompressed.
    pub lines_raw_len: u32,
    /// Bytes of the lines section as stored.
    pub lines_len: u32,
    /// CRC-32 of the stored lines section.
    pub lines_crc: u32,
    /// Hosts and namespaces in the block.
    pub bloom: Bloom,
    /// Bytes of the block's text filter (`trigrams.rs`), stored right before the meta
    /// section; 0 when the block has none (version 1).
    pub filter_len: u32,
    /// CRC-32 of the text filter.
    pub filter_crc: u32,
}

impl Summary {
    /// Sequence number of the block's last event.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count.max(1)) - 1
    }

    /// Appends the fixed-size little-endian encoding ([`SUMMARY_LEN`] bytes; its first
    /// [`SUMMARY_LEN_V1`] bytes are the version 1 encoding).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.min_ts.to_le_bytes());
        out.extend_from_slice(&self.max_ts.to_le_bytes());
        out.extend_from_slice(&self.sealed_ms.to_le_bytes());
        out.extend_from_slice(&[self.levels, self.flags, 0, 0]);
        for v in [
            self.meta_raw_len,
            self.meta_len,
            self.meta_crc,
            self.lines_raw_len,
            self.lines_len,
            self.lines_crc,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for w in self.bloom.0 {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.filter_len.to_le_bytes());
        out.extend_from_slice(&self.filter_crc.to_le_bytes());
    }

    /// Inverse of [`Summary::encode`], reading either layout by its length
    /// ([`SUMMARY_LEN`], or [`SUMMARY_LEN_V1`]: no text filter); `None` for another length
    /// or impossible values.
    pub fn decode(b: &[u8]) -> Option<Summary> {
        if b.len() != SUMMARY_LEN && b.len() != SUMMARY_LEN_V1 {
            return None;
        }
        let mut r = Reader(b);
        let first_seq = r.u64()?;
        let count = r.u32()?;
        let min_ts = r.u64()? as i64;
        let max_ts = r.u64()? as i64;
        let sealed_ms = r.u64()?;
        let [levels, flags, _, _] = r.array::<4>()?;
        let mut s = Summary {
            first_seq,
            count,
            min_ts,
            max_ts,
            sealed_ms,
            levels,
            flags,
            meta_raw_len: r.u32()?,
            meta_len: r.u32()?,
            meta_crc: r.u32()?,
            lines_raw_len: r.u32()?,
            lines_len: r.u32()?,
            lines_crc: r.u32()?,
            bloom: Bloom::default(),
            filter_len: 0,
            filter_crc: 0,
        };
        for w in &mut s.bloom.0 {
            *w = r.u64()?;
        }
        if r.rest() > 0 {
            s.filter_len = r.u32()?;
            s.filter_crc = r.u32()?;
        }
        let sane = s.count > 0
            && s.min_ts <= s.max_ts
            && s.first_seq.checked_add(u64::from(s.count)).is_some()
            && s.flags & !FLAG_ZSTD == 0
            && (s.filter_len == 0 || trigrams::valid_len(s.filter_len as usize));
        sane.then_some(s)
    }
}

/// Reads little-endian values off the front of a slice; `None` past the end.
#[derive(Debug)]
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// Bytes left.
    pub fn rest(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Summary {
        let mut bloom = Bloom::default();
        bloom.insert(NameKind::Host, b"node-1");
        bloom.insert(NameKind::Namespace, b"shop");
        Summary {
            first_seq: 7,
            count: 3,
            min_ts: -5,
            max_ts: 1_795_341_600_123,
            sealed_ms: 99,
            levels: 0b101,
            flags: FLAG_ZSTD,
            meta_raw_len: 1,
            meta_len: 2,
            meta_crc: 3,
            lines_raw_len: 4,
            lines_len: 5,
            lines_crc: 6,
            bloom,
            filter_len: 64,
            filter_crc: 8,
        }
    }

    #[test]
    fn summaries_round_trip_and_reject_nonsense() {
        let s = example();
        let mut b = Vec::new();
        s.encode(&mut b);
        assert_eq!(b.len(), SUMMARY_LEN);
        assert_eq!(Summary::decode(&b), Some(s.clone()));
        assert_eq!(s.last_seq(), 9);
        assert_eq!(Summary::decode(&b[1..]), None);
        let mut zero = b.clone();
        zero[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Summary::decode(&zero), None, "no events");
        let mut flags = b.clone();
        flags[37] = 0x80;
        assert_eq!(Summary::decode(&flags), None, "unknown flag");
        let mut odd = b.clone();
        odd[SUMMARY_LEN_V1..SUMMARY_LEN_V1 + 4].copy_from_slice(&48u32.to_le_bytes());
        assert_eq!(Summary::decode(&odd), None, "impossible filter length");
    }

    #[test]
    fn version_1_summaries_read_without_a_text_filter() {
        let s = example();
        let mut b = Vec::new();
        s.encode(&mut b);
        let v1 = Summary::decode(&b[..SUMMARY_LEN_V1]).unwrap();
        assert_eq!((v1.filter_len, v1.filter_crc), (0, 0));
        assert_eq!(
            v1,
            Summary {
                filter_len: 0,
                filter_crc: 0,
                ..s
            }
        );
        assert_eq!(Summary::decode(&b[..SUMMARY_LEN_V1 + 4]), None);
    }

    #[test]
    fn bloom_has_no_false_negatives_and_tells_kinds_apart() {
        let s = example();
        assert!(s.bloom.may_contain(NameKind::Host, b"node-1"));
        assert!(s.bloom.may_contain(NameKind::Namespace, b"shop"));
        assert!(!s.bloom.may_contain(NameKind::Host, b"node-2"));
        let mut b = Bloom::default();
        for i in 0..200 {
            b.insert(NameKind::Host, format!("host-{i}").as_bytes());
        }
        assert!((0..200).all(|i| b.may_contain(NameKind::Host, format!("host-{i}").as_bytes())));
        let false_positives = (0..1000)
            .filter(|i| b.may_contain(NameKind::Namespace, format!("host-{i}").as_bytes()))
            .count();
        assert!(false_positives < 100, "{false_positives}");
    }
}
