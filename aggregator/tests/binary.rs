//! The built `logferry-aggregator` binary answers `--version`, makes certificates, and
//! refuses a bad config with the key at fault. (End-to-end tests live in the workspace's
//! `tests/` package; this integration test also makes `cargo test --workspace` build the
//! binary they drive.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_logferry-aggregator");

#[test]
fn version_names_the_binary() {
    let out = Command::new(BIN)
        .arg("--version")
        .output()
        .expect("run the aggregator");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("logferry-aggregator "));
}

#[test]
fn certs_then_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let out = Command::new(BIN)
        .args(["certs", "--out"])
        .arg(&certs)
        .output()
        .expect("run the aggregator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = certs.display();
    let good = format!(
        "data_dir = \"{0}/data\"\n[ingest]\ntokens = [\"t\"]\n[ingest.tls]\ncert = \"{d}/server.pem\"\nkey = \"{d}/server-key.pem\"\n[sinks.out]\ntype = \"stdout\"\n",
        dir.path().display()
    );
    let cfg = dir.path().join("agg.toml");
    std::fs::write(&cfg, &good).expect("write config");
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(&cfg, good.replace("type = \"stdout\"", "type = \"stdot\""))
        .expect("write config");
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sinks.out") && err.contains("stdot"), "{err}");
}
