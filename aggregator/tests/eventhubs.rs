//! The Event Hubs sink against the in-process AMQP peer (`logferry-eventhubs-peer`) over
//! 127.0.0.1: batching, partition keys, properties, throttling, an outage and rejection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use logferry_aggregator::sink::eventhubs::{EventHubsConfig, EventHubsSink};
use logferry_aggregator::sink::remote::{
    Adjustments, Deliver, DeliverError, FailureKind, Outcome, Pending,
};
use logferry_eventhubs_peer::{Peer, PeerOptions, BATCH_MESSAGE_FORMAT};

const NAMESPACE: &str = "test.servicebus.windows.net";
const HUB: &str = "logs";
const HOSTS: [&str; 7] = [
    "node-1", "node-2", "node-3", "node-4", "node-5", "node-6", "node-7",
];

fn config(peer: &Peer, extra: &str) -> EventHubsConfig {
    let text = format!(
        "connection_string = \"Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0\"\n\
         event_hub = \"{HUB}\"\nendpoint = \"{}\"\ntimeout = \"10s\"\n{extra}",
        peer.endpoint()
    );
    toml::from_str(&text).unwrap()
}

/// Event `n` as the pipeline renders it: a JSON line with an escaped and a non-ASCII
/// character, on one of seven hosts.
fn event(n: usize) -> String {
    let host = HOSTS[n % HOSTS.len()];
    format!(
        r#"{{"timestamp":"2026-11-22T10:00:00.123Z","observed_timestamp":"2026-11-22T10:00:00.200Z","level":"{}","message":"db timeout \"{n}\" — retry","host":"{host}","format":"json","source":{{"type":"file","path":"/var/log/app.log"}},"k8s":{{"namespace":"shop","pod":"api-7d9","container":"api"}},"fields":{{"seq":{n}}},"tags":["critical"]}}"#,
        if n.is_multiple_of(3) { "error" } else { "info" }
    )
}

fn pending(range: std::ops::Range<usize>) -> Vec<Pending> {
    range.map(|n| Pending::new(event(n).into_bytes())).collect()
}

fn seq_of(body: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["fields"]["seq"].as_u64().unwrap() as usize
}

/// Checks that the peer holds events `0..n`, each exactly once and byte-exact.
fn assert_exactly_once(peer: &Peer, n: usize) {
    let events = peer.events();
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for e in &events {
        let seq = seq_of(&e.body);
        assert_eq!(
            e.body,
            event(seq).into_bytes(),
            "event {seq} changed on the way"
        );
        *seen.entry(seq).or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(doubled.is_empty(), "sent more than once: {doubled:?}");
    let missing: Vec<_> = (0..n).filter(|s| !seen.contains_key(s)).take(10).collect();
    assert!(missing.is_empty(), "lost: {missing:?}...");
    assert_eq!(events.len(), n);
}

/// Delivers `batch` again and again, as the delivery task would after its backoff, until
/// it returns `Ok` or `deadline` passes; returns the errors on the way.
async fn deliver_until_ok(
    sink: &mut EventHubsSink,
    batch: &mut [Pending],
    deadline: Duration,
) -> Vec<DeliverError> {
    let start = Instant::now();
    let mut errors = Vec::new();
    loop {
        match sink.deliver(batch).await {
            Ok(()) => return errors,
            Err(e) => errors.push(e),
        }
        assert!(
            start.elapsed() < deadline,
            "still failing after {deadline:?}: {:?}",
            errors.last()
        );
        // The delivery task's backoff, shortened.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_arrive_once_in_batches_by_partition_key() {
    let max = 64 * 1024;
    let peer = Peer::start(PeerOptions {
        max_message_size: max,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut sink = EventHubsSink::new(
        "hub",
        &config(&peer, "partition_key = \"{host}\""),
        Adjustments::default(),
    )
    .unwrap();
    let total = 100_000;
    for start in (0..total).step_by(10_000) {
        let mut batch = pending(start..start + 10_000);
        sink.deliver(&mut batch).await.unwrap();
        assert!(batch.iter().all(|p| p.outcome == Outcome::Delivered));
    }
    assert_exactly_once(&peer, total);

    let batches = peer.batches();
    let address = format!("amqps://{NAMESPACE}/{HUB}");
    for b in &batches {
        assert_eq!(b.message_format, BATCH_MESSAGE_FORMAT);
        assert!(b.bytes <= max, "a batch of {} bytes, over {max}", b.bytes);
        assert_eq!(b.address, address);
    }
    // ~440 bytes an event: 100,000 events cannot fit in fewer than ~670 batches of 64 KiB,
    // and full batches mean not many more.
    assert!(batches.len() > 600, "{} batches", batches.len());
    assert!(batches.len() < 1_000, "{} batches", batches.len());
    assert_eq!(batches.iter().map(|b| b.events).sum::<usize>(), total);

    // Right key on every event, one key per batch, and one key's events in their order.
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut batch_key: HashMap<usize, String> = HashMap::new();
    for e in peer.events() {
        let seq = seq_of(&e.body);
        let key = e.partition_key.clone().unwrap();
        assert_eq!(key, HOSTS[seq % HOSTS.len()]);
        assert_eq!(e.partition_id, None);
        if let Some(prev) = last.insert(key.clone(), seq) {
            assert!(prev < seq, "{key}: {seq} after {prev}");
        }
        let first = batch_key.entry(e.batch).or_insert_with(|| key.clone());
        assert_eq!(*first, key, "batch {} mixes keys", e.batch);
    }
    sink.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_partition_and_properties() {
    let peer = Peer::start(PeerOptions::default()).await.unwrap();
    let mut sink = EventHubsSink::new(
        "hub",
        &config(
            &peer,
            "partition_id = \"3\"\nproperties = { level = \"{level}\", pod = \"{k8s.namespace}/{k8s.pod}\", missing = \"{fields.nope:-none}\" }",
        ),
        Adjustments::default(),
    )
    .unwrap();
    let mut batch = pending(0..1_000);
    sink.deliver(&mut batch).await.unwrap();
    assert_exactly_once(&peer, 1_000);
    for e in peer.events() {
        let seq = seq_of(&e.body);
        assert_eq!(e.partition_id.as_deref(), Some("3"));
        assert_eq!(e.partition_key, None);
        let level = if seq.is_multiple_of(3) {
            "error"
        } else {
            "info"
        };
        assert_eq!(e.properties.get("level").map(String::as_str), Some(level));
        assert_eq!(
            e.properties.get("pod").map(String::as_str),
            Some("shop/api-7d9")
        );
        assert_eq!(
            e.properties.get("missing").map(String::as_str),
            Some("none")
        );
    }
    for b in peer.batches() {
        assert_eq!(b.address, format!("amqps://{NAMESPACE}/{HUB}/Partitions/3"));
    }
    sink.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_busy_storm_is_throttled_then_delivered_once() {
    let peer = Peer::start(PeerOptions {
        max_message_size: 16 * 1024,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut sink = EventHubsSink::new("hub", &config(&peer, ""), Adjustments::default()).unwrap();
    // Connected and warm before the storm.
    let mut first = pending(0..100);
    sink.deliver(&mut first).await.unwrap();

    peer.fail_next(20);
    let mut batch = pending(100..5_000);
    let errors = deliver_until_ok(&mut sink, &mut batch, Duration::from_secs(60)).await;
    assert!(!errors.is_empty(), "the storm went unnoticed");
    for e in &errors {
        assert_eq!(e.kind, FailureKind::Throttled, "{e}");
    }
    assert_eq!(peer.rejected(), 20);
    assert!(batch.iter().all(|p| p.outcome == Outcome::Delivered));
    assert_exactly_once(&peer, 5_000);
    // Throttling does not cost the connection.
    assert_eq!(peer.connections(), 1);
    sink.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_second_outage_is_unavailable_then_nothing_lost_or_doubled() {
    let peer = Peer::start(PeerOptions {
        ..Default::default()
    })
    .await
    .unwrap();
    let mut sink = EventHubsSink::new(
        "hub",
        &config(&peer, "partition_key = \"{host}\""),
        Adjustments::default(),
    )
    .unwrap();
    let mut before = pending(0..2_000);
    sink.deliver(&mut before).await.unwrap();

    peer.stop().await;
    let outage = Instant::now();
    let mut waiting: Vec<Pending> = Vec::new();
    let mut next = 2_000;
    let mut failures = 0;
    while outage.elapsed() < Duration::from_secs(30) {
        // New events keep coming while the peer is down; nothing gets through.
        waiting.extend(pending(next..next + 500));
        next += 500;
        let call = Instant::now();
        let err = sink
            .deliver(&mut waiting)
            .await
            .expect_err("delivered with the peer down");
        assert_eq!(err.kind, FailureKind::Unavailable, "{err}");
        assert!(
            call.elapsed() < Duration::from_secs(10),
            "a call took {:?}",
            call.elapsed()
        );
        assert!(waiting.iter().all(Pending::is_waiting));
        failures += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(failures >= 10, "{failures} failed calls in 30 s");
    peer.restart().await.unwrap();

    let errors = deliver_until_ok(&mut sink, &mut waiting, Duration::from_secs(30)).await;
    for e in &errors {
        assert_eq!(e.kind, FailureKind::Unavailable, "{e}");
    }
    assert!(waiting.iter().all(|p| p.outcome == Outcome::Delivered));
    let mut after = pending(next..next + 1_000);
    sink.deliver(&mut after).await.unwrap();
    assert_exactly_once(&peer, next + 1_000);
    sink.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_for_a_message_is_rejected_and_counted() {
    let peer = Peer::start(PeerOptions {
        max_message_size: 64 * 1024,
        ..Default::default()
    })
    .await
    .unwrap();
    let adjustments = Adjustments::default();
    let mut sink = EventHubsSink::new("hub", &config(&peer, ""), adjustments.clone()).unwrap();
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(100 * 1024));
    let mut batch = vec![
        Pending::new(event(0).into_bytes()),
        Pending::new(big.into_bytes()),
        Pending::new(event(1).into_bytes()),
    ];
    sink.deliver(&mut batch).await.unwrap();
    assert_eq!(batch[0].outcome, Outcome::Delivered);
    assert!(
        matches!(&batch[1].outcome, Outcome::Rejected(r) if r.contains("larger")),
        "{:?}",
        batch[1].outcome
    );
    assert_eq!(batch[2].outcome, Outcome::Delivered);
    assert_eq!(adjustments.get("too_large"), 1);
    assert_exactly_once(&peer, 2);
    sink.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_lazily_reuses_one_connection_and_closes() {
    let peer = Peer::start(PeerOptions::default()).await.unwrap();
    let mut sink = EventHubsSink::new("hub", &config(&peer, ""), Adjustments::default()).unwrap();
    assert!(!sink.is_connected());
    assert_eq!(peer.connections(), 0);
    for start in (0..3_000).step_by(1_000) {
        let mut batch = pending(start..start + 1_000);
        sink.deliver(&mut batch).await.unwrap();
    }
    assert!(sink.is_connected());
    assert_eq!(peer.connections(), 1);
    // The SAS token was put on $cbs for the hub.
    let tokens = peer.tokens();
    assert!(!tokens.is_empty());
    assert!(
        tokens[0].starts_with("SharedAccessSignature "),
        "{}",
        tokens[0]
    );
    sink.close().await;
    assert!(!sink.is_connected());
    let deadline = Instant::now() + Duration::from_secs(10);
    while peer.open_connections() > 0 {
        assert!(Instant::now() < deadline, "the connection stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        peer.closed_by_client(),
        1,
        "the connection was dropped, not closed"
    );
    assert_exactly_once(&peer, 3_000);
}

/// The peer answers the client's `$management` reads with the types it expects (a wrong
/// type makes the client panic), so tools built on the client can be tested against it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_answers_management_reads() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let peer = Peer::start(PeerOptions {
        partitions: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let producer = azure_messaging_eventhubs::ProducerClient::builder()
        .with_custom_endpoint(peer.endpoint())
        .open_with_connection_string(
            &format!(
                "Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"
            ),
            Some(HUB),
        )
        .await
        .unwrap();
    let hub = producer.get_eventhub_properties().await.unwrap();
    assert_eq!(hub.name, HUB);
    assert_eq!(hub.partition_ids, vec!["0", "1", "2"]);
    let partition = producer.get_partition_properties("1").await.unwrap();
    assert_eq!(partition.id, "1");
    assert!(partition.is_empty);
    producer.close().await.unwrap();
}

/// 100,000 events through the real aggregator binary: agents' batches in, the sink's
/// durable queue and delivery task, the peer out, with a server-busy storm on the way; each
/// host's events in order under its partition key, nothing lost or doubled. Then the peer
/// goes away, 10,000 more events queue up, the aggregator is killed with -9 and started
/// again, the peer comes back: exactly those 10,000 arrive, once.
#[test]
fn the_aggregator_binary_forwards_100k_events_through_storm_outage_and_kill9() {
    use logferry_e2e::http as e2e_http;
    use logferry_e2e::{wait_until, Aggregator, AggregatorOptions, TestDir};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let peer = rt
        .block_on(Peer::start(PeerOptions {
            max_message_size: 256 * 1024,
            ..Default::default()
        }))
        .unwrap();
    let dir = TestDir::new().unwrap();
    let extra = format!(
        r#"
[sinks.hub]
type = "eventhubs"
connection_string = "Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"
event_hub = "{HUB}"
endpoint = "{}"
partition_key = "{{host}}"
timeout = "10s"

[sinks.hub.queue]
batch_wait = "100ms"

[sinks.hub.retry]
initial_backoff = "50ms"
max_backoff = "500ms"
"#,
        peer.endpoint()
    );
    let agg = Aggregator::start(&dir, AggregatorOptions::default().extra(&extra)).unwrap();
    let client = e2e_http::client(&dir, false).unwrap();
    let hosts = ["node-1", "node-2", "node-3"];
    // What each host (partition key) must hold, in order.
    let mut want: HashMap<String, Vec<String>> = HashMap::new();
    let send = |agg: &Aggregator,
                seqs: std::ops::RangeInclusive<u64>,
                want: &mut HashMap<String, Vec<String>>| {
        for seq in seqs {
            let host = hosts[(seq % 3) as usize];
            let lines: Vec<String> = (0..500).map(|i| format!("eh-{seq}-{i}")).collect();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            agg.send_lines(&client, "e2e-eh", seq, (host, "/var/log/app.log"), &refs)
                .unwrap();
            want.entry(host.to_owned()).or_default().extend(lines);
        }
    };
    // What the peer holds, per partition key, as messages.
    let got = |peer: &Peer| {
        let mut got: HashMap<String, Vec<String>> = HashMap::new();
        for e in peer.events() {
            let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
            assert_eq!(v["host"].as_str(), e.partition_key.as_deref());
            got.entry(e.partition_key.unwrap_or_default())
                .or_default()
                .push(v["message"].as_str().unwrap().to_owned());
        }
        got
    };
    let total = |m: &HashMap<String, Vec<String>>| m.values().map(Vec::len).sum::<usize>();

    send(&agg, 1..=100, &mut want);
    peer.fail_next(25);
    send(&agg, 101..=200, &mut want);
    wait_until(
        Duration::from_secs(120),
        "100,000 events at the peer",
        || peer.event_count() >= 100_000,
    )
    .unwrap();
    assert_eq!(peer.rejected(), 25, "the storm happened");
    assert_eq!(got(&peer), want);
    assert!(peer.batches().iter().all(|b| b.bytes <= 256 * 1024));

    // The peer away: 10,000 more events wait in the queue; kill -9; the peer back (it keeps
    // what it recorded).
    rt.block_on(peer.stop());
    let before = peer.event_count();
    let mut agg = agg;
    let mut want: HashMap<String, Vec<String>> = HashMap::new();
    send(&agg, 201..=220, &mut want);
    wait_until(Duration::from_secs(60), "the events queued for hub", || {
        e2e_http::get(&client, &agg.admin_url("/api/sinks")).is_ok_and(|(_, b)| {
            serde_json::from_str::<serde_json::Value>(&b).is_ok_and(|v| {
                v["sinks"]
                    .as_array()
                    .and_then(|a| a.iter().find(|s| s["name"] == "hub"))
                    .is_some_and(|s| s["queue"]["events"] == 10_000)
            })
        })
    })
    .unwrap();
    agg.kill9().unwrap();
    assert_eq!(
        peer.event_count(),
        before,
        "nothing was delivered while away"
    );
    rt.block_on(peer.restart()).unwrap();
    let agg = Aggregator::restart(&dir, agg.restart_options()).unwrap();
    wait_until(
        Duration::from_secs(120),
        "10,000 more events at the peer",
        || peer.event_count() >= before + 10_000,
    )
    .unwrap();
    let all = got(&peer);
    let after: HashMap<String, Vec<String>> = all
        .into_iter()
        .map(|(k, v)| {
            let new: Vec<String> = v
                .into_iter()
                .filter(|m| {
                    let seq: u64 = m.split('-').nth(1).unwrap().parse().unwrap();
                    seq > 200
                })
                .collect();
            (k, new)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert_eq!(after, want);
    assert_eq!(peer.event_count(), before + 10_000, "nothing doubled");
    assert_eq!(total(&want), 10_000);
    drop(agg);
}
