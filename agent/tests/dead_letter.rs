//! Dead-letter inspection: the `logferry-agent dead-letter` command on a stopped agent's
//! spool (and its refusal while the spool is held), and `GET /dead-letter` on the admin
//! endpoint.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use logferry_agent::admin::{router, AdminState};
use logferry_agent::config::WhenFull;
use logferry_agent::metrics::Metrics;
use logferry_agent::spool::Spool;
use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::wire::BatchBuilder;

const BIN: &str = env!("CARGO_BIN_EXE_logferry-agent");

fn frame(seq: u64, lines: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new("node-1", 1_795_341_600_000, 256);
    let src = b.add_source("/var/log/app.log", &[]);
    for l in lines {
        b.push(src, 1_795_341_600_000, 0, l.as_bytes());
    }
    let mut c = Compressor::new(Codec::Zstd, 1).expect("compressor");
    b.seal("agent-a", "default", seq, &mut c).expect("seal")
}

/// A spool in `data_dir` with batch 1 dead-lettered (400), batch 2 still queued.
fn spool_in(data_dir: &Path) -> Spool {
    let (s, _) =
        Spool::open(&data_dir.join("spool"), 1 << 20, WhenFull::Block).expect("open spool");
    s.commit(
        1,
        &frame(1, &["refused line one", "refused line two"]),
        &[],
        &|| false,
    )
    .expect("commit");
    s.commit(2, &frame(2, &["queued"]), &[], &|| false)
        .expect("commit");
    s.dead_letter(1, Some(400), "400 Bad Request: {\"error\":\"bad frame\"}")
        .expect("dead-letter");
    s
}

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    let text = format!(
        "data_dir = {:?}\n[[inputs]]\ninclude = [\"/tmp/none/*.log\"]\n[output]\nurl = \"https://127.0.0.1:1\"\n",
        dir.join("data")
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn dead_letter(cfg: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .arg("dead-letter")
        .args(args)
        .output()
        .expect("run the agent")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn list_show_and_purge_a_stopped_agents_dead_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let frame_len = frame(1, &["refused line one", "refused line two"]).len();
    drop(spool_in(&dir.path().join("data")));

    let out = dead_letter(&cfg, &["list"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let row: Vec<&str> = text
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..4],
        ["1", &frame_len.to_string(), "2", "400"],
        "{text}"
    );
    assert!(
        text.contains("400 Bad Request: {\"error\":\"bad frame\"}"),
        "{text}"
    );
    assert!(text.ends_with("1 dead-lettered batches\n"), "{text}");

    let out = dead_letter(&cfg, &["show", "1"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("/var/log/app.log [] refused line one"),
        "{text}"
    );
    assert!(text.contains("refused line two"), "{text}");

    let out = dead_letter(&cfg, &["show", "2"]);
    assert_eq!(out.status.code(), Some(1), "batch 2 is not dead-lettered");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dead-lettered batch has seq 2"));

    let out = dead_letter(&cfg, &["purge"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "purged 1 dead-lettered batches\n");
    assert_eq!(
        stdout(&dead_letter(&cfg, &["list"])),
        "no dead-lettered batches\n"
    );
    // The queued batch was left alone.
    let (s, _) =
        Spool::open(&dir.path().join("data/spool"), 1 << 20, WhenFull::Block).expect("reopen");
    assert_eq!(s.len(), 1);
}

#[test]
fn a_spool_in_use_or_missing_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let out = dead_letter(&cfg, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no spool"));
    assert!(!dir.path().join("data/spool").exists(), "nothing created");

    let held = spool_in(&dir.path().join("data"));
    for args in [&["list"][..], &["purge"]] {
        let out = dead_letter(&cfg, args);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use by a running agent"), "{err}");
    }
    assert_eq!(held.dead_letter_len(), 1, "purge refused: nothing deleted");
}

#[tokio::test]
async fn the_admin_endpoint_lists_dead_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(spool_in(dir.path()));
    let state = AdminState {
        metrics: Arc::new(Metrics::new()),
        spool,
        spool_max_bytes: 1 << 20,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).await;
    });
    let response = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).expect("connect");
        conn.write_all(b"GET /dead-letter HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut text = String::new();
        conn.read_to_string(&mut text).expect("response");
        text
    })
    .await
    .expect("client");
    server.abort();
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(v["count"], 1);
    let b = &v["batches"][0];
    assert_eq!(
        (b["seq"].clone(), b["records"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(b["status"], 400);
    assert_eq!(b["reason"], "400 Bad Request: {\"error\":\"bad frame\"}");
    assert!(b["dead_lettered_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(!body.contains("refused line"), "lines are not exposed");
}
