//! Tests of the admin endpoint over real HTTP on 127.0.0.1: roles and tokens, the rules
//! API (every status), the summaries, and the OpenAPI document against the router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;

mod busy;
mod rules_toml;
use crate::rules::{RuleSet, RuleStore};
use crate::stats::{SharedTraffic, StatsSettings};

struct Served {
    addr: SocketAddr,
    client: reqwest::Client,
    rules: Arc<RuleSet>,
    agents: Arc<crate::agents::AgentRegistry>,
    board: Arc<crate::sink::SinkBoard>,
    tail: crate::pipeline::TailSender,
    shutdown: logferry_shared::runtime::Shutdown,
    search: Arc<crate::search::EventStore>,
    searches: Arc<background::Background>,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl Served {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn serve(tokens: Vec<(Vec<u8>, Role)>, loopback: bool) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = RuleStore::open(&dir.path().join("rules")).unwrap();
    let rules = Arc::new(RuleSet::open(&[], Some(store), crate::rules::tests::ctx()).unwrap());
    let agents = Arc::new(crate::agents::AgentRegistry::default());
    let (tail, _) = tokio::sync::broadcast::channel(4);
    let shutdown = logferry_shared::runtime::Shutdown::new();
    let search = Arc::new(
        crate::search::EventStore::from_config(&crate::search::SearchConfig::default(), dir.path())
            .unwrap()
            .unwrap(),
    );
    let queues = crate::sink::queue::QueueStore::open(&dir.path().join("queues")).unwrap();
    let hook = queues
        .queue("hook", &crate::sink::queue::QueueConfig::default())
        .unwrap();
    let board = Arc::new(crate::sink::SinkBoard::with_queues([
        ("archive".to_owned(), "file", None),
        ("cloudwatch".to_owned(), "stdout", None),
        ("hook".to_owned(), "http", Some(hook)),
    ]));
    let searches = Arc::new(background::Background::start("search", 2, 4).unwrap());
    let state = AdminState {
        metrics: Arc::new(Metrics::new()),
        inbox: Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 20).unwrap()),
        data_dir: dir.path().to_owned(),
        auth: Arc::new(AdminAuth::new(tokens, loopback)),
        rules: rules.clone(),
        traffic: Arc::new(SharedTraffic::new(StatsSettings::default(), 2)),
        notifications: Arc::new(DeliveryStats::default()),
        agents: agents.clone(),
        sinks: board.clone(),
        tail: Some(tail.clone()),
        tails: Arc::new(tokio::sync::Semaphore::new(tail::MAX_TAILS)),
        shutdown: shutdown.clone(),
        search: Some(search.clone()),
        searches: searches.clone(),
        tail_filters: Arc::new(background::Background::start("tail", 2, 8).unwrap()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).await;
    });
    Served {
        addr,
        client: crate::notify::http_client(Duration::from_secs(10)).unwrap(),
        rules,
        agents,
        board,
        tail,
        shutdown,
        search,
        searches,
        _dir: dir,
        _server: server,
    }
}

fn tokens() -> Vec<(Vec<u8>, Role)> {
    vec![
        (b"view".to_vec(), Role::Viewer),
        (b"boss".to_vec(), Role::Admin),
    ]
}

fn tag_rule(name: &str) -> Value {
    json!({"name": name, "when": {"field": "level", "gte": "error"}, "actions": [{"type": "tag", "tags": ["x"]}]})
}

#[tokio::test]
async fn roles_decide_who_reads_and_who_changes() {
    let s = serve(tokens(), false).await;
    let (st, body) = s.call(reqwest::Method::GET, "/api/rules", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    let resp = s.client.get(s.url("/api/rules")).send().await.unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let (st, _) = s
        .call(reqwest::Method::GET, "/api/rules", Some("nope"), None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, body) = s
        .call(reqwest::Method::GET, "/api/rules", Some("view"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = s
        .call(
            reqwest::Method::POST,
            "/api/rules",
            Some("view"),
            Some(tag_rule("a")),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");
    assert!(s.rules.list().is_empty(), "nothing changed");
    let (st, body) = s
        .call(
            reqwest::Method::POST,
            "/api/rules",
            Some("boss"),
            Some(tag_rule("a")),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    // Health, readiness and metrics need no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn without_tokens_the_api_is_open_on_loopback_only() {
    let open = serve(Vec::new(), true).await;
    let (st, body) = open
        .call(
            reqwest::Method::POST,
            "/api/rules",
            None,
            Some(tag_rule("a")),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let exposed = serve(Vec::new(), false).await;
    let (st, body) = exposed
        .call(reqwest::Method::GET, "/api/rules", Some("anything"), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(
        body["detail"].as_str().unwrap().contains("tokens"),
        "{body}"
    );
}

#[tokio::test]
async fn rules_api_adds_reads_replaces_deletes_and_persists() {
    use reqwest::Method;
    let s = serve(tokens(), true).await;
    let admin = Some("boss");
    let (st, body) = s
        .call(Method::POST, "/api/rules", admin, Some(tag_rule("b")))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["position"], 0);
    assert_eq!(body["rule"]["name"], "b");
    let (st, body) = s
        .call(
            Method::POST,
            "/api/rules?position=0",
            admin,
            Some(tag_rule("a")),
        )
        .await;
    assert_eq!((st, &body["position"]), (StatusCode::CREATED, &json!(0)));
    let (st, body) = s
        .call(Method::POST, "/api/rules", admin, Some(tag_rule("a")))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["detail"]["rule"], "a");

    // Validation errors name the rule and the key.
    let bad_regex = json!({"name": "r", "when": {"field": "message", "regex": "("}, "actions": [{"type": "drop"}]});
    let (st, body) = s
        .call(Method::POST, "/api/rules", admin, Some(bad_regex))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid rule");
    assert_eq!(body["detail"]["rule"], "r");
    assert_eq!(body["detail"]["key"], "when.regex");
    let bad_action = json!({"name": "r", "actions": [{"type": "explode"}]});
    let (st, body) = s
        .call(Method::POST, "/api/rules", admin, Some(bad_action))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]["key"]
            .as_str()
            .unwrap()
            .starts_with("actions[0]"),
        "{body}"
    );
    let unknown_sink = json!({"name": "r", "actions": [{"type": "route", "sinks": ["nowhere"]}]});
    let (st, body) = s
        .call(Method::POST, "/api/rules", admin, Some(unknown_sink))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]["key"]
            .as_str()
            .unwrap()
            .starts_with("actions[0].sinks"),
        "{body}"
    );
    let resp = s
        .client
        .post(s.url("/api/rules"))
        .bearer_auth("boss")
        .header("content-type", "application/json")
        .body("{\"name\": \"x\",")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = s
        .client
        .post(s.url("/api/rules"))
        .bearer_auth("boss")
        .body(vec![b' '; MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (st, body) = s
        .call(Method::GET, "/api/rules/b", Some("view"), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["position"], 1);
    assert_eq!(body["stats"]["matched"], 0);
    let (st, body) = s
        .call(Method::GET, "/api/rules/zz", Some("view"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"]["rule"], "zz");

    let (st, body) = s
        .call(Method::PUT, "/api/rules/b", admin, Some(tag_rule("c")))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        (body["rule"]["name"].clone(), body["position"].clone()),
        (json!("c"), json!(1))
    );
    let (st, _) = s
        .call(Method::PUT, "/api/rules/b", admin, Some(tag_rule("b")))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = s.call(Method::DELETE, "/api/rules/a", admin, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["deleted"]["name"], "a");
    let (st, _) = s.call(Method::DELETE, "/api/rules/a", admin, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (_, list) = s.call(Method::GET, "/api/rules", Some("view"), None).await;
    assert_eq!(list["origin"]["origin"], "persisted");
    let names: Vec<&str> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c"]);
    // Persisted: a rule set opened on the same store (as after a restart) has them.
    let names_now: Vec<String> = s.rules.list().into_iter().map(|r| r.name).collect();
    assert_eq!(names_now, ["c"]);
}

#[tokio::test]
async fn stats_answer_the_summaries_and_refuse_a_bad_query() {
    let s = serve(tokens(), true).await;
    let (st, body) = s
        .call(
            reqwest::Method::GET,
            "/api/stats?last=3",
            Some("view"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["traffic"]["interval_secs"], 10);
    assert!(body["traffic"]["intervals"].as_array().unwrap().len() <= 3);
    assert_eq!(body["alerts_firing"], json!([]));
    assert_eq!(body["notifications"]["delivered"], 0);
    let (st, body) = s
        .call(
            reqwest::Method::GET,
            "/api/stats?last=x",
            Some("view"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad query");
}

#[tokio::test]
async fn agents_and_sinks_show_what_ingest_and_the_pipeline_recorded() {
    let s = serve(tokens(), true).await;
    s.agents.record(
        &crate::agents::BatchSeen {
            agent_id: "node-a",
            host: "node-a.example",
            version: "logferry-agent/1.2.3",
            seq: 4,
            events: 10,
            bytes: 512,
            newest_ms: 1_795_341_599_000,
            duplicate: false,
        },
        1_795_341_600_000,
    );
    s.board.written(0, 10, 1_795_341_600_000);
    s.board
        .failed("cloudwatch", "disk full".into(), 1_795_341_600_500);
    let (st, body) = s
        .call(reqwest::Method::GET, "/api/agents", Some("view"), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let a = &body["agents"][0];
    assert_eq!(a["agent_id"], "node-a");
    assert_eq!(a["version"], "logferry-agent/1.2.3");
    assert_eq!(
        (a["batches"].clone(), a["events"].clone()),
        (json!(1), json!(10))
    );
    assert_eq!(a["last_batch_delay_ms"], 1000);
    let (st, body) = s
        .call(reqwest::Method::GET, "/api/sinks", Some("view"), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["sinks"][0]["name"], "archive");
    assert_eq!(body["sinks"][0]["type"], "file");
    assert_eq!(body["sinks"][0]["written"], 10);
    assert_eq!(body["sinks"][0]["last_write"], "2026-11-22T10:00:00.000Z");
    assert_eq!(body["sinks"][1]["failures"], 1);
    assert_eq!(body["sinks"][1]["last_error"]["message"], "disk full");
    assert_eq!(body["queue"]["batches"], 0);
    assert!(
        body["sinks"][0].get("queue").is_none(),
        "a file sink has no queue"
    );
    assert_eq!(body["sinks"][2]["queue"]["events"], 0);
    assert_eq!(body["sinks"][2]["queue"]["max_bytes"], 256 << 20);
    assert_eq!(body["sinks"][2]["queue"]["problem"], Value::Null);
    let (st, _) = s
        .call(reqwest::Method::GET, "/api/agents", None, None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

/// Reads server-sent events until `n` have arrived (or the stream ends).
async fn sse_events(resp: &mut reqwest::Response, n: usize) -> Vec<(String, String)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await
        else {
            break;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut kind = "message".to_owned();
            let mut data = String::new();
            for l in block.lines() {
                if let Some(k) = l.strip_prefix("event: ") {
                    kind = k.to_owned();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            if !data.is_empty() {
                out.push((kind, data));
            }
        }
    }
    out
}

fn line(level: &str, ns: &str, msg: &str) -> String {
    format!(
        r#"{{"timestamp":"2026-11-22T10:00:00.000Z","level":"{level}","message":"{msg}","host":"h1","source":{{"type":"file","path":"/var/log/pods/{ns}_p/c/0.log"}},"k8s":{{"namespace":"{ns}"}},"fields":{{}}}}"#
    )
}

#[tokio::test]
async fn tail_streams_matching_lines_reports_lag_and_ends_at_shutdown() {
    let s = serve(tokens(), true).await;
    let (st, body) = s
        .call(
            reqwest::Method::GET,
            "/api/tail?level=loud",
            Some("view"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let mut resp = s
        .client
        .get(s.url("/api/tail?level=warn&namespace=shop&q=DB"))
        .bearer_auth("view")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // The stream is subscribed once the response started.
    let frame = [
        line("error", "shop", "db down"),
        line("info", "shop", "db fine"),
        line("error", "other", "db down elsewhere"),
        line("warn", "shop", "disk"),
        line("fatal", "shop", "DB gone"),
    ]
    .join("\n")
        + "\n";
    s.tail.send(Arc::new(frame.into_bytes())).unwrap();
    let got = sse_events(&mut resp, 2).await;
    let messages: Vec<String> = got
        .iter()
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(messages, ["db down", "DB gone"]);
    // Six frames into a channel of four, unread: the listener hears it missed two.
    for i in 0..6 {
        s.tail
            .send(Arc::new(
                format!("{}\n", line("error", "shop", &format!("db {i}"))).into_bytes(),
            ))
            .unwrap();
    }
    let got = sse_events(&mut resp, 5).await;
    assert_eq!(got[0], ("lagged".to_owned(), "2".to_owned()), "{got:?}");
    assert_eq!(got.len(), 5, "{got:?}");
    s.shutdown.trigger();
    let rest = sse_events(&mut resp, 1).await;
    assert!(rest.is_empty(), "the stream ends at shutdown: {rest:?}");
}

#[tokio::test]
async fn logs_search_filters_and_pages_newest_first() {
    let s = serve(tokens(), true).await;
    let mut frame = String::new();
    for i in 0..25 {
        let (level, ns) = if i % 5 == 0 {
            ("error", "shop")
        } else {
            ("info", "web")
        };
        frame.push_str(&line(level, ns, &format!("request {i}")).replace(
            "2026-11-22T10:00:00.000Z",
            &format!("2026-11-22T10:00:{i:02}.000Z"),
        ));
        frame.push('\n');
    }
    let keys = crate::pipeline::search_feed::keys_of(frame.as_bytes());
    s.search.append(keys.iter().map(|(k, l)| k.event(l)));
    let get = |path: String| {
        let s = &s;
        async move {
            s.call(reqwest::Method::GET, &path, Some("view"), None)
                .await
        }
    };
    let (st, body) = get("/api/logs?level=error&namespace=shop".into()).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let messages: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "request 20",
            "request 15",
            "request 10",
            "request 5",
            "request 0"
        ]
    );
    assert_eq!(body["next_cursor"], Value::Null);
    // Pages of 10 over the 25 events: each once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/api/logs?limit=10&cursor={c}"),
            None => "/api/logs?limit=10".to_owned(),
        };
        let (st, body) = get(path).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        for e in body["events"].as_array().unwrap() {
            seen.push(e["message"].as_str().unwrap().to_owned());
        }
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let want: Vec<String> = (0..25).rev().map(|i| format!("request {i}")).collect();
    assert_eq!(seen, want);
    let (_, body) =
        get("/api/logs?q=REQUEST%2012&since=2026-11-22T10:00:10Z&until=1795341615000".into()).await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
    for bad in [
        "/api/logs?cursor=zzz",
        "/api/logs?level=loud",
        "/api/logs?limit=0",
        "/api/logs?since=soon",
        "/api/logs?nope=1",
    ] {
        let (st, body) = get(bad.into()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "bad query");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let s = serve(tokens(), true).await;
    let (st, doc) = s
        .call(
            reqwest::Method::GET,
            "/api/openapi.json",
            Some("view"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut listed: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    listed.sort();
    assert_eq!(documented, listed, "ROUTES and the document differ");
    // Every listed route is served: not the fallback's 404 nor 405.
    s.rules
        .add(serde_json::from_value(tag_rule("r")).unwrap(), None)
        .unwrap();
    for (method, path) in ROUTES {
        let method: reqwest::Method = method.parse().unwrap();
        let body = matches!(method, reqwest::Method::POST | reqwest::Method::PUT).then(|| {
            tag_rule(if method == reqwest::Method::POST {
                "new"
            } else {
                "r"
            })
        });
        if *path == "/api/tail" {
            // A stream: only its answer's start is checked.
            let resp = s
                .client
                .get(s.url(path))
                .bearer_auth("view")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            continue;
        }
        let concrete = path.replace("{id}", "r").replace("{name}", "hook");
        let (st, answer) = s.call(method.clone(), &concrete, Some("boss"), body).await;
        assert!(
            st.is_success(),
            "{method} {concrete} answered {st}: {answer}"
        );
        if method == reqwest::Method::DELETE && path.starts_with("/api/rules/") {
            s.rules
                .add(serde_json::from_value(tag_rule("r")).unwrap(), None)
                .unwrap();
        }
    }
    let (st, body) = s
        .call(reqwest::Method::GET, "/api/nothing", Some("view"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(
        body["detail"].as_str().unwrap().contains("openapi"),
        "{body}"
    );
}
