//! The aggregator alone, as a real process behind real TLS on 127.0.0.1: every kind of
//! bad request is refused with the documented status, and the process keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use logferry_shared::codec::Codec;

use logferry_e2e::frames::{self, reseal, CODEC_OFFSET, VERSION_OFFSET};
use logferry_e2e::http::{self, metric, BodyMode};
use logferry_e2e::{sink, Aggregator, AggregatorOptions, TestDir, TOKEN};

const MAX_BODY: usize = 64 << 10;

fn assert_refused(answer: &http::Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {answer}");
    let json = answer
        .json
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: the answer is not JSON: {answer}"));
    assert!(
        json.get("error")
            .and_then(|e| e.as_str())
            .is_some_and(|e| !e.is_empty()),
        "{what}: no `error` in {answer}"
    );
    assert!(
        json.get("detail").is_some(),
        "{what}: no `detail` in {answer}"
    );
}

#[test]
fn refusals_are_answered_and_the_aggregator_keeps_serving() {
    let dir = TestDir::new().expect("test dir");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default().limits(MAX_BODY, 1 << 20))
        .expect("start aggregator");
    let client = http::client(&dir, false).expect("client");
    let url = agg.batch_url();
    let valid = frames::batch(
        "e2e-agent",
        "default",
        1,
        "node-1",
        "/var/log/app.log",
        &["first line", "second line", ""],
    )
    .expect("frame");
    let post = |token: Option<&str>, body: Vec<u8>| {
        http::post(&client, &url, token, body, BodyMode::Sized).expect("POST")
    };

    // Authentication comes first: a valid frame with a wrong or no token is refused.
    assert_refused(
        &post(Some("wrong-token"), valid.clone()),
        401,
        "wrong token",
    );
    assert_refused(&post(None, valid.clone()), 401, "missing token");
    let answer = client
        .post(&url)
        .header("authorization", format!("Basic {TOKEN}"))
        .body(valid.clone())
        .send()
        .expect("POST");
    assert_eq!(
        answer.status().as_u16(),
        401,
        "a token in a non-Bearer scheme"
    );

    // Malformed frames: 400.
    assert_refused(
        &post(Some(TOKEN), b"this is not a frame at all".to_vec()),
        400,
        "garbage body",
    );
    assert_refused(&post(Some(TOKEN), Vec::new()), 400, "empty body");
    assert_refused(
        &post(Some(TOKEN), valid[..valid.len() - 7].to_vec()),
        400,
        "truncated frame",
    );
    let mut corrupt = valid.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x55;
    assert_refused(
        &post(Some(TOKEN), corrupt),
        400,
        "flipped byte (CRC mismatch)",
    );
    let mut v9 = valid.clone();
    v9[VERSION_OFFSET] = 9;
    reseal(&mut v9);
    let answer = post(Some(TOKEN), v9);
    assert_refused(&answer, 400, "unsupported frame version");
    assert!(
        answer.text.contains("version"),
        "the detail should name the version: {answer}"
    );

    // Unknown codec with a valid CRC: 415.
    let mut codec7 = valid.clone();
    codec7[CODEC_OFFSET] = 7;
    reseal(&mut codec7);
    assert_refused(&post(Some(TOKEN), codec7), 415, "unknown codec id");

    // Too large: declared by Content-Length, streamed without a length, and a 1 KiB zstd
    // body that would inflate to 24 MiB behind a header claiming 1,000 bytes.
    let big = vec![b'x'; MAX_BODY + 1];
    assert_refused(
        &post(Some(TOKEN), big.clone()),
        413,
        "body over max_body_bytes (sized)",
    );
    let answer =
        http::post(&client, &url, Some(TOKEN), big, BodyMode::Streamed).expect("POST streamed");
    assert_refused(&answer, 413, "body over max_body_bytes (streamed)");
    for codec in [Codec::Zstd, Codec::Gzip] {
        let bomb = frames::bomb(codec).expect("bomb");
        assert!(bomb.len() < 1200, "the bomb frame is {} bytes", bomb.len());
        let what = format!("{} bomb", codec.name());
        assert_refused(&post(Some(TOKEN), bomb), 413, &what);
    }

    // Wrong method or path.
    let (status, _) = http::get(&client, &url).expect("GET");
    assert!(
        status == 404 || status == 405,
        "GET on the ingest path answered {status}"
    );
    let answer = http::post(
        &client,
        &format!("{}/v2/batch", agg.ingest_url()),
        Some(TOKEN),
        valid.clone(),
        BodyMode::Sized,
    )
    .expect("POST");
    assert_eq!(answer.status, 404, "POST to an unknown path: {answer}");

    // None of that wrote anything.
    assert_eq!(
        agg.events().expect("read sink").len(),
        0,
        "refused requests reached the sink"
    );

    // A valid batch is accepted, and the same batch again is a duplicate, written once.
    let answer = post(Some(TOKEN), valid.clone());
    assert_eq!(answer.status, 200, "valid batch: {answer}");
    assert_eq!(answer.field("status"), Some("accepted"), "{answer}");
    assert_eq!(
        answer.json.as_ref().and_then(|j| j["events"].as_u64()),
        Some(3),
        "{answer}"
    );
    let answer = post(Some(TOKEN), valid.clone());
    assert_eq!(answer.status, 200, "repeated batch: {answer}");
    assert_eq!(answer.field("status"), Some("duplicate"), "{answer}");
    // The same seq from another stream is a different batch.
    let other = frames::batch(
        "e2e-agent",
        "other-stream",
        1,
        "node-1",
        "/var/log/b.log",
        &["other stream"],
    )
    .expect("frame");
    let answer = post(Some(TOKEN), other);
    assert_eq!(answer.field("status"), Some("accepted"), "{answer}");

    let events = agg.events_once(4).expect("read sink");
    let counts = sink::message_counts(&events);
    assert_eq!(events.len(), 4, "sink holds {events:#?}");
    for m in ["first line", "second line", "", "other stream"] {
        assert_eq!(
            counts.get(m),
            Some(&1),
            "{m:?} should be in the sink exactly once: {counts:?}"
        );
    }
    let first = events
        .iter()
        .find(|e| e["message"] == "first line")
        .expect("first line event");
    assert_eq!(sink::source_path(first), Some("/var/log/app.log"));
    assert_eq!(first["host"], "node-1");
    assert_eq!(first["source"]["type"], "file");
    for key in ["timestamp", "observed_timestamp", "format", "fields"] {
        assert!(first.get(key).is_some(), "event lacks {key}: {first}");
    }

    // Still up, and the refusals were counted.
    assert!(
        agg.is_running(),
        "the aggregator exited\n{}",
        agg.process.log_tail()
    );
    assert_eq!(agg.healthz(&client).expect("healthz"), 200);
    let m = agg.metrics(&client).expect("metrics");
    assert_eq!(
        metric(&m, "logferry_ingest_auth_failures_total"),
        Some(3.0),
        "metrics:\n{m}"
    );
    assert_eq!(
        metric(&m, "logferry_ingest_batches_total{result=\"accepted\"}"),
        Some(2.0),
        "metrics:\n{m}"
    );
    assert_eq!(
        metric(&m, "logferry_ingest_batches_total{result=\"duplicate\"}"),
        Some(1.0),
        "metrics:\n{m}"
    );
    // 3 auth + 5 malformed + 1 codec + 4 too large.
    assert_eq!(
        metric(&m, "logferry_ingest_batches_total{result=\"rejected\"}"),
        Some(13.0),
        "metrics:\n{m}"
    );
    assert_eq!(
        metric(&m, "logferry_ingest_events_total"),
        Some(4.0),
        "metrics:\n{m}"
    );
    let (status, _) = http::get(&client, &agg.admin_url("/nope")).expect("GET");
    assert_eq!(status, 404);

    agg.stop().expect("aggregator exits 0 on SIGTERM");
    // What was acknowledged is still there after the shutdown.
    assert_eq!(agg.events().expect("read sink").len(), 4);
}

#[test]
fn mtls_requires_a_client_certificate() {
    let dir = TestDir::new().expect("test dir");
    let mut agg =
        Aggregator::start(&dir, AggregatorOptions::default().mtls()).expect("start aggregator");
    let frame = frames::batch(
        "mtls-agent",
        "default",
        1,
        "h",
        "/var/log/m.log",
        &["with a certificate"],
    )
    .expect("frame");

    let anonymous = http::client(&dir, false).expect("client");
    let refused = http::post(
        &anonymous,
        &agg.batch_url(),
        Some(TOKEN),
        frame.clone(),
        BodyMode::Sized,
    );
    // The server refuses in the handshake, not with an HTTP status. With TLS 1.3 the
    // client learns it after sending its request: it reads either the
    // `certificate_required` alert or, if the server has already closed, a closed
    // connection; either way the request fails.
    if let Ok(answer) = refused {
        panic!("a client without a certificate completed a request: {answer}");
    }

    let with_cert = http::client(&dir, true).expect("client");
    let answer = http::post(
        &with_cert,
        &agg.batch_url(),
        Some(TOKEN),
        frame,
        BodyMode::Sized,
    )
    .expect("POST with cert");
    assert_eq!(answer.status, 200, "{answer}");
    assert_eq!(answer.field("status"), Some("accepted"), "{answer}");
    // The certificate does not replace the token when tokens are configured.
    let frame2 = frames::batch(
        "mtls-agent",
        "default",
        2,
        "h",
        "/var/log/m.log",
        &["no token"],
    )
    .expect("frame");
    let answer =
        http::post(&with_cert, &agg.batch_url(), None, frame2, BodyMode::Sized).expect("POST");
    assert_refused(&answer, 401, "certificate but no token");

    let messages: Vec<String> = agg
        .events_once(1)
        .expect("read sink")
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(messages, vec!["with a certificate".to_owned()]);
    assert_eq!(agg.healthz(&anonymous).expect("healthz"), 200);
    agg.stop().expect("aggregator exits 0 on SIGTERM");
}

#[test]
fn garbage_on_the_tls_port_does_not_hurt() {
    let dir = TestDir::new().expect("test dir");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let client = http::client(&dir, false).expect("client");

    // Plain HTTP to the TLS port, random bytes, a truncated ClientHello, and a connection
    // that is opened and dropped at once.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let payloads: Vec<Vec<u8>> = vec![
        b"GET /v1/batch HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        junk,
        vec![
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
        Vec::new(),
    ];
    for payload in &payloads {
        let mut tcp = TcpStream::connect(agg.ingest_addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        if !payload.is_empty() {
            // The server may hang up before it has read everything; that is fine.
            let _ = tcp.write_all(payload);
            let _ = tcp.flush();
            if payload.len() < 32 {
                // A truncated handshake: close our side and let the server notice.
                let _ = tcp.shutdown(std::net::Shutdown::Write);
            }
            let mut buf = [0u8; 512];
            let _ = tcp.read(&mut buf);
        }
    }
    // Several half-open handshakes at once, left hanging while a real client goes through.
    let hanging: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(agg.ingest_addr).expect("connect");
            let _ = s.write_all(&[0x16, 0x03, 0x01]);
            s
        })
        .collect();
    let frame = frames::batch(
        "survivor",
        "default",
        1,
        "h",
        "/var/log/s.log",
        &["still serving"],
    )
    .expect("frame");
    let answer = http::post(
        &client,
        &agg.batch_url(),
        Some(TOKEN),
        frame,
        BodyMode::Sized,
    )
    .expect("POST after garbage");
    assert_eq!(answer.field("status"), Some("accepted"), "{answer}");
    drop(hanging);

    assert!(
        agg.is_running(),
        "the aggregator died\n{}",
        agg.process.log_tail()
    );
    assert_eq!(agg.healthz(&client).expect("healthz"), 200);
    agg.stop().expect("aggregator exits 0 on SIGTERM");
}

#[test]
fn concurrent_copies_of_a_batch_are_written_once() {
    let dir = TestDir::new().expect("test dir");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let client = http::client(&dir, false).expect("client");
    let url = agg.batch_url();
    // Eight senders at once with the same (agent, stream, seq), twice over: they may land
    // in one group commit of the writer or in several.
    for seq in [1u64, 2] {
        let line = format!("sent eight times, seq {seq}");
        let frame =
            frames::batch("racer", "default", seq, "h", "/var/log/r.log", &[&line]).expect("frame");
        let barrier = std::sync::Barrier::new(8);
        let statuses: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let a =
                            http::post(&client, &url, Some(TOKEN), frame.clone(), BodyMode::Sized)
                                .expect("POST");
                        assert_eq!(a.status, 200, "{a}");
                        a.field("status").unwrap_or("?").to_owned()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("sender thread"))
                .collect()
        });
        let accepted = statuses.iter().filter(|s| *s == "accepted").count();
        let duplicate = statuses.iter().filter(|s| *s == "duplicate").count();
        assert_eq!(
            (accepted, duplicate),
            (1, 7),
            "answers for seq {seq}: {statuses:?}"
        );
    }
    let messages: Vec<String> = agg
        .events_once(2)
        .expect("read sink")
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        messages,
        vec![
            "sent eight times, seq 1".to_owned(),
            "sent eight times, seq 2".to_owned()
        ]
    );
    agg.stop().expect("aggregator exits 0 on SIGTERM");
}

/// A client that stops in the middle of its TLS handshake must not hold up a SIGTERM:
/// handshakes in progress are abandoned at shutdown instead of waiting for their timeout.
#[test]
fn sigterm_is_not_held_up_by_a_stalled_handshake() {
    let dir = TestDir::new().expect("test dir");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let client = http::client(&dir, false).expect("client");
    // The first three bytes of a TLS record header, then silence.
    let mut stalled = TcpStream::connect(agg.ingest_addr).expect("connect");
    stalled.write_all(&[0x16, 0x03, 0x01]).expect("write");
    // Make sure the server has accepted it: a full request after it goes through.
    let frame = frames::batch("s", "default", 1, "h", "/var/log/s.log", &["x"]).expect("frame");
    let answer = http::post(
        &client,
        &agg.batch_url(),
        Some(TOKEN),
        frame,
        BodyMode::Sized,
    )
    .expect("POST");
    assert_eq!(answer.status, 200, "{answer}");

    let started = std::time::Instant::now();
    agg.stop().expect("aggregator exits 0 on SIGTERM");
    let took = started.elapsed();
    drop(stalled);
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} with one stalled handshake open"
    );
}
