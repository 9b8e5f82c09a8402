//! Notifier tests against real local peers: an axum HTTP server on 127.0.0.1:0 for Slack
//! and webhooks, and a small SMTP server with STARTTLS (rcgen certificates) for email.
//! The throttle and the queue are tested on their own too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use logferry_shared::event::Level;

use super::config::{AlertsConfig, NotifierConfig, SmtpSecurity};
use super::queue::DeliveryQueue;
use super::service::{backoff, Dispatcher};
use super::throttle::{Throttle, ThrottleSettings};
use super::{build, Notifier};
use crate::rules::{ManualClock, Notification, NotificationKind, Outbox};

mod smtp;

fn note(rule: &str, summary: &str) -> Notification {
    Notification {
        rule: rule.into(),
        notifier: "hook".into(),
        kind: NotificationKind::Match,
        at_ms: 0,
        summary: summary.into(),
        group: None,
        count: 1,
        threshold: None,
        window_secs: None,
        duration_secs: None,
        sample: None,
    }
}

// ---------- throttle and queue ----------

#[test]
fn the_throttle_drops_duplicates_and_folds_a_storm_into_a_digest() {
    let mut t = Throttle::new(ThrottleSettings {
        per_rule_limit: 3,
        per_rule_window_ms: 60_000,
        dedup_window_ms: 10_000,
    });
    assert_eq!(t.offer(note("r", "a"), 0).len(), 1);
    assert_eq!(t.offer(note("r", "a"), 1_000).len(), 0, "duplicate");
    assert_eq!(t.duplicates(), 1);
    assert_eq!(
        t.offer(note("r", "a"), 11_000).len(),
        1,
        "dedup window over"
    );
    assert_eq!(
        t.offer(note("other", "x"), 11_000).len(),
        1,
        "rules are separate"
    );
    let mut passed = 0;
    for i in 0..10_000 {
        passed += t.offer(note("r", &format!("n{i}")), 12_000).len();
    }
    assert_eq!(passed, 1, "limit 3 per window: a, a, n0");
    assert!(t.flush(59_999).is_empty());
    let digest = t.flush(60_000);
    assert_eq!(digest.len(), 1);
    assert_eq!(digest[0].kind, NotificationKind::Digest);
    assert_eq!(digest[0].count, 9_999);
    assert!(
        digest[0].summary.starts_with("[DIGEST] r: 9999 more"),
        "{}",
        digest[0].summary
    );
    assert_eq!(
        digest[0].summary.lines().count(),
        1 + 10 + 1,
        "ten lines and an ellipsis"
    );
    assert_eq!(t.offer(note("r", "fresh"), 60_001).len(), 1, "new window");
}

#[test]
fn the_queue_survives_a_reopen_and_keeps_its_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = DeliveryQueue::open(dir.path(), 10).unwrap();
        for i in 0..3 {
            assert!(q.push(note("r", &format!("n{i}")), 100).unwrap());
        }
    }
    let q = DeliveryQueue::open(dir.path(), 3).unwrap();
    let due = q.due(100, 10);
    let order: Vec<&str> = due
        .iter()
        .map(|(_, p)| p.notification.summary.as_str())
        .collect();
    assert_eq!(order, ["n0", "n1", "n2"]);
    assert!(!q.push(note("r", "full"), 100).unwrap(), "bounded");
    assert!(q.due(99, 10).is_empty(), "not due before it was queued");
    q.remove(due[0].0).unwrap();
    assert_eq!(q.len(), 2);
}

#[test]
fn backoff_doubles_up_to_the_maximum() {
    let s = AlertsConfig {
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(10),
        ..AlertsConfig::default()
    };
    let delays: Vec<u64> = (1..=6).map(|a| backoff(&s, a)).collect();
    assert_eq!(delays, [1000, 2000, 4000, 8000, 10_000, 10_000]);
    assert_eq!(backoff(&s, 200), 10_000);
}

// ---------- HTTP peers ----------

#[derive(Clone, Default)]
struct Peer {
    /// (headers, body) of every request.
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// Statuses to answer, in order; then 200.
    script: Arc<Mutex<Vec<StatusCode>>>,
}

async fn receive(State(p): State<Peer>, headers: HeaderMap, body: String) -> StatusCode {
    p.seen.lock().unwrap().push((headers, body));
    let mut s = p.script.lock().unwrap();
    if s.is_empty() {
        StatusCode::OK
    } else {
        s.remove(0)
    }
}

async fn http_peer(script: Vec<StatusCode>) -> (String, Peer) {
    let peer = Peer {
        script: Arc::new(Mutex::new(script)),
        ..Peer::default()
    };
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(peer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), peer)
}

fn webhook_config(url: &str) -> NotifierConfig {
    let mut headers = BTreeMap::new();
    headers.insert("X-Team".to_owned(), "sre".to_owned());
    NotifierConfig::Webhook {
        url: url.to_owned(),
        headers,
        secret: Some("s3cret".into()),
        secret_env: None,
        secret_file: None,
        timeout: Duration::from_secs(5),
    }
}

fn settings() -> AlertsConfig {
    AlertsConfig {
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(8),
        ..AlertsConfig::default()
    }
}

struct Rig {
    clock: Arc<ManualClock>,
    outbox: Arc<Outbox>,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

fn rig(notifiers: Vec<Box<dyn Notifier>>, settings: AlertsConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_795_341_600_000));
    let outbox = Arc::new(Outbox::new(1000));
    let queue = DeliveryQueue::open(dir.path(), 1000).unwrap();
    let dispatcher = Dispatcher::new(outbox.clone(), queue, notifiers, settings, clock.clone());
    Rig {
        clock,
        outbox,
        dispatcher,
        _dir: dir,
    }
}

#[tokio::test]
async fn webhook_posts_json_with_headers_and_secret_and_retries_on_500() {
    let (url, peer) = http_peer(vec![
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ])
    .await;
    let hook = build("hook", &webhook_config(&url)).unwrap();
    let mut r = rig(vec![hook], settings());
    r.outbox.push(note("errors", "[MATCH] errors: db timeout"));
    let first = r.dispatcher.round().await;
    assert_eq!((first.queued, first.delivered, first.retried), (1, 0, 1));
    let again = r.dispatcher.round().await;
    assert_eq!(
        again.delivered + again.retried,
        0,
        "not due before the backoff"
    );
    r.clock.advance(Duration::from_secs(1));
    assert_eq!(r.dispatcher.round().await.retried, 1, "second failure");
    r.clock.advance(Duration::from_secs(1));
    assert_eq!(
        r.dispatcher.round().await.delivered,
        0,
        "backoff doubled to 2 s"
    );
    r.clock.advance(Duration::from_secs(1));
    assert_eq!(r.dispatcher.round().await.delivered, 1);
    assert!(r.dispatcher.queue().is_empty());
    let seen = peer.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let (headers, body) = &seen[2];
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["x-team"], "sre");
    assert_eq!(headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["rule"], "errors");
    assert_eq!(v["kind"], "match");
    assert_eq!(v["summary"], "[MATCH] errors: db timeout");
}

#[tokio::test]
async fn a_refused_notification_is_dropped_not_retried() {
    let (url, peer) = http_peer(vec![StatusCode::NOT_FOUND]).await;
    let mut r = rig(
        vec![build("hook", &webhook_config(&url)).unwrap()],
        settings(),
    );
    r.outbox.push(note("r", "x"));
    let round = r.dispatcher.round().await;
    assert_eq!((round.delivered, round.dropped), (0, 1));
    assert!(r.dispatcher.queue().is_empty());
    assert_eq!(peer.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_webhook_is_retried_until_give_up_after() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = webhook_config(&format!("http://127.0.0.1:{port}/hook"));
    let s = AlertsConfig {
        give_up_after: Duration::from_secs(30),
        ..settings()
    };
    let mut r = rig(vec![build("hook", &cfg).unwrap()], s);
    r.outbox.push(note("r", "x"));
    let mut retried = 0;
    let mut dropped = 0;
    for _ in 0..40 {
        let round = r.dispatcher.round().await;
        retried += round.retried;
        dropped += round.dropped;
        r.clock.advance(Duration::from_secs(1));
    }
    assert!(retried >= 4, "{retried}");
    assert_eq!(dropped, 1);
    assert!(r.dispatcher.queue().is_empty());
}

#[tokio::test]
async fn slack_gets_the_text_with_the_sample() {
    let (url, peer) = http_peer(vec![]).await;
    let cfg = NotifierConfig::Slack {
        webhook_url: Some(url),
        webhook_url_env: None,
        webhook_url_file: None,
        timeout: Duration::from_secs(5),
    };
    let slack = build("oncall", &cfg).unwrap();
    let mut n = note("errors", "[MATCH] errors: db timeout");
    n.notifier = "oncall".into();
    n.sample = Some(crate::rules::EventSample {
        level: Some(Level::Error),
        message: "db timeout".into(),
        host: "node-1".into(),
        source: "/var/log/app.log".into(),
    });
    slack.send(&n).await.unwrap();
    let seen = peer.seen.lock().unwrap();
    let v: serde_json::Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(
        v["text"],
        "[MATCH] errors: db timeout\nerror node-1 /var/log/app.log: db timeout"
    );
}

#[tokio::test]
async fn a_storm_of_100000_matching_events_sends_a_handful_of_messages() {
    use crate::rules::config::rules_from_toml;
    use crate::rules::{Engine, EngineContext, K8sRef, RuleEvent};

    let (url, peer) = http_peer(vec![]).await;
    let mut r = rig(
        vec![build("hook", &webhook_config(&url)).unwrap()],
        AlertsConfig {
            per_rule_limit: 2,
            per_rule_window: Duration::from_secs(600),
            ..settings()
        },
    );
    let ctx = EngineContext {
        sinks: vec!["out".into()],
        notifiers: vec!["hook".into()],
        clock: r.clock.clone(),
        outbox: r.outbox.clone(),
    };
    let rules = rules_from_toml(
        r#"
[[rules]]
name = "errors"
when = { field = "level", gte = "error" }
actions = [{ type = "notify", notifier = "hook", interval = "1m" }]
[[rules]]
name = "error-rate"
when = { field = "level", gte = "error" }
actions = [{ type = "alert", notifier = "hook", window = "1m", above = 1000, group_by = "fields.code" }]
"#,
    )
    .unwrap();
    let engine = Engine::build(&rules, &ctx, None).unwrap();
    let codes: Vec<String> = (0..50).map(|c| format!("E{c}")).collect();
    for i in 0..100_000usize {
        let parsed = crate::parse::Parsed {
            timestamp: None,
            level: Some(Level::Error),
            message: "payment failed".into(),
            fields: vec![(
                "code".into(),
                crate::parse::Value::Str(codes[i % 50].as_str().into()),
            )],
        };
        let mut ev = RuleEvent::new(
            parsed,
            "json",
            "node-1",
            "/var/log/app.log",
            K8sRef::default(),
        );
        engine.apply(&mut ev);
        if i % 10_000 == 9_999 {
            // 10,000 events per second for 10 s; the dispatcher runs every second.
            r.clock.advance(Duration::from_secs(1));
            engine.tick();
            r.dispatcher.round().await;
        }
    }
    // Ten minutes later: digests and recoveries.
    for _ in 0..11 {
        r.clock.advance(Duration::from_secs(60));
        engine.tick();
        r.dispatcher.round().await;
    }
    let seen = peer.seen.lock().unwrap();
    let bodies: Vec<serde_json::Value> = seen
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    let by = |rule: &str, kind: &str| {
        bodies
            .iter()
            .filter(|b| b["rule"] == rule && b["kind"] == kind)
            .count()
    };
    // errors: the first match, then the engine's digest after a minute (counting every
    // further match), all within the per-rule limit of 2.
    assert_eq!(by("errors", "match"), 1, "{bodies:#?}");
    assert_eq!(by("errors", "digest"), 1, "{bodies:#?}");
    let digest = bodies
        .iter()
        .find(|b| b["rule"] == "errors" && b["kind"] == "digest")
        .unwrap();
    assert_eq!(digest["count"], 99_999);
    // error-rate: 50 groups fire (2,000 each in the minute) and later recover: 100
    // notifications, of which 2 pass and the rest arrive as one throttle digest.
    assert_eq!(by("error-rate", "firing"), 2, "{bodies:#?}");
    assert_eq!(by("error-rate", "digest"), 1, "{bodies:#?}");
    let d = bodies
        .iter()
        .find(|b| b["rule"] == "error-rate" && b["kind"] == "digest")
        .unwrap();
    assert_eq!(d["count"], 98);
    assert_eq!(seen.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_thread_delivers_and_stops_at_shutdown() {
    let (url, peer) = http_peer(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::new(100));
    let queue = DeliveryQueue::open(dir.path(), 100).unwrap();
    let dispatcher = Dispatcher::new(
        outbox.clone(),
        queue,
        vec![build("hook", &webhook_config(&url)).unwrap()],
        settings(),
        Arc::new(crate::rules::SystemClock),
    );
    let shutdown = logferry_shared::runtime::Shutdown::new();
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t = ticks.clone();
    let handle = dispatcher
        .spawn(shutdown.clone(), move || {
            t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    outbox.push(note("r", "from the engine"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while peer.seen.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
    tokio::task::spawn_blocking(move || handle.join().unwrap())
        .await
        .unwrap();
    assert_eq!(peer.seen.lock().unwrap().len(), 1);
    assert!(
        ticks.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "each_round ran"
    );
}

// ---------- email ----------

#[tokio::test]
async fn email_goes_over_starttls_with_login_to_a_local_smtp_server() {
    let server = smtp::Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let cfg = NotifierConfig::Email {
        smtp_host: "localhost".into(),
        smtp_port: server.port,
        security: SmtpSecurity::Starttls,
        ca: Some(ca),
        username: Some("logferry".into()),
        password: Some("pw".into()),
        password_env: None,
        password_file: None,
        from: "logferry@example.com".into(),
        to: vec!["sre@example.com".into(), "oncall@example.com".into()],
        subject_prefix: "[logferry]".into(),
        timeout: Duration::from_secs(10),
    };
    let email = build("mail", &cfg).unwrap();
    let mut n = note(
        "high-traffic",
        "[FIRING] high-traffic: 1300 events in the last 2m (threshold 1200)",
    );
    n.kind = NotificationKind::Firing;
    email.send(&n).await.unwrap();
    let got = server.received().await;
    assert!(got.tls_before_auth, "AUTH and DATA only after STARTTLS");
    assert_eq!(got.auth, Some(("logferry".to_owned(), "pw".to_owned())));
    assert_eq!(got.mail_from, "logferry@example.com");
    assert_eq!(got.rcpt_to, ["sre@example.com", "oncall@example.com"]);
    assert!(
        got.data
            .contains("Subject: [logferry] [FIRING] high-traffic: 1300 events"),
        "{}",
        got.data
    );
    assert!(got.data.contains("(threshold 1200)"), "{}", got.data);
}

#[tokio::test]
async fn email_refuses_a_server_without_starttls() {
    let server = smtp::Server::start_without_tls().await;
    let cfg = NotifierConfig::Email {
        smtp_host: "localhost".into(),
        smtp_port: server.port,
        security: SmtpSecurity::Starttls,
        ca: None,
        username: None,
        password: None,
        password_env: None,
        password_file: None,
        from: "logferry@example.com".into(),
        to: vec!["sre@example.com".into()],
        subject_prefix: "[logferry]".into(),
        timeout: Duration::from_secs(10),
    };
    let email = build("mail", &cfg).unwrap();
    assert!(email.send(&note("r", "x")).await.is_err());
    assert!(server.received_nothing().await);
}
