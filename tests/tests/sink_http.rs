//! The `http` sink through the real aggregator binary, against a local HTTP collector:
//! events reach it exactly once through 5xx and 429 answers, an outage during which the
//! other sink keeps flowing and `/readyz` reports the stuck queue, and a kill -9 while
//! the queue holds events; events the collector refuses become dead letters that the
//! admin API lists and purges.

use std::collections::HashSet;
use std::time::Duration;

use logferry_e2e::collector::Collector;
use logferry_e2e::http;
use logferry_e2e::{sink, wait_until, Aggregator, AggregatorOptions, TestDir};

const WAIT: Duration = Duration::from_secs(60);

fn sink_config(collector: &Collector, max_events: usize) -> String {
    format!(
        r#"
[sinks.hook]
type = "http"
url = "{url}"
max_events = {max_events}

[sinks.hook.queue]
batch_wait = "50ms"
stuck_after = "2s"

[sinks.hook.retry]
initial_backoff = "50ms"
max_backoff = "500ms"
"#,
        url = collector.url(),
    )
}

/// Sends batches `seqs` of 500 lines each; line `i` of batch `s` is `m-s-i`.
fn send(
    agg: &Aggregator,
    client: &reqwest::blocking::Client,
    seqs: std::ops::Range<u64>,
    poison_every: Option<usize>,
) -> anyhow::Result<Vec<String>> {
    let mut sent = Vec::new();
    for seq in seqs {
        let lines: Vec<String> = (0..500)
            .map(|i| match poison_every {
                Some(p) if i % p == 0 => format!("m-{seq}-{i} poison"),
                _ => format!("m-{seq}-{i}"),
            })
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        agg.send_lines(
            client,
            "e2e-http",
            seq,
            ("node-1", "/var/log/app.log"),
            &refs,
        )?;
        sent.extend(lines);
    }
    Ok(sent)
}

fn assert_exactly_once(got: &[String], sent: &[String]) {
    let set: HashSet<&String> = got.iter().collect();
    assert_eq!(set.len(), got.len(), "the collector got duplicates");
    let want: HashSet<&String> = sent.iter().collect();
    assert_eq!(set, want, "the collector's events differ from those sent");
}

fn metric(agg: &Aggregator, client: &reqwest::blocking::Client, series: &str) -> f64 {
    agg.metrics(client)
        .ok()
        .and_then(|m| http::metric(&m, series))
        .unwrap_or(0.0)
}

#[test]
fn http_sink_delivers_once_through_failures_an_outage_and_a_kill() -> anyhow::Result<()> {
    let dir = TestDir::new()?;
    let mut collector = Collector::start()?;
    collector.fail_next(3, 503, None);
    collector.fail_next(1, 429, Some(1));
    // A whole-request refusal (a wrong path, say) is retried, never dead-lettered.
    collector.fail_next(1, 404, None);
    let options = AggregatorOptions::default().extra(&sink_config(&collector, 500));
    let mut agg = Aggregator::start(&dir, options)?;
    let client = http::client(&dir, false)?;

    // 1. Failures answered by the collector are retried; nothing lost or doubled.
    let mut sent = send(&agg, &client, 1..41, None)?;
    wait_until(WAIT, "20,000 events at the collector", || {
        collector.messages().len() >= sent.len()
    })?;
    assert_exactly_once(&collector.messages(), &sent);
    let statuses = collector.statuses();
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 1);
    assert!(
        metric(
            &agg,
            &client,
            r#"logferry_sink_failed_requests_total{sink="hook",kind="refused"}"#
        ) >= 1.0
    );
    assert!(collector.gzip_requests() > 0, "bodies are gzip by default");
    assert!(
        metric(
            &agg,
            &client,
            r#"logferry_sink_failed_requests_total{sink="hook",kind="unavailable"}"#
        ) >= 3.0
    );
    assert!(
        metric(
            &agg,
            &client,
            r#"logferry_sink_failed_requests_total{sink="hook",kind="throttled"}"#
        ) >= 1.0
    );
    assert_eq!(
        metric(
            &agg,
            &client,
            r#"logferry_sink_delivered_events_total{sink="hook"}"#
        ),
        20_000.0
    );
    let event = &collector.events()[0];
    assert_eq!(event["host"], "node-1");
    assert!(event["timestamp"].is_string());

    // 2. Collector down: the file sink keeps flowing, the queue holds the events and
    // /readyz reports the stuck sink.
    collector.stop();
    let more = send(&agg, &client, 41..61, None)?;
    sent.extend(more);
    agg.wait_for_events(sent.len(), WAIT)?;
    let (status, body) = http::get(&client, &agg.admin_url("/api/sinks"))?;
    assert_eq!(status, 200, "{body}");
    let sinks: serde_json::Value = serde_json::from_str(&body)?;
    let hook = sinks["sinks"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "hook"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(hook["type"], "http");
    assert_eq!(hook["queue"]["events"], 10_000, "{hook}");
    assert_eq!(
        metric(&agg, &client, r#"logferry_sink_queue_events{sink="hook"}"#),
        10_000.0
    );
    wait_until(WAIT, "/readyz to report the stuck sink", || {
        http::get(&client, &agg.admin_url("/readyz"))
            .is_ok_and(|(s, b)| s == 503 && b.contains("sink hook: queue stuck"))
    })?;

    // 3. kill -9 with 10,000 events queued, restart, collector back: each arrives once.
    agg.kill9()?;
    let mut agg = Aggregator::restart(&dir, agg.restart_options())?;
    collector.restart()?;
    wait_until(WAIT, "30,000 events at the collector", || {
        collector.messages().len() >= sent.len()
    })?;
    assert_exactly_once(&collector.messages(), &sent);
    wait_until(WAIT, "/readyz ready again", || {
        http::get(&client, &agg.admin_url("/readyz")).is_ok_and(|(s, _)| s == 200)
    })?;
    // The file sink got every event once too.
    let counts = sink::message_counts(&agg.events()?);
    assert_eq!(counts.len(), sent.len());
    assert!(sink::duplicates(&counts, 5).is_empty());
    agg.stop()?;
    Ok(())
}

#[test]
fn refused_events_become_dead_letters_that_the_admin_api_lists_and_purges() -> anyhow::Result<()> {
    let dir = TestDir::new()?;
    let collector = Collector::start()?;
    collector.refuse_containing("poison");
    // Requests of 500 events: a 400 splits the request until the poisoned events are
    // found alone, so only they are refused.
    let options = AggregatorOptions::default().extra(&sink_config(&collector, 500));
    let mut agg = Aggregator::start(&dir, options)?;
    let client = http::client(&dir, false)?;
    let sent = send(&agg, &client, 1..2, Some(50))?;
    let (poison, good): (Vec<String>, Vec<String>) =
        sent.into_iter().partition(|m| m.contains("poison"));
    assert_eq!(poison.len(), 10);
    wait_until(WAIT, "the good events at the collector", || {
        collector.messages().len() >= good.len()
    })?;
    assert_exactly_once(&collector.messages(), &good);
    let url = agg.admin_url("/api/sinks/hook/dead-letters?limit=4");
    wait_until(WAIT, "10 dead letters", || {
        metric(
            &agg,
            &client,
            r#"logferry_sink_dead_letter_events_total{sink="hook"}"#,
        ) >= 10.0
    })?;
    // Paged, oldest first, with the reason and the event.
    let mut seen = Vec::new();
    let mut next: Option<u64> = None;
    loop {
        let page_url = match next {
            Some(n) => format!("{url}&after={n}"),
            None => url.clone(),
        };
        let (status, body) = http::get(&client, &page_url)?;
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body)?;
        for d in page["dead_letters"].as_array().cloned().unwrap_or_default() {
            assert!(d["reason"].as_str().unwrap_or("").contains("400"), "{d}");
            seen.push(d["event"]["message"].as_str().unwrap_or("").to_owned());
        }
        next = page["next"].as_u64();
        if next.is_none() {
            break;
        }
        assert!(seen.len() <= 10, "paging does not end");
    }
    assert_eq!(seen, poison);
    let (status, _) = http::get(&client, &agg.admin_url("/api/sinks/out/dead-letters"))?;
    assert_eq!(status, 404, "a file sink keeps no dead letters");
    let resp = client
        .delete(agg.admin_url("/api/sinks/hook/dead-letters"))
        .send()?;
    assert_eq!(resp.status().as_u16(), 200);
    let purged: serde_json::Value = resp.json()?;
    assert_eq!(purged["removed"], 10);
    let (_, body) = http::get(&client, &url)?;
    let page: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(page["dead_letters"].as_array().map(Vec::len), Some(0));
    agg.stop()?;
    Ok(())
}
