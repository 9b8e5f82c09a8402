//! The admin web page in a real headless Chromium, driven over WebDriver (chromedriver):
//! with admin tokens configured, the page asks for a token, searches (text, a set of
//! levels, paging), shows a hostile message as text, colours rows by level, tails live
//! events, draws the traffic chart and shows the summaries, agents and sinks, refuses a
//! rule change to a viewer, and adds, replaces and deletes rules as JSON and TOML through
//! the API. Screenshots of the search, tail, stats and rules views are kept under the
//! target dir (`test-artifacts/admin_web/`). `rows.rs`: 10,000 rows on the page, timed.
//!
//! Needs `chromium` and `chromedriver` on `PATH` (Debian: `chromium chromium-driver`,
//! installed by `.ci/run`); without them the test fails and says so. `CHROMEDRIVER` and
//! `CHROMIUM` name other binaries.

mod browser;
mod rows;

use std::time::Instant;

use anyhow::Context;
use browser::{Page, WAIT};
use logferry_e2e::http;
use logferry_e2e::{wait_until, Aggregator, AggregatorOptions, TestDir};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "web-admin-token";
const VIEWER_TOKEN: &str = "web-viewer-token";
/// A message that would add elements (and run script) if the page inserted it as HTML.
const HOSTILE: &str = r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b id="injected">bold</b> & "quotes""#;

fn send(
    agg: &Aggregator,
    client: &reqwest::blocking::Client,
    seq: u64,
    lines: &[&str],
) -> anyhow::Result<()> {
    agg.send_lines(client, "e2e-web", seq, ("web-1", "/var/log/app.log"), lines)
}

/// GET `path` from the admin API with `token`: (status, JSON body).
fn api_get(
    agg: &Aggregator,
    client: &reqwest::blocking::Client,
    path: &str,
    token: &str,
) -> anyhow::Result<(u16, Value)> {
    let resp = client
        .get(agg.admin_url(path))
        .bearer_auth(token)
        .send()
        .with_context(|| format!("GET {path}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .json()
        .with_context(|| format!("GET {path}: not JSON"))?;
    Ok((status, body))
}

fn line(level: &str, msg: &str) -> String {
    json!({ "level": level, "msg": msg }).to_string()
}

#[test]
fn the_web_page_searches_tails_shows_stats_and_edits_rules() -> anyhow::Result<()> {
    let _one = browser::exclusive();
    let started = Instant::now();
    let dir = TestDir::new()?;
    // One-second summaries, so the chart has several points within the test.
    let tokens = format!(
        "\n[[admin.tokens]]\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         \n[[admin.tokens]]\nrole = \"viewer\"\ntoken = \"{VIEWER_TOKEN}\"\n\
         \n[stats]\ninterval = \"1s\"\n"
    );
    let agg = Aggregator::start(&dir, AggregatorOptions::default().extra(&tokens))?;
    let client = http::client(&dir, false)?;

    // The page and its files: types, no caching without revalidation, a strict policy.
    for (path, ty) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let resp = client.get(agg.admin_url(path)).send()?;
        assert_eq!(resp.status(), 200, "GET {path} needs no token");
        let h = resp.headers();
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(header("content-type").starts_with(ty), "{path}: {h:?}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
    }

    let lines = [
        line("info", "user alice logged in"),
        line("warn", "disk 91% full"),
        line("error", "payment failed for order 42"),
        line("error", HOSTILE),
        line("debug", "cache miss for key k1"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    send(&agg, &client, 1, &refs)?;
    wait_until(WAIT, "the 5 events in the search store", || {
        api_get(&agg, &client, "/api/logs", VIEWER_TOKEN)
            .is_ok_and(|(_, b)| b["events"].as_array().is_some_and(|e| e.len() == 5))
    })?;

    let page = Page::open()?;
    page.goto(&agg.admin_url("/"))?;
    page.wait_texts("#health", "the readiness badge", |t| t == ["ready"])?;

    // Without a token the API refuses, and the page says why.
    page.click("#search-run")?;
    page.wait_texts("#search-status", "the 401 shown", |t| {
        t.iter().any(|s| s.contains("401"))
    })?;
    page.type_into("#token", ADMIN_TOKEN)?;
    page.click("#token-save")?;

    // Search: every event, newest first; the hostile one as text.
    page.click("#search-run")?;
    let messages = page.wait_texts("#search-results td.message", "5 results", |t| t.len() == 5)?;
    for l in &lines {
        let msg: Value = serde_json::from_str(l)?;
        assert!(
            messages
                .iter()
                .any(|m| m == msg["msg"].as_str().unwrap_or_default()),
            "{msg} missing from {messages:?}"
        );
    }
    assert_eq!(messages[0], "cache miss for key k1", "newest first");
    let injected = page.eval(
        "return [document.querySelectorAll('#injected, #search-results img, #search-results script, #search-results b').length, typeof window.__pwned]",
        Value::Null,
    )?;
    assert_eq!(
        injected,
        json!([0, "undefined"]),
        "the hostile message made elements"
    );
    // A click shows the full event as JSON, as text too.
    let hostile_row = page.eval(
        "const cells = Array.from(document.querySelectorAll('#search-results td.message'));\
         const i = cells.findIndex(c => c.textContent === arguments[0]);\
         return i + 1;",
        json!(HOSTILE),
    )?;
    let n = hostile_row.as_u64().unwrap_or(0);
    assert!(n > 0, "the hostile message is not shown verbatim");
    page.click(&format!("#search-results tbody tr.event:nth-of-type({n})"))?;
    let detail = page.wait_texts(
        "#search-results tr.detail pre.json",
        "the row's JSON",
        |t| t.len() == 1,
    )?;
    let shown: Value = serde_json::from_str(&detail[0])?;
    assert_eq!(shown["message"], HOSTILE);
    assert_eq!(shown["host"], "web-1");

    // Rows carry their level's class, and its colour: a badge and a stripe.
    let colours = page.eval(
        "return Array.from(document.querySelectorAll('#search-results tr.event')).map(tr => {\
           const badge = tr.querySelector('td.level .badge');\
           return [tr.className, badge.textContent, getComputedStyle(badge).backgroundColor,\
                   getComputedStyle(tr.cells[0]).borderLeftColor];\
         })",
        Value::Null,
    )?;
    let colours: Vec<(String, String, String, String)> = serde_json::from_value(colours)?;
    assert_eq!(colours.len(), 5, "{colours:?}");
    for (class, level, background, stripe) in &colours {
        let want = match level.as_str() {
            "debug" => "rgb(0, 114, 178)",
            "info" => "rgb(0, 121, 90)",
            "warn" => "rgb(230, 159, 0)",
            "error" => "rgb(192, 57, 43)",
            other => anyhow::bail!("unexpected level {other}"),
        };
        assert!(
            class.split(' ').any(|c| c == format!("level-{level}")),
            "{class} for {level}"
        );
        assert_eq!(
            (background.as_str(), stripe.as_str()),
            (want, want),
            "{level}"
        );
    }
    page.screenshot("search")?;

    // Levels are a set: info and error (not warn, which the API's "info and above" returns).
    page.click("#search-levels input[value=info]")?;
    page.click("#search-levels input[value=error]")?;
    page.click("#search-run")?;
    let status = page.wait_texts("#search-status", "the level filter", |t| {
        t.iter().any(|s| s.starts_with("3 events"))
    })?;
    assert!(
        status[0].contains("1 of other levels not shown"),
        "{status:?}"
    );
    let levels = page.texts("#search-results td.level")?;
    assert_eq!(levels, ["error", "error", "info"], "{levels:?}");
    page.click("#search-levels input[value=info]")?;
    page.click("#search-levels input[value=error]")?;

    // Paging with the API's cursor: 2 + 2 + 1.
    page.type_into("#search-limit", "2")?;
    page.click("#search-run")?;
    page.wait_texts("#search-status", "the first page", |t| {
        t.iter().any(|s| s.starts_with("2 events; more"))
    })?;
    page.click("#search-more")?;
    page.wait_texts("#search-status", "the second page", |t| {
        t.iter().any(|s| s.starts_with("4 events; more"))
    })?;
    page.click("#search-more")?;
    page.wait_texts("#search-status", "the last page", |t| t == ["5 events"])?;
    let all = page.texts("#search-results td.message")?;
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(all[0], "cache miss for key k1");
    assert_eq!(all[4], "user alice logged in");

    // Live tail, filtered by text: new events appear, others do not; the last 10 stay.
    page.click("#tabs button[data-tab=tail]")?;
    page.type_into("#tail-q", "live-")?;
    page.type_into("#tail-keep", "10")?;
    page.click("#tail-start")?;
    page.wait_texts("#tail-status", "the tail to connect", |t| {
        t.iter().any(|s| s.starts_with("live:"))
    })?;
    let (skipped, live) = (
        line("info", "not for the tail"),
        line("warn", "live-event one"),
    );
    send(&agg, &client, 2, &[&skipped, &live])?;
    let tailed = page.wait_texts("#tail-results td.message", "the tailed event", |t| {
        !t.is_empty()
    })?;
    assert_eq!(tailed, ["live-event one"]);
    assert_eq!(page.texts("#tail-results td.level")?, ["warn"]);
    let bulk: Vec<String> = (1..=15)
        .map(|i| line("info", &format!("live-bulk {i}")))
        .collect();
    send(
        &agg,
        &client,
        3,
        &bulk.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let kept = page.wait_texts("#tail-results td.message", "the last 10 lines", |t| {
        t.last().is_some_and(|m| m == "live-bulk 15")
    })?;
    let want: Vec<String> = (6..=15).map(|i| format!("live-bulk {i}")).collect();
    assert_eq!(kept, want, "the oldest lines leave the page");
    page.screenshot("tail")?;
    page.click("#tail-stop")?;
    page.wait_texts("#tail-status", "the tail to stop", |t| {
        t.iter().any(|s| s.starts_with("stopped (16 received)"))
    })?;

    // Stats: the 22 events by level and host.
    page.click("#tabs button[data-tab=stats]")?;
    page.wait_texts("#stats-events", "22 events in the summary", |t| t == ["22"])?;
    for (level, n) in [
        ("error", "2"),
        ("warn", "2"),
        ("info", "17"),
        ("debug", "1"),
    ] {
        let shown = page.texts(&format!(
            "table[data-stats=Levels] tr[data-key={level}] td.num"
        ))?;
        assert_eq!(shown, [n], "{level}");
    }
    let hosts = page.texts("table[data-stats='Top hosts'] tr[data-key='web-1'] td.num")?;
    assert_eq!(hosts, ["22"]);

    // The chart: a line per level, a point per one-second interval since the first
    // events (several, as the events came over several seconds), above zero for the
    // levels that had events and at zero for the others.
    let chart = page.eval(
        "return Array.from(document.querySelectorAll('#traffic-chart svg g.series')).map(g => {\
           const ys = g.querySelector('polyline').getAttribute('points').trim().split(' ')\
             .map(p => Number(p.split(',')[1]));\
           return [g.dataset.level, Number(g.dataset.points), ys.length, Math.min(...ys), Math.max(...ys),\
                   getComputedStyle(g.querySelector('polyline')).stroke];\
         })",
        Value::Null,
    )?;
    let chart: Vec<(String, usize, usize, f64, f64, String)> = serde_json::from_value(chart)?;
    let levels: Vec<&str> = chart.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        levels,
        ["trace", "debug", "info", "warn", "error", "fatal"],
        "{chart:?}"
    );
    let points = chart[0].1;
    assert!(points >= 2, "one point per interval: {chart:?}");
    // y grows downwards; the zero line is the lowest any point can be.
    let zero = chart.iter().map(|c| c.4).fold(f64::MIN, f64::max);
    for (level, n, drawn, top, bottom, stroke) in &chart {
        assert_eq!((*n, *drawn), (points, points), "{level}: {chart:?}");
        let had_events = ["debug", "info", "warn", "error"].contains(&level.as_str());
        assert_eq!(*top < zero, had_events, "{level}: {chart:?}");
        assert_eq!(*bottom, zero, "{level} starts or ends at zero: {chart:?}");
        assert!(stroke.starts_with("rgb("), "{level}: stroke {stroke}");
    }
    let strokes: std::collections::HashSet<&str> = chart.iter().map(|c| c.5.as_str()).collect();
    assert_eq!(strokes.len(), 6, "a colour per level: {chart:?}");
    let legend = page.texts("#traffic-chart ul.legend li")?;
    assert!(
        legend.len() == 6 && legend[2].starts_with("info "),
        "{legend:?}"
    );
    page.screenshot("stats")?;

    // Agents and sinks.
    page.click("#tabs button[data-tab=agents]")?;
    page.wait_texts("#agents-body td", "the agent", |t| {
        t.iter().any(|s| s == "e2e-web")
    })?;
    page.click("#tabs button[data-tab=sinks]")?;
    page.wait_texts("#sinks-body td", "the file sink", |t| {
        t.iter().any(|s| s == "local")
    })?;

    // Rules: a viewer may not add one, and an invalid rule is refused, both with the API's
    // error shown; an admin adds a rule, replaces it and deletes it.
    let rule = json!({
        "name": "web-tag-errors",
        "when": {"field": "level", "gte": "error"},
        "actions": [{"type": "tag", "tags": ["paged"]}],
    });
    page.type_into("#token", VIEWER_TOKEN)?;
    page.click("#token-save")?;
    page.click("#tabs button[data-tab=rules]")?;
    page.wait_texts("#rules-status", "the rule list", |t| {
        t.iter().any(|s| s.starts_with("0 rules"))
    })?;
    page.type_into("#rule-text", &rule.to_string())?;
    page.click("#rule-add")?;
    page.wait_texts("#rule-error", "the viewer refused", |t| {
        t.iter().any(|s| s.contains("403") && s.contains("admin"))
    })?;
    page.type_into("#token", ADMIN_TOKEN)?;
    page.click("#token-save")?;
    page.type_into(
        "#rule-text",
        r#"{"name": "web-bad", "actions": [{"type": "explode"}]}"#,
    )?;
    page.click("#rule-add")?;
    page.wait_texts("#rule-error", "the API's error", |t| {
        t.iter()
            .any(|s| s.contains("400") && s.contains("invalid rule"))
    })?;
    page.type_into("#rule-text", &rule.to_string())?;
    page.click("#rule-add")?;
    page.wait_texts("#rules-list tbody td.name", "the new rule listed", |t| {
        t == ["web-tag-errors"]
    })?;
    let (status, body) = api_get(&agg, &client, "/api/rules/web-tag-errors", VIEWER_TOKEN)?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rule"]["actions"][0]["tags"], json!(["paged"]));
    page.click("#rules-list tr[data-rule=web-tag-errors] button.rule-edit")?;
    page.wait_texts("#rule-editor-title", "the editor", |t| {
        t == ["Edit rule web-tag-errors"]
    })?;
    let mut replaced = rule.clone();
    replaced["actions"][0]["tags"] = json!(["paged", "web"]);
    page.type_into("#rule-text", &replaced.to_string())?;
    page.click("#rule-save")?;
    page.wait_texts("#rules-status", "the replacement", |t| {
        t == ["replaced web-tag-errors"]
    })?;
    let (status, body) = api_get(&agg, &client, "/api/rules/web-tag-errors", VIEWER_TOKEN)?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rule"]["actions"][0]["tags"], json!(["paged", "web"]));
    let delete = "#rules-list tr[data-rule=web-tag-errors] button.rule-delete";
    page.click(delete)?;
    page.wait_texts(delete, "the delete confirmation", |t| {
        t == ["Confirm delete"]
    })?;
    page.click(delete)?;
    page.wait_texts("#rules-list tbody td.name", "the rule gone", |t| {
        t.is_empty()
    })?;
    let (status, body) = api_get(&agg, &client, "/api/rules/web-tag-errors", VIEWER_TOKEN)?;
    assert_eq!(status, 404, "{body}");

    // The same as TOML: the API's error names the key; the rule added exists in the API,
    // and opens in the editor as TOML.
    page.click("#rule-format option[value=toml]")?;
    page.wait_values("#rule-text", "the TOML template", |t| {
        t.iter().any(|s| s.contains("[[actions]]"))
    })?;
    let toml_rule = "name = \"web-toml\"\n[when]\nfield = \"level\"\ngte = \"warn\"\n\
                     [[actions]]\ntype = \"tag\"\ntags = [\"toml\"]\n";
    page.type_into("#rule-text", &toml_rule.replace("field", "feild"))?;
    page.click("#rule-add")?;
    page.wait_texts("#rule-error", "the TOML error naming the key", |t| {
        t.iter()
            .any(|s| s.contains("400") && s.contains("when.feild"))
    })?;
    page.type_into("#rule-text", toml_rule)?;
    page.click("#rule-add")?;
    page.wait_texts("#rules-list tbody td.name", "the TOML rule listed", |t| {
        t == ["web-toml"]
    })?;
    let (status, body) = api_get(&agg, &client, "/api/rules/web-toml", VIEWER_TOKEN)?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rule"]["when"],
        json!({"field": "level", "gte": "warn"})
    );
    assert_eq!(body["rule"]["actions"][0]["tags"], json!(["toml"]));
    page.click("#rules-list tr[data-rule=web-toml] button.rule-edit")?;
    let text = page.wait_values("#rule-text", "the rule as TOML in the editor", |t| {
        t.iter().any(|s| s.contains("name = \"web-toml\""))
    })?;
    assert!(text[0].contains("tags = [\"toml\"]"), "{text:?}");
    page.screenshot("rules")?;

    page.close()?;
    eprintln!("web page test took {:?}", started.elapsed());
    Ok(())
}
