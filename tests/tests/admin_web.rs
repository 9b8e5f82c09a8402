//! The admin web page in a real headless Chromium, driven over WebDriver (chromedriver):
//! with admin tokens configured, the page asks for a token, searches (text, a set of
//! levels, paging), shows a hostile message as text, tails live events, shows the
//! traffic summaries, agents and sinks, refuses a rule change to a viewer, and adds,
//! replaces and deletes a rule through the API.
//!
//! Needs `chromium` and `chromedriver` on `PATH` (Debian: `chromium chromium-driver`,
//! installed by `.ci/run`); without them the test fails and says so. `CHROMEDRIVER` and
//! `CHROMIUM` name other binaries.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fantoccini::{Client, ClientBuilder, Locator};
use logferry_e2e::http;
use logferry_e2e::{wait_until, Aggregator, AggregatorOptions, TestDir};
use serde_json::{json, Value};

/// How long any one thing may take to show in the page.
const WAIT: Duration = Duration::from_secs(15);
const ADMIN_TOKEN: &str = "web-admin-token";
const VIEWER_TOKEN: &str = "web-viewer-token";
/// A message that would add elements (and run script) if the page inserted it as HTML.
const HOSTILE: &str = r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b id="injected">bold</b> & "quotes""#;

/// A binary from `env`, else the first of `names` on `PATH`.
fn find_tool(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver, started on a port of its choosing in its own process group; dropping it
/// kills the group (chromedriver and the browsers it started).
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(chromedriver: &Path) -> anyhow::Result<Driver> {
        let mut child = Command::new(chromedriver)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let stdout = child.stdout.take().context("chromedriver's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // "ChromeDriver was started successfully on port 40671."
                if let Some(rest) = line
                    .split("on port ")
                    .nth(1)
                    .filter(|_| line.contains("success"))
                {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(digits.parse::<u16>().ok());
                }
            }
        });
        let mut driver = Driver { child, port: 0 };
        driver.port = rx
            .recv_timeout(WAIT)
            .ok()
            .flatten()
            .context("chromedriver did not say which port it listens on")?;
        Ok(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group this test created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

/// A browser session; each method runs one WebDriver exchange to completion, so the test
/// reads top to bottom and calls the (blocking) harness in between.
struct Page {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Page {
    fn open() -> anyhow::Result<Page> {
        let chromedriver = find_tool("CHROMEDRIVER", &["chromedriver"]);
        let chromium = find_tool(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let (Some(chromedriver), Some(chromium)) = (chromedriver, chromium) else {
            panic!(
                "the web page test needs chromium and chromedriver on PATH (Debian: \
                 `apt-get install chromium chromium-driver`, as .ci/run does), or CHROMIUM \
                 and CHROMEDRIVER naming them"
            );
        };
        let driver = Driver::start(&chromedriver)?;
        let profile = tempfile::Builder::new()
            .prefix("logferry-chromium-")
            .tempdir()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        let url = format!("http://127.0.0.1:{}", driver.port);
        let client = rt
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url),
            )
            .with_context(|| format!("opening a Chromium session through chromedriver at {url}"))?;
        Ok(Page {
            rt,
            client: Some(client),
            _driver: driver,
            _profile: profile,
        })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.rt
            .block_on(self.client().goto(url))
            .with_context(|| format!("opening {url}"))
    }

    /// Waits for the element `css`, then clicks it.
    fn click(&self, css: &str) -> anyhow::Result<()> {
        self.rt
            .block_on(async {
                let c = self.client();
                let e = c
                    .wait()
                    .at_most(WAIT)
                    .for_element(Locator::Css(css))
                    .await?;
                e.click().await
            })
            .with_context(|| format!("clicking {css}"))
    }

    /// Waits for the field `css`, empties it and types `text`.
    fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.rt
            .block_on(async {
                let c = self.client();
                let e = c
                    .wait()
                    .at_most(WAIT)
                    .for_element(Locator::Css(css))
                    .await?;
                e.clear().await?;
                e.send_keys(text).await
            })
            .with_context(|| format!("typing into {css}"))
    }

    /// Runs `script` (a function body; `arguments[0]` is `arg`) in the page.
    fn eval(&self, script: &str, arg: Value) -> anyhow::Result<Value> {
        self.rt
            .block_on(self.client().execute(script, vec![arg]))
            .with_context(|| format!("running {script}"))
    }

    /// The text of every element matching `css`, read in one go.
    fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let v = self.eval(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)",
            json!(css),
        )?;
        Ok(serde_json::from_value(v)?)
    }

    /// Polls the texts of `css` until `done` holds for them; the error shows the last ones.
    fn wait_texts(
        &self,
        css: &str,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.texts(css)?;
            if done(&t) {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                anyhow::bail!("timed out after {WAIT:?} waiting for {what}; {css} shows {t:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn close(mut self) -> anyhow::Result<()> {
        if let Some(c) = self.client.take() {
            self.rt.block_on(c.close()).context("closing the session")?;
        }
        Ok(())
    }
}

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
    let started = Instant::now();
    let dir = TestDir::new()?;
    let tokens = format!(
        "\n[[admin.tokens]]\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         \n[[admin.tokens]]\nrole = \"viewer\"\ntoken = \"{VIEWER_TOKEN}\"\n"
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

    page.close()?;
    eprintln!("web page test took {:?}", started.elapsed());
    Ok(())
}
