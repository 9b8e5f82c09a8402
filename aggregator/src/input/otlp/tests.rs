//! The otlp input: the mapping and codecs on their own, then the receiver on 127.0.0.1
//! with a real inbox, spoken to by reqwest in protobuf and in OTLP JSON.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::codec::{self, Encoding, Status};
use super::map::{self, Records, SourceSpec};
use crate::input::web::testkit::{client, requests, Harness};

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.to_owned())),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value,
        ..Default::default()
    }
}

fn any(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

/// A request with one resource (service `shop`, host `node-1`, a pod) and `records`.
fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("shop")),
                    kv("host.name", s("node-1")),
                    kv("k8s.namespace.name", s("prod")),
                    kv("k8s.pod.name", s("api-7d9")),
                    kv("k8s.container.name", s("api")),
                    kv("deployment.environment", s("eu")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.db".into(),
                    version: "1.2".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn full_record() -> LogRecord {
    LogRecord {
        time_unix_nano: 1_795_341_600_123_456_789,
        observed_time_unix_nano: 1_795_341_600_200_000_000,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: s("db timeout"),
        attributes: vec![
            kv("order", any(any_value::Value::IntValue(42))),
            kv("ok", any(any_value::Value::BoolValue(false))),
            kv("ratio", any(any_value::Value::DoubleValue(0.5))),
            kv("nan", any(any_value::Value::DoubleValue(f64::NAN))),
            kv("raw", any(any_value::Value::BytesValue(b"hi".to_vec()))),
            kv(
                "tags",
                any(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![s("a").unwrap(), s("b").unwrap()],
                })),
            ),
            kv(
                "user",
                any(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("id", s("u1"))],
                })),
            ),
            kv("time", s("attribute named time")),
            kv("Level", s("attribute named Level")),
            kv("resource.x", s("attribute that looks like a resource one")),
            kv("empty", None),
        ],
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        flags: 1,
        event_name: "db.error".into(),
        ..Default::default()
    }
}

/// Collects what the mapping hands over.
#[derive(Default)]
struct Collected {
    sources: Vec<SourceSpec>,
    lines: Vec<(u32, u64, Value)>,
}

impl Records for Collected {
    type Error = ();
    fn source(&mut self, spec: &SourceSpec) -> u32 {
        self.sources.push(spec.clone());
        self.sources.len() as u32 - 1
    }
    fn record(&mut self, source: u32, observed_ms: u64, line: &[u8]) -> Result<(), ()> {
        self.lines
            .push((source, observed_ms, serde_json::from_slice(line).unwrap()));
        Ok(())
    }
}

#[test]
fn a_record_maps_to_the_documented_keys() {
    let mut c = Collected::default();
    let m = map::map_request(&request(vec![full_record()]), 1, &mut c).unwrap();
    assert_eq!((m.accepted, m.rejected), (1, 0));
    let attrs = &c.sources[0].attrs;
    for (k, v) in [
        ("host", "node-1"),
        ("k8s.namespace", "prod"),
        ("k8s.pod", "api-7d9"),
        ("k8s.container", "api"),
    ] {
        assert!(attrs.contains(&(k, v.to_owned())), "{k}: {attrs:?}");
    }
    let (source, observed, line) = &c.lines[0];
    assert_eq!((*source, *observed), (0, 1_795_341_600_200));
    let want = json!({
        "time": "2026-11-22T10:00:00.123456789Z",
        "level": "error",
        "msg": "db timeout",
        "severity_text": "ERROR",
        "severity_number": 17,
        "trace_id": "0102030405060708090a0b0c0d0e0f10",
        "span_id": "0102030405060708",
        "trace_flags": 1,
        "event_name": "db.error",
        "order": 42,
        "ok": false,
        "ratio": 0.5,
        "nan": "NaN",
        "raw": "aGk=",
        "tags": ["a", "b"],
        "user": {"id": "u1"},
        "attributes.time": "attribute named time",
        "attributes.Level": "attribute named Level",
        "attributes.resource.x": "attribute that looks like a resource one",
        "empty": null,
        "service.name": "shop",
        "resource.deployment.environment": "eu",
        "scope.name": "app.db",
        "scope.version": "1.2",
    });
    assert_eq!(line, &want);
}

#[test]
fn bodies_severities_times_and_bad_ids() {
    let now_ns = 1_795_341_700_000_000_000;
    let records = vec![
        LogRecord {
            body: any(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("a", any(any_value::Value::IntValue(1)))],
            })),
            severity_text: "Warning".into(),
            ..Default::default()
        },
        LogRecord {
            observed_time_unix_nano: 1_795_341_650_000_000_000,
            severity_number: 9,
            ..Default::default()
        },
        LogRecord {
            trace_id: vec![1, 2, 3],
            body: s("refused"),
            ..Default::default()
        },
        LogRecord {
            span_id: vec![1; 9],
            ..Default::default()
        },
    ];
    let req = request(records);
    assert_eq!(map::earliest_observed_ms(&req, now_ns), 1_795_341_650_000);
    let mut c = Collected::default();
    let m = map::map_request(&req, now_ns, &mut c).unwrap();
    assert_eq!((m.accepted, m.rejected), (2, 2));
    assert!(m.first_error.unwrap().contains("trace_id has 3 bytes"));
    let first = &c.lines[0].2;
    assert_eq!(first["msg"], r#"{"a":1}"#);
    assert_eq!(first["level"], "Warning", "level word left to the parser");
    assert_eq!(
        first["time"], "2026-11-22T10:01:40.000000000Z",
        "received time"
    );
    assert_eq!(c.lines[0].1, now_ns / 1_000_000);
    let second = &c.lines[1].2;
    assert_eq!(second["msg"], "");
    assert_eq!(second["level"], "info");
    assert_eq!(
        second["time"], "2026-11-22T10:00:50.000000000Z",
        "observed time"
    );
    for (n, level) in [
        (1, "trace"),
        (8, "debug"),
        (12, "info"),
        (13, "warn"),
        (20, "error"),
        (24, "fatal"),
    ] {
        assert_eq!(map::level_of(n), Some(level));
    }
    assert_eq!(map::level_of(0), None);
    assert_eq!(map::level_of(25), None);
}

/// The example request of the OTLP specification (opentelemetry-proto's
/// `examples/logs.json`): hex ids in capitals, 64-bit integers as strings.
const SPEC_EXAMPLE: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeLogs":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"logRecords":[{"timeUnixNano":"1544712660300000000","observedTimeUnixNano":"1544712660300000000","severityNumber":10,"severityText":"Information","traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","body":{"stringValue":"Example log record"},"attributes":[{"key":"string.attribute","value":{"stringValue":"some string"}},{"key":"boolean.attribute","value":{"boolValue":true}},{"key":"int.attribute","value":{"intValue":"10"}},{"key":"double.attribute","value":{"doubleValue":637.704}},{"key":"array.attribute","value":{"arrayValue":{"values":[{"stringValue":"many"},{"stringValue":"values"}]}}},{"key":"map.attribute","value":{"kvlistValue":{"values":[{"key":"some.map.key","value":{"stringValue":"some value"}}]}}}]}]}]}]}"#;

#[test]
fn otlp_json_as_the_specification_writes_it_decodes() {
    let req = codec::decode(Encoding::Json, SPEC_EXAMPLE.as_bytes()).unwrap();
    let mut c = Collected::default();
    map::map_request(&req, 1, &mut c).unwrap();
    let line = &c.lines[0].2;
    assert_eq!(line["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(line["span_id"], "eee19b7ec3c1b174");
    assert_eq!(line["int.attribute"], 10);
    assert_eq!(line["time"], "2018-12-13T14:51:00.300000000Z");
    assert_eq!(line["level"], "info");
    assert_eq!(line["scope.my.scope.attribute"], "some scope attribute");
    assert_eq!(line["map.attribute"], json!({"some.map.key": "some value"}));
    // Unknown keys are ignored; bad ids and non-JSON are refused.
    assert!(codec::decode(Encoding::Json, br#"{"resourceLogs":[],"future":1}"#).is_ok());
    assert!(codec::decode(
        Encoding::Json,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}"#
    )
    .is_err());
    assert!(codec::decode(Encoding::Protobuf, b"\xff\xff\xff not protobuf").is_err());
}

#[test]
fn answers_in_both_encodings() {
    let r =
        ExportLogsServiceResponse::decode(&codec::response(Encoding::Protobuf, 2, Some("why"))[..])
            .unwrap();
    let p = r.partial_success.unwrap();
    assert_eq!(
        (p.rejected_log_records, p.error_message.as_str()),
        (2, "why")
    );
    let r = ExportLogsServiceResponse::decode(&codec::response(Encoding::Protobuf, 0, None)[..])
        .unwrap();
    assert!(r.partial_success.is_none());
    assert_eq!(codec::response(Encoding::Json, 0, None), b"{}");
    let j: Value = serde_json::from_slice(&codec::response(Encoding::Json, 3, Some("x"))).unwrap();
    assert_eq!(
        j,
        json!({"partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "x"}})
    );
    let st = Status::decode(&codec::status(Encoding::Protobuf, StatusCode::BAD_REQUEST, "bad")[..])
        .unwrap();
    assert_eq!((st.code, st.message.as_str()), (3, "bad"));
}

const TOKEN: &str = "otlp-token";

async fn post(h: &Harness, ct: &str, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(h.url("/v1/logs"))
        .bearer_auth(TOKEN)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn protobuf_and_json_requests_are_stored_and_answered_in_kind() {
    let mut h = Harness::start(
        &format!("type = \"otlp\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\ntoken = \"{TOKEN}\""),
        1 << 30,
    )
    .await;
    // Protobuf, with one record refused for a bad trace id.
    let mut bad = full_record();
    bad.trace_id = vec![7; 5];
    let req = request(vec![full_record(), bad, full_record()]);
    let r = post(&h, codec::PROTOBUF, req.encode_to_vec()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], codec::PROTOBUF);
    let answer = ExportLogsServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("trace_id has 5 bytes"),
        "{}",
        partial.error_message
    );
    let recs = h.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].path, "otlp+http://127.0.0.1/otlp");
    assert!(recs[0].attrs.contains(&("host".into(), "node-1".into())));
    assert!(recs[0]
        .attrs
        .contains(&("source.type".into(), "otlp".into())));
    assert_eq!(recs[0].observed_ms, 1_795_341_600_200);
    // OTLP JSON, gzip.
    let mut gz = Vec::new();
    logferry_shared::codec::compress(
        logferry_shared::codec::Codec::Gzip,
        3,
        SPEC_EXAMPLE.as_bytes(),
        &mut gz,
    )
    .unwrap();
    let r = client()
        .post(h.url("/v1/logs"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], codec::JSON);
    assert_eq!(r.text().await.unwrap(), "{}");
    let recs = h.records();
    assert_eq!(recs.len(), 3);
    let line: Value = serde_json::from_str(&recs[2].line).unwrap();
    assert_eq!(line["msg"], "Example log record");
    assert!(
        recs[2].attrs.contains(&("host".into(), "127.0.0.1".into())),
        "peer as host"
    );
    h.wait_metric(&requests("otlp", "partial"), 1.0).await;
    h.wait_metric(&requests("otlp", "accepted"), 1.0).await;
    h.wait_metric(
        "logferry_input_dropped_messages_total{input=\"otlp\",reason=\"rejected\"}",
        1.0,
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn malformed_and_unauthorized_requests_get_a_status_and_store_nothing() {
    let mut h = Harness::start(
        &format!("type = \"otlp\"\nname = \"o\"\n[[tokens]]\ntoken = \"{TOKEN}\""),
        1 << 30,
    )
    .await;
    let r = post(
        &h,
        codec::PROTOBUF,
        b"\x0a\xff\xff\xff\xff\x0f garbage".to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], codec::PROTOBUF);
    let st = Status::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(st.code, 3);
    assert!(st.message.contains("protobuf"), "{}", st.message);
    let r = post(&h, codec::JSON, b"{\"resourceLogs\": 5}".to_vec()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["code"], 3, "{j}");
    let r = post(&h, "text/plain", b"x".to_vec()).await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = client()
        .post(h.url("/v1/logs"))
        .header("content-type", codec::PROTOBUF)
        .body(request(vec![full_record()]).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client().post(h.url("/v1/traces")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(h.records().is_empty());
    h.wait_metric(&requests("o", "bad_request"), 2.0).await;
    h.wait_metric(&requests("o", "unauthorized"), 1.0).await;
    h.wait_metric(&requests("o", "unsupported_media_type"), 1.0)
        .await;
    // Still serving.
    let r = post(
        &h,
        codec::PROTOBUF,
        request(vec![full_record()]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h.records().len(), 1);
    h.stop().await;
}

#[test]
fn the_default_listen_is_otlp_http_on_loopback() {
    let cfg: crate::input::InputConfig = toml::from_str("type = \"otlp\"").unwrap();
    let crate::input::InputConfig::Otlp(c) = cfg else {
        panic!("not otlp");
    };
    assert_eq!(c.listen.to_string(), "127.0.0.1:4318");
    assert_eq!(c.name(), "otlp");
    let e =
        toml::from_str::<crate::input::InputConfig>("type = \"otlp\"\nlisten_on = 1").unwrap_err();
    assert!(e.to_string().contains("listen_on"), "{e}");
}
