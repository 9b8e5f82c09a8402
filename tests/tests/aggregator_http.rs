//! The aggregator's http input through the real binary: README's curl example run as it
//! is written, curl with gzip and refusals, and a reqwest client sending every framing and
//! encoding; every record sent must be in the file sink exactly once, parsed as JSON,
//! and nothing of a refused request.
//!
//! `curl` is required: a missing one fails the test (`.ci/run` installs it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use logferry_e2e::lines::{padding, seed, Accounting, Ledger};
use logferry_e2e::{http, toml_path, Aggregator, AggregatorOptions, TestDir};

const TOKEN: &str = "http-input-token";
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

fn curl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("curl"))
        .find(|p| p.is_file())
        .expect("`curl` not found: install it with `apt-get install curl` (.ci/run does)")
}

/// README's curl example: the `sh` block after the marker that names this file.
fn readme_example() -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let marker = text
        .find("tested by tests/tests/aggregator_http.rs")
        .expect("README: the http input's curl example marker");
    let rest = &text[marker..];
    let start = rest
        .find("```sh\n")
        .expect("README: the example's sh block")
        + 6;
    let end = rest[start..]
        .find("```")
        .expect("README: the end of the sh block");
    rest[start..start + end].to_owned()
}

/// Runs curl with `args` and `stdin`; returns (HTTP status, body).
fn run_curl(args: &[&str], stdin: &[u8]) -> (u16, String) {
    let mut child = Command::new(curl())
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting curl");
    child
        .stdin
        .take()
        .expect("curl's stdin")
        .write_all(stdin)
        .expect("writing to curl");
    let out = child.wait_with_output().expect("waiting for curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = code.trim().parse().unwrap_or_else(|_| {
        panic!(
            "curl {args:?}: no status in {text:?}; {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (status, body.to_owned())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn record(id: &str, rng: &mut fastrand::Rng, ledger: &mut Ledger) -> serde_json::Value {
    let len = rng.usize(5..60);
    let msg = format!("{id} {}", padding(rng, len));
    ledger.record(&msg);
    serde_json::json!({"level": "warn", "msg": msg, "n": rng.u32(..), "ctx": {"a": [1, 2]}})
}

#[test]
fn curl_and_reqwest_records_reach_the_sink_exactly_once() {
    let dir = TestDir::new().expect("test dir");
    let input = format!(
        "type = \"http\"\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 65536\nmax_decompressed_bytes = 1048576\n[[inputs.tokens]]\ntoken = \"{TOKEN}\""
    );
    // The same over TLS, with the token from the environment.
    let secure = format!(
        "type = \"http\"\nlisten = \"127.0.0.1:0\"\n[inputs.tls]\ncert = {}\nkey = {}\n[[inputs.tokens]]\ntoken_env = \"HTTP_INPUT_TOKEN\"",
        toml_path(&dir.cert("server.pem")),
        toml_path(&dir.cert("server-key.pem")),
    );
    let options = AggregatorOptions::default()
        .input("apps", &input)
        .input("secure", &secure)
        .env("HTTP_INPUT_TOKEN", TOKEN);
    let mut agg = Aggregator::start(&dir, options).expect("start the aggregator");
    let addr = agg.input_addrs["apps"];
    let url = format!("http://{addr}/v1/logs");

    // README's example, exactly as written but for the address.
    let example = readme_example().replace("127.0.0.1:8080", &addr.to_string());
    let out = Command::new("sh")
        .args(["-c", &example])
        .env("LOGFERRY_HTTP_TOKEN", TOKEN)
        .output()
        .expect("running README's example");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && answer.contains(r#""events":2"#),
        "README's example: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = agg.events_once(2).expect("the example's events");
    let e = events
        .iter()
        .find(|e| e["message"] == "db timeout")
        .expect("db timeout");
    assert_eq!(e["level"], "error", "{e}");
    assert_eq!(e["timestamp"], "2026-11-22T10:00:00.000Z", "{e}");
    assert_eq!(e["fields"]["order"], 42, "{e}");
    assert_eq!(e["format"], "json", "{e}");
    assert_eq!(e["source"]["type"], "http", "{e}");
    assert_eq!(e["source"]["path"], "http://127.0.0.1/apps", "{e}");
    assert_eq!(e["host"], "127.0.0.1", "{e}");

    let mut rng = fastrand::Rng::with_seed(seed("http_input"));
    let mut ledger = Ledger::new();
    let auth = format!("Authorization: Bearer {TOKEN}");
    // curl: NDJSON, gzip.
    let mut nd = String::new();
    for i in 0..500 {
        nd += &record(&format!("line-curlgz-{i}"), &mut rng, &mut ledger).to_string();
        nd.push('\n');
    }
    let (status, body) = run_curl(
        &[
            &url,
            "-H",
            &auth,
            "-H",
            "Content-Type: application/x-ndjson",
            "-H",
            "Content-Encoding: gzip",
            "--data-binary",
            "@-",
        ],
        &gzip(nd.as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("a JSON answer");
    assert_eq!(
        answer,
        serde_json::json!({"status": "accepted", "events": 500})
    );
    // curl: refusals. None of these records may arrive.
    let mut refused = Ledger::new();
    let bad = format!(
        "{}\n{}\n{{\"msg\": oops}}\n",
        record("line-refused-1", &mut rng, &mut refused),
        record("line-refused-2", &mut rng, &mut refused)
    );
    let json_ct = "Content-Type: application/json";
    let nd_ct = "Content-Type: application/x-ndjson";
    let (status, body) = run_curl(
        &[&url, "-H", &auth, "-H", nd_ct, "--data-binary", "@-"],
        bad.as_bytes(),
    );
    assert_eq!(status, 400, "{body}");
    let detail: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(
        (
            detail["detail"]["record"].as_u64(),
            detail["detail"]["line"].as_u64()
        ),
        (Some(3), Some(3)),
        "{body}"
    );
    let one = record("line-refused-3", &mut rng, &mut refused).to_string();
    let (status, _) = run_curl(
        &[&url, "-H", json_ct, "--data-binary", "@-"],
        one.as_bytes(),
    );
    assert_eq!(status, 401);
    let (status, _) = run_curl(
        &[
            &url,
            "-H",
            "Authorization: Bearer wrong",
            "-H",
            json_ct,
            "--data-binary",
            "@-",
        ],
        one.as_bytes(),
    );
    assert_eq!(status, 401);
    let (status, _) = run_curl(
        &[
            &url,
            "-H",
            &auth,
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            "@-",
        ],
        one.as_bytes(),
    );
    assert_eq!(status, 415);
    let bomb = gzip(format!("{{\"msg\":\"{}\"}}", "x".repeat(16 << 20)).as_bytes());
    assert!(bomb.len() < 65536, "bomb of {} bytes", bomb.len());
    let (status, body) = run_curl(
        &[
            &url,
            "-H",
            &auth,
            "-H",
            json_ct,
            "-H",
            "Content-Encoding: gzip",
            "--data-binary",
            "@-",
        ],
        &bomb,
    );
    assert_eq!(status, 413, "{body}");
    let big = format!("[{}]", vec![one.as_str(); 1000].join(","));
    let (status, _) = run_curl(
        &[&url, "-H", &auth, "-H", json_ct, "--data-binary", "@-"],
        big.as_bytes(),
    );
    assert_eq!(status, 413);

    // reqwest: objects, arrays and NDJSON, plain, gzip and zstd.
    let client = http::client(&dir, false).expect("client");
    for batch in 0..30 {
        let kind = batch % 3;
        let recs: Vec<serde_json::Value> = (0..if kind == 0 { 1 } else { 200 })
            .map(|i| record(&format!("line-rq{batch}-{i}"), &mut rng, &mut ledger))
            .collect();
        let (ct, text) = match kind {
            0 => ("application/json", recs[0].to_string()),
            1 => (
                "application/json",
                serde_json::to_string_pretty(&recs).expect("json"),
            ),
            _ => (
                "application/jsonl",
                recs.iter().map(|r| r.to_string() + "\n").collect(),
            ),
        };
        let (encoding, body) = match batch % 4 {
            0 => (None, text.into_bytes()),
            1 => (Some("gzip"), gzip(text.as_bytes())),
            _ => (
                Some("zstd"),
                zstd::bulk::compress(text.as_bytes(), 3).expect("zstd"),
            ),
        };
        let mut req = client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", ct)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().expect("POST");
        let status = resp.status().as_u16();
        let answer: serde_json::Value = resp.json().expect("a JSON answer");
        assert_eq!(status, 200, "batch {batch}: {answer}");
        assert_eq!(
            answer["events"].as_u64(),
            Some(recs.len() as u64),
            "{answer}"
        );
    }

    // HTTPS, verified against the test CA.
    let secure_url = format!(
        "https://localhost:{}/v1/logs",
        agg.input_addrs["secure"].port()
    );
    let recs: Vec<String> = (0..50)
        .map(|i| record(&format!("line-tls-{i}"), &mut rng, &mut ledger).to_string())
        .collect();
    let resp = client
        .post(&secure_url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(recs.join("\n"))
        .send()
        .expect("POST over TLS");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = client
        .post(&secure_url)
        .bearer_auth("wrong")
        .header("content-type", "application/x-ndjson")
        .body(recs.join("\n"))
        .send()
        .expect("POST over TLS");
    assert_eq!(resp.status().as_u16(), 401);

    let expected = 2 + ledger.len();
    agg.wait_for_events(expected, DELIVERY_TIMEOUT)
        .expect("every record in the sink");
    let check = |agg: &Aggregator, what: &str| {
        let events = agg.events().expect("reading the sink");
        let ours: Vec<serde_json::Value> = events
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("line-"))
            })
            .cloned()
            .collect();
        assert_eq!(events.len(), expected, "{what}: {} events", events.len());
        Accounting::of(&ours, &ledger).assert_exactly_once(what);
        for id in refused.ids() {
            assert!(
                !ours
                    .iter()
                    .any(|e| e["message"].as_str().is_some_and(|m| m.starts_with(id))),
                "{what}: refused {id} arrived"
            );
        }
        ours
    };
    let ours = check(&agg, "http input");
    let tls = ours
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("line-tls-"))
        })
        .expect("a record sent over TLS");
    assert_eq!(tls["source"]["path"], "https://127.0.0.1/secure", "{tls}");
    let e = &ours[0];
    assert_eq!(e["level"], "warn", "{e}");
    assert_eq!(e["fields"]["ctx"], serde_json::json!({"a": [1, 2]}), "{e}");
    let metrics = agg.metrics(&client).expect("metrics");
    let series =
        |r: &str| format!("logferry_input_requests_total{{input=\"apps\",result=\"{r}\"}}");
    assert_eq!(http::metric(&metrics, &series("accepted")), Some(32.0));
    assert_eq!(http::metric(&metrics, &series("unauthorized")), Some(2.0));
    assert_eq!(http::metric(&metrics, &series("bad_request")), Some(1.0));
    assert_eq!(http::metric(&metrics, &series("too_large")), Some(2.0));
    assert_eq!(
        http::metric(&metrics, &series("unsupported_media_type")),
        Some(1.0)
    );
    agg.stop().expect("SIGTERM: exit 0");
    check(&agg, "http input, after shutdown");
}
