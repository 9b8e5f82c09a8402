//! Running `logferry-aggregator` under test.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::process::{CliOutput, ManagedProcess, CLI_TIMEOUT, START_TIMEOUT};
use crate::{binary, http, sink, toml_path, toml_str, TestDir, TOKEN};

/// How to configure an aggregator. Everything it writes lives in the [`TestDir`] under
/// names derived from [`AggregatorOptions::name`], so a restart with the same name finds
/// the same data dir (dedup table), file sink and log.
#[derive(Debug, Clone)]
pub struct AggregatorOptions {
    /// Label and file-name stem; default `aggregator`.
    pub name: String,
    /// `ingest.listen`; default `127.0.0.1:0`. Pass a previous run's address to restart on
    /// the same port.
    pub ingest_listen: SocketAddr,
    /// `ingest.tokens`; default `[TOKEN]`.
    pub tokens: Vec<String>,
    /// `ingest.max_body_bytes`, when set.
    pub max_body_bytes: Option<usize>,
    /// `ingest.max_decompressed_bytes`, when set.
    pub max_decompressed_bytes: Option<usize>,
    /// Require client certificates signed by the test CA (`ingest.tls.client_ca`).
    pub mtls: bool,
    /// TOML appended to the config (e.g. `[[inputs]]` tables).
    pub extra_config: String,
    /// Inputs whose `"listening"` line to wait for (component `input.<name>`); their
    /// addresses end up in [`Aggregator::input_addrs`].
    pub inputs: Vec<String>,
    /// Extra environment variables for the process (e.g. credentials for a sink).
    pub env: Vec<(String, String)>,
}

impl Default for AggregatorOptions {
    fn default() -> Self {
        AggregatorOptions {
            name: "aggregator".to_owned(),
            ingest_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens: vec![TOKEN.to_owned()],
            max_body_bytes: None,
            max_decompressed_bytes: None,
            mtls: false,
            extra_config: String::new(),
            inputs: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl AggregatorOptions {
    /// Sets an environment variable for the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets `ingest.listen`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.ingest_listen = addr;
        self
    }

    /// Turns on mTLS.
    pub fn mtls(mut self) -> Self {
        self.mtls = true;
        self
    }

    /// Appends an input: `toml` is the body of an `[[inputs]]` table without its `name`,
    /// which is set to `name`.
    pub fn input(mut self, name: &str, toml: &str) -> Self {
        self.extra_config += &format!("\n[[inputs]]\nname = {}\n{toml}\n", toml_str(name));
        self.inputs.push(name.to_owned());
        self
    }

    /// Sets the body limits.
    pub fn limits(mut self, max_body_bytes: usize, max_decompressed_bytes: usize) -> Self {
        self.max_body_bytes = Some(max_body_bytes);
        self.max_decompressed_bytes = Some(max_decompressed_bytes);
        self
    }

    /// Appends `toml` to the config.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self
    }

    /// The data dir for this name.
    pub fn data_dir(&self, dir: &TestDir) -> PathBuf {
        dir.join(format!("{}-data", self.name))
    }

    /// The file sink for this name.
    pub fn sink_path(&self, dir: &TestDir) -> PathBuf {
        dir.join(format!("{}-events.jsonl", self.name))
    }

    /// The config file text.
    pub fn config_text(&self, dir: &TestDir) -> String {
        let tokens: Vec<String> = self.tokens.iter().map(toml_str).collect();
        let mut t = format!(
            "data_dir = {}\n\n[ingest]\n",
            toml_path(&self.data_dir(dir))
        );
        t += &format!("listen = {}\n", toml_str(self.ingest_listen.to_string()));
        t += &format!("tokens = [{}]\n", tokens.join(", "));
        if let Some(n) = self.max_body_bytes {
            t += &format!("max_body_bytes = {n}\n");
        }
        if let Some(n) = self.max_decompressed_bytes {
            t += &format!("max_decompressed_bytes = {n}\n");
        }
        t += "\n[ingest.tls]\n";
        t += &format!("cert = {}\n", toml_path(&dir.cert("server.pem")));
        t += &format!("key = {}\n", toml_path(&dir.cert("server-key.pem")));
        if self.mtls {
            t += &format!("client_ca = {}\n", toml_path(&dir.cert("ca.pem")));
        }
        t += "\n[admin]\nlisten = \"127.0.0.1:0\"\n";
        t += &format!(
            "\n[sinks.local]\ntype = \"file\"\npath = {}\n",
            toml_path(&self.sink_path(dir))
        );
        t += &self.extra_config;
        t
    }
}

/// A running aggregator process.
#[derive(Debug)]
pub struct Aggregator {
    /// The process.
    pub process: ManagedProcess,
    /// Where agents connect (TLS).
    pub ingest_addr: SocketAddr,
    /// The admin endpoint (plain HTTP).
    pub admin_addr: SocketAddr,
    /// The file sink.
    pub sink_path: PathBuf,
    /// The config file it was started with.
    pub config_path: PathBuf,
    /// Where each of [`AggregatorOptions::inputs`] listens.
    pub input_addrs: HashMap<String, SocketAddr>,
    options: AggregatorOptions,
}

impl Aggregator {
    /// Writes the config, starts `logferry-aggregator --config … run` and waits for both
    /// listeners.
    pub fn start(dir: &TestDir, options: AggregatorOptions) -> anyhow::Result<Aggregator> {
        let config_path = dir.write(format!("{}.toml", options.name), &options.config_text(dir))?;
        Self::start_with_config(dir, options, config_path)
    }

    /// [`Aggregator::start`] on a fixed port that a previous run just released (e.g.
    /// [`Aggregator::restart_options`]): retries for a few seconds while the port is still
    /// taken, which can happen if another socket grabbed it in between.
    pub fn restart(dir: &TestDir, options: AggregatorOptions) -> anyhow::Result<Aggregator> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Self::start(dir, options.clone()) {
                Err(e) if format!("{e:#}").contains("in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// Starts with an already written config file (e.g. certificates from `certs --out`).
    /// `options` still names the log and, for [`Aggregator::events`], the sink: the config
    /// should use `options.sink_path(dir)`.
    pub fn start_with_config(
        dir: &TestDir,
        options: AggregatorOptions,
        config_path: PathBuf,
    ) -> anyhow::Result<Aggregator> {
        let args: Vec<OsString> = vec!["--config".into(), config_path.clone().into(), "run".into()];
        let log = dir.join(format!("{}.log", options.name));
        let mut process = ManagedProcess::spawn(
            &options.name,
            &binary("logferry-aggregator"),
            &args,
            &log,
            &options.env,
        )?;
        let mut components = vec!["ingest".to_owned(), "admin".to_owned()];
        components.extend(options.inputs.iter().map(|n| format!("input.{n}")));
        let names: Vec<&str> = components.iter().map(String::as_str).collect();
        let addrs = process.wait_listening(&names, START_TIMEOUT)?;
        let addr = |c: &str| addrs.get(c).copied().context("listening address missing");
        let (ingest_addr, admin_addr) = (addr("ingest")?, addr("admin")?);
        let mut input_addrs = HashMap::new();
        for n in &options.inputs {
            input_addrs.insert(n.clone(), addr(&format!("input.{n}"))?);
        }
        Ok(Aggregator {
            process,
            ingest_addr,
            admin_addr,
            sink_path: options.sink_path(dir),
            config_path,
            input_addrs,
            options,
        })
    }

    /// The options it was started with.
    pub fn options(&self) -> &AggregatorOptions {
        &self.options
    }

    /// Options for starting it again on the same ingest port with the same files.
    pub fn restart_options(&self) -> AggregatorOptions {
        self.options.clone().listen(self.ingest_addr)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn ingest_url(&self) -> String {
        format!("https://{}", self.ingest_addr)
    }

    /// `https://127.0.0.1:PORT/v1/batch`.
    pub fn batch_url(&self) -> String {
        format!("https://{}/v1/batch", self.ingest_addr)
    }

    /// Sends `lines` from `path` on `host` as batch `seq` of agent `agent` (stream `s`,
    /// with [`TOKEN`]), and fails unless it is answered 200.
    pub fn send_lines(
        &self,
        client: &reqwest::blocking::Client,
        agent: &str,
        seq: u64,
        (host, path): (&str, &str),
        lines: &[&str],
    ) -> anyhow::Result<()> {
        let frame = crate::frames::batch(agent, "s", seq, host, path, lines)?;
        let answer = http::post(
            client,
            &self.batch_url(),
            Some(TOKEN),
            frame,
            http::BodyMode::Sized,
        )?;
        anyhow::ensure!(answer.status == 200, "batch {seq}: {answer}");
        Ok(())
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// GET /healthz: the status code.
    pub fn healthz(&self, client: &reqwest::blocking::Client) -> anyhow::Result<u16> {
        Ok(http::get(client, &self.admin_url("/healthz"))?.0)
    }

    /// GET /metrics: the Prometheus text (an error unless 200).
    pub fn metrics(&self, client: &reqwest::blocking::Client) -> anyhow::Result<String> {
        let (status, body) = http::get(client, &self.admin_url("/metrics"))?;
        anyhow::ensure!(status == 200, "GET /metrics answered {status}: {body}");
        Ok(body)
    }

    /// The events in the file sink so far.
    pub fn events(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        sink::read_events(&self.sink_path)
    }

    /// The sink's events once it holds at least `n` (or an error after 20 s). A 2xx means
    /// the batch is durable in the inbox; the pipeline writes it to the sink just after.
    pub fn events_once(&self, n: usize) -> anyhow::Result<Vec<serde_json::Value>> {
        crate::wait_until(
            Duration::from_secs(20),
            &format!("{n} events in the sink"),
            || sink::count_lines(&self.sink_path).unwrap_or(0) >= n,
        )?;
        self.events()
    }

    /// Waits (polling, with a deadline) until the sink holds at least `n` events; the
    /// error says how many arrived.
    pub fn wait_for_events(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last = 0;
        crate::wait_until(timeout, &format!("{n} events in the sink"), || {
            last = sink::count_lines(&self.sink_path).unwrap_or(0);
            last >= n
        })
        .with_context(|| format!("only {last} events arrived in {:?}", start.elapsed()))
    }

    /// SIGTERM; an error unless it exits 0 in time.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.process.stop()
    }

    /// SIGKILL.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.process.kill9().map(|_| ())
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

/// Runs `logferry-aggregator ARGS…` to completion (a CLI check, not a server).
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<CliOutput> {
    crate::process::run_to_completion(&binary("logferry-aggregator"), args, envs, CLI_TIMEOUT)
}
