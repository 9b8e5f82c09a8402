//! README's quick start, run as users run it (`examples/quickstart.sh --check`), with the
//! binaries this test build made and free ports: every sample line must arrive once and
//! the admin endpoint must answer.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

#[test]
fn quickstart_check_passes() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/quickstart-xxxx -> target/debug
    let bin_dir = std::env::var_os("LOGFERRY_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            exe.parent()
                .and_then(|p| p.parent())
                .expect("target dir")
                .to_owned()
        });
    assert!(
        bin_dir.join("logferry-agent").exists() && bin_dir.join("logferry-aggregator").exists(),
        "binaries not found in {}: run `cargo build --bins` first",
        bin_dir.display()
    );
    let work = tempfile::tempdir().expect("tempdir");
    let out = Command::new("bash")
        .arg(repo.join("examples/quickstart.sh"))
        .arg("--check")
        .env("QS_DIR", work.path().join("qs"))
        .env("QS_BIN_DIR", &bin_dir)
        .env("QS_INGEST_PORT", free_port().to_string())
        .env("QS_ADMIN_PORT", free_port().to_string())
        .env("QS_AGENT_ADMIN_PORT", free_port().to_string())
        .output()
        .expect("run examples/quickstart.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quickstart failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("OK: every sample line arrived once"),
        "{stdout}"
    );
    let events = std::fs::read_to_string(work.path().join("qs/events.jsonl")).expect("sink file");
    let samples: usize = std::fs::read_dir(repo.join("examples/logs"))
        .expect("examples/logs")
        .map(|e| {
            let p = e.expect("dir entry").path();
            std::fs::read_to_string(p).expect("sample").lines().count()
        })
        .sum();
    assert_eq!(events.lines().count(), samples);
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("sink lines are JSON");
        assert_eq!(v["host"], "quickstart-node");
        assert!(v["source"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(".log")));
    }
}
