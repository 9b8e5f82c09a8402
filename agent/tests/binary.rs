//! The built `logferry-agent` binary answers `--version` and refuses a bad config with the
//! key at fault. (Full end-to-end tests live in the workspace's `tests/` package; having
//! this integration test also makes `cargo test --workspace` build the binary they drive.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_logferry-agent");

#[test]
fn version_names_the_binary() {
    let out = Command::new(BIN)
        .arg("--version")
        .output()
        .expect("run the agent");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("logferry-agent "), "{text}");
}

#[test]
fn validate_names_the_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"/tmp/x\"\n[[inputs]]\ninclude = [\"/tmp/*.log\"]\n[output]\nurl = \"https://a:1\"\nbatch_max_bytes = 12\n",
    )
    .expect("write config");
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .expect("run the agent");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("output.batch_max_bytes"), "{err}");
}
