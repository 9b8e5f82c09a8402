//! [`Inputs::reload`] on real listeners with a real inbox: unchanged inputs are left
//! alone, removed ones stop, changed ones restart with their new settings (or run on with
//! the old ones when the new ones cannot start), new ones start, and every record an input
//! answered for is in the inbox.

use std::sync::Arc;

use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{self, DecodeLimits};
use reqwest::StatusCode;

use super::{InputConfig, InputContext, Inputs, Reloaded};
use crate::inbox::Inbox;
use crate::input::web::testkit::client;
use crate::metrics::Metrics;
use crate::pipeline::Wake;

fn http(name: &str, extra: &str) -> InputConfig {
    let text = format!("type = \"http\"\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n{extra}");
    toml::from_str(&text).unwrap()
}

fn addr(inputs: &Inputs, name: &str) -> std::net::SocketAddr {
    inputs
        .addrs()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("input {name} does not run"))
        .1
}

/// POSTs one record; the status, or `None` when the connection is refused.
async fn post(addr: std::net::SocketAddr, token: Option<&str>, msg: &str) -> Option<StatusCode> {
    let mut req = client()
        .post(format!("http://{addr}/v1/logs"))
        .header("content-type", "application/json")
        .body(format!("{{\"message\":\"{msg}\"}}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.ok().map(|r| r.status())
}

fn stored(inbox: &Inbox) -> Vec<String> {
    let mut out = Vec::new();
    for (_, frame) in inbox.read_after(None, 100_000).unwrap() {
        let f = wire::decode_frame(&frame, &DecodeLimits::default()).unwrap();
        for r in &f.batch().unwrap().records {
            let v: serde_json::Value = serde_json::from_slice(r.line).unwrap();
            out.push(v["message"].as_str().unwrap().to_owned());
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_stops_restarts_and_starts_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 64 << 20).unwrap());
    let process = Shutdown::new();
    let ctx = InputContext {
        inbox: inbox.clone(),
        wake: Arc::new(Wake::default()),
        metrics: Arc::new(Metrics::new()),
        shutdown: process.clone(),
        limits: DecodeLimits::default(),
    };
    let (a, b, d) = (http("a", ""), http("b", ""), http("d", ""));
    let mut inputs = Inputs::start(&[a.clone(), b, d], &ctx).await.unwrap();
    let (a_addr, b_addr, d_addr) = (addr(&inputs, "a"), addr(&inputs, "b"), addr(&inputs, "d"));
    for (addr, msg) in [(a_addr, "a1"), (b_addr, "b1"), (d_addr, "d1")] {
        assert_eq!(post(addr, None, msg).await, Some(StatusCode::OK));
    }

    // a unchanged, b now wants a token, c new, d gone.
    let b2 = http("b", "[[tokens]]\ntoken = \"s3cret\"\n");
    let c = http("c", "");
    let done = inputs.reload(&[a.clone(), b2.clone(), c.clone()]).await;
    assert_eq!(
        done,
        Reloaded {
            stopped: vec!["d".into()],
            restarted: vec!["b".into()],
            started: vec!["c".into()],
            failed: vec![],
        }
    );
    assert_eq!(
        addr(&inputs, "a"),
        a_addr,
        "an unchanged input keeps its listener"
    );
    assert_eq!(post(a_addr, None, "a2").await, Some(StatusCode::OK));
    assert_eq!(
        post(d_addr, None, "d2").await,
        None,
        "a removed input stops listening"
    );
    let b_addr = addr(&inputs, "b");
    assert_eq!(
        post(b_addr, None, "b-refused").await,
        Some(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        post(b_addr, Some("s3cret"), "b2").await,
        Some(StatusCode::OK)
    );
    assert_eq!(
        post(addr(&inputs, "c"), None, "c1").await,
        Some(StatusCode::OK)
    );

    // b's new settings cannot start (its port is taken): b runs on with the old ones.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b3 = http("b", "");
    let b3 = match b3 {
        InputConfig::Http(mut h) => {
            h.listen = taken.local_addr().unwrap();
            InputConfig::Http(h)
        }
        _ => unreachable!(),
    };
    let done = inputs.reload(&[a, b3, c]).await;
    assert_eq!(done.failed.len(), 1, "{done:?}");
    assert_eq!(done.failed[0].0, "b");
    assert!(done.failed[0].1.contains("previous settings"), "{done:?}");
    let b_addr = addr(&inputs, "b");
    assert_eq!(
        post(b_addr, Some("s3cret"), "b3").await,
        Some(StatusCode::OK)
    );

    process.trigger();
    inputs.stop().await;
    assert_eq!(post(a_addr, None, "late").await, None);
    assert_eq!(stored(&inbox), ["a1", "a2", "b1", "b2", "b3", "c1", "d1"]);
}
