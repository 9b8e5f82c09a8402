//! The command lines of both binaries: `--version`, `--help`, `validate`, `certs`, and a
//! missing `--config`.

use logferry_e2e::process::CliOutput;
use logferry_e2e::{
    agent, aggregator, frames, http, AgentOptions, Aggregator, AggregatorOptions, TestDir, TOKEN,
};

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn assert_ok(out: &CliOutput, what: &str) {
    assert!(out.success(), "{what}: expected exit 0, got:\n{out}");
}

fn assert_fails_naming(out: &CliOutput, what: &str, needles: &[&str]) {
    assert!(
        !out.success() && out.code.is_some(),
        "{what}: expected a non-zero exit, got:\n{out}"
    );
    let text = out.all();
    for n in needles {
        assert!(
            text.contains(n),
            "{what}: expected {n:?} in the output:\n{out}"
        );
    }
}

#[test]
fn version_and_help_name_the_binary() {
    type Run = fn(&[&str], &[(&str, &str)]) -> anyhow::Result<CliOutput>;
    let bins: [(&str, Run); 2] = [
        ("logferry-aggregator", aggregator::run_cli),
        ("logferry-agent", agent::run_cli),
    ];
    for (name, run) in bins {
        let out = run(&["--version"], &[]).expect("run --version");
        assert_ok(&out, &format!("{name} --version"));
        assert!(out.stdout.contains(name), "{name} --version:\n{out}");
        assert!(
            out.stdout.contains(env!("CARGO_PKG_VERSION")),
            "{name} --version should print the workspace version:\n{out}"
        );

        let out = run(&["--help"], &[]).expect("run --help");
        assert_ok(&out, &format!("{name} --help"));
        assert!(out.stdout.contains(name), "{name} --help:\n{out}");
        assert!(
            out.stdout.contains("--config"),
            "{name} --help should document --config:\n{out}"
        );
        assert!(
            out.stdout.contains("validate"),
            "{name} --help should list `validate`:\n{out}"
        );
    }
}

#[test]
fn missing_config_is_a_clear_error() {
    let out = aggregator::run_cli(&["validate"], &[]).expect("run validate");
    assert_fails_naming(&out, "aggregator validate without --config", &["--config"]);
    let out = aggregator::run_cli(&["run"], &[]).expect("run run");
    assert_fails_naming(&out, "aggregator run without --config", &["--config"]);
    let out = agent::run_cli(&["validate"], &[]).expect("run validate");
    assert_fails_naming(&out, "agent validate without --config", &["--config"]);
    let out = agent::run_cli(&["run"], &[]).expect("run run");
    assert_fails_naming(&out, "agent run without --config", &["--config"]);

    let dir = TestDir::new().expect("test dir");
    let missing = dir.join("nope.toml");
    for (name, run) in [
        (
            "aggregator",
            aggregator::run_cli as fn(&[&str], &[(&str, &str)]) -> anyhow::Result<CliOutput>,
        ),
        ("agent", agent::run_cli),
    ] {
        let out = run(&["--config", path_str(&missing), "validate"], &[]).expect("run validate");
        assert_fails_naming(
            &out,
            &format!("{name} validate with a missing file"),
            &["nope.toml"],
        );
    }
}

#[test]
fn aggregator_validate_accepts_good_and_names_bad_keys() {
    let dir = TestDir::new().expect("test dir");
    let good = AggregatorOptions::default().config_text(&dir);
    let path = dir.write("good.toml", &good).expect("write config");
    let out =
        aggregator::run_cli(&["--config", path_str(&path), "validate"], &[]).expect("validate");
    assert_ok(&out, "validate of a good aggregator config");
    // The subcommand may come first too (`--config` is global).
    let out =
        aggregator::run_cli(&["validate", "--config", path_str(&path)], &[]).expect("validate");
    assert_ok(&out, "validate --config (flag after the subcommand)");
    // LOGFERRY_CONFIG stands in for --config.
    let out = aggregator::run_cli(&["validate"], &[("LOGFERRY_CONFIG", path_str(&path))])
        .expect("validate");
    assert_ok(&out, "validate with LOGFERRY_CONFIG");
    // Environment overrides go through the same checks as the file.
    let out = aggregator::run_cli(
        &["--config", path_str(&path), "validate"],
        &[("LOGFERRY_AGGREGATOR__INGEST__MAX_BODY_BYTES", "10")],
    )
    .expect("validate");
    assert_fails_naming(
        &out,
        "aggregator validate, overridden limit",
        &["ingest.max_body_bytes"],
    );
    let out = aggregator::run_cli(
        &["--config", path_str(&path), "validate"],
        &[("LOGFERRY_AGGREGATOR__INGEST__TOKENZ", "x")],
    )
    .expect("validate");
    assert_fails_naming(
        &out,
        "aggregator validate, misspelt override",
        &["tokenz", "unknown field"],
    );

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "misspelt key",
            good.replace("tokens = ", "tokenz = "),
            vec!["ingest", "tokenz", "unknown field"],
        ),
        (
            "unset variable",
            good.replace(&format!("\"{TOKEN}\""), "\"${LOGFERRY_E2E_SURELY_UNSET}\""),
            vec!["ingest.tokens", "LOGFERRY_E2E_SURELY_UNSET", "not set"],
        ),
        (
            "missing certificate file",
            good.replace("server.pem", "no-such-server.pem"),
            vec!["ingest.tls.cert", "no-such-server.pem"],
        ),
        (
            "bad listen address",
            good.replace(
                "listen = \"127.0.0.1:0\"\ntokens",
                "listen = \"not-an-address\"\ntokens",
            ),
            vec!["ingest.listen"],
        ),
        (
            "invalid TOML",
            good.replace("[ingest]", "[ingest"),
            vec!["bad.toml", "TOML"],
        ),
    ];
    for (what, text, needles) in cases {
        assert_ne!(text, good, "{what}: the replacement did not apply");
        let path = dir.write("bad.toml", &text).expect("write config");
        let out =
            aggregator::run_cli(&["--config", path_str(&path), "validate"], &[]).expect("validate");
        assert_fails_naming(&out, &format!("aggregator validate, {what}"), &needles);
    }
}

#[test]
fn agent_validate_accepts_good_and_names_bad_keys() {
    let dir = TestDir::new().expect("test dir");
    let include = vec![format!("{}/logs/*.log", dir.path().display())];
    let good = AgentOptions::new("https://127.0.0.1:7400", &include).config_text(&dir);
    let path = dir.write("good.toml", &good).expect("write config");
    let out = agent::run_cli(&["--config", path_str(&path), "validate"], &[]).expect("validate");
    assert_ok(&out, "validate of a good agent config");

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "misspelt key",
            good.replace("url = ", "urll = "),
            vec!["output.urll", "unknown field"],
        ),
        (
            "unset variable",
            good.replace(&format!("\"{TOKEN}\""), "\"${LOGFERRY_E2E_SURELY_UNSET}\""),
            vec!["output.token", "LOGFERRY_E2E_SURELY_UNSET", "not set"],
        ),
        (
            "missing CA file",
            good.replace("ca.pem", "no-such-ca.pem"),
            vec!["output.tls.ca", "no-such-ca.pem"],
        ),
        (
            "bad duration",
            good.replace("batch_timeout = \"100ms\"", "batch_timeout = \"soon\""),
            vec!["output.batch_timeout"],
        ),
        (
            "bad URL scheme",
            good.replace("https://127.0.0.1:7400", "ftp://127.0.0.1:7400"),
            vec!["output.url"],
        ),
    ];
    for (what, text, needles) in cases {
        assert_ne!(text, good, "{what}: the replacement did not apply");
        let path = dir.write("bad.toml", &text).expect("write config");
        let out =
            agent::run_cli(&["--config", path_str(&path), "validate"], &[]).expect("validate");
        assert_fails_naming(&out, &format!("agent validate, {what}"), &needles);
    }
}

#[test]
fn certs_command_writes_certificates_the_aggregator_can_serve() {
    let dir = TestDir::new().expect("test dir");
    let out_dir = dir.join("made-certs");
    let out = aggregator::run_cli(&["certs", "--out", path_str(&out_dir)], &[]).expect("certs");
    assert_ok(&out, "aggregator certs --out");
    for name in logferry_shared::tls::DEV_CERT_FILES {
        let p = out_dir.join(name);
        let text =
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}\n{out}", p.display()));
        assert!(text.contains("-----BEGIN"), "{} is not PEM", p.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["server-key.pem", "client-key.pem"] {
            let mode = std::fs::metadata(out_dir.join(key))
                .expect("key metadata")
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "{key} must not be readable by others (mode {mode:o})"
            );
        }
    }

    // Point a config at the generated files (instead of the harness's own certificates).
    let opts = AggregatorOptions::default().mtls();
    let text = opts
        .config_text(&dir)
        .replace(
            path_str(&dir.cert("ca.pem")),
            path_str(&out_dir.join("ca.pem")),
        )
        .replace(
            path_str(&dir.cert("server.pem")),
            path_str(&out_dir.join("server.pem")),
        )
        .replace(
            path_str(&dir.cert("server-key.pem")),
            path_str(&out_dir.join("server-key.pem")),
        );
    let config = dir.write("made-certs.toml", &text).expect("write config");
    let mut agg = Aggregator::start_with_config(&dir, opts, config)
        .expect("aggregator starts with the generated certs");

    // A client trusting the generated CA and presenting the generated client cert gets in.
    let client = http::client_with(
        &out_dir.join("ca.pem"),
        Some((&out_dir.join("client.pem"), &out_dir.join("client-key.pem"))),
    )
    .expect("client");
    let frame = frames::batch(
        "certs-agent",
        "default",
        1,
        "h",
        "/var/log/x.log",
        &["via generated certs"],
    )
    .expect("frame");
    let answer = http::post(
        &client,
        &agg.batch_url(),
        Some(TOKEN),
        frame,
        http::BodyMode::Sized,
    )
    .expect("POST");
    assert_eq!(answer.status, 200, "{answer}");
    assert_eq!(answer.field("status"), Some("accepted"), "{answer}");
    // The harness's CA did not sign this server certificate: a client trusting only it
    // must refuse the connection.
    let stranger = http::client(&dir, true).expect("client");
    assert!(
        http::get(&stranger, &format!("{}/v1/batch", agg.ingest_url())).is_err(),
        "a client trusting another CA accepted the server certificate"
    );
    agg.stop().expect("aggregator stops with exit 0");
}
