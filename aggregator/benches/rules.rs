//! Rules cost: `cargo bench -p logferry-aggregator --bench rules`.
//!
//! Builds 1,000,000 lines of a realistic mix (access logs with health checks, static
//! files and 5xx; JSON app logs at every level, some with emails or card numbers;
//! logfmt; plain text with bearer tokens) from four Kubernetes namespaces, parses each
//! line with the real detector into a [`RuleEvent`], and times, on one thread:
//! - parse only (the baseline),
//! - parse + the ten rules of `src/rules/bench_rules.toml` (filters, a sample, a redact,
//!   a tag, a route, two threshold alerts),
//! - parse + each rule alone,
//!
//! and prints ns/event for each, and the rules' cost as the difference to the baseline.

use std::sync::Arc;
use std::time::Instant;

use logferry_aggregator::parse::detect::Detector;
use logferry_aggregator::parse::Zone;
use logferry_aggregator::rules::config::rules_from_toml;
use logferry_aggregator::rules::{
    Engine, EngineContext, K8sRef, Outbox, RuleConfig, RuleEvent, SystemClock, Verdict,
};

const EVENTS: usize = 1_000_000;
const NAMESPACES: [&str; 4] = ["shop", "payments", "prod", "kube-system"];

fn corpus() -> Vec<String> {
    let mut lines = Vec::with_capacity(EVENTS);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let levels = ["debug", "info", "info", "info", "warn", "error"];
    for i in 0..EVENTS {
        let r = next();
        let line = match i % 10 {
            0..=3 => {
                let (path, status, agent) = match r % 20 {
                    0 => ("/healthz".to_string(), 200, "kube-probe/1.29"),
                    1..=3 => (format!("/static/app.{}.js", r % 97), 200, "Mozilla/5.0"),
                    4 => ("/api/pay".to_string(), 503, "Mozilla/5.0"),
                    _ => (format!("/api/orders/{}?page={}", r % 1000, r % 7), 200, "Mozilla/5.0 (X11; Linux x86_64)"),
                };
                format!(
                    "203.0.113.{} - - [22/Nov/2026:10:00:{:02} +0000] \"GET {path} HTTP/1.1\" {status} {} \"https://shop.example/\" \"{agent}\" 0.{:03}",
                    r % 250,
                    i % 60,
                    r % 50_000,
                    r % 1000
                )
            }
            4..=6 => {
                let level = levels[(r % 6) as usize];
                let extra = match r % 25 {
                    0 => ",\"user\":\"jane.doe@example.com\"".to_string(),
                    1 => ",\"note\":\"card 4111 1111 1111 1111\"".to_string(),
                    _ => String::new(),
                };
                format!(
                    "{{\"time\":\"2026-11-22T10:00:00.{:03}Z\",\"level\":\"{level}\",\"msg\":\"order {} processed in {}ms\",\"order_id\":{},\"duration\":{}.{}{extra}}}",
                    i % 1000,
                    r % 100_000,
                    r % 3000,
                    r % 100_000,
                    r % 4,
                    r % 10
                )
            }
            7 | 8 => format!(
                "time=2026-11-22T10:00:00Z level={} msg=\"payment attempt\" user_id={} amount={}.{:02} region=eu-west-1",
                levels[(r % 6) as usize],
                r % 100_000,
                r % 500,
                r % 100
            ),
            _ => format!(
                "2026-11-22 10:00:00,{:03} INFO [worker-{}] c.e.Client - calling upstream with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.{}",
                i % 1000,
                r % 8,
                r % 1_000_000
            ),
        };
        lines.push(line);
    }
    lines
}

fn context() -> EngineContext {
    EngineContext {
        sinks: vec!["archive".into(), "cloudwatch".into(), "debug".into()],
        notifiers: vec!["oncall".into(), "team".into()],
        clock: Arc::new(SystemClock),
        outbox: Arc::new(Outbox::new(10_000)),
    }
}

/// Parses every line (and applies `engine`); answers seconds and kept events.
fn pass(lines: &[String], detector: &Detector, engine: Option<&Engine>) -> (f64, usize) {
    let paths: Vec<String> = NAMESPACES
        .iter()
        .map(|ns| format!("/var/log/pods/{ns}_app-7d9_u1/app/0.log"))
        .collect();
    let mut plans: Vec<_> = paths.iter().map(|p| detector.plan(p)).collect();
    let mut kept = 0usize;
    let start = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        let src = i % NAMESPACES.len();
        let d = detector.detect(&mut plans[src], line);
        let mut ev = RuleEvent::new(
            d.parsed,
            d.format,
            "node-1",
            &paths[src],
            K8sRef {
                namespace: Some(NAMESPACES[src]),
                pod: Some("app-7d9"),
                container: Some("app"),
            },
        );
        let verdict = match engine {
            Some(e) => e.apply(&mut ev),
            None => Verdict::Keep,
        };
        if verdict == Verdict::Keep {
            kept += 1;
        }
        std::hint::black_box(&ev);
    }
    (start.elapsed().as_secs_f64(), kept)
}

fn best_of(n: usize, mut f: impl FnMut() -> (f64, usize)) -> (f64, usize) {
    let mut best = (f64::MAX, 0);
    for _ in 0..n {
        let r = f();
        if r.0 < best.0 {
            best = r;
        }
    }
    best
}

fn main() {
    let lines = corpus();
    let detector = Detector::new(Zone::Utc, &[], &[]).expect("detector");
    let rules: Vec<RuleConfig> =
        rules_from_toml(include_str!("../src/rules/bench_rules.toml")).expect("bench rules");
    let ctx = context();
    let all = Engine::build(&rules, &ctx, None).expect("engine");
    let n = lines.len() as f64;

    let (base, _) = best_of(3, || pass(&lines, &detector, None));
    let (with, kept) = best_of(3, || pass(&lines, &detector, Some(&all)));
    println!("events: {}", lines.len());
    println!("parse only            {:>7.0} ns/event", base * 1e9 / n);
    println!(
        "parse + 10 rules      {:>7.0} ns/event  ({:.2} M events/s on one thread, {kept} kept)",
        with * 1e9 / n,
        n / with / 1e6
    );
    println!(
        "rules (difference)    {:>7.0} ns/event",
        (with - base) * 1e9 / n
    );
    println!("per rule, alone (parse + rule - parse):");
    for r in &rules {
        let one = Engine::build(std::slice::from_ref(r), &context(), None).expect("engine");
        let (t, kept) = best_of(2, || pass(&lines, &detector, Some(&one)));
        println!(
            "  {:<26} {:>6.0} ns/event  ({} matched, {kept} kept)",
            r.name,
            (t - base) * 1e9 / n,
            one.stats()[0].matched / 2
        );
    }
    let notes = ctx.outbox.drain();
    println!("notifications from the full run: {}", notes.len());
    for note in notes.iter().take(4) {
        println!("  {}", note.summary);
    }
}
