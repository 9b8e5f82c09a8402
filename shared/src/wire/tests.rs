use super::*;
use crate::codec::{self, Compressor};
use proptest::prelude::*;

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_frame_bytes: 1 << 20,
        max_raw_bytes: 4 << 20,
    }
}

fn sample_frame(codec: Codec) -> Vec<u8> {
    let mut b = BatchBuilder::new("node-1", 1_700_000_000_000, 1024);
    let app = b.add_source("/var/log/app.log", &[]);
    let pod = b.add_source(
        "/var/log/pods/shop_api-7d9_uid/api/0.log",
        &[("k8s.namespace", "shop"), ("k8s.pod", "api-7d9")],
    );
    b.push(
        app,
        1_700_000_000_000,
        0,
        b"{\"level\":\"error\",\"msg\":\"db timeout\"}",
    );
    b.push(pod, 1_700_000_000_005, FLAG_NO_NEWLINE, b"plain line");
    b.push(
        app,
        1_700_000_000_009,
        FLAG_INVALID_UTF8 | FLAG_TRUNCATED,
        b"\xff\xfe bytes",
    );
    b.push(app, 1_700_000_000_010, 0, b"");
    let mut c = Compressor::new(codec, 3).unwrap();
    b.seal("agent-a", "default", 42, &mut c).unwrap()
}

fn check_sample(decoded: &DecodedFrame) {
    assert_eq!(decoded.header.agent_id, "agent-a");
    assert_eq!(decoded.header.stream, "default");
    assert_eq!(decoded.header.seq, 42);
    assert_eq!(decoded.header.record_count, 4);
    let batch = decoded.batch().unwrap();
    assert_eq!(batch.host, "node-1");
    assert_eq!(batch.sources.len(), 2);
    assert_eq!(
        batch.sources[1].attrs,
        vec![("k8s.namespace", "shop"), ("k8s.pod", "api-7d9")]
    );
    let lines: Vec<&[u8]> = batch.records.iter().map(|r| r.line).collect();
    assert_eq!(
        lines,
        vec![
            &b"{\"level\":\"error\",\"msg\":\"db timeout\"}"[..],
            b"plain line",
            b"\xff\xfe bytes",
            b""
        ]
    );
    assert_eq!(batch.records[1].source, 1);
    assert_eq!(batch.records[1].observed_ms, 1_700_000_000_005);
    assert_eq!(batch.records[1].flags, FLAG_NO_NEWLINE);
    assert_eq!(batch.records[2].flags, FLAG_INVALID_UTF8 | FLAG_TRUNCATED);
}

#[test]
fn round_trip_every_codec() {
    for codec in [Codec::None, Codec::Gzip, Codec::Zstd] {
        let frame = sample_frame(codec);
        let decoded = decode_frame(&frame, &limits()).unwrap();
        assert_eq!(decoded.header.codec, codec);
        check_sample(&decoded);
    }
}

#[test]
fn a_builder_in_a_used_buffer_writes_the_same_frame_as_a_fresh_one() {
    let mut c = Compressor::new(Codec::Zstd, 1).unwrap();
    let build = |b: &mut BatchBuilder| {
        let s = b.add_source("/var/log/app.log", &[("k", "v")]);
        b.push(s, 1_700_000_000_001, 0, b"first line");
        b.push(s, 1_700_000_000_002, FLAG_NO_NEWLINE, b"second");
    };
    let mut fresh = BatchBuilder::new("node-1", 1_700_000_000_000, 64);
    build(&mut fresh);
    let (expected, _) = fresh
        .seal_with_body("agent-a", "default", 7, &mut c)
        .unwrap();
    // A buffer holding the body of an earlier, larger batch.
    let mut earlier = BatchBuilder::new("another-host", 5, 64);
    let s = earlier.add_source("/other", &[]);
    for _ in 0..100 {
        earlier.push(s, 6, 0, b"an earlier batch's line");
    }
    let (_, used) = earlier
        .seal_with_body("agent-a", "default", 6, &mut c)
        .unwrap();
    let mut reused = BatchBuilder::with_buffer(used, "node-1", 1_700_000_000_000, 64);
    build(&mut reused);
    let (frame, _) = reused
        .seal_with_body("agent-a", "default", 7, &mut c)
        .unwrap();
    assert_eq!(frame, expected);
}

#[test]
fn every_flipped_byte_is_an_error_or_the_original() {
    for codec in [Codec::None, Codec::Zstd, Codec::Gzip] {
        let frame = sample_frame(codec);
        let mut accepted_mutants = 0;
        for i in 0..frame.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = frame.clone();
                bad[i] ^= mask;
                if let Ok(decoded) = decode_frame(&bad, &limits()) {
                    // Only acceptable if it still decodes to exactly the original batch.
                    check_sample(&decoded);
                    accepted_mutants += 1;
                }
            }
        }
        // CRC-32 catches every single-byte change, so nothing should get through at all.
        assert_eq!(accepted_mutants, 0, "{codec:?}");
    }
}

#[test]
fn every_truncation_is_an_error() {
    let frame = sample_frame(Codec::Zstd);
    for len in 0..frame.len() {
        assert!(
            decode_frame(&frame[..len], &limits()).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    let mut longer = frame.clone();
    longer.push(0);
    assert!(matches!(
        decode_frame(&longer, &limits()),
        Err(WireError::TrailingBytes(1))
    ));
}

/// Rewrites the CRC after a deliberate header change, so the check under test is reached.
fn reseal(frame: &mut [u8]) {
    let n = frame.len() - TRAILER_LEN;
    let crc = crc32fast::hash(&frame[..n]);
    frame[n..].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn unknown_version_codec_and_flags_are_typed_errors() {
    let mut f = sample_frame(Codec::Zstd);
    f[4] = 9;
    reseal(&mut f);
    assert!(matches!(
        decode_frame(&f, &limits()),
        Err(WireError::UnsupportedVersion(9))
    ));

    let mut f = sample_frame(Codec::Zstd);
    f[5] = 7;
    reseal(&mut f);
    let err = decode_frame(&f, &limits()).unwrap_err();
    assert!(matches!(err, WireError::UnknownCodec(7)));
    assert_eq!(err.status_class(), RefusalClass::UnsupportedMedia);

    let mut f = sample_frame(Codec::Zstd);
    f[7] = 1;
    reseal(&mut f);
    assert!(matches!(
        decode_frame(&f, &limits()),
        Err(WireError::UnsupportedFlags(1))
    ));

    let mut f = sample_frame(Codec::Zstd);
    f[0] = b'X';
    assert!(matches!(
        decode_frame(&f, &limits()),
        Err(WireError::BadMagic)
    ));
}

/// A frame with the given ids around an empty batch, written byte by byte: the encoder
/// refuses ids over [`MAX_ID_LEN`], so it cannot make one.
fn frame_with_ids(agent: &str, stream: &str) -> Vec<u8> {
    let body = [1, b'h', 0, 0]; // host "h", base time 0, no records, no sources
    let mut f = MAGIC.to_vec();
    f.extend_from_slice(&[VERSION, Codec::None.id(), 0, 0]);
    f.extend_from_slice(&1u64.to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&[agent.len() as u8, stream.len() as u8]);
    f.extend_from_slice(agent.as_bytes());
    f.extend_from_slice(stream.as_bytes());
    f.extend_from_slice(&body);
    let crc = crc32fast::hash(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

/// docs/wire.md: ids are 1..=128 bytes. The decoder once took up to 255, which the
/// encoder cannot write back (found by the `decode_frame` fuzz check's round trip).
#[test]
fn ids_longer_than_the_limit_are_refused() {
    let ok = frame_with_ids(&"a".repeat(MAX_ID_LEN), &"s".repeat(MAX_ID_LEN));
    assert!(decode_frame(&ok, &limits()).is_ok());
    fuzz_decode(&ok);
    for (agent, stream) in [
        ("a".repeat(MAX_ID_LEN + 1), "s".to_owned()),
        ("a".to_owned(), "s".repeat(255)),
    ] {
        let f = frame_with_ids(&agent, &stream);
        assert!(
            matches!(decode_frame(&f, &limits()), Err(WireError::BadHeader(_))),
            "ids of {} and {} bytes accepted",
            agent.len(),
            stream.len()
        );
        fuzz_decode(&f);
    }
}

#[test]
fn stderr_flag_round_trips_and_unknown_record_flags_are_refused() {
    let mut b = BatchBuilder::new("node-1", 1_700_000_000_000, 64);
    let src = b.add_source("/var/log/pods/a_b_c/d/0.log", &[]);
    b.push(
        src,
        1_700_000_000_000,
        FLAG_STDERR | FLAG_TRUNCATED,
        b"zzzz",
    );
    let mut c = Compressor::new(Codec::None, 0).unwrap();
    let frame = b.seal("agent-a", "default", 1, &mut c).unwrap();
    let decoded = decode_frame(&frame, &limits()).unwrap();
    let batch = decoded.batch().unwrap();
    assert_eq!(batch.records[0].flags, FLAG_STDERR | FLAG_TRUNCATED);

    // Set a flag bit no version knows (bit 4) in the uncompressed body.
    let at = frame
        .windows(6)
        .position(|w| w == [FLAG_STDERR | FLAG_TRUNCATED, 4, b'z', b'z', b'z', b'z'])
        .unwrap();
    let mut bad = frame.clone();
    bad[at] |= 0b0001_0000;
    reseal(&mut bad);
    let decoded = decode_frame(&bad, &limits()).unwrap();
    assert!(matches!(
        decoded.batch(),
        Err(WireError::BadBody("unknown record flags"))
    ));
}

#[test]
fn oversized_frames_and_declared_bodies_are_refused() {
    let frame = sample_frame(Codec::None);
    let tight = DecodeLimits {
        max_frame_bytes: frame.len() - 1,
        max_raw_bytes: 1 << 20,
    };
    let err = decode_frame(&frame, &tight).unwrap_err();
    assert_eq!(err.status_class(), RefusalClass::TooLarge);

    let mut f = sample_frame(Codec::Zstd);
    f[20..24].copy_from_slice(&(64u32 << 20).to_be_bytes());
    reseal(&mut f);
    let err = decode_frame(&f, &limits()).unwrap_err();
    assert!(matches!(
        err,
        WireError::TooLarge {
            what: "declared body",
            ..
        }
    ));
    assert_eq!(err.status_class(), RefusalClass::TooLarge);
}

/// A frame whose header states `raw_len` but whose body is `packed` as is.
fn frame_with_body(codec: Codec, raw_len: u32, packed: &[u8]) -> Vec<u8> {
    let mut none = Compressor::new(Codec::None, 0).unwrap();
    let mut f = encode_frame("agent-a", "default", 1, 1, packed, &mut none).unwrap();
    f[5] = codec.id();
    f[20..24].copy_from_slice(&raw_len.to_be_bytes());
    reseal(&mut f);
    f
}

#[test]
fn one_kib_bomb_is_refused_not_inflated() {
    for codec in [Codec::Zstd, Codec::Gzip] {
        // Tens of MiB of zeros packed into at most 1 KiB (gzip reaches ~1030:1, so it gets
        // a smaller input to fit the same 1 KiB).
        let size = if codec == Codec::Zstd {
            24 << 20
        } else {
            960 << 10
        };
        let mut packed = Vec::new();
        codec::compress(codec, 19, &vec![0u8; size], &mut packed).unwrap();
        assert!(
            packed.len() <= 1024,
            "{codec:?} bomb is {} bytes",
            packed.len()
        );
        // The header lies: it declares 1,000 bytes, within every limit.
        let f = frame_with_body(codec, 1000, &packed);
        let err = decode_frame(&f, &limits()).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Decompress(DecompressError::TooLarge { cap: 1000 })
            ),
            "{codec:?}: {err:?}"
        );
        assert_eq!(err.status_class(), RefusalClass::TooLarge);
    }
}

#[test]
fn body_shorter_than_declared_is_refused() {
    let mut packed = Vec::new();
    codec::compress(Codec::Zstd, 3, b"short", &mut packed).unwrap();
    let f = frame_with_body(Codec::Zstd, 100, &packed);
    assert!(matches!(
        decode_frame(&f, &limits()),
        Err(WireError::BadBody(_))
    ));
}

#[test]
fn body_lies_are_caught_by_the_parser() {
    // A record count far beyond what the body can hold.
    let mut b = BatchBuilder::new("h", 0, 64);
    let s = b.add_source("/x", &[]);
    b.push(s, 0, 0, b"line");
    let mut none = Compressor::new(Codec::None, 0).unwrap();
    let mut f = b.seal("a", "s", 1, &mut none).unwrap();
    f[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    reseal(&mut f);
    let decoded = decode_frame(&f, &limits()).unwrap();
    assert!(decoded.batch().is_err());

    // A record pointing at a source that does not exist.
    let mut b = BatchBuilder::new("h", 0, 64);
    b.push(3, 0, 0, b"line");
    let f = b.seal("a", "s", 1, &mut none).unwrap();
    let decoded = decode_frame(&f, &limits()).unwrap();
    assert!(matches!(decoded.batch(), Err(WireError::BadBody(_))));
}

#[test]
fn varint_round_trips_at_the_edges() {
    for v in [
        0u64,
        1,
        127,
        128,
        16383,
        16384,
        u64::from(u32::MAX),
        u64::MAX - 1,
        u64::MAX,
    ] {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        let mut r = Reader { buf: &out, pos: 0 };
        assert_eq!(r.varint().unwrap(), v);
        assert_eq!(r.remaining(), 0);
    }
    let mut r = Reader {
        buf: &[0xff; 11],
        pos: 0,
    };
    assert!(r.varint().is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_decode(&data);
    }

    #[test]
    fn mutated_frames_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        reseal_crc in any::<bool>(),
    ) {
        let mut f = sample_frame(Codec::Zstd);
        for (pos, byte) in edits {
            let i = pos % f.len();
            f[i] = byte;
        }
        if reseal_crc && f.len() >= TRAILER_LEN {
            reseal(&mut f);
        }
        fuzz_decode(&f);
    }

    #[test]
    fn any_batch_round_trips(
        lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..50),
        host in "[a-z0-9.-]{0,40}",
        seq in any::<u64>(),
    ) {
        let mut b = BatchBuilder::new(&host, 5, 256);
        let s = b.add_source("/p", &[("k", "v")]);
        for (i, l) in lines.iter().enumerate() {
            b.push(s, 5 + i as u64, 0, l);
        }
        let mut c = Compressor::new(Codec::Zstd, 1).unwrap();
        let f = b.seal("agent", "stream", seq, &mut c).unwrap();
        let d = decode_frame(&f, &DecodeLimits::default()).unwrap();
        let batch = d.batch().unwrap();
        prop_assert_eq!(d.header.seq, seq);
        prop_assert_eq!(batch.host, host.as_str());
        let got: Vec<Vec<u8>> = batch.records.iter().map(|r| r.line.to_vec()).collect();
        prop_assert_eq!(got, lines);
    }
}
