//! Running `logferry-agent` under test.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::process::{CliOutput, ManagedProcess, CLI_TIMEOUT, START_TIMEOUT};
use crate::{binary, http, toml_path, toml_str, TestDir, TOKEN};

/// How to configure an agent. Its files in the [`TestDir`] are named after
/// [`AgentOptions::name`], so a restart with the same name keeps its spool.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Label and file-name stem; default `agent`.
    pub name: String,
    /// `output.url`, e.g. `https://127.0.0.1:PORT`.
    pub url: String,
    /// `output.token`; default `Some(TOKEN)`.
    pub token: Option<String>,
    /// `inputs[0].include`.
    pub include: Vec<String>,
    /// `host`; default `test-node`.
    pub host: String,
    /// `output.batch_timeout`; default `100ms`.
    pub batch_timeout: String,
    /// `output.retry_max`, when set (keeps reconnects quick after an outage).
    pub retry_max: Option<String>,
    /// `tail.scan_interval`; default `200ms`.
    pub scan_interval: String,
    /// Present the test client certificate (`output.tls.cert` / `key`).
    pub mtls: bool,
}

impl AgentOptions {
    /// Defaults for an agent sending to `url` and tailing `include`.
    pub fn new(url: impl Into<String>, include: &[String]) -> AgentOptions {
        AgentOptions {
            name: "agent".to_owned(),
            url: url.into(),
            token: Some(TOKEN.to_owned()),
            include: include.to_vec(),
            host: "test-node".to_owned(),
            batch_timeout: "100ms".to_owned(),
            retry_max: None,
            scan_interval: "200ms".to_owned(),
            mtls: false,
        }
    }

    /// Sets `output.retry_max`.
    pub fn retry_max(mut self, d: &str) -> Self {
        self.retry_max = Some(d.to_owned());
        self
    }

    /// The spool directory for this name.
    pub fn data_dir(&self, dir: &TestDir) -> PathBuf {
        dir.join(format!("{}-data", self.name))
    }

    /// The config file text.
    pub fn config_text(&self, dir: &TestDir) -> String {
        let include: Vec<String> = self.include.iter().map(toml_str).collect();
        let mut t = format!("data_dir = {}\n", toml_path(&self.data_dir(dir)));
        t += &format!("host = {}\n", toml_str(&self.host));
        t += &format!("\n[[inputs]]\ninclude = [{}]\n", include.join(", "));
        t += &format!("\n[output]\nurl = {}\n", toml_str(&self.url));
        if let Some(token) = &self.token {
            t += &format!("token = {}\n", toml_str(token));
        }
        t += &format!("batch_timeout = {}\n", toml_str(&self.batch_timeout));
        if let Some(r) = &self.retry_max {
            t += &format!("retry_max = {}\n", toml_str(r));
        }
        t += &format!("\n[output.tls]\nca = {}\n", toml_path(&dir.cert("ca.pem")));
        if self.mtls {
            t += &format!("cert = {}\n", toml_path(&dir.cert("client.pem")));
            t += &format!("key = {}\n", toml_path(&dir.cert("client-key.pem")));
        }
        t += "\n[admin]\nlisten = \"127.0.0.1:0\"\n";
        t += &format!(
            "\n[tail]\nscan_interval = {}\n",
            toml_str(&self.scan_interval)
        );
        t
    }
}

/// A running agent process.
#[derive(Debug)]
pub struct Agent {
    /// The process.
    pub process: ManagedProcess,
    /// Its admin endpoint.
    pub admin_addr: SocketAddr,
    /// The config file it was started with.
    pub config_path: PathBuf,
    options: AgentOptions,
}

impl Agent {
    /// Writes the config, starts `logferry-agent --config … run` and waits for its admin
    /// listener.
    pub fn start(dir: &TestDir, options: AgentOptions) -> anyhow::Result<Agent> {
        let config_path = dir.write(format!("{}.toml", options.name), &options.config_text(dir))?;
        let args: Vec<OsString> = vec!["--config".into(), config_path.clone().into(), "run".into()];
        let log = dir.join(format!("{}.log", options.name));
        let mut process =
            ManagedProcess::spawn(&options.name, &binary("logferry-agent"), &args, &log, &[])?;
        let addrs = process.wait_listening(&["admin"], START_TIMEOUT)?;
        Ok(Agent {
            process,
            admin_addr: addrs
                .get("admin")
                .copied()
                .context("listening address missing")?,
            config_path,
            options,
        })
    }

    /// The options it was started with.
    pub fn options(&self) -> &AgentOptions {
        &self.options
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// GET on the admin endpoint: (status, body).
    pub fn admin_get(
        &self,
        client: &reqwest::blocking::Client,
        path: &str,
    ) -> anyhow::Result<(u16, String)> {
        http::get(client, &self.admin_url(path))
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

/// Runs `logferry-agent ARGS…` to completion (a CLI check, not a daemon).
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<CliOutput> {
    crate::process::run_to_completion(&binary("logferry-agent"), args, envs, CLI_TIMEOUT)
}
