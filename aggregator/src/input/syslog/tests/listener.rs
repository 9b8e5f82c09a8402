//! The syslog listeners end to end on 127.0.0.1 with a real inbox (and no pipeline: the
//! tests read the admitted frames back, and complete them to play the pipeline).

use std::sync::Arc;
use std::time::Duration;

use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{
    self, DecodeLimits, FLAG_INVALID_UTF8, FLAG_NO_NEWLINE, FLAG_TRUNCATED,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::inbox::Inbox;
use crate::input::syslog::{self, SyslogInputConfig};
use crate::input::{InputContext, Started};
use crate::metrics::Metrics;
use crate::pipeline::Wake;

const DEADLINE: Duration = Duration::from_secs(10);

/// One admitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    line: Vec<u8>,
    flags: u8,
    path: String,
    host: String,
}

struct Harness {
    _dir: tempfile::TempDir,
    inbox: Arc<Inbox>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    started: Option<Started>,
}

impl Harness {
    /// Starts an input configured by `toml` (without `listen`) on 127.0.0.1.
    async fn start(toml: &str, inbox_max: u64) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let cfg: SyslogInputConfig =
            toml::from_str(&format!("listen = \"127.0.0.1:0\"\n{toml}")).unwrap();
        cfg.validate("inputs[0]", 16 << 20).unwrap();
        let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), inbox_max).unwrap());
        let metrics = Arc::new(Metrics::new());
        let shutdown = Shutdown::new();
        let ctx = InputContext {
            inbox: inbox.clone(),
            wake: Arc::new(Wake::default()),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            limits: Default::default(),
        };
        let started = syslog::start(&cfg, &ctx).await.unwrap();
        Harness {
            _dir: dir,
            inbox,
            metrics,
            shutdown,
            started: Some(started),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.started.as_ref().unwrap().addr
    }

    /// Every message admitted so far, in order.
    fn records(&self) -> Vec<Rec> {
        let mut out = Vec::new();
        for (_, frame) in self.inbox.read_after(None, 100_000).unwrap() {
            let f = wire::decode_frame(&frame, &DecodeLimits::default()).unwrap();
            let b = f.batch().unwrap();
            for r in &b.records {
                let src = &b.sources[r.source as usize];
                let host = src.attrs.iter().find(|(k, _)| *k == "host").unwrap().1;
                out.push(Rec {
                    line: r.line.to_vec(),
                    flags: r.flags,
                    path: src.path.to_owned(),
                    host: host.to_owned(),
                });
            }
        }
        out
    }

    /// Polls until `n` messages are admitted; fails after [`DEADLINE`].
    async fn wait_records(&self, n: usize) -> Vec<Rec> {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            let recs = self.records();
            if recs.len() >= n {
                return recs;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "only {} of {n} messages admitted",
                recs.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the metrics text holds `series value`.
    async fn wait_metric(&self, series: &str, value: u64) {
        let until = tokio::time::Instant::now() + DEADLINE;
        let want = format!("{series} {value}\n");
        loop {
            let text = self.metrics.encode();
            if text.contains(&want) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "metric {want:?} not reached:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Triggers shutdown and waits for the listener and the feed to finish.
    async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(s) = self.started.take() {
            for t in s.tasks {
                tokio::time::timeout(DEADLINE, t).await.unwrap().unwrap();
            }
        }
    }
}

fn lines(recs: &[Rec]) -> Vec<String> {
    recs.iter()
        .map(|r| String::from_utf8_lossy(&r.line).into_owned())
        .collect()
}

#[tokio::test]
async fn tcp_messages_in_both_framings_arrive_in_order_with_their_peer() {
    let mut h = Harness::start(
        "mode = \"tcp\"\nname = \"edge\"\nbatch_wait = \"20ms\"",
        1 << 20,
    )
    .await;
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    let mut sent = Vec::new();
    let mut stream = Vec::new();
    for i in 0..500 {
        let m = format!("<13>1 2026-11-22T10:00:00Z host app - - - message {i}");
        if i % 2 == 0 {
            stream.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
        } else {
            stream.extend_from_slice(m.as_bytes());
            stream.push(b'\n');
        }
        sent.push(m);
    }
    // Written in odd pieces so frames straddle reads.
    for piece in stream.chunks(777) {
        c.write_all(piece).await.unwrap();
    }
    let recs = h.wait_records(500).await;
    assert_eq!(lines(&recs), sent);
    assert!(recs.iter().all(|r| r.flags == 0));
    assert_eq!(recs[0].path, "syslog+tcp://127.0.0.1/edge");
    assert_eq!(recs[0].host, "127.0.0.1");
    drop(c);
    h.wait_metric(
        "logferry_input_closed_connections_total{input=\"edge\",reason=\"eof\"}",
        1,
    )
    .await;
    h.stop().await;
    let text = h.metrics.encode();
    assert!(
        text.contains("logferry_input_messages_total{input=\"edge\"} 500\n"),
        "{text}"
    );
    assert!(
        text.contains("logferry_input_open_connections{input=\"edge\"} 0\n"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_admits_what_was_read_including_an_unfinished_message() {
    let mut h = Harness::start("mode = \"tcp\"\nbatch_wait = \"60s\"", 1 << 20).await;
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    c.write_all(b"<13>a\n<13>b\n<13>unfinished").await.unwrap();
    h.wait_metric("logferry_input_bytes_total{input=\"syslog_tcp\"}", 26)
        .await;
    // Nothing is admitted yet: the batch waits for batch_wait (60 s) or shutdown.
    assert!(h.records().is_empty());
    h.stop().await;
    let recs = h.records();
    assert_eq!(lines(&recs), ["<13>a", "<13>b", "<13>unfinished"]);
    assert_eq!(recs[2].flags, FLAG_NO_NEWLINE);
    // The server closed the connection.
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).await.unwrap_or(0), 0);
}

#[tokio::test]
async fn limits_truncate_flag_and_close() {
    let mut h = Harness::start(
        "mode = \"tcp\"\nmax_message_bytes = 480\npartial_timeout = \"300ms\"\nbatch_wait = \"10ms\"",
        1 << 20,
    )
    .await;
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    let long = format!("<13>{}\n", "x".repeat(2000));
    c.write_all(long.as_bytes()).await.unwrap();
    c.write_all(b"<13>bad \xff\xfe utf8\n").await.unwrap();
    c.write_all(b"99999999999 <13>garbage\n<13>never\n")
        .await
        .unwrap();
    let recs = h.wait_records(2).await;
    assert_eq!(recs[0].line.len(), 480);
    assert_eq!(recs[0].flags, FLAG_TRUNCATED);
    assert_eq!(recs[1].flags, FLAG_INVALID_UTF8);
    h.wait_metric(
        "logferry_input_closed_connections_total{input=\"syslog_tcp\",reason=\"bad_framing\"}",
        1,
    )
    .await;
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).await.unwrap_or(0), 0);

    // A client that leaves a message unfinished is closed after partial_timeout; what it
    // sent is kept.
    let mut slow = TcpStream::connect(h.addr()).await.unwrap();
    slow.write_all(b"<13>half a mess").await.unwrap();
    h.wait_metric(
        "logferry_input_closed_connections_total{input=\"syslog_tcp\",reason=\"slow_client\"}",
        1,
    )
    .await;
    let recs = h.wait_records(3).await;
    assert_eq!(recs[2].line, b"<13>half a mess");
    assert_eq!(recs[2].flags, FLAG_NO_NEWLINE);
    h.stop().await;
    let text = h.metrics.encode();
    for want in [
        "logferry_input_truncated_messages_total{input=\"syslog_tcp\"} 1\n",
        "logferry_input_invalid_utf8_messages_total{input=\"syslog_tcp\"} 1\n",
        "logferry_input_dropped_messages_total{input=\"syslog_tcp\",reason=\"bad_framing\"} 1\n",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    assert_eq!(h.records().len(), 3);
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_counted() {
    let mut h = Harness::start(
        "mode = \"tcp\"\nmax_connections = 1\nbatch_wait = \"10ms\"",
        1 << 20,
    )
    .await;
    let mut first = TcpStream::connect(h.addr()).await.unwrap();
    first.write_all(b"<13>first\n").await.unwrap();
    h.wait_records(1).await;
    let mut second = TcpStream::connect(h.addr()).await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(DEADLINE, second.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(n.unwrap_or(0), 0, "the second connection is closed");
    h.wait_metric(
        "logferry_input_connections_total{input=\"syslog_tcp\",result=\"refused\"}",
        1,
    )
    .await;
    // Once the first is gone, a new one is served.
    drop(first);
    h.wait_metric("logferry_input_open_connections{input=\"syslog_tcp\"}", 0)
        .await;
    let mut third = TcpStream::connect(h.addr()).await.unwrap();
    third.write_all(b"<13>third\n").await.unwrap();
    let recs = h.wait_records(2).await;
    assert_eq!(lines(&recs), ["<13>first", "<13>third"]);
    h.stop().await;
}

/// The value of a metric series in `text`, 0 if absent.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_full_inbox_pauses_reading_and_loses_nothing() {
    // A small inbox and no pipeline: a few batches fill it.
    let mut h = Harness::start(
        "mode = \"tcp\"\nbatch_max_bytes = 65536\nbatch_wait = \"10ms\"",
        32 << 10,
    )
    .await;
    let n = 150_000;
    let line = |i: usize| {
        format!(
            "<13>message number {i:06} of a longer line {}",
            i * 7919 % 10007
        )
    };
    let mut all = Vec::new();
    for i in 0..n {
        all.extend_from_slice(line(i).as_bytes());
        all.push(b'\n');
    }
    let total = all.len() as u64;
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    let writer = tokio::spawn(async move {
        c.write_all(&all).await.unwrap();
        c
    });
    // Reading stops: the bytes read settle well below what was sent.
    let bytes = "logferry_input_bytes_total{input=\"syslog_tcp\"}";
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut last = u64::MAX;
    loop {
        let now = metric(&h.metrics.encode(), bytes);
        if now == last && now > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "reading never paused");
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        last < total,
        "read {last} of {total} bytes with a full inbox"
    );
    // Play the pipeline: take what is admitted until everything is in.
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            tokio::time::Instant::now() < until,
            "only {} of {n}",
            got.len()
        );
        let frames = h.inbox.read_after(None, 16).unwrap();
        if frames.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let mut keys = Vec::new();
        for (k, frame) in &frames {
            let f = wire::decode_frame(frame, &DecodeLimits::default()).unwrap();
            for r in f.batch().unwrap().records {
                got.push(String::from_utf8(r.line.to_vec()).unwrap());
            }
            keys.push((*k, frame.len()));
        }
        h.inbox.complete(&keys, &[]).unwrap();
    }
    let want: Vec<String> = (0..n).map(line).collect();
    assert!(got == want, "messages differ from what was sent");
    drop(writer.await.unwrap());
    h.stop().await;
    assert!(!h.metrics.encode().contains("input_dropped_messages_total{"));
}

#[tokio::test]
async fn udp_datagrams_are_messages() {
    let mut h = Harness::start(
        "mode = \"udp\"\nmax_message_bytes = 500\nbatch_wait = \"10ms\"",
        1 << 20,
    )
    .await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"<13>Nov 22 10:00:00 host app: one\n", h.addr())
        .await
        .unwrap();
    sock.send_to(format!("<13>{}", "z".repeat(600)).as_bytes(), h.addr())
        .await
        .unwrap();
    sock.send_to(b"\n", h.addr()).await.unwrap();
    let recs = h.wait_records(2).await;
    assert_eq!(recs[0].line, b"<13>Nov 22 10:00:00 host app: one");
    assert_eq!(recs[0].path, "syslog+udp://127.0.0.1/syslog_udp");
    assert_eq!(recs[1].line.len(), 500);
    assert_eq!(recs[1].flags, FLAG_TRUNCATED);
    h.stop().await;
    assert_eq!(h.records().len(), 2);
}

#[tokio::test]
async fn udp_drops_are_counted_when_the_inbox_is_full() {
    let mut h = Harness::start(
        "mode = \"udp\"\nbatch_max_bytes = 1024\nbatch_wait = \"10ms\"",
        2048,
    )
    .await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let sent = 60u64;
    for _ in 0..sent {
        // Random text, so that compression cannot make room in the inbox.
        let line: String = (0..200).map(|_| rng.alphanumeric()).collect();
        sock.send_to(format!("<13>{line}").as_bytes(), h.addr())
            .await
            .unwrap();
    }
    h.wait_metric("logferry_input_messages_total{input=\"syslog_udp\"}", sent)
        .await;
    h.stop().await;
    let admitted = h.records().len() as u64;
    let text = h.metrics.encode();
    let dropped: u64 = text
        .lines()
        .filter(|l| l.starts_with("logferry_input_dropped_messages_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped > 0, "{text}");
    assert_eq!(admitted + dropped, sent, "{text}");
}

#[tokio::test]
async fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = logferry_shared::tls::DevCerts::generate(&["localhost".into()], "sender").unwrap();
    certs.write_to(dir.path()).unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let toml = format!(
        "mode = \"tls\"\nbatch_wait = \"10ms\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
        p("server.pem"),
        p("server-key.pem"),
        p("ca.pem")
    );
    let mut h = Harness::start(&toml, 1 << 20).await;
    let client = logferry_shared::tls::client_config(
        Some(&dir.path().join("ca.pem")),
        Some((
            &dir.path().join("client.pem"),
            &dir.path().join("client-key.pem"),
        )),
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = TcpStream::connect(h.addr()).await.unwrap();
    let mut tls = connector.connect(name.clone(), tcp).await.unwrap();
    tls.write_all(b"12 <13>secret 1<13>secret 2\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let recs = h.wait_records(2).await;
    assert_eq!(lines(&recs), ["<13>secret 1", "<13>secret 2"]);
    assert_eq!(recs[0].path, "syslog+tls://127.0.0.1/syslog_tls");
    tls.shutdown().await.unwrap();

    // Without a client certificate the handshake fails and is counted.
    let anonymous =
        logferry_shared::tls::client_config(Some(&dir.path().join("ca.pem")), None).unwrap();
    let tcp = TcpStream::connect(h.addr()).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(Arc::new(anonymous))
        .connect(name, tcp)
        .await;
    if let Ok(mut s) = refused {
        // TLS 1.3: the client learns of the refusal on its first read.
        let mut buf = [0u8; 1];
        assert!(matches!(s.read(&mut buf).await, Ok(0) | Err(_)));
    }
    h.wait_metric(
        "logferry_input_connections_total{input=\"syslog_tls\",result=\"handshake_failed\"}",
        1,
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn at_shutdown_a_full_inbox_costs_counted_drops_not_a_hang() {
    let mut h = Harness::start("mode = \"tcp\"\nbatch_wait = \"10ms\"", 1024).await;
    // Something that is never processed fills the inbox.
    h.inbox.admit("other", "s", 1, &[0u8; 2048]).unwrap();
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    c.write_all(b"<13>one\n<13>two\n<13>three\n").await.unwrap();
    h.wait_metric("logferry_input_messages_total{input=\"syslog_tcp\"}", 3)
        .await;
    let began = std::time::Instant::now();
    h.stop().await;
    assert!(began.elapsed() < crate::input::STOP_TIMEOUT);
    h.wait_metric(
        "logferry_input_dropped_messages_total{input=\"syslog_tcp\",reason=\"shutdown\"}",
        3,
    )
    .await;
    // Only the filler is in the inbox.
    assert_eq!(h.inbox.len(), 1);
}
