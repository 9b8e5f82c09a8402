//! The aggregator's otlp input through the real binary: the OpenTelemetry Python SDK's
//! OTLP/HTTP exporter (protobuf, gzip) sends records with attributes, severities and
//! trace context; every record must be in the file sink exactly once, mapped as README's
//! table says. Then OTLP JSON from reqwest, and malformed protobuf (400, counted, the
//! process carries on).
//!
//! The SDK is required: it lives in a venv that `.ci/run` makes at
//! `~/.cache/logferry-ci/otel` (or `$LOGFERRY_OTEL_PYTHON` names its python); a missing
//! one fails the test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use logferry_e2e::lines::{Accounting, Ledger};
use logferry_e2e::{http, Aggregator, AggregatorOptions, TestDir};
use serde_json::{json, Value};

const TOKEN: &str = "otlp-input-token";
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);
/// Records the SDK sends.
const N: usize = 3000;

/// The venv's python with the OpenTelemetry SDK and exporter.
fn otel_python() -> PathBuf {
    let path = match std::env::var_os("LOGFERRY_OTEL_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/logferry-ci/otel/bin/python")
        }
    };
    assert!(
        path.is_file(),
        "{} not found: this test runs the OpenTelemetry Python SDK (set LOGFERRY_OTEL_PYTHON, \
         or run .ci/run, which installs it with: python3 -m venv ~/.cache/logferry-ci/otel && \
         ~/.cache/logferry-ci/otel/bin/pip install opentelemetry-sdk \
         opentelemetry-exporter-otlp-proto-http)",
        path.display()
    );
    path
}

/// What the script says it sent, by record id.
fn run_sdk(endpoint: &str, run: &str, n: usize) -> HashMap<String, Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otel/emit_logs.py");
    let out = Command::new(otel_python())
        .arg(&script)
        .args([endpoint, TOKEN, run, &n.to_string()])
        .output()
        .expect("running the OpenTelemetry SDK script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "emit_logs.py failed: {stderr}");
    // The exporter logs failed exports (a refused or failed request) without failing.
    assert!(
        !stderr.contains("Failed to export"),
        "the exporter reported failures: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a manifest line");
            (v["id"].as_str().expect("id").to_owned(), v)
        })
        .collect()
}

fn check_sdk_event(e: &Value, sent: &HashMap<String, Value>) {
    let message = e["message"].as_str().expect("message");
    let id = message.split(' ').next().expect("id");
    let m = &sent[id];
    let i: u64 = id
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("seq");
    let level = match m["severity"].as_str() {
        Some("DEBUG") => "debug",
        Some("INFO") => "info",
        Some("WARN") => "warn",
        Some("ERROR") => "error",
        Some("FATAL") => "fatal",
        other => panic!("severity {other:?}"),
    };
    assert_eq!(e["level"], level, "{e}");
    let f = &e["fields"];
    assert_eq!(f["severity_text"], m["severity"], "{e}");
    assert_eq!(f["trace_id"], m["trace_id"], "{e}");
    assert_eq!(f["span_id"], m["span_id"], "{e}");
    // W3C trace flags: sampled (the SDK may also set the "random" bit, 0x02).
    assert_eq!(
        f["trace_flags"].as_u64().map(|b| b & 1),
        Some(1),
        "sampled: {e}"
    );
    assert_eq!(f["seq"], i, "{e}");
    assert_eq!(f["order.id"], format!("o-{}", i % 7), "{e}");
    assert_eq!(f["ok"], i.is_multiple_of(2), "{e}");
    assert_eq!(f["ratio"].as_f64(), Some(i as f64 / 4.0), "{e}");
    assert_eq!(f["tags"], json!(["a", "b"]), "{e}");
    assert_eq!(f["service.name"], "checkout", "{e}");
    assert_eq!(f["resource.deployment.environment"], "test", "{e}");
    assert_eq!(f["scope.name"], "logferry.e2e", "{e}");
    assert_eq!(f["scope.version"], "1.0", "{e}");
    assert_eq!(e["host"], "py-host-1", "{e}");
    assert_eq!(
        e["k8s"],
        json!({"namespace": "shop", "pod": "checkout-5f7", "container": "app"}),
        "{e}"
    );
    assert_eq!(e["format"], "json", "{e}");
    assert_eq!(e["source"]["type"], "otlp", "{e}");
    assert_eq!(e["source"]["path"], "otlp+http://127.0.0.1/sdk", "{e}");
    let (ts, observed) = (e["timestamp"].as_str(), e["observed_timestamp"].as_str());
    assert!(
        ts.is_some() && ts <= observed,
        "emitted before observed: {e}"
    );
}

/// An OTLP JSON request as the specification writes it, with one record.
fn json_request(body: &str) -> String {
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-client"}}]},
        "scopeLogs": [{"scope": {"name": "curl"}, "logRecords": [{
            "timeUnixNano": "1544712660300000000",
            "observedTimeUnixNano": "1544712660300000000",
            "severityNumber": 10,
            "severityText": "Information",
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "EEE19B7EC3C1B174",
            "body": {"stringValue": body},
            "attributes": [
                {"key": "int.attribute", "value": {"intValue": "10"}},
                {"key": "map.attribute", "value": {"kvlistValue": {"values": [
                    {"key": "some.map.key", "value": {"stringValue": "some value"}}]}}}
            ]
        }]}]
    }]})
    .to_string()
}

#[test]
fn python_sdk_json_and_malformed_requests() {
    let dir = TestDir::new().expect("test dir");
    let input = format!(
        "type = \"otlp\"\nlisten = \"127.0.0.1:0\"\n[[inputs.tokens]]\ntoken = \"{TOKEN}\""
    );
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default().input("sdk", &input))
        .expect("start the aggregator");
    let url = format!("http://{}/v1/logs", agg.input_addrs["sdk"]);

    let sent = run_sdk(&url, "py", N);
    assert_eq!(sent.len(), N);
    let mut ledger = Ledger::new();
    for i in 0..N {
        ledger.record(&format!("line-py-{i} step {i}"));
    }

    // OTLP JSON, as a client without an SDK sends it.
    let client = http::client(&dir, false).expect("client");
    let json_body = "line-json-1 Example log record";
    ledger.record(json_body);
    let resp = client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(json_request(json_body))
        .send()
        .expect("POST OTLP JSON");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().expect("answer"), "{}");

    // Malformed protobuf: 400 with a Status, nothing stored, the process carries on.
    let resp = client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-protobuf")
        .body(b"\x0a\xff\xff\xff\xff\x0f not protobuf".to_vec())
        .send()
        .expect("POST garbage");
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    assert_eq!(agg.healthz(&client).expect("healthz"), 200);

    agg.wait_for_events(N + 1, DELIVERY_TIMEOUT)
        .expect("every record in the sink");
    let check = |agg: &Aggregator, what: &str| {
        let events = agg.events().expect("reading the sink");
        let accounting = Accounting::of(&events, &ledger);
        accounting.assert_exactly_once(what);
        assert_eq!(events.len(), N + 1, "{what}: {accounting}");
        events
    };
    let events = check(&agg, "otlp input");
    for e in events.iter().filter(|e| e["message"] != json_body) {
        check_sdk_event(e, &sent);
    }
    let e = events
        .iter()
        .find(|e| e["message"] == json_body)
        .expect("the JSON record");
    assert_eq!(e["timestamp"], "2018-12-13T14:51:00.300Z", "{e}");
    assert_eq!(e["level"], "info", "{e}");
    assert_eq!(
        e["fields"]["trace_id"], "5b8efff798038103d269b633813fc60c",
        "{e}"
    );
    assert_eq!(e["fields"]["span_id"], "eee19b7ec3c1b174", "{e}");
    assert_eq!(e["fields"]["int.attribute"], 10, "{e}");
    assert_eq!(
        e["fields"]["map.attribute"],
        json!({"some.map.key": "some value"}),
        "{e}"
    );
    assert_eq!(e["fields"]["service.name"], "json-client", "{e}");
    assert_eq!(e["host"], "127.0.0.1", "the peer, without host.name: {e}");

    let metrics = agg.metrics(&client).expect("metrics");
    let series = |r: &str| format!("logferry_input_requests_total{{input=\"sdk\",result=\"{r}\"}}");
    assert_eq!(http::metric(&metrics, &series("bad_request")), Some(1.0));
    assert!(http::metric(&metrics, &series("accepted")).is_some_and(|n| n >= 2.0));
    assert_eq!(
        http::metric(&metrics, "logferry_input_messages_total{input=\"sdk\"}"),
        Some((N + 1) as f64)
    );
    agg.stop().expect("SIGTERM: exit 0");
    check(&agg, "otlp input, after shutdown");
}
