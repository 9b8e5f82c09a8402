//! The CloudWatch Logs sink against real peers on 127.0.0.1: moto's server mode (a local
//! CloudWatch Logs, installed by `.ci/run`) and a small stub speaking the CloudWatch JSON
//! protocol that fails on cue.

mod cloudwatch_support;

use std::collections::HashMap;
use std::time::Duration;

use cloudwatch_support::{test_client, Moto, Reply, Stub};
use logferry_aggregator::sink::cloudwatch::{CloudWatchConfig, CloudWatchSink};
use logferry_aggregator::sink::remote::{
    Adjustments, Deliver, DeliverError, FailureKind, Outcome, Pending,
};
use serde_json::json;

fn config(endpoint: &str, extra: &str) -> CloudWatchConfig {
    let text = format!(
        "group = \"/logferry/{{k8s.namespace}}\"\nstream = \"{{host}}/{{source.path}}\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\ntimeout = \"10s\"\n{extra}"
    );
    toml::from_str(&text).unwrap()
}

fn sink(config: &CloudWatchConfig, adjust: Adjustments) -> CloudWatchSink {
    CloudWatchSink::new("cw", config, adjust)
        .unwrap()
        .with_static_credentials("AKIDTEST", "secret")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn event(seq: usize, ms: i64, namespace: &str, host: &str) -> String {
    json!({
        "timestamp": rfc3339(ms),
        "observed_timestamp": rfc3339(ms),
        "level": "info",
        "message": format!("event {seq}"),
        "host": host,
        "format": "json",
        "source": {"type": "file", "path": "/var/log/app.log"},
        "k8s": {"namespace": namespace, "pod": "api-7d9", "container": "api"},
        "fields": {"seq": seq},
    })
    .to_string()
}

/// Calls `deliver` the way the delivery task does until nothing is left waiting; returns
/// the errors seen on the way. Fails after `max_calls`.
async fn deliver_until_done(
    sink: &mut CloudWatchSink,
    batch: &mut [Pending],
    max_calls: usize,
) -> Vec<DeliverError> {
    let mut errors = Vec::new();
    for _ in 0..max_calls {
        match sink.deliver(batch).await {
            Ok(()) => {
                assert!(
                    batch.iter().all(|p| !p.is_waiting()),
                    "Ok with events waiting"
                );
                return errors;
            }
            Err(e) => errors.push(e),
        }
    }
    panic!("still failing after {max_calls} calls: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_receives_100k_events_in_order_in_their_groups_and_streams() {
    let moto = Moto::start();
    let cfg = config(&moto.endpoint(), "retention_days = 7\nconcurrency = 8");
    let adjust = Adjustments::default();
    let mut sink = sink(&cfg, adjust.clone());

    // 100,000 events over 4 namespaces and 5 hosts (20 streams), timestamps over the last
    // hour, slightly out of order within each batch (every pair swapped).
    let namespaces = ["shop", "billing", "auth", "search"];
    let hosts = ["node-1", "node-2", "node-3", "node-4", "node-5"];
    let total = 100_000;
    let base = now_ms() - 3_600_000;
    let mut expected: HashMap<(String, String), Vec<(i64, String)>> = HashMap::new();
    let mut lines = Vec::with_capacity(total);
    for seq in 0..total {
        let ms = base + (seq ^ 1) as i64 * 30;
        let ns = namespaces[seq % namespaces.len()];
        let host = hosts[(seq / 7) % hosts.len()];
        let line = event(seq, ms, ns, host);
        expected
            .entry((
                format!("/logferry/{ns}"),
                format!("{host}//var/log/app.log"),
            ))
            .or_default()
            .push((ms, line.clone()));
        lines.push(line);
    }
    for chunk in lines.chunks(10_000) {
        let mut batch: Vec<Pending> = chunk.iter().map(|l| Pending::new(l.clone())).collect();
        let errors = deliver_until_done(&mut sink, &mut batch, 1).await;
        assert!(errors.is_empty());
        assert!(batch.iter().all(|p| p.outcome == Outcome::Delivered));
    }
    for reason in ["truncated", "split", "clamped", "too_old", "too_new"] {
        assert_eq!(adjust.get(reason), 0, "{reason}");
    }

    let client = test_client(&moto.endpoint()).await;
    let mut groups = Vec::new();
    let listed = client.describe_log_groups().send().await.unwrap();
    for g in listed.log_groups() {
        groups.push((
            g.log_group_name().unwrap().to_owned(),
            g.retention_in_days(),
        ));
    }
    groups.sort();
    let mut want_groups: Vec<(String, Option<i32>)> = namespaces
        .iter()
        .map(|n| (format!("/logferry/{n}"), Some(7)))
        .collect();
    want_groups.sort();
    assert_eq!(groups, want_groups, "groups and their retention");

    let mut seen = 0;
    for ((group, stream), mut want) in expected {
        // Within a stream: timestamp order, arrival order for equal timestamps.
        want.sort_by_key(|(ms, _)| *ms);
        let got = read_stream(&client, &group, &stream).await;
        assert_eq!(got.len(), want.len(), "{group} {stream}");
        assert!(
            got == want,
            "{group} {stream}: events differ or are out of order"
        );
        seen += got.len();
    }
    assert_eq!(seen, total);
}

/// Every event of a stream, from the head, following the forward token.
async fn read_stream(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        let events = page.events();
        for e in events {
            out.push((e.timestamp().unwrap(), e.message().unwrap().to_owned()));
        }
        let next = page.next_forward_token().map(str::to_owned);
        if events.is_empty() || next.is_none() || next == token {
            return out;
        }
        token = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_recreates_a_deleted_group_on_resource_not_found() {
    let moto = Moto::start();
    let cfg = config(&moto.endpoint(), "retention_days = 14");
    let mut sink = sink(&cfg, Adjustments::default());
    let now = now_ms();
    let mut first = vec![Pending::new(event(0, now - 1000, "ops", "h"))];
    deliver_until_done(&mut sink, &mut first, 1).await;

    // Deleted behind the sink's back: the next request gets ResourceNotFoundException,
    // and the sink creates group (with its retention) and stream and sends again at once.
    let client = test_client(&moto.endpoint()).await;
    client
        .delete_log_group()
        .log_group_name("/logferry/ops")
        .send()
        .await
        .unwrap();
    let mut second = vec![
        Pending::new(event(1, now - 500, "ops", "h")),
        Pending::new(event(2, now, "ops", "h")),
    ];
    let errors = deliver_until_done(&mut sink, &mut second, 1).await;
    assert!(errors.is_empty());
    let groups = client.describe_log_groups().send().await.unwrap();
    let g = &groups.log_groups()[0];
    assert_eq!(g.log_group_name(), Some("/logferry/ops"));
    assert_eq!(g.retention_in_days(), Some(14));
    let got = read_stream(&client, "/logferry/ops", "h//var/log/app.log").await;
    let seqs: Vec<String> = got.iter().map(|(_, m)| m.clone()).collect();
    let want: Vec<String> = second
        .iter()
        .map(|p| String::from_utf8(p.line.to_vec()).unwrap())
        .collect();
    assert_eq!(seqs, want);

    // Deleted again, and the next event goes to a stream not seen yet: creating the
    // stream finds no group, so the group is created again first.
    client
        .delete_log_group()
        .log_group_name("/logferry/ops")
        .send()
        .await
        .unwrap();
    let mut third = vec![Pending::new(event(3, now, "ops", "h3"))];
    let errors = deliver_until_done(&mut sink, &mut third, 1).await;
    assert!(errors.is_empty());
    let got = read_stream(&client, "/logferry/ops", "h3//var/log/app.log").await;
    assert_eq!(got.len(), 1);
    let groups = client.describe_log_groups().send().await.unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(14));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_without_create_refuses_a_missing_group() {
    let moto = Moto::start();
    let cfg = config(&moto.endpoint(), "create = false");
    let mut sink = sink(&cfg, Adjustments::default());
    let mut batch = vec![Pending::new(event(0, now_ms(), "none", "h"))];
    let err = sink.deliver(&mut batch).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused, "{err}");
    assert!(err.message.contains("ResourceNotFound"), "{err}");
    assert!(batch[0].is_waiting());
}

fn stub_lines(n: usize, now: i64) -> Vec<Pending> {
    (0..n)
        .map(|seq| Pending::new(event(seq, now - 60_000 + seq as i64, "shop", "node-1")))
        .collect()
}

fn messages(batch: &[Pending]) -> Vec<String> {
    batch
        .iter()
        .map(|p| String::from_utf8(p.line.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn stub_throttling_is_retried_by_the_caller_and_each_event_lands_once() {
    // 25,000 events of one stream need several requests (by bytes and by count). The
    // first request succeeds, then the service throttles three times, then takes
    // everything.
    let stub = Stub::start(vec![
        Reply::Ok,
        Reply::Throttle,
        Reply::Throttle,
        Reply::Throttle,
    ])
    .await;
    let cfg = config(&stub.endpoint(), "concurrency = 1");
    let mut sink = sink(&cfg, Adjustments::default());
    let mut batch = stub_lines(25_000, now_ms());

    let first = sink.deliver(&mut batch).await.unwrap_err();
    assert_eq!(first.kind, FailureKind::Throttled, "{first}");
    assert!(first.message.contains("ThrottlingException"), "{first}");
    // The first request's events (the oldest) are delivered, the rest still waiting.
    let delivered = batch
        .iter()
        .take_while(|p| p.outcome == Outcome::Delivered)
        .count();
    assert_eq!(delivered, stub.accepted().len());
    assert!(delivered > 0 && delivered < 25_000, "{delivered}");
    assert!(batch[delivered..].iter().all(Pending::is_waiting));

    let errors = deliver_until_done(&mut sink, &mut batch, 10).await;
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.kind == FailureKind::Throttled));
    assert!(batch.iter().all(|p| p.outcome == Outcome::Delivered));
    let accepted = stub.accepted();
    assert_eq!(accepted.len(), 25_000, "each event exactly once");
    let got: Vec<String> = accepted.into_iter().map(|a| a.message).collect();
    assert_eq!(got, messages(&batch));
    assert!(stub.max_request_bytes() <= 1_048_576);
    let requests = stub.calls("PutLogEvents") - 3;
    assert!(requests >= 3, "{requests} requests");
    // The stream and group were created once, before the first request.
    assert_eq!(stub.calls("CreateLogGroup"), 1);
    assert_eq!(stub.calls("CreateLogStream"), 1);
}

#[tokio::test]
async fn stub_server_errors_are_unavailable() {
    let stub = Stub::start(vec![Reply::Unavailable, Reply::Status(500)]).await;
    let cfg = config(&stub.endpoint(), "");
    let mut sink = sink(&cfg, Adjustments::default());
    let mut batch = stub_lines(3, now_ms());
    let errors = deliver_until_done(&mut sink, &mut batch, 5).await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.kind == FailureKind::Unavailable),
        "{errors:?}"
    );
    assert!(
        errors[0].message.contains("ServiceUnavailableException"),
        "{errors:?}"
    );
    let got: Vec<String> = stub.accepted().into_iter().map(|a| a.message).collect();
    assert_eq!(got, messages(&batch));
}

#[tokio::test]
async fn stub_access_denied_is_refused_and_nothing_is_marked() {
    let stub = Stub::start(vec![Reply::AccessDenied]).await;
    let cfg = config(&stub.endpoint(), "create = false");
    let mut sink = sink(&cfg, Adjustments::default());
    let mut batch = stub_lines(2, now_ms());
    let err = sink.deliver(&mut batch).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused, "{err}");
    assert!(batch.iter().all(Pending::is_waiting));
    deliver_until_done(&mut sink, &mut batch, 1).await;
    assert_eq!(stub.accepted().len(), 2);
}

#[tokio::test]
async fn stub_connection_refused_is_unavailable() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config(&format!("http://127.0.0.1:{port}"), "create = false");
    let mut sink = sink(&cfg, Adjustments::default());
    let mut batch = stub_lines(1, now_ms());
    let err = sink.deliver(&mut batch).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Unavailable, "{err}");
    assert!(batch[0].is_waiting());
}

#[tokio::test]
async fn stub_rejected_log_events_info_rejects_exactly_those_events() {
    // Of 6 events, the service says the first 2 are too old, event 2 is expired and
    // events from index 5 on are too new.
    let stub = Stub::start(vec![Reply::Rejected {
        too_old_end: 2,
        expired_end: 3,
        too_new_start: 5,
    }])
    .await;
    let cfg = config(&stub.endpoint(), "");
    let adjust = Adjustments::default();
    let mut sink = sink(&cfg, adjust.clone());
    let mut batch = stub_lines(6, now_ms());
    let errors = deliver_until_done(&mut sink, &mut batch, 1).await;
    assert!(errors.is_empty());
    let outcomes: Vec<&str> = batch
        .iter()
        .map(|p| match &p.outcome {
            Outcome::Delivered => "delivered",
            Outcome::Rejected(reason) if reason.contains("too old") => "old",
            Outcome::Rejected(reason) if reason.contains("too new") => "new",
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        outcomes,
        ["old", "old", "old", "delivered", "delivered", "new"]
    );
    assert_eq!(adjust.get("too_old"), 3);
    assert_eq!(adjust.get("too_new"), 1);
}

#[tokio::test]
async fn stub_split_event_resumes_after_a_failure_without_resending_pieces() {
    // A small event, then one of 2.5 MB sent as three pieces: four requests. The third
    // (the second piece) is throttled once; the retry sends the second and third pieces
    // only.
    let stub = Stub::start(vec![Reply::Ok, Reply::Ok, Reply::Throttle]).await;
    let cfg = config(&stub.endpoint(), "oversize = \"split\"\nconcurrency = 1");
    let adjust = Adjustments::default();
    let mut sink = sink(&cfg, adjust.clone());
    let now = now_ms();
    let mut big = json!({"timestamp": rfc3339(now), "host": "h", "k8s": {"namespace": "shop"},
        "source": {"path": "/p"}, "message": "é".repeat(1_250_000)})
    .to_string();
    big.shrink_to_fit();
    let mut batch = vec![
        Pending::new(event(0, now - 1, "shop", "h")),
        Pending::new(big.clone()),
    ];
    let err = sink.deliver(&mut batch).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Throttled);
    assert_eq!(batch[0].outcome, Outcome::Delivered);
    assert!(batch[1].is_waiting());
    assert_eq!(adjust.get("split"), 0, "counted once delivered");
    deliver_until_done(&mut sink, &mut batch, 1).await;
    assert_eq!(batch[1].outcome, Outcome::Delivered);
    assert_eq!(adjust.get("split"), 1);
    let accepted = stub.accepted();
    assert_eq!(accepted.len(), 1 + 3, "one small event and three pieces");
    let joined: String = accepted[1..].iter().map(|a| a.message.as_str()).collect();
    assert!(
        joined == big,
        "pieces make up the event, each once, in order"
    );
    assert!(accepted.iter().all(|a| a.message.len() <= 1_048_550));
    // Every request within the batch size limit.
    assert!(stub.max_request_bytes() <= 1_048_576);
}

#[tokio::test]
async fn stub_old_and_future_events_are_dropped_or_clamped_per_config() {
    let now = now_ms();
    let lines = || {
        vec![
            Pending::new(event(0, now - 15 * 86_400_000, "shop", "h")),
            Pending::new(event(1, now, "shop", "h")),
            Pending::new(event(2, now + 3 * 3_600_000, "shop", "h")),
        ]
    };
    let stub = Stub::start(vec![]).await;
    let adjust = Adjustments::default();
    let mut sink_drop = sink(&config(&stub.endpoint(), ""), adjust.clone());
    let mut batch = lines();
    deliver_until_done(&mut sink_drop, &mut batch, 1).await;
    assert!(matches!(&batch[0].outcome, Outcome::Rejected(r) if r.contains("older")));
    assert_eq!(batch[1].outcome, Outcome::Delivered);
    assert!(matches!(&batch[2].outcome, Outcome::Rejected(r) if r.contains("future")));
    assert_eq!((adjust.get("too_old"), adjust.get("too_new")), (1, 1));
    assert_eq!(stub.accepted().len(), 1);

    let stub = Stub::start(vec![]).await;
    let adjust = Adjustments::default();
    let cfg = config(&stub.endpoint(), "too_old = \"clamp\"\ntoo_new = \"clamp\"");
    let mut sink_clamp = sink(&cfg, adjust.clone());
    let mut batch = lines();
    deliver_until_done(&mut sink_clamp, &mut batch, 1).await;
    assert!(batch.iter().all(|p| p.outcome == Outcome::Delivered));
    assert_eq!(adjust.get("clamped"), 2);
    let accepted = stub.accepted();
    assert_eq!(accepted.len(), 3);
    let after = now_ms();
    for a in &accepted {
        assert!(a.timestamp >= after - 14 * 86_400_000, "{}", a.timestamp);
        assert!(a.timestamp <= after + 2 * 3_600_000, "{}", a.timestamp);
    }
    // The messages are the events as they were.
    let mut got: Vec<String> = accepted.into_iter().map(|a| a.message).collect();
    got.sort();
    let mut want = messages(&batch);
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn stub_slow_answer_times_out_as_unavailable() {
    let stub = Stub::start(vec![Reply::Hang]).await;
    let mut cfg = config(&stub.endpoint(), "create = false");
    cfg.timeout = Duration::from_secs(1);
    let mut sink = sink(&cfg, Adjustments::default());
    let mut batch = stub_lines(1, now_ms());
    let err = sink.deliver(&mut batch).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Unavailable, "{err}");
    assert!(batch[0].is_waiting());
    // The next attempt gets an answer.
    deliver_until_done(&mut sink, &mut batch, 1).await;
    assert_eq!(stub.accepted().len(), 1);
}

#[tokio::test]
async fn stub_groups_managed_elsewhere_need_no_create_permission() {
    // No permission to create groups or set retention, but the group exists: events flow.
    let stub = Stub::start(vec![]).await;
    stub.answer("CreateLogGroup", Reply::AccessDenied);
    stub.answer("PutRetentionPolicy", Reply::AccessDenied);
    let cfg = config(&stub.endpoint(), "retention_days = 7");
    let mut managed = sink(&cfg, Adjustments::default());
    let mut batch = stub_lines(2, now_ms());
    let errors = deliver_until_done(&mut managed, &mut batch, 1).await;
    assert!(errors.is_empty());
    assert_eq!(stub.accepted().len(), 2);
    assert_eq!(stub.calls("CreateLogGroup"), 1);
    assert_eq!(stub.calls("CreateLogStream"), 1);

    // The group does not exist either: refused, saying both.
    let stub = Stub::start(vec![]).await;
    stub.answer("CreateLogGroup", Reply::AccessDenied);
    stub.answer("CreateLogStream", Reply::NotFound);
    let mut missing = sink(&config(&stub.endpoint(), ""), Adjustments::default());
    let mut batch = stub_lines(1, now_ms());
    let err = missing.deliver(&mut batch).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused, "{err}");
    assert!(err.message.contains("AccessDenied"), "{err}");
    assert!(err.message.contains("ResourceNotFound"), "{err}");
    assert!(batch[0].is_waiting());
    assert_eq!(stub.calls("PutLogEvents"), 0);
}

#[tokio::test]
async fn stub_new_group_gets_its_retention() {
    let stub = Stub::start(vec![]).await;
    let mut sink = sink(
        &config(&stub.endpoint(), "retention_days = 7"),
        Adjustments::default(),
    );
    let mut batch = stub_lines(1, now_ms());
    deliver_until_done(&mut sink, &mut batch, 1).await;
    assert_eq!(stub.calls("PutRetentionPolicy"), 1);
    // Known from now on: no more creation calls for this stream.
    let mut batch = stub_lines(1, now_ms());
    deliver_until_done(&mut sink, &mut batch, 1).await;
    assert_eq!(stub.calls("CreateLogGroup"), 1);
    assert_eq!(stub.calls("CreateLogStream"), 1);
    assert_eq!(stub.calls("PutLogEvents"), 2);
}

#[tokio::test]
async fn stub_invalid_parameter_is_split_down_to_the_bad_events_alone() {
    // 1,000 events of one stream in one request; three of them the service will not take.
    let stub = Stub::start(vec![]).await;
    stub.invalid_containing("poison");
    let cfg = config(&stub.endpoint(), "");
    let adjust = Adjustments::default();
    let mut sink = sink(&cfg, adjust.clone());
    let now = now_ms();
    let bad = [17, 500, 999];
    let mut batch: Vec<Pending> = (0..1000)
        .map(|seq| {
            let mut e = event(seq, now - 60_000 + seq as i64, "shop", "node-1");
            if bad.contains(&seq) {
                e = e.replace(
                    &format!("\"event {seq}\""),
                    &format!("\"event {seq} poison\""),
                );
            }
            Pending::new(e)
        })
        .collect();
    let errors = deliver_until_done(&mut sink, &mut batch, 1).await;
    assert!(errors.is_empty(), "{errors:?}");
    for (seq, p) in batch.iter().enumerate() {
        match &p.outcome {
            Outcome::Rejected(reason) => {
                assert!(bad.contains(&seq), "event {seq} rejected: {reason}");
                assert!(reason.contains("InvalidParameterException"), "{reason}");
            }
            Outcome::Delivered => assert!(!bad.contains(&seq), "event {seq} delivered"),
            Outcome::Waiting => panic!("event {seq} still waiting"),
        }
    }
    // Every other event once, in order.
    let want: Vec<String> = messages(&batch)
        .into_iter()
        .filter(|m| !m.contains("poison"))
        .collect();
    let got: Vec<String> = stub.accepted().into_iter().map(|a| a.message).collect();
    assert_eq!(got.len(), 997);
    assert_eq!(got, want);
    assert_eq!(adjust.get("invalid"), 3);
    // Halving finds each bad event in about log2(1000) steps.
    let calls = stub.calls("PutLogEvents");
    assert!(calls < 70, "{calls} requests");
}

#[tokio::test]
async fn stub_a_retention_that_could_not_be_set_is_set_on_a_later_use_after_a_wait() {
    let stub = Stub::start(vec![]).await;
    stub.answer("PutRetentionPolicy", Reply::AccessDenied);
    let cfg = config(
        &stub.endpoint(),
        "retention_days = 7\n[retry]\ninitial_backoff = \"1s\"\nmax_backoff = \"2s\"",
    );
    let mut sink = sink(&cfg, Adjustments::default());
    let mut sent = 0;
    let mut deliver_one = async |sink: &mut CloudWatchSink| {
        let mut batch = stub_lines(1, now_ms());
        deliver_until_done(sink, &mut batch, 1).await;
        sent += 1;
    };
    // Refused: the events go anyway.
    deliver_one(&mut sink).await;
    let failed = std::time::Instant::now();
    assert_eq!(stub.calls("PutRetentionPolicy"), 1);
    // Not again before the wait (1s) is over.
    deliver_one(&mut sink).await;
    assert_eq!(stub.calls("PutRetentionPolicy"), 1);
    // Tried again on a use after the wait; refused again, the wait doubles (2s).
    let deadline = failed + Duration::from_secs(10);
    while stub.calls("PutRetentionPolicy") < 2 {
        assert!(std::time::Instant::now() < deadline, "not tried again");
        deliver_one(&mut sink).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failed.elapsed() >= Duration::from_millis(900),
        "{:?}",
        failed.elapsed()
    );
    let failed = std::time::Instant::now();
    stub.answer("PutRetentionPolicy", Reply::Ok);
    while stub.calls("PutRetentionPolicy") < 3 {
        assert!(
            std::time::Instant::now() < deadline + Duration::from_secs(10),
            "not tried a third time"
        );
        deliver_one(&mut sink).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failed.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        failed.elapsed()
    );
    // Set: never tried again.
    for _ in 0..3 {
        deliver_one(&mut sink).await;
    }
    assert_eq!(stub.calls("PutRetentionPolicy"), 3);
    assert_eq!(stub.calls("CreateLogGroup"), 1);
    assert_eq!(
        stub.accepted().len(),
        sent,
        "every event delivered meanwhile"
    );
}

/// 100,000 events through the real aggregator binary: agents' batches in, the durable
/// queue, the delivery task, moto out; read back with GetLogEvents, each stream in the
/// order it was sent, nothing lost or doubled; then a kill -9 with events queued while
/// moto is away loses nothing either.
#[test]
fn the_aggregator_binary_forwards_100k_events_to_moto() {
    use logferry_e2e::http as e2e_http;
    use logferry_e2e::{wait_until, Aggregator, AggregatorOptions, TestDir};

    let moto = Moto::start();
    let dir = TestDir::new().unwrap();
    let sink_config = |endpoint: &str| {
        format!(
            r#"
[sinks.cw]
type = "cloudwatch_logs"
group = "/logferry/{{host}}"
stream = "{{source.path}}"
region = "us-east-1"
endpoint = "{endpoint}"

[sinks.cw.queue]
batch_wait = "100ms"
"#
        )
    };
    let options = AggregatorOptions::default()
        .extra(&sink_config(&moto.endpoint()))
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let agg = Aggregator::start(&dir, options).unwrap();
    let client = e2e_http::client(&dir, false).unwrap();
    let hosts = ["node-1", "node-2"];
    let paths = ["/var/log/a.log", "/var/log/b.log"];
    // What each (group, stream) must hold, in order.
    let mut want: HashMap<(String, String), Vec<String>> = HashMap::new();
    let send = |agg: &Aggregator,
                seqs: std::ops::RangeInclusive<u64>,
                want: &mut HashMap<(String, String), Vec<String>>| {
        for seq in seqs {
            let host = hosts[(seq % 2) as usize];
            let path = paths[(seq / 2 % 2) as usize];
            let lines: Vec<String> = (0..500).map(|i| format!("cw-{seq}-{i}")).collect();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            agg.send_lines(&client, "e2e-cw", seq, (host, path), &refs)
                .unwrap();
            want.entry((format!("/logferry/{host}"), path.to_owned()))
                .or_default()
                .extend(lines);
        }
    };
    send(&agg, 1..=200, &mut want);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cw = rt.block_on(test_client(&moto.endpoint()));
    let read_all = |cw: &aws_sdk_cloudwatchlogs::Client,
                    want: &HashMap<(String, String), Vec<String>>| {
        let mut got: HashMap<(String, String), Vec<String>> = HashMap::new();
        for (group, stream) in want.keys() {
            let events = rt.block_on(read_stream(cw, group, stream));
            let messages = events
                .iter()
                .map(|(_, m)| {
                    let v: serde_json::Value = serde_json::from_str(m).unwrap();
                    v["message"].as_str().unwrap().to_owned()
                })
                .collect();
            got.insert((group.clone(), stream.clone()), messages);
        }
        got
    };
    let total =
        |got: &HashMap<(String, String), Vec<String>>| got.values().map(Vec::len).sum::<usize>();
    let mut got = HashMap::new();
    wait_until(Duration::from_secs(120), "100,000 events in moto", || {
        got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_all(&cw, &want)))
            .unwrap_or_default();
        total(&got) >= 100_000
    })
    .unwrap();
    for (key, messages) in &want {
        assert_eq!(got.get(key), Some(messages), "stream {key:?} differs");
    }

    // CloudWatch away: 10,000 more events wait in the queue; kill -9; start again against
    // a new (empty) CloudWatch: exactly those 10,000 arrive, none of the first 100,000.
    drop(moto);
    let mut agg = agg;
    let mut want: HashMap<(String, String), Vec<String>> = HashMap::new();
    send(&agg, 201..=220, &mut want);
    wait_until(Duration::from_secs(60), "the events queued for cw", || {
        e2e_http::get(&client, &agg.admin_url("/api/sinks")).is_ok_and(|(_, b)| {
            serde_json::from_str::<serde_json::Value>(&b).is_ok_and(|v| {
                v["sinks"]
                    .as_array()
                    .and_then(|a| a.iter().find(|s| s["name"] == "cw"))
                    .is_some_and(|s| s["queue"]["events"] == 10_000)
            })
        })
    })
    .unwrap();
    agg.kill9().unwrap();
    let moto = Moto::start();
    let mut options = agg.restart_options();
    options.extra_config = sink_config(&moto.endpoint());
    let agg = Aggregator::restart(&dir, options).unwrap();
    let cw = rt.block_on(test_client(&moto.endpoint()));
    wait_until(
        Duration::from_secs(120),
        "10,000 events in the new moto",
        || {
            got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_all(&cw, &want)))
                .unwrap_or_default();
            total(&got) >= 10_000
        },
    )
    .unwrap();
    for (key, messages) in &want {
        assert_eq!(
            got.get(key),
            Some(messages),
            "stream {key:?} differs after the restart"
        );
    }
    drop(agg);
}
