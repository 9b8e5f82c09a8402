//! Container log formats and multiline joining, as real processes: CRI lines with their
//! partial (`P`) pieces joined, Docker json-file lines with split lines joined,
//! `format = "auto"` telling them apart per file, Kubernetes metadata taken from the
//! kubelet's `/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log` layout (inside the
//! test directory), and the `java`, `python` and `go` multiline presets.
//!
//! Every record carries a unique id (`line-<file>-<n>`) and the aggregator's file sink
//! is compared with what was written: each record exactly once, whole.

use std::path::PathBuf;
use std::time::Duration;

use logferry_e2e::lines::{self, append, Ledger};
use logferry_e2e::{
    wait_until, Agent, AgentOptions, Aggregator, AggregatorOptions, InputOptions, TestDir,
};

/// How long all records may take to arrive once written (a multiline record at the end
/// of a file waits for the joiner's timeout).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

fn assert_delivered_exactly_once(
    what: &str,
    agg: &mut Aggregator,
    agent: &mut Agent,
    ledger: &Ledger,
) -> Vec<serde_json::Value> {
    lines::assert_delivered_exactly_once(what, agg, agent, ledger, DELIVERY_TIMEOUT)
}

/// The event whose message opens with `id`.
fn event_of<'a>(events: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["message"].as_str().and_then(lines::line_id) == Some(id))
        .unwrap_or_else(|| panic!("no event for {id}"))
}

/// A container of a pod, as the kubelet lays out its log:
/// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log` (inside the test dir).
struct Pod {
    namespace: &'static str,
    name: &'static str,
    uid: &'static str,
    container: &'static str,
}

impl Pod {
    /// The container's log file (its directory created).
    fn log(&self, dir: &TestDir) -> PathBuf {
        let d = dir.join(format!(
            "var/log/pods/{}_{}_{}/{}",
            self.namespace, self.name, self.uid, self.container
        ));
        std::fs::create_dir_all(&d).expect("create the pod log dir");
        d.join("0.log")
    }

    /// Checks the `k8s` object of an event from this container.
    fn assert_source_of(&self, e: &serde_json::Value) {
        let k8s = &e["k8s"];
        assert_eq!(k8s["namespace"], self.namespace, "k8s.namespace of {e}");
        assert_eq!(k8s["pod"], self.name, "k8s.pod of {e}");
        assert_eq!(k8s["pod_uid"], self.uid, "k8s.pod_uid of {e}");
        assert_eq!(k8s["container"], self.container, "k8s.container of {e}");
    }
}

fn pods_include(dir: &TestDir) -> Vec<String> {
    vec![format!("{}/var/log/pods/*/*/*.log", dir.path().display())]
}

const CRI_TIME: &str = "2026-11-22T10:00:00.123456789Z";

fn cri(stream: &str, tag: &str, msg: &str) -> String {
    format!("{CRI_TIME} {stream} {tag} {msg}\n")
}

#[test]
fn cri_partial_lines_are_joined_with_kubernetes_metadata() {
    let dir = TestDir::new().expect("test dir");
    let api_pod = Pod {
        namespace: "shop",
        name: "api-7d9",
        uid: "6f1c2a9e-1b4d-4c3e-9a57-0d8e7f6a5b4c",
        container: "api",
    };
    let dns_pod = Pod {
        namespace: "kube-system",
        name: "coredns-5d78c",
        uid: "0b1e2f3a-4c5d-4e6f-8a9b-1c2d3e4f5a6b",
        container: "coredns",
    };
    let (api, dns) = (api_pod.log(&dir), dns_pod.log(&dir));
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &pods_include(&dir)).format("cri");
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    let long: String = (0..3 * 16_384)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut ledger = Ledger::new();
    ledger.record("line-api-0 first full line");
    ledger.record("line-api-1 one, two, three");
    ledger.record("line-api-2 on stderr");
    ledger.record(&format!("line-api-3 {long}"));
    ledger.record("line-api-4 last");
    ledger.record("line-dns-0 coredns ready");
    append(
        &api,
        (cri("stdout", "F", "line-api-0 first full line")
            + &cri("stdout", "P", "line-api-1 one,")
            + &cri("stdout", "P", " two,"))
            .as_bytes(),
    );
    append(
        &dns,
        cri("stdout", "F", "line-dns-0 coredns ready").as_bytes(),
    );
    // The rest of the partial line only after the agent has read its start.
    agg.wait_for_events(1, Duration::from_secs(30))
        .expect("the first lines arrive");
    let mut rest = cri("stdout", "F", " three") + &cri("stderr", "F", "line-api-2 on stderr");
    // A long line split by the runtime into 16 KiB partials.
    let mut pieces = format!("line-api-3 {long}");
    while pieces.len() > 16_384 {
        let tail = pieces.split_off(16_384);
        rest += &cri("stdout", "P", &pieces);
        pieces = tail;
    }
    rest += &cri("stdout", "F", &pieces);
    rest += &cri("stdout", "F", "line-api-4 last");
    append(&api, rest.as_bytes());

    let events = assert_delivered_exactly_once("CRI", &mut agg, &mut agent, &ledger);
    for e in &events {
        let id = e["message"].as_str().and_then(lines::line_id).expect("id");
        if id.starts_with("line-api-") {
            api_pod.assert_source_of(e);
        } else {
            dns_pod.assert_source_of(e);
        }
    }
    assert!(
        event_of(&events, "line-api-1")["fields"]
            .get("no_newline")
            .is_none(),
        "a joined CRI line is a whole line"
    );
}

fn docker(stream: &str, log: &str) -> String {
    let v = serde_json::json!({"log": log, "stream": stream, "time": CRI_TIME});
    format!("{v}\n")
}

#[test]
fn docker_json_lines_are_decoded_and_split_lines_joined() {
    let dir = TestDir::new().expect("test dir");
    let id = "3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e";
    let cdir = dir.join(format!("containers/{id}"));
    std::fs::create_dir_all(&cdir).expect("create the container dir");
    let path = cdir.join(format!("{id}-json.log"));
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let include = vec![format!("{}/containers/*/*-json.log", dir.path().display())];
    let options = AgentOptions::new(agg.ingest_url(), &include).format("docker");
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    let mut ledger = Ledger::new();
    ledger.record("line-docker-0 hello");
    ledger.record("line-docker-1 part a, part b");
    ledger.record("line-docker-2 with \"quotes\", a tab\tand é");
    ledger.record("line-docker-3 on stderr");
    append(
        &path,
        (docker("stdout", "line-docker-0 hello\n")
            // Docker splits lines over 16 KiB: pieces without "\n" belong to the next.
            + &docker("stdout", "line-docker-1 part a,")
            + &docker("stdout", " part b\n")
            + &docker("stdout", "line-docker-2 with \"quotes\", a tab\tand é\n")
            + &docker("stderr", "line-docker-3 on stderr\r\n"))
            .as_bytes(),
    );
    let events = assert_delivered_exactly_once("Docker json-file", &mut agg, &mut agent, &ledger);
    assert!(events.iter().all(|e| e.get("k8s").is_none()));
}

#[test]
fn auto_format_decodes_cri_docker_and_raw_files() {
    let dir = TestDir::new().expect("test dir");
    let pod = |name, uid, container| Pod {
        namespace: "shop",
        name,
        uid,
        container,
    };
    let cri_pod = pod("web-1", "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d", "web");
    let docker_pod = pod("old-2", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "old");
    let raw_pod = pod("raw-3", "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c", "raw");
    let (cri_log, docker_log, raw_log) =
        (cri_pod.log(&dir), docker_pod.log(&dir), raw_pod.log(&dir));
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &pods_include(&dir)).format("auto");
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    let mut ledger = Ledger::new();
    append(
        &cri_log,
        (cri("stdout", "P", "line-web-0 joined") + &cri("stdout", "F", " here")).as_bytes(),
    );
    ledger.record("line-web-0 joined here");
    append(
        &docker_log,
        docker("stdout", "line-old-0 from docker\n").as_bytes(),
    );
    ledger.record("line-old-0 from docker");
    append(&raw_log, b"line-raw-0 plain text, no wrapper\n");
    ledger.record("line-raw-0 plain text, no wrapper");
    let events = assert_delivered_exactly_once("format = auto", &mut agg, &mut agent, &ledger);
    cri_pod.assert_source_of(event_of(&events, "line-web-0"));
    docker_pod.assert_source_of(event_of(&events, "line-old-0"));
    raw_pod.assert_source_of(event_of(&events, "line-raw-0"));
}

/// Events whose message holds `id` as a whole word.
fn events_mentioning<'a>(events: &'a [serde_json::Value], id: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            m.match_indices(id).any(|(i, _)| {
                !m[i + id.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
            })
        })
        .collect()
}

#[test]
fn multiline_presets_join_java_python_and_go_traces() {
    let dir = TestDir::new().expect("test dir");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("create the logs dir");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let glob = |name: &str| vec![format!("{}/{name}", logs.display())];
    let options = AgentOptions::new(agg.ingest_url(), &glob("java.log"))
        .multiline("{ preset = \"java\" }")
        .input(InputOptions::new(&glob("python.log")).multiline("{ preset = \"python\" }"))
        .input(InputOptions::new(&glob("go.log")).multiline("{ preset = \"go\" }"));
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    // (id, the lines of its record); each file ends with an ordinary line, which the
    // joiner may hold until its timeout.
    let java: [(&str, &[&str]); 3] = [
        (
            "line-java-0",
            &[
                "2026-11-22 10:00:00.000 ERROR [main] com.example.App - line-java-0 request failed",
                "java.lang.IllegalStateException: boom",
                "\tat com.example.App.run(App.java:42)",
                "\tat com.example.App.main(App.java:10)",
                "Caused by: java.io.IOException: disk full",
                "\tat com.example.Io.write(Io.java:7)",
                "\t... 2 more",
            ],
        ),
        (
            "line-java-1",
            &["2026-11-22 10:00:01.000 INFO [main] com.example.App - line-java-1 recovered"],
        ),
        (
            "line-java-2",
            &["2026-11-22 10:00:02.000 INFO [main] com.example.App - line-java-2 last"],
        ),
    ];
    let python: [(&str, &[&str]); 2] = [
        (
            "line-py-0",
            &[
                "Traceback (most recent call last):",
                "  File \"/app/main.py\", line 10, in <module>",
                "    main()",
                "  File \"/app/main.py\", line 6, in main",
                "    raise ValueError(\"line-py-0\")",
                "ValueError: line-py-0",
            ],
        ),
        (
            "line-py-1",
            &["2026-11-22 10:00:03,000 INFO app line-py-1 next"],
        ),
    ];
    let go: [(&str, &[&str]); 2] = [
        (
            "line-go-0",
            &[
                "panic: line-go-0 runtime error: index out of range [5] with length 3",
                "",
                "goroutine 1 [running]:",
                "main.main()",
                "\t/app/main.go:8 +0x1d",
            ],
        ),
        ("line-go-1", &["2026/11/22 10:00:04 line-go-1 restarted"]),
    ];
    let mut records: Vec<(&str, &[&str])> = Vec::new();
    for (file, recs) in [
        ("java.log", &java[..]),
        ("python.log", &python[..]),
        ("go.log", &go[..]),
    ] {
        let mut t = String::new();
        for (id, lines) in recs {
            for l in *lines {
                t += l;
                t.push('\n');
            }
            records.push((id, lines));
        }
        append(&logs.join(file), t.as_bytes());
    }

    let mut missing: Vec<&str> = Vec::new();
    let waited = wait_until(DELIVERY_TIMEOUT, "every multiline record", || {
        let events = agg.events().unwrap_or_default();
        missing = records
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| events_mentioning(&events, id).is_empty())
            .collect();
        missing.is_empty()
    });
    waited.unwrap_or_else(|e| panic!("{e}: still missing {missing:?}"));
    agent.stop().expect("the agent exits 0 on SIGTERM");
    agg.stop().expect("the aggregator exits 0 on SIGTERM");
    let events = agg.events().expect("read the sink");
    for (id, lines) in &records {
        let found = events_mentioning(&events, id);
        assert_eq!(found.len(), 1, "{id}: {} events: {found:?}", found.len());
        let message = found[0]["message"].as_str().unwrap_or("");
        // The parser may take a timestamp or level off the first line; every other line of
        // the record must be in the one event, in order, joined by newlines.
        let rest = lines[1..].join("\n");
        assert!(
            message.ends_with(&rest),
            "{id}: the record was not joined whole: {message:?}"
        );
    }
    for e in &events {
        let m = e["message"].as_str().unwrap_or("");
        assert!(
            !(m.starts_with('\t')
                || m.starts_with("  File")
                || m.starts_with("Caused by")
                || m.starts_with("goroutine")),
            "a continuation line arrived on its own: {e}"
        );
    }
    assert_eq!(
        events.len(),
        records.len(),
        "one event per record: {events:?}"
    );
}
