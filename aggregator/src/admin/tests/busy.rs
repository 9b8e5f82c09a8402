//! Searches beyond what the search threads run and queue are refused at once, with
//! `Retry-After`, and served again once the threads are free.

use reqwest::{Method, StatusCode};

use super::{background, serve, tokens};

#[tokio::test]
async fn searches_beyond_the_queue_are_refused_with_retry_after() {
    let s = serve(tokens(), true).await;
    // The harness's search pool: 2 threads and 4 waiting; hold all 6 places.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Arc::new(std::sync::Mutex::new(held));
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let mut holders = Vec::new();
    for _ in 0..6 {
        let (pool, held, started_tx) = (s.searches.clone(), held.clone(), started_tx.clone());
        holders.push(tokio::spawn(async move {
            pool.run(move || {
                let _ = started_tx.send(());
                let _ = held.lock().unwrap().recv();
            })
            .await
        }));
    }
    // Both threads busy (each holder blocks until released; the others queue behind).
    tokio::task::spawn_blocking(move || {
        started.recv().unwrap();
    })
    .await
    .unwrap();
    // Until the queue is full: a probe that gets a place waits there (and runs, harmless,
    // once released), one that does not is refused at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let probe = s.searches.run(|| ());
        match tokio::time::timeout(std::time::Duration::from_millis(20), probe).await {
            Ok(Err(background::RunError::Busy)) => break,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "the queue never filled"
            ),
        }
    }
    let resp = s
        .client
        .get(s.url("/api/logs"))
        .bearer_auth("view")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "search busy", "{body}");
    for _ in 0..16 {
        let _ = release.send(());
    }
    // Holders that came after the probes filled the queue were refused: either is fine.
    for h in holders {
        let _ = h.await;
    }
    let (st, body) = s.call(Method::GET, "/api/logs", Some("view"), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}
