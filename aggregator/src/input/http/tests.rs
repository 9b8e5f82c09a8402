//! The http input: the decoder on its own, then the listener on 127.0.0.1 with a real
//! inbox, spoken to by reqwest and by raw sockets (slow and greedy clients).

use std::time::Duration;

use logferry_shared::codec::{self, Codec};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::decode::{self, BadRecord, BodyKind, Stop};
use crate::input::web::testkit::{client, requests, Harness};

fn decoded(kind: BodyKind, body: &str) -> Result<Vec<String>, BadRecord> {
    let mut out = Vec::new();
    decode::records(kind, body.as_bytes(), |l| {
        out.push(String::from_utf8(l.to_vec()).unwrap());
        Ok::<(), ()>(())
    })
    .map_err(|e| match e {
        Stop::Bad(b) => b,
        Stop::Emit(()) => unreachable!(),
    })?;
    Ok(out)
}

#[test]
fn content_types_choose_the_framing() {
    use BodyKind::*;
    for (ct, kind) in [
        ("application/json", Some(Json)),
        ("Application/JSON; charset=utf-8", Some(Json)),
        ("application/x-ndjson", Some(Ndjson)),
        ("application/jsonl", Some(Ndjson)),
        ("text/plain", None),
        ("application/x-www-form-urlencoded", None),
        ("", None),
    ] {
        assert_eq!(BodyKind::from_content_type(ct), kind, "{ct}");
    }
}

#[test]
fn objects_arrays_and_ndjson_become_one_line_per_record() {
    let one = decoded(BodyKind::Json, " {\"msg\" : \"a b\",\n \"n\": [1, 2]}\n").unwrap();
    assert_eq!(one, [r#"{"msg":"a b","n":[1,2]}"#]);
    let many = decoded(
        BodyKind::Json,
        "[\n {\"msg\":\"x\"},\n {\"msg\":\"say \\\"hi\\\" \\\\\", \"z\":{\"k\" :\n 1}}\n]",
    )
    .unwrap();
    assert_eq!(
        many,
        [r#"{"msg":"x"}"#, r#"{"msg":"say \"hi\" \\","z":{"k":1}}"#]
    );
    assert_eq!(decoded(BodyKind::Json, "[]").unwrap(), Vec::<String>::new());
    let nd = decoded(BodyKind::Ndjson, "{\"a\":1}\r\n\n  \n{\"b\": 2}\n{\"c\":3}").unwrap();
    assert_eq!(nd, [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
}

#[test]
fn the_first_bad_record_is_named_with_its_line() {
    let bad = decoded(BodyKind::Json, "[{\"a\":1},\n{\"b\":2},\n\"text\",\n{}]").unwrap_err();
    assert_eq!((bad.record, bad.line), (3, 3), "{bad}");
    assert!(bad.reason.contains("not a string"), "{bad}");
    let bad = decoded(BodyKind::Json, "[{\"a\":1},\n{\"b\":2,,}]").unwrap_err();
    assert_eq!((bad.record, bad.line), (2, 2), "{bad}");
    assert!(bad.column.is_some(), "{bad}");
    let bad = decoded(BodyKind::Json, "{\"a\":1} trailing").unwrap_err();
    assert_eq!(bad.record, 1, "{bad}");
    let bad = decoded(BodyKind::Json, "42").unwrap_err();
    assert!(bad.reason.contains("a number"), "{bad}");
    let bad = decoded(
        BodyKind::Ndjson,
        "{\"a\":1}\n\n{\"b\":2}\n{oops}\n{\"c\":3}",
    )
    .unwrap_err();
    assert_eq!((bad.record, bad.line), (3, 4), "{bad}");
    let bad = decoded(BodyKind::Ndjson, "{\"a\":1}\n[1]\n").unwrap_err();
    assert_eq!((bad.record, bad.line), (2, 2), "{bad}");
    assert!(bad.to_string().starts_with("record 2 (line 2"), "{bad}");
}

const TOKEN: &str = "s3cret-token";

fn config(extra: &str) -> String {
    format!("type = \"http\"\nname = \"web\"\n{extra}\n[[tokens]]\ntoken = \"{TOKEN}\"\n")
}

async fn post(
    h: &Harness,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let client = client();
    let mut req = client
        .post(h.url("/v1/logs"))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

fn packed(c: Codec, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    codec::compress(c, 3, text.as_bytes(), &mut out).unwrap();
    out
}

#[tokio::test]
async fn every_framing_and_encoding_is_stored_before_the_answer() {
    let mut h = Harness::start(&config(""), 1 << 30).await;
    let cases: Vec<(&str, Option<&str>, Vec<u8>, usize)> = vec![
        ("application/json", None, br#"{"msg":"one"}"#.to_vec(), 1),
        (
            "application/json",
            None,
            br#"[{"msg":"two"},{"msg":"three"}]"#.to_vec(),
            2,
        ),
        (
            "application/x-ndjson",
            None,
            b"{\"msg\":\"four\"}\n{\"msg\":\"five\"}\n".to_vec(),
            2,
        ),
        (
            "application/x-ndjson",
            Some("gzip"),
            packed(Codec::Gzip, "{\"msg\":\"six\"}\n{\"msg\":\"seven\"}"),
            2,
        ),
        (
            "application/json",
            Some("zstd"),
            packed(Codec::Zstd, r#"[{"msg":"eight"}]"#),
            1,
        ),
    ];
    let mut total = 0;
    for (ct, enc, body, n) in cases {
        let (status, answer, _) = post(&h, ct, enc, body).await;
        assert_eq!(status, StatusCode::OK, "{ct} {enc:?}: {answer}");
        assert_eq!(answer["events"], n, "{answer}");
        total += n;
        // Durable before the answer: the inbox holds them already.
        assert_eq!(h.records().len(), total);
    }
    let recs = h.records();
    let msgs: Vec<String> = recs
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.line).unwrap()["msg"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        msgs,
        ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    );
    let r = &recs[0];
    assert_eq!(r.path, "http://127.0.0.1/web");
    assert!(
        r.attrs.contains(&("source.type".into(), "http".into())),
        "{r:?}"
    );
    assert!(
        r.attrs.contains(&("host".into(), "127.0.0.1".into())),
        "{r:?}"
    );
    h.wait_metric(&requests("web", "accepted"), 5.0).await;
    h.wait_metric("logferry_input_messages_total{input=\"web\"}", 8.0)
        .await;
    h.stop().await;
}

#[tokio::test]
async fn refusals_store_nothing_and_are_counted() {
    let mut h = Harness::start(
        &config("max_body_bytes = 4096\nmax_decompressed_bytes = 65536"),
        1 << 30,
    )
    .await;
    let client = client();
    let url = h.url("/v1/logs");
    // No token, a wrong one.
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client
        .post(&url)
        .bearer_auth("nope")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A bad record refuses the whole request and says which.
    let (status, answer, _) = post(
        &h,
        "application/x-ndjson",
        None,
        b"{\"msg\":\"ok\"}\n{\"msg\":\"ok too\"}\nnot json\n".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["detail"]["record"], 3, "{answer}");
    assert_eq!(answer["detail"]["line"], 3, "{answer}");
    // Unsupported types and encodings.
    let (status, answer, _) = post(&h, "text/plain", None, b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    let (status, _, _) = post(&h, "application/json", Some("br"), b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Too large as sent (declared length, and streamed without one), and a zip bomb.
    let big = format!("[{}]", vec![r#"{"msg":"padding padding"}"#; 400].join(","));
    let (status, _, _) = post(&h, "application/json", None, big.clone().into_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let chunks: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    let r = client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(
            futures_util::stream::iter(chunks),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let bomb = packed(
        Codec::Gzip,
        &format!("{{\"msg\":\"{}\"}}", "a".repeat(2 << 20)),
    );
    assert!(bomb.len() < 4096, "the bomb is {} bytes", bomb.len());
    let (status, answer, _) = post(&h, "application/json", Some("gzip"), bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    // Corrupt gzip; other paths.
    let (status, _, _) = post(&h, "application/json", Some("gzip"), b"not gzip".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let r = client.post(h.url("/v1/other")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    assert!(h.records().is_empty(), "{:?}", h.records());
    h.wait_metric(&requests("web", "unauthorized"), 2.0).await;
    h.wait_metric(&requests("web", "bad_request"), 2.0).await;
    h.wait_metric(&requests("web", "unsupported_media_type"), 2.0)
        .await;
    h.wait_metric(&requests("web", "too_large"), 3.0).await;
    h.wait_metric(&requests("web", "not_found"), 1.0).await;
    // Still serving.
    let (status, _, _) = post(&h, "application/json", None, br#"{"msg":"fine"}"#.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.records().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_full_inbox_answers_429_with_retry_after() {
    // The first batch is always taken; after it the inbox is over its 1-byte limit.
    let mut h = Harness::start(&config(""), 1).await;
    let (status, _, _) = post(&h, "application/json", None, br#"{"msg":"first"}"#.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        let (status, answer, headers) = post(
            &h,
            "application/json",
            None,
            br#"{"msg":"second"}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
        assert_eq!(headers.get("retry-after").unwrap(), "1");
    }
    assert_eq!(h.records().len(), 1);
    h.wait_metric(&requests("web", "throttled"), 3.0).await;
    h.stop().await;
}

/// Reads from `s` until it is closed; fails if that takes longer than `limit`. Returns
/// what was read.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "still open after {limit:?}; read {got:?}");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let mut h = Harness::start(
        &config("header_timeout = \"300ms\"\nbody_timeout = \"300ms\""),
        1 << 30,
    )
    .await;
    // Headers never finished: closed after header_timeout.
    let mut slow = TcpStream::connect(h.addr()).await.unwrap();
    slow.write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_until_closed(&mut slow, Duration::from_secs(5)).await;
    // Body never finished: 408.
    let mut slow = TcpStream::connect(h.addr()).await.unwrap();
    let head = format!("POST /v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"msg\":");
    slow.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    h.wait_metric(&requests("web", "timeout"), 1.0).await;
    h.wait_metric(
        "logferry_input_closed_connections_total{input=\"web\",reason=\"slow_client\"}",
        1.0,
    )
    .await;
    assert!(h.records().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_at_once() {
    let mut h = Harness::start(&config("max_connections = 2"), 1 << 30).await;
    // Two connections held open (header_timeout is 10s); a third is closed at once.
    let _a = TcpStream::connect(h.addr()).await.unwrap();
    let _b = TcpStream::connect(h.addr()).await.unwrap();
    h.wait_metric("logferry_input_open_connections{input=\"web\"}", 2.0)
        .await;
    let mut third = TcpStream::connect(h.addr()).await.unwrap();
    read_until_closed(&mut third, Duration::from_secs(5)).await;
    h.wait_metric(
        "logferry_input_connections_total{input=\"web\",result=\"refused\"}",
        1.0,
    )
    .await;
    assert!(h.records().is_empty());
    h.stop().await;
}

#[test]
fn config_errors_name_the_key() {
    let err = |toml: &str| -> String {
        match toml::from_str::<crate::input::InputConfig>(toml) {
            Err(e) => e.to_string(),
            Ok(cfg) => crate::input::validate(&[cfg], 16 << 20)
                .expect_err("an invalid config")
                .to_string(),
        }
    };
    assert!(err("type = \"http\"").contains("listen"));
    let base = "type = \"http\"\nlisten = \"127.0.0.1:0\"\n";
    assert!(err(&format!("{base}max_body = 1")).contains("max_body"));
    let e = err(&format!(
        "{base}[[tokens]]\ntoken = \"a\"\ntoken_env = \"B\""
    ));
    assert!(e.contains("inputs[0].tokens[0].token"), "{e}");
    let e = err(&format!("{base}[[tokens]]\ntoken = \" \""));
    assert!(e.contains("inputs[0].tokens[0].token"), "{e}");
    let e = err(&format!("{base}max_decompressed_bytes = 16777216"));
    assert!(
        e.contains("inputs[0].max_decompressed_bytes") && e.contains("ingest.max_body_bytes"),
        "{e}"
    );
    let e = err(&format!("{base}header_timeout = \"1ms\""));
    assert!(e.contains("inputs[0].header_timeout"), "{e}");
    let e = err(&format!("{base}max_connections = 0"));
    assert!(e.contains("inputs[0].max_connections"), "{e}");
    let e = err(&format!("{base}name = \"a b\""));
    assert!(e.contains("inputs[0].name"), "{e}");
    let e = err(&format!(
        "{base}[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\""
    ));
    assert!(e.contains("inputs[0].tls.cert"), "{e}");
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ a-z\"\\\\\n\t{}\\[\\],:é]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[ a-z\"]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #[test]
    fn any_body_is_decoded_or_refused_without_panicking(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ndjson in proptest::prelude::any::<bool>(),
    ) {
        let kind = if ndjson { BodyKind::Ndjson } else { BodyKind::Json };
        let _ = decode::records(kind, &body, |_| Ok::<(), ()>(()));
    }

    #[test]
    fn a_record_is_one_line_with_the_same_value(
        fields in proptest::collection::btree_map("[ a-z\"\n]{0,6}", json_value(), 0..6),
    ) {
        let object = Value::Object(fields.into_iter().collect());
        let pretty = serde_json::to_string_pretty(&serde_json::json!([object, object])).unwrap();
        let lines = decoded(BodyKind::Json, &pretty).unwrap();
        proptest::prop_assert_eq!(lines.len(), 2);
        for line in lines {
            proptest::prop_assert!(!line.contains('\n'));
            let back: Value = serde_json::from_str(&line).unwrap();
            proptest::prop_assert_eq!(&back, &object);
        }
    }
}
