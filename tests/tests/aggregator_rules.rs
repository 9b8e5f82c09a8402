//! The aggregator binary with rules from its config: events are dropped, redacted, tagged
//! and routed to the sinks the rules name (the others go to every sink); a threshold alert fires and recovers through a
//! real webhook POST to a local receiver; SIGHUP swaps the config's rules, and a reload
//! whose rules do not compile keeps the old ones and the process up.

use std::time::Duration;

use logferry_e2e::hook::HookReceiver;
use logferry_e2e::http;
use logferry_e2e::{sink, toml_path, wait_until, Aggregator, AggregatorOptions, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// The rules, sinks and notifier; `more_rules` is appended after the five base rules.
fn rules_config(dir: &TestDir, hook: &HookReceiver, more_rules: &str) -> String {
    format!(
        r#"
[sinks.payments]
type = "file"
path = {payments}

[notifiers.hook]
type = "webhook"
url = "{url}"

[[rules]]
name = "drop-debug"
when = {{ field = "level", lte = "debug" }}
actions = [{{ type = "drop" }}]

[[rules]]
name = "redact-emails"
actions = [{{ type = "redact", patterns = ["email"] }}]

[[rules]]
name = "tag-errors"
when = {{ field = "level", gte = "error" }}
actions = [{{ type = "tag", tags = ["error"] }}, {{ type = "set", field = "team", value = "core" }}]

[[rules]]
name = "payments-only-to-payments"
when = {{ field = "source.path", equals = "/var/log/payments.log" }}
actions = [{{ type = "route", sinks = ["payments"] }}]

[[rules]]
name = "error-burst"
when = {{ field = "level", gte = "error" }}
actions = [{{ type = "alert", notifier = "hook", window = "2s", above = 3 }}]
{more_rules}"#,
        payments = toml_path(&dir.join("payments.jsonl")),
        url = hook.url("/hook"),
    )
}

fn send(
    agg: &Aggregator,
    client: &reqwest::blocking::Client,
    seq: u64,
    path: &str,
    lines: &[&str],
) -> anyhow::Result<()> {
    agg.send_lines(client, "e2e-rules", seq, ("node-1", path), lines)
}

fn messages(path: &std::path::Path) -> Vec<String> {
    sink::read_events(path)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the sink at `path` holds `last`, then answers every message in it.
fn messages_through(path: &std::path::Path, last: &str) -> anyhow::Result<Vec<String>> {
    wait_until(WAIT, &format!("{last:?} in {}", path.display()), || {
        messages(path).iter().any(|m| m == last)
    })?;
    Ok(messages(path))
}

#[test]
fn rules_filter_redact_tag_route_alert_and_reload_on_sighup() -> anyhow::Result<()> {
    let dir = TestDir::new()?;
    let hook = HookReceiver::start()?;
    let options = AggregatorOptions::default().extra(&rules_config(&dir, &hook, ""));
    let mut agg = Aggregator::start(&dir, options)?;
    let client = http::client(&dir, false)?;
    let local = agg.sink_path.clone();
    let payments = dir.join("payments.jsonl");

    send(
        &agg,
        &client,
        1,
        "/var/log/app.log",
        &[
            r#"{"level":"info","msg":"signup by bob@example.com"}"#,
            r#"{"level":"debug","msg":"cache miss"}"#,
            r#"{"level":"error","msg":"e1"}"#,
            r#"{"level":"error","msg":"e2"}"#,
            r#"{"level":"error","msg":"e3"}"#,
            r#"{"level":"error","msg":"e4"}"#,
            r#"{"level":"info","msg":"app done"}"#,
        ],
    )?;
    send(
        &agg,
        &client,
        2,
        "/var/log/payments.log",
        &["charge 1 ok", "charge 2 ok"],
    )?;
    let got = messages_through(&local, "app done")?;
    assert_eq!(
        got,
        [
            "signup by [REDACTED:email]",
            "e1",
            "e2",
            "e3",
            "e4",
            "app done"
        ],
        "debug dropped, email redacted, payments routed away"
    );
    // Events no rule routes go to every sink.
    assert_eq!(
        messages_through(&payments, "charge 2 ok")?,
        [
            "signup by [REDACTED:email]",
            "e1",
            "e2",
            "e3",
            "e4",
            "app done",
            "charge 1 ok",
            "charge 2 ok"
        ]
    );
    let events = sink::read_events(&local)?;
    assert_eq!(events[1]["tags"], serde_json::json!(["error"]));
    assert_eq!(events[1]["fields"]["team"], "core");
    assert!(events[0].get("tags").is_none(), "{}", events[0]);

    // Four errors within 2 s are above 3: one firing notification, then one recovery
    // once the window has emptied.
    wait_until(WAIT, "the alert to fire and recover", || {
        hook.received().len() >= 2
    })?;
    let got = hook.received();
    assert_eq!(got.len(), 2, "{got:?}");
    let (path, firing) = &got[0];
    assert_eq!(path, "/hook");
    assert_eq!(firing["kind"], "firing", "{firing}");
    assert_eq!(firing["rule"], "error-burst");
    assert_eq!(firing["threshold"], 3);
    assert_eq!(got[1].1["kind"], "recovered", "{}", got[1].1);
    assert!(got[1].1["duration_secs"].is_u64(), "{}", got[1].1);

    // SIGHUP with one more rule: it applies to the next batches.
    let reloaded = rules_config(
        &dir,
        &hook,
        "\n[[rules]]\nname = \"drop-noise\"\nwhen = { field = \"message\", contains = \"noise\" }\nactions = [{ type = \"drop\" }]\n",
    );
    let base = AggregatorOptions {
        extra_config: String::new(),
        ..agg.options().clone()
    }
    .config_text(&dir);
    std::fs::write(&agg.config_path, format!("{base}{reloaded}"))?;
    agg.process.signal(libc::SIGHUP)?;
    wait_until(WAIT, "the rules reload in the log", || {
        agg.process
            .log_text()
            .contains("rules reloaded from the config")
    })?;
    send(&agg, &client, 3, "/var/log/app.log", &["noise 1", "kept 1"])?;
    let got = messages_through(&local, "kept 1")?;
    assert_eq!(&got[6..], ["kept 1"], "the new rule dropped `noise 1`");

    // A reload whose rules do not compile changes nothing.
    std::fs::write(
        &agg.config_path,
        format!(
            "{base}{}",
            rules_config(
                &dir,
                &hook,
                "\n[[rules]]\nname = \"bad\"\nwhen = { field = \"message\", regex = \"(\" }\nactions = [{ type = \"drop\" }]\n"
            )
        ),
    )?;
    agg.process.signal(libc::SIGHUP)?;
    wait_until(WAIT, "the refused reload in the log", || {
        agg.process.log_text().contains("config not reloaded")
    })?;
    assert!(agg.is_running());
    send(&agg, &client, 4, "/var/log/app.log", &["noise 2", "kept 2"])?;
    let got = messages_through(&local, "kept 2")?;
    assert_eq!(&got[6..], ["kept 1", "kept 2"], "the old rules still apply");

    // Metrics are counted when a round is complete, just after the lines are written.
    let series = [
        ("logferry_rules_dropped_events_total", 3.0), // cache miss, noise 1, noise 2
        ("logferry_sink_events_total{sink=\"local\"}", 8.0),
        ("logferry_sink_events_total{sink=\"payments\"}", 10.0),
        (
            "logferry_rule_matched_events_total{rule=\"drop-debug\"}",
            1.0,
        ),
        (
            "logferry_rule_dropped_events_total{rule=\"drop-noise\"}",
            2.0,
        ),
        (
            "logferry_rule_redactions_total{rule=\"redact-emails\"}",
            1.0,
        ),
        ("logferry_notifications_delivered_total", 2.0),
    ];
    let mut last = Vec::new();
    let counted = wait_until(WAIT, "the metrics to count every event", || {
        let text = agg.metrics(&client).unwrap_or_default();
        last = series.iter().map(|(s, _)| http::metric(&text, s)).collect();
        series
            .iter()
            .zip(&last)
            .all(|((_, want), got)| *got == Some(*want))
    });
    assert!(counted.is_ok(), "want {series:?}, got {last:?}");
    let text = agg.metrics(&client)?;
    for series in [
        "logferry_process_cpu_seconds_total",
        "logferry_process_resident_memory_bytes",
        "logferry_process_open_fds",
    ] {
        let v = http::metric(&text, series);
        assert!(v.is_some_and(|v| v > 0.0), "{series}: {v:?}");
    }
    // The admin API shows the agent and the sinks (open on loopback without tokens).
    let (status, body) = http::get(&client, &agg.admin_url("/api/agents"))?;
    assert_eq!(status, 200, "{body}");
    let agents: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(agents["agents"][0]["agent_id"], "e2e-rules");
    assert_eq!(agents["agents"][0]["batches"], 4);
    let (status, body) = http::get(&client, &agg.admin_url("/api/sinks"))?;
    assert_eq!(status, 200, "{body}");
    let sinks: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(sinks["sinks"][0]["name"], "local");
    assert_eq!(sinks["sinks"][0]["written"], 8);
    assert_eq!(sinks["sinks"][1]["written"], 10);

    // The CLI over the API: add a rule, see it listed, see it apply, delete it.
    let admin = agg.admin_url("");
    let cli = |args: &[&str]| {
        let mut all = vec!["rules", "--admin", admin.as_str()];
        all.extend_from_slice(args);
        logferry_e2e::aggregator::run_cli(&all, &[])
    };
    let added = cli(&[
        "add",
        "cli marker",
        "--contains",
        "marker",
        "--tag",
        "from-cli",
    ])?;
    assert!(added.success(), "{added}");
    assert!(added.stdout.contains("\"cli-marker\""), "{added}");
    let listed = cli(&["list"])?;
    assert!(
        listed.success() && listed.stdout.contains("cli-marker"),
        "{listed}"
    );
    send(&agg, &client, 5, "/var/log/app.log", &["a marker line"])?;
    messages_through(&local, "a marker line")?;
    let events = sink::read_events(&local)?;
    assert_eq!(
        events.last().map(|e| e["tags"].clone()),
        Some(serde_json::json!(["from-cli"]))
    );
    let deleted = cli(&["delete", "cli-marker"])?;
    assert!(deleted.success(), "{deleted}");
    let again = cli(&["delete", "cli-marker"])?;
    assert!(!again.success() && again.stderr.contains("404"), "{again}");
    agg.stop()?;
    Ok(())
}
