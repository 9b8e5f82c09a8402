//! The admin endpoint over HTTPS (`[admin.tls]`), with certificates made by rcgen for the
//! test: real rustls handshakes on 127.0.0.1. Clients trusting the test CA are served
//! (API, page, probes); one trusting another CA, and plain HTTP, are not. The `rules`
//! command talks to it with `--ca` (or `LOGFERRY_ADMIN_CA`), and fails without it, saying
//! what to pass. With `client_ca`, a client certificate is required, and the command
//! presents one with `--client-cert` and `--client-key`.

use logferry_e2e::http;
use logferry_e2e::process::CliOutput;
use logferry_e2e::{toml_path, Aggregator, AggregatorOptions, TestDir};

const ADMIN: &str = "tls-admin-token";

fn start(dir: &TestDir, mtls: bool) -> anyhow::Result<Aggregator> {
    let mut extra = format!(
        "\n[[admin.tokens]]\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n\n[admin.tls]\ncert = {}\nkey = {}\n",
        toml_path(&dir.cert("server.pem")),
        toml_path(&dir.cert("server-key.pem")),
    );
    if mtls {
        extra += &format!("client_ca = {}\n", toml_path(&dir.cert("ca.pem")));
    }
    Aggregator::start(dir, AggregatorOptions::default().extra(&extra))
}

fn https(agg: &Aggregator, path: &str) -> String {
    format!("https://{}{path}", agg.admin_addr)
}

fn rules_cli(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<CliOutput> {
    let mut all = vec!["rules"];
    all.extend_from_slice(args);
    logferry_e2e::aggregator::run_cli(&all, envs)
}

#[test]
fn the_admin_endpoint_speaks_https_and_the_rules_command_trusts_it() -> anyhow::Result<()> {
    let dir = TestDir::new()?;
    let agg = start(&dir, false)?;
    let trusting = http::client(&dir, false)?;

    for (path, want) in [
        ("/healthz", "\"ok\""),
        ("/metrics", "logferry_"),
        ("/", "<!doctype html>"),
    ] {
        let (status, body) = http::get(&trusting, &https(&agg, path))?;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body}");
    }
    let resp = trusting
        .get(https(&agg, "/api/rules"))
        .bearer_auth(ADMIN)
        .send()?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN picks h2");

    // A client trusting another CA fails the handshake; plain HTTP is not served.
    let other = TestDir::new()?;
    let stranger = http::client(&other, false)?;
    let err = stranger
        .get(https(&agg, "/healthz"))
        .send()
        .expect_err("a certificate from an unknown CA");
    // (Both CAs have the same name: rustls finds the signature is not this CA's.)
    assert!(format!("{err:?}").contains("InvalidCertificate"), "{err:?}");
    let plain = trusting
        .get(format!("http://{}/healthz", agg.admin_addr))
        .send();
    assert!(
        plain.as_ref().map_or(true, |r| r.status() != 200),
        "plain HTTP answered: {plain:?}"
    );

    // The rules command: with --ca it adds and lists; the env variable does the same.
    let url = https(&agg, "");
    let ca = dir.cert("ca.pem");
    let ca = ca.to_str().unwrap_or_default();
    let out = rules_cli(
        &[
            "--admin", &url, "--ca", ca, "--token", ADMIN, "add", "tls-rule", "--level", "error",
            "--tag", "tls",
        ],
        &[],
    )?;
    assert!(out.success(), "{out:?}");
    let out = rules_cli(
        &["--admin", &url, "list"],
        &[("LOGFERRY_ADMIN_CA", ca), ("LOGFERRY_ADMIN_TOKEN", ADMIN)],
    )?;
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("\"tls-rule\""), "{out:?}");
    // Without the CA the system's CAs do not know the certificate: refused, with a hint.
    let out = rules_cli(&["--admin", &url, "--token", ADMIN, "list"], &[])?;
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("--ca"), "{out:?}");
    let out = rules_cli(
        &["--admin", &url, "--ca", "/nonexistent/ca.pem", "list"],
        &[],
    )?;
    assert!(
        !out.success() && out.stderr.contains("/nonexistent/ca.pem"),
        "{out:?}"
    );
    Ok(())
}

#[test]
fn with_client_ca_the_admin_endpoint_wants_a_client_certificate() -> anyhow::Result<()> {
    let dir = TestDir::new()?;
    let agg = start(&dir, true)?;
    let with_cert = http::client(&dir, true)?;
    let (status, _) = http::get(&with_cert, &https(&agg, "/healthz"))?;
    assert_eq!(status, 200);
    let without = http::client(&dir, false)?;
    assert!(
        http::get(&without, &https(&agg, "/healthz")).is_err(),
        "served without a client certificate"
    );

    let url = https(&agg, "");
    let cert = |n: &str| dir.cert(n).to_string_lossy().into_owned();
    let (ca, client, key) = (cert("ca.pem"), cert("client.pem"), cert("client-key.pem"));
    let out = rules_cli(
        &["--admin", &url, "--ca", &ca, "--token", ADMIN, "list"],
        &[],
    )?;
    assert!(!out.success(), "{out:?}");
    let out = rules_cli(
        &[
            "--admin",
            &url,
            "--ca",
            &ca,
            "--client-cert",
            &client,
            "--client-key",
            &key,
            "--token",
            ADMIN,
            "list",
        ],
        &[],
    )?;
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("\"rules\""), "{out:?}");
    // One half of a client identity is refused by the command line itself.
    let out = rules_cli(
        &[
            "--admin",
            &url,
            "--ca",
            &ca,
            "--client-cert",
            &client,
            "list",
        ],
        &[],
    )?;
    assert!(
        !out.success() && out.stderr.contains("--client-key"),
        "{out:?}"
    );
    Ok(())
}
