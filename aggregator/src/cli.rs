//! `logferry-aggregator rules ...`: the rules API from the command line (`list`, `add`,
//! `delete`, against a running aggregator's admin endpoint), and `rules test`, which runs
//! rules over a file of log lines offline, touching nothing that runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::AggregatorConfig;
use crate::parse::detect::Detector;
use crate::rules::config::{rules_from_toml, ActionConfig, ConditionConfig, Literal, RuleConfig};
use crate::rules::{Engine, EngineContext, K8sRef, Outbox, RuleEvent, SystemClock, Verdict};

/// `rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the rules in force, with their counters.
    List,
    /// Add a rule: a name, tests (all must hold) and at least one action.
    Add(AddArgs),
    /// Delete the rule with this name.
    Delete {
        /// The rule's name.
        name: String,
    },
    /// Run rules from a file over log lines from a file, offline, and show which lines
    /// they match and what they do.
    Test {
        /// The rules: a TOML file of `[[rules]]`, or one rule as JSON.
        #[arg(long)]
        rule: PathBuf,
        /// Log lines, one per line.
        #[arg(long)]
        input: PathBuf,
        /// The source path the lines are taken to come from (for `source.path` tests and
        /// forced formats).
        #[arg(long, default_value = "/var/log/test.log")]
        source: String,
    },
}

/// `rules add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The rule's name (letters, digits, `-`, `_`, `.`; spaces become `-`).
    pub name: String,
    /// Match events at this level or above (`warn`, `error`, ...).
    #[arg(long)]
    pub level: Option<String>,
    /// Match events whose message contains this text.
    #[arg(long)]
    pub contains: Option<String>,
    /// Match events whose message matches this regex.
    #[arg(long)]
    pub regex: Option<String>,
    /// Match events whose field equals a value: `FIELD=VALUE` (repeatable).
    #[arg(long = "field", value_name = "FIELD=VALUE")]
    pub fields: Vec<String>,
    /// Drop matching events.
    #[arg(long)]
    pub drop: bool,
    /// Add this tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Send matching events only to this sink (repeatable).
    #[arg(long = "route")]
    pub routes: Vec<String>,
    /// Redact these built-in patterns (`email`, `ipv4`, `credit_card`, ..., `all`).
    #[arg(long = "redact")]
    pub redact: Vec<String>,
    /// Notify this notifier of matching events (a digest when they keep coming).
    #[arg(long)]
    pub notify: Option<String>,
    /// Where to insert the rule (default: last).
    #[arg(long)]
    pub position: Option<usize>,
}

impl AddArgs {
    /// The rule these arguments describe.
    pub fn rule(&self) -> anyhow::Result<RuleConfig> {
        let mut tests = Vec::new();
        let test = |field: &str| ConditionConfig {
            field: Some(field.to_owned()),
            ..ConditionConfig::default()
        };
        if let Some(l) = &self.level {
            tests.push(ConditionConfig {
                gte: Some(Literal::Str(l.clone())),
                ..test("level")
            });
        }
        if let Some(c) = &self.contains {
            tests.push(ConditionConfig {
                contains: Some(c.clone()),
                ..test("message")
            });
        }
        if let Some(r) = &self.regex {
            tests.push(ConditionConfig {
                regex: Some(r.clone()),
                ..test("message")
            });
        }
        for f in &self.fields {
            let (k, v) = f
                .split_once('=')
                .with_context(|| format!("--field {f}: expected FIELD=VALUE"))?;
            tests.push(ConditionConfig {
                equals: Some(Literal::Str(v.to_owned())),
                ..test(k)
            });
        }
        let mut actions = Vec::new();
        if !self.redact.is_empty() {
            actions.push(ActionConfig::Redact {
                patterns: self.redact.clone(),
                regex: None,
                name: None,
                fields: None,
            });
        }
        if !self.tags.is_empty() {
            actions.push(ActionConfig::Tag {
                tags: self.tags.clone(),
            });
        }
        if !self.routes.is_empty() {
            actions.push(ActionConfig::Route {
                sinks: self.routes.clone(),
            });
        }
        if let Some(n) = &self.notify {
            actions.push(serde_json::from_value(
                serde_json::json!({"type": "notify", "notifier": n}),
            )?);
        }
        if self.drop {
            actions.push(ActionConfig::Drop {});
        }
        anyhow::ensure!(
            !actions.is_empty(),
            "give at least one action: --drop, --tag, --route, --redact or --notify"
        );
        let when = match tests.len() {
            0 => None,
            1 => tests.pop(),
            _ => Some(ConditionConfig {
                all: Some(tests),
                ..ConditionConfig::default()
            }),
        };
        Ok(RuleConfig {
            name: self.name.trim().replace(char::is_whitespace, "-"),
            description: None,
            enabled: true,
            when,
            actions,
        })
    }
}

/// Where the admin endpoint is and how to authenticate.
#[derive(Debug, Clone)]
pub struct AdminTarget {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub url: String,
    /// Bearer token, if any.
    pub token: Option<String>,
    /// How to trust an HTTPS admin endpoint.
    pub tls: AdminClientTls,
}

/// Trust for an HTTPS admin endpoint (`[admin.tls]`): the CA that signed its certificate
/// (default: the system's trusted CAs), and a client certificate when it asks for one.
#[derive(Debug, Clone, Default)]
pub struct AdminClientTls {
    /// `--ca`: CA certificate(s), PEM.
    pub ca: Option<PathBuf>,
    /// `--client-cert` and `--client-key`, PEM.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl AdminTarget {
    /// `--admin` if given, else the config's `[admin] listen` (a wildcard address is
    /// reached on loopback; `https://` when `[admin.tls]` is set), else
    /// `http://127.0.0.1:7401`.
    pub fn resolve(
        admin: Option<String>,
        cfg: Option<&AggregatorConfig>,
        token: Option<String>,
        tls: AdminClientTls,
    ) -> AdminTarget {
        let url = admin.unwrap_or_else(|| match cfg {
            Some(c) => {
                let mut a = c.admin.listen;
                if a.ip().is_unspecified() {
                    a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                let scheme = if c.admin.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{a}")
            }
            None => "http://127.0.0.1:7401".to_owned(),
        });
        AdminTarget {
            url: url.trim_end_matches('/').to_owned(),
            token,
            tls,
        }
    }

    /// The HTTP client for this target: trusting `--ca` (else the system's CAs) and
    /// presenting the client certificate, if given.
    fn client(&self) -> anyhow::Result<reqwest::Client> {
        let timeout = std::time::Duration::from_secs(30);
        if self.tls.ca.is_none() && self.tls.identity.is_none() {
            return crate::notify::http_client(timeout).map_err(anyhow::Error::msg);
        }
        let identity = self
            .tls
            .identity
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        let tls = logferry_shared::tls::client_config(self.tls.ca.as_deref(), identity)
            .context("the admin endpoint's TLS settings (--ca, --client-cert, --client-key)")?;
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .context("building the HTTP client")
    }
}

/// Runs a `rules` subcommand; the text to print on success.
pub fn run(
    cmd: RulesCommand,
    target: &AdminTarget,
    cfg: Option<&AggregatorConfig>,
) -> anyhow::Result<String> {
    match cmd {
        RulesCommand::Test {
            rule,
            input,
            source,
        } => test_rules(&rule, &input, &source, cfg),
        RulesCommand::List => call(target, reqwest::Method::GET, "/api/rules", None),
        RulesCommand::Add(args) => {
            let rule = args.rule()?;
            let path = match args.position {
                Some(p) => format!("/api/rules?position={p}"),
                None => "/api/rules".to_owned(),
            };
            call(
                target,
                reqwest::Method::POST,
                &path,
                Some(serde_json::to_value(&rule)?),
            )
        }
        RulesCommand::Delete { name } => call(
            target,
            reqwest::Method::DELETE,
            &format!("/api/rules/{name}"),
            None,
        ),
    }
}

/// One API call; the pretty-printed JSON answer, or an error with the API's message.
fn call(
    target: &AdminTarget,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = target.client()?;
        let url = format!("{}{path}", target.url);
        let mut req = client.request(method.clone(), &url);
        if let Some(t) = &target.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.with_context(|| {
            let hint = if url.starts_with("https:") && target.tls.ca.is_none() {
                " (for a certificate no system CA signed, pass --ca)"
            } else {
                ""
            };
            format!("{method} {url}: is the aggregator running?{hint}")
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let pretty = serde_json::from_str::<serde_json::Value>(&text)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(text);
        anyhow::ensure!(
            status.is_success(),
            "{method} {url} answered {status}: {pretty}"
        );
        Ok(pretty)
    })
}

/// Names of sinks and notifiers the rules mention, so they compile without a config.
fn names_in(rules: &[RuleConfig]) -> (Vec<String>, Vec<String>) {
    let (mut sinks, mut notifiers) = (Vec::new(), Vec::new());
    for r in rules {
        let v = serde_json::to_value(&r.actions).unwrap_or_default();
        for a in v.as_array().into_iter().flatten() {
            for s in a["sinks"].as_array().into_iter().flatten() {
                if let Some(s) = s.as_str() {
                    sinks.push(s.to_owned());
                }
            }
            if let Some(n) = a["notifier"].as_str() {
                notifiers.push(n.to_owned());
            }
        }
    }
    for v in [&mut sinks, &mut notifiers] {
        v.sort();
        v.dedup();
    }
    (sinks, notifiers)
}

/// Loads rules from a TOML file of `[[rules]]` or a JSON rule.
fn load_rules(path: &Path) -> anyhow::Result<Vec<RuleConfig>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let rule: RuleConfig = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a rule", path.display()))?;
        return Ok(vec![rule]);
    }
    rules_from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `rules test`: each input line parsed as the pipeline would, then run through the
/// rules; lines some rule matched are printed with the rules and the outcome.
pub fn test_rules(
    rule_file: &Path,
    input: &Path,
    source: &str,
    cfg: Option<&AggregatorConfig>,
) -> anyhow::Result<String> {
    use std::fmt::Write;
    let rules = load_rules(rule_file)?;
    let (sinks, notifiers) = match cfg {
        Some(c) => (
            c.sinks.keys().cloned().collect(),
            c.notifiers.keys().cloned().collect(),
        ),
        None => names_in(&rules),
    };
    let ctx = EngineContext {
        sinks: sinks.clone(),
        notifiers,
        clock: Arc::new(SystemClock),
        outbox: Arc::new(Outbox::new(100_000)),
    };
    let engine = Engine::build(&rules, &ctx, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let detector = match cfg {
        Some(c) => c.detector()?,
        None => Detector::new(crate::parse::Zone::Utc, &[], &[]).map_err(anyhow::Error::msg)?,
    };
    let text = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let mut plan = detector.plan(source);
    let mut out = String::new();
    let (mut total, mut matched, mut dropped) = (0usize, 0usize, 0usize);
    for (n, raw) in text.split(|b| *b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        total += 1;
        let line = String::from_utf8_lossy(raw);
        let d = detector.detect(&mut plan, &line);
        let before: Vec<u64> = engine.stats().iter().map(|s| s.matched).collect();
        let mut ev = RuleEvent::new(d.parsed, d.format, "", source, K8sRef::default());
        let verdict = engine.apply(&mut ev);
        let hits: Vec<String> = engine
            .stats()
            .into_iter()
            .zip(before)
            .filter(|(s, b)| s.matched > *b)
            .map(|(s, _)| s.name)
            .collect();
        if hits.is_empty() {
            continue;
        }
        matched += 1;
        let _ = write!(out, "line {}: [{}] {}", n + 1, hits.join(", "), d.format);
        if verdict == Verdict::Drop {
            dropped += 1;
            let _ = writeln!(out, " -> dropped");
            continue;
        }
        let _ = write!(out, " -> kept: {}", ev.parsed.message);
        if !ev.tags.is_empty() {
            let tags: Vec<&str> = ev.tags.iter().map(|t| t.as_ref()).collect();
            let _ = write!(out, " tags={tags:?}");
        }
        if let Some(r) = ev.route {
            let to: Vec<&str> = sinks
                .iter()
                .enumerate()
                .filter(|(i, _)| r.contains(*i))
                .map(|(_, s)| s.as_str())
                .collect();
            let _ = write!(out, " route={to:?}");
        }
        let _ = writeln!(out);
    }
    let notifications = ctx.outbox.drain().len();
    let _ = writeln!(
        out,
        "{matched} of {total} lines matched; {dropped} dropped; {notifications} notifications would be sent"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_url_follows_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("c.pem"), "x").unwrap();
        let text = format!(
            "data_dir = \"{d}/data\"\n[ingest]\ntokens = [\"t\"]\n[ingest.tls]\ncert = \"{d}/c.pem\"\nkey = \"{d}/c.pem\"\n\
             [sinks.o]\ntype = \"stdout\"\n[admin]\nlisten = \"0.0.0.0:9000\"\n"
        );
        let path = dir.path().join("a.toml");
        std::fs::write(&path, &text).unwrap();
        let plain = AggregatorConfig::load(&path).unwrap();
        let tls = AdminClientTls::default;
        let t = AdminTarget::resolve(None, Some(&plain), None, tls());
        assert_eq!(t.url, "http://127.0.0.1:9000");
        std::fs::write(
            &path,
            format!("{text}[admin.tls]\ncert = \"{d}/c.pem\"\nkey = \"{d}/c.pem\"\n"),
        )
        .unwrap();
        let https = AggregatorConfig::load(&path).unwrap();
        let t = AdminTarget::resolve(None, Some(&https), None, tls());
        assert_eq!(t.url, "https://127.0.0.1:9000");
        let t = AdminTarget::resolve(Some("https://a:1/".into()), Some(&https), None, tls());
        assert_eq!(t.url, "https://a:1");
        assert_eq!(
            AdminTarget::resolve(None, None, None, tls()).url,
            "http://127.0.0.1:7401"
        );
    }

    #[test]
    fn add_arguments_make_a_rule_that_compiles() {
        let args = AddArgs {
            name: "critical error".into(),
            level: Some("error".into()),
            contains: Some("db".into()),
            regex: None,
            fields: vec!["status=500".into()],
            drop: false,
            tags: vec!["page".into()],
            routes: vec![],
            redact: vec![],
            notify: Some("slack".into()),
            position: None,
        };
        let rule = args.rule().unwrap();
        assert_eq!(rule.name, "critical-error");
        assert_eq!(rule.when.as_ref().unwrap().all.as_ref().unwrap().len(), 3);
        let (sinks, notifiers) = names_in(std::slice::from_ref(&rule));
        assert!(sinks.is_empty());
        assert_eq!(notifiers, ["slack"]);
        let ctx = EngineContext {
            sinks,
            notifiers,
            clock: Arc::new(SystemClock),
            outbox: Arc::new(Outbox::new(10)),
        };
        Engine::build(&[rule], &ctx, None).unwrap();
        let none = AddArgs {
            notify: None,
            tags: vec![],
            ..args
        };
        assert!(none
            .rule()
            .unwrap_err()
            .to_string()
            .contains("at least one action"));
    }

    #[test]
    fn test_shows_matches_and_outcomes_offline() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("r.toml");
        std::fs::write(
            &rules,
            "[[rules]]\nname = \"errors\"\nwhen = { field = \"level\", gte = \"error\" }\nactions = [{ type = \"tag\", tags = [\"e\"] }, { type = \"route\", sinks = [\"cw\"] }]\n\n[[rules]]\nname = \"noise\"\nwhen = { field = \"message\", contains = \"noise\" }\nactions = [{ type = \"drop\" }]\n",
        )
        .unwrap();
        let input = dir.path().join("in.log");
        std::fs::write(
            &input,
            "{\"level\":\"error\",\"msg\":\"boom\"}\nplain line\nnoise here\n\n\u{ff}bad bytes noise\n",
        )
        .unwrap();
        let out = test_rules(&rules, &input, "/var/log/app.log", None).unwrap();
        assert!(
            out.contains("line 1: [errors] json -> kept: boom tags=[\"e\"] route=[\"cw\"]"),
            "{out}"
        );
        assert!(out.contains("line 3: [noise] plain -> dropped"), "{out}");
        assert!(out.contains("line 5: [noise]"), "{out}");
        assert!(!out.contains("line 2"), "{out}");
        assert!(out.contains("3 of 4 lines matched; 2 dropped"), "{out}");
        let json = dir.path().join("r.json");
        std::fs::write(&json, r#"{"name":"x","actions":[{"type":"explode"}]}"#).unwrap();
        let err = test_rules(&json, &input, "/x", None).unwrap_err();
        assert!(format!("{err:#}").contains("not a rule"), "{err:#}");
    }
}
