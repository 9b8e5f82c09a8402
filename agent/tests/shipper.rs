//! The shipper against a real local HTTP server: transient refusals (503, 429 with
//! `Retry-After`, 500) are retried until the batch is acknowledged and deleted; a
//! permanent refusal (400) moves the batch to the dead-letter store. Nothing is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use logferry_agent::config::WhenFull;
use logferry_agent::metrics::Metrics;
use logferry_agent::ship::{Backoff, Shipper, Target, TargetCell};
use logferry_agent::spool::Spool;
use logferry_shared::runtime::Shutdown;
use tokio::sync::Notify;

/// Serves `POST /v1/batch`, answering from `script` in order (then 200), and records
/// every body received.
async fn server(
    script: Vec<(u16, Option<&'static str>)>,
) -> (String, Arc<Mutex<Vec<Vec<u8>>>>, Arc<AtomicUsize>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (b, c) = (bodies.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/v1/batch",
        post(move |body: axum::body::Bytes| {
            let (b, c, script) = (b.clone(), c.clone(), script.clone());
            async move {
                b.lock().expect("lock").push(body.to_vec());
                let n = c.fetch_add(1, Ordering::SeqCst);
                let (status, retry_after) = script.get(n).copied().unwrap_or((200, None));
                let mut resp =
                    (StatusCode::from_u16(status).expect("status"), "{}").into_response();
                if let Some(ra) = retry_after {
                    resp.headers_mut()
                        .insert("retry-after", ra.parse().expect("header"));
                }
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/batch"), bodies, calls)
}

fn shipper(url: String, spool: Arc<Spool>, metrics: Arc<Metrics>, shutdown: Shutdown) -> Shipper {
    let target = Target {
        client: reqwest::Client::builder()
            .use_preconfigured_tls(
                logferry_shared::tls::client_config(None, None)
                    .or_else(|_| {
                        // No system roots on this machine: any CA will do for plain HTTP.
                        let dir = tempfile::tempdir().expect("tempdir");
                        let certs =
                            logferry_shared::tls::DevCerts::generate(&["localhost".into()], "t")
                                .expect("certs");
                        certs.write_to(dir.path()).expect("write certs");
                        logferry_shared::tls::client_config(Some(&dir.path().join("ca.pem")), None)
                    })
                    .expect("client config"),
            )
            .build()
            .expect("client"),
        url,
        auth: Some("Bearer t".parse().expect("header")),
        max_in_flight: 2,
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(200),
        },
    };
    Shipper {
        target: Arc::new(TargetCell::new(target)),
        spool,
        metrics,
        wake: Arc::new(Notify::new()),
        shutdown,
    }
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn transient_refusals_are_retried_until_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) =
        Spool::open(&dir.path().join("spool"), 1 << 20, WhenFull::Block).expect("spool");
    let spool = Arc::new(spool);
    spool
        .commit(1, b"frame-one", &[], &|| false)
        .expect("commit");
    let (url, bodies, calls) = server(vec![(503, Some("0")), (429, Some("0")), (500, None)]).await;
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(shipper(url, spool.clone(), metrics.clone(), shutdown.clone()).run());
    wait_until("the batch to be acknowledged", || spool.is_empty()).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "three refusals, then the 200"
    );
    assert!(bodies
        .lock()
        .expect("lock")
        .iter()
        .all(|b| b == b"frame-one"));
    assert_eq!(metrics.batches_retried.get(), 3);
    assert_eq!(metrics.batches_acked.get(), 1);
    assert_eq!(spool.dead_letter_len(), 0);
    shutdown.trigger();
    task.await.expect("shipper task");
}

#[tokio::test]
async fn permanent_refusal_goes_to_the_dead_letter_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) =
        Spool::open(&dir.path().join("spool"), 1 << 20, WhenFull::Block).expect("spool");
    let spool = Arc::new(spool);
    spool
        .commit(1, b"bad-frame", &[], &|| false)
        .expect("commit");
    spool
        .commit(2, b"good-frame", &[], &|| false)
        .expect("commit");
    // The first request (seq 1 or 2, both may be in flight) gets 400.
    let (url, bodies, _) = server(vec![(400, None)]).await;
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(shipper(url, spool.clone(), metrics.clone(), shutdown.clone()).run());
    wait_until("both batches to leave the spool", || spool.is_empty()).await;
    assert_eq!(spool.dead_letter_len(), 1);
    let dead = spool.dead_letters().expect("dead letters");
    let info = dead[0].info.as_ref().expect("reason recorded");
    assert_eq!(info.status, Some(400));
    assert!(
        info.reason.starts_with("400 Bad Request"),
        "{}",
        info.reason
    );
    assert_eq!(metrics.batches_dead_lettered.get(), 1);
    assert_eq!(metrics.batches_acked.get(), 1);
    assert_eq!(
        bodies.lock().expect("lock").len(),
        2,
        "a 400 is not retried"
    );
    shutdown.trigger();
    task.await.expect("shipper task");
}

#[tokio::test]
async fn unacknowledged_batches_stay_in_the_spool_at_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) =
        Spool::open(&dir.path().join("spool"), 1 << 20, WhenFull::Block).expect("spool");
    let spool = Arc::new(spool);
    spool.commit(1, b"frame", &[], &|| false).expect("commit");
    // Always 503: the batch can never be delivered.
    let (url, _, calls) = server(vec![(503, None); 10_000]).await;
    let shutdown = Shutdown::new();
    let task = tokio::spawn(
        shipper(
            url,
            spool.clone(),
            Arc::new(Metrics::new()),
            shutdown.clone(),
        )
        .run(),
    );
    wait_until("a few attempts", || calls.load(Ordering::SeqCst) >= 3).await;
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("shipper stops promptly")
        .expect("shipper task");
    assert_eq!(spool.len(), 1, "the batch is kept for the next start");
}
