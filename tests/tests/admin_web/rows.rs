//! 10,000 rows on the page, timed: search pages of 1,000 added up to the page's bound of
//! 10,000 rows (with more events stored than that, so the bound is what stops it), then
//! a live tail keeping 10,000 lines through a burst of 10,000 events.
//!
//! The figures are printed (`--nocapture`); the only bounds asserted are generous ones
//! that catch a pathological regression (say, work per row that grows with the rows
//! already shown), not a benchmark: this machine is shared and its timings vary.

use std::time::{Duration, Instant};

use logferry_e2e::http;
use logferry_e2e::{wait_until, Aggregator, AggregatorOptions, TestDir};
use serde_json::{json, Value};

use super::browser::{self, Page, WAIT};

/// What the page keeps at most (app.js `MAX_SEARCH_ROWS`, the tail's largest keep).
const ROWS: usize = 10_000;
/// Stored events: more than the page shows.
const STORED: usize = 10_500;
/// The bound on building and laying out any one page of rows, and on their sum.
const RENDER_BOUND_MS: f64 = 5_000.0;

fn lines(prefix: &str, from: usize, n: usize) -> Vec<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];
    (from..from + n)
        .map(|i| {
            json!({
                "level": LEVELS[i % LEVELS.len()],
                "msg": format!("{prefix}-{i:05} GET /api/orders/{i} answered in {} ms", i % 250),
                "user": format!("u{}", i % 97),
            })
            .to_string()
        })
        .collect()
}

fn send_all(
    agg: &Aggregator,
    client: &reqwest::blocking::Client,
    prefix: &str,
    first_seq: u64,
    total: usize,
) -> anyhow::Result<()> {
    for (k, from) in (0..total).step_by(1000).enumerate() {
        let batch = lines(prefix, from, 1000.min(total - from));
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        agg.send_lines(
            client,
            "e2e-rows",
            first_seq + k as u64,
            ("rows-1", "/var/log/rows.log"),
            &refs,
        )?;
    }
    Ok(())
}

#[test]
fn ten_thousand_rows_render_in_bounded_time() -> anyhow::Result<()> {
    let _one = browser::exclusive();
    let dir = TestDir::new()?;
    // No tokens: the API is open on the loopback listener.
    let agg = Aggregator::start(&dir, AggregatorOptions::default())?;
    let client = http::client(&dir, false)?;
    send_all(&agg, &client, "row", 1, STORED)?;
    let newest = format!("/api/logs?limit=1&q=row-{:05}", STORED - 1);
    wait_until(
        Duration::from_secs(60),
        "every event in the search store",
        || {
            http::get(&client, &agg.admin_url(&newest)).is_ok_and(|(_, b)| {
                serde_json::from_str::<Value>(&b)
                    .is_ok_and(|v| v["events"].as_array().is_some_and(|e| e.len() == 1))
            })
        },
    )?;

    let page = Page::open()?;
    page.goto(&agg.admin_url("/"))?;
    page.type_into("#search-limit", "1000")?;
    let started = Instant::now();
    page.click("#search-run")?;
    let mut render_ms = Vec::new();
    for n in (1000..=ROWS).step_by(1000) {
        let want = format!("{n} events");
        page.wait_texts("#search-status", "a page of results", |t| {
            t.iter().any(|s| s.starts_with(&want))
        })?;
        let ms = page.eval(
            "return Number(document.getElementById('search-results').dataset.renderMs)",
            Value::Null,
        )?;
        render_ms.push(ms.as_f64().unwrap_or(f64::NAN));
        if n < ROWS {
            page.click("#search-more")?;
        }
    }
    let wall = started.elapsed();
    let rows = page.eval(
        "return [document.querySelectorAll('#search-results tr.event').length,\
                 document.getElementById('search-more').hidden,\
                 document.getElementById('search-status').textContent]",
        Value::Null,
    )?;
    assert_eq!(rows[0], ROWS, "{rows}");
    assert_eq!(rows[1], true, "More stops at the bound: {rows}");
    assert!(
        rows[2]
            .as_str()
            .is_some_and(|s| s.contains("at most 10000")),
        "the page says why it stopped: {rows}"
    );
    // With every row on the page: scrolling to the end and the next frame.
    let scroll_ms = page.eval_async(
        "const done = arguments[arguments.length - 1];\
         const t = performance.now();\
         window.scrollTo(0, document.body.scrollHeight);\
         requestAnimationFrame(() => setTimeout(() => done(performance.now() - t), 0));",
    )?;
    let sum: f64 = render_ms.iter().sum();
    let max = render_ms.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "search: {ROWS} rows in pages of 1000: render {sum:.0} ms in all (each page: {:?} ms; \
         the last, joining 9000 rows: {:.0} ms); {:.1} s wall with the API calls; \
         scroll to the end and a frame: {:.0} ms",
        render_ms.iter().map(|m| m.round()).collect::<Vec<_>>(),
        render_ms.last().copied().unwrap_or(f64::NAN),
        wall.as_secs_f64(),
        scroll_ms.as_f64().unwrap_or(f64::NAN),
    );
    assert!(render_ms.iter().all(|m| m.is_finite()), "{render_ms:?}");
    assert!(
        sum < RENDER_BOUND_MS && max < RENDER_BOUND_MS,
        "rendering 10,000 rows took {sum:.0} ms ({render_ms:?})"
    );
    page.screenshot("rows")?;

    // A live tail keeping 10,000 lines through a burst of 10,000 events.
    page.click("#tabs button[data-tab=tail]")?;
    page.type_into("#tail-q", "burst-")?;
    page.type_into("#tail-keep", "10000")?;
    page.click("#tail-start")?;
    page.wait_texts("#tail-status", "the tail to connect", |t| {
        t.iter().any(|s| s.starts_with("live:"))
    })?;
    let started = Instant::now();
    send_all(&agg, &client, "burst", 100, ROWS)?;
    let deadline = Instant::now() + WAIT * 4;
    let shown = loop {
        let n = page
            .eval(
                "return document.querySelectorAll('#tail-results tr.event').length",
                Value::Null,
            )?
            .as_u64()
            .unwrap_or(0);
        if n as usize >= ROWS || Instant::now() >= deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let tail_wall = started.elapsed();
    let lagged = page.texts("#tail-lagged")?;
    eprintln!(
        "tail: {shown} of {ROWS} events on the page {:.1} s after the first was sent \
         (ingest, pipeline and page together); lagged: {lagged:?}",
        tail_wall.as_secs_f64()
    );
    assert_eq!(
        shown as usize, ROWS,
        "every tailed event shown; lagged: {lagged:?}"
    );
    let last = page.texts("#tail-results tr.event:last-child td.message")?;
    assert!(
        last.first()
            .is_some_and(|m| m.starts_with(&format!("burst-{:05}", ROWS - 1))),
        "{last:?}"
    );
    page.click("#tail-stop")?;
    page.close()?;
    Ok(())
}
