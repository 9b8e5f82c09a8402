//! The browser side of the web page tests: chromedriver started on a port of its own
//! choosing, a headless Chromium session through it (fantoccini), and the few page
//! operations the tests use, each run to completion so the tests read top to bottom.
//! Screenshots are written under the cargo target dir as test artifacts
//! ([`artifacts_dir`]) and checked to be real pictures of the page.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long any one thing may take to show in the page.
pub const WAIT: Duration = Duration::from_secs(15);

/// Scrolls `arguments[0]` to the middle of the view and calls back once its box has
/// been the same for three animation frames in a row (or after 120 frames, about 2 s).
const SETTLE: &str = "const el = arguments[0], done = arguments[arguments.length - 1];\
    el.scrollIntoView({block: 'center', inline: 'nearest', behavior: 'instant'});\
    let last = '', still = 0, frames = 0;\
    const step = () => {\
        const r = el.getBoundingClientRect();\
        const now = [r.top, r.left, r.width, r.height].join();\
        still = now === last ? still + 1 : 0;\
        last = now;\
        if (still >= 2 || ++frames >= 120) { done(still >= 2); } else { requestAnimationFrame(step); }\
    };\
    requestAnimationFrame(step);";

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
pub struct Driver {
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
pub struct Page {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Page {
    pub fn open() -> anyhow::Result<Page> {
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

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.rt
            .block_on(self.client().goto(url))
            .with_context(|| format!("opening {url}"))
    }

    /// Waits for the element `css`, scrolls it into view and waits until it stays put,
    /// then clicks it.
    ///
    /// WebDriver clicks at a point on the screen. A page that is still laying out rows
    /// near the viewport (the result tables skip the layout of rows off screen) can move
    /// the element between the moment the driver takes its position and the click, which
    /// then lands elsewhere without an error. A user sees the button before clicking it;
    /// waiting for it to be still does the same.
    pub fn click(&self, css: &str) -> anyhow::Result<()> {
        self.rt
            .block_on(async {
                let c = self.client();
                let e = c
                    .wait()
                    .at_most(WAIT)
                    .for_element(Locator::Css(css))
                    .await?;
                c.execute_async(SETTLE, vec![serde_json::to_value(&e)?])
                    .await?;
                e.click().await?;
                anyhow::Ok(())
            })
            .with_context(|| format!("clicking {css}"))
    }

    /// Waits for the field `css`, empties it and types `text`.
    pub fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
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
    pub fn eval(&self, script: &str, arg: Value) -> anyhow::Result<Value> {
        self.rt
            .block_on(self.client().execute(script, vec![arg]))
            .with_context(|| format!("running {script}"))
    }

    /// Runs `script` asynchronously: it calls `arguments[arguments.length - 1]` with the
    /// result when done.
    pub fn eval_async(&self, script: &str) -> anyhow::Result<Value> {
        self.rt
            .block_on(self.client().execute_async(script, vec![]))
            .with_context(|| format!("running {script}"))
    }

    /// The text of every element matching `css`, read in one go.
    pub fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let v = self.eval(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)",
            json!(css),
        )?;
        Ok(serde_json::from_value(v)?)
    }

    /// Polls the texts of `css` until `done` holds for them; the error shows the last ones.
    pub fn wait_texts(
        &self,
        css: &str,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        self.wait_for(css, what, done, Self::texts)
    }

    /// The current values of the form fields matching `css`.
    pub fn values(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let v = self.eval(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.value)",
            json!(css),
        )?;
        Ok(serde_json::from_value(v)?)
    }

    /// Polls the values of the fields `css` until `done` holds for them.
    pub fn wait_values(
        &self,
        css: &str,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        self.wait_for(css, what, done, Self::values)
    }

    fn wait_for(
        &self,
        css: &str,
        what: &str,
        done: impl Fn(&[String]) -> bool,
        read: impl Fn(&Self, &str) -> anyhow::Result<Vec<String>>,
    ) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = read(self, css)?;
            if done(&t) {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                anyhow::bail!("timed out after {WAIT:?} waiting for {what}; {css} shows {t:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn close(mut self) -> anyhow::Result<()> {
        if let Some(c) = self.client.take() {
            self.rt.block_on(c.close()).context("closing the session")?;
        }
        Ok(())
    }
}

impl Page {
    /// Takes a screenshot of the page, checks it is a real picture of it
    /// ([`check_screenshot`]) and writes it to [`artifacts_dir`] as `<name>.png`.
    pub fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self
            .rt
            .block_on(self.client().screenshot())
            .with_context(|| format!("screenshot {name}"))?;
        check_screenshot(&png).with_context(|| format!("screenshot {name}"))?;
        let dir = artifacts_dir()?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("screenshot: {}", path.display());
        Ok(path)
    }
}

/// Where screenshots go: `test-artifacts/admin_web` in the cargo target dir (the
/// directory above the one holding the binaries, e.g. `target/test-artifacts/admin_web`).
pub fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let bin = logferry_e2e::bin_dir()?;
    let target = bin.parent().unwrap_or(&bin);
    Ok(target.join("test-artifacts").join("admin_web"))
}

/// A screenshot is a PNG that decodes, of the window's size, and shows a page: many
/// colours, and neither blank nor one colour almost everywhere.
pub fn check_screenshot(bytes: &[u8]) -> anyhow::Result<()> {
    anyhow::ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG ({} bytes)",
        bytes.len()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().context("reading the PNG header")?;
    let size = reader
        .output_buffer_size()
        .context("the PNG is too large to decode")?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).context("decoding the PNG")?;
    let (w, h) = (frame.width, frame.height);
    anyhow::ensure!(w >= 800 && h >= 600, "{w}x{h}: smaller than the window");
    let channels = frame.color_type.samples();
    anyhow::ensure!(
        frame.bit_depth == png::BitDepth::Eight && channels >= 3,
        "unexpected PNG format {:?} {:?}",
        frame.color_type,
        frame.bit_depth
    );
    let pixels = buf[..frame.buffer_size()].chunks_exact(channels);
    let mut counts: std::collections::HashMap<[u8; 3], u64> = std::collections::HashMap::new();
    for p in pixels {
        *counts.entry([p[0], p[1], p[2]]).or_default() += 1;
    }
    let total = u64::from(w) * u64::from(h);
    let commonest = counts.values().copied().max().unwrap_or(0);
    anyhow::ensure!(
        counts.len() >= 16,
        "only {} colours: not a rendered page",
        counts.len()
    );
    anyhow::ensure!(
        commonest * 100 < total * 99,
        "one colour covers {commonest} of {total} pixels: a blank page"
    );
    Ok(())
}

/// One browser test at a time: two Chromiums at once on a small machine would make
/// each one's waits and timings meaningless.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn screenshots_are_checked_for_being_pictures() {
    assert!(check_screenshot(b"GIF89a").is_err());
    // A blank 1000x800 white PNG is refused; so is one of the right size with two colours.
    let blank = |stripe: bool| {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 1000, 800);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            let mut data = vec![255u8; 1000 * 800 * 3];
            if stripe {
                for px in data.chunks_exact_mut(3).take(1000 * 400) {
                    px.copy_from_slice(&[0, 0, 0]);
                }
            }
            w.write_image_data(&data).unwrap();
        }
        out
    };
    let err = check_screenshot(&blank(false)).unwrap_err().to_string();
    assert!(err.contains("colours"), "{err}");
    assert!(check_screenshot(&blank(true)).is_err());
}
