//! The aggregator's syslog inputs with the clients people run: util-linux `logger` over
//! UDP and TCP (both framings, RFC 5424 and RFC 3164), and Debian's rsyslog forwarding
//! files (imfile → omfwd) over TCP with octet counting and over TLS (gtls driver, with a
//! client certificate). Every line written must be in the file sink exactly once, parsed
//! as syslog, with the input's source and the peer as host.
//!
//! The clients are required: a missing `logger`, `rsyslogd` or rsyslog module fails the
//! test with the package to install (`.ci/run` installs them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use logferry_e2e::lines::{padding, seed, Accounting, Ledger};
use logferry_e2e::process::ManagedProcess;
use logferry_e2e::{sink, toml_path, Aggregator, AggregatorOptions, TestDir};

/// How long every line may take to reach the sink.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The path of `name`, found on `PATH` or in the sbin directories; panics naming the
/// Debian package otherwise.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` not found: this test runs the real client; install it with \
         `apt-get install {package}` (.ci/run does)"
    );
}

/// Panics, naming the package, unless rsyslog has the loadable module `file` (e.g.
/// `lmnsd_gtls.so`).
fn rsyslog_module(file: &str, package: &str) {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu/rsyslog",
        "/usr/lib/aarch64-linux-gnu/rsyslog",
        "/usr/lib/rsyslog",
        "/usr/lib64/rsyslog",
    ];
    let found = dirs.iter().any(|d| Path::new(d).join(file).is_file())
        || std::fs::read_dir("/usr/lib")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("rsyslog").join(file).is_file());
    assert!(
        found,
        "rsyslog module {file} not found: install it with `apt-get install {package}` (.ci/run does)"
    );
}

/// `n` lines `line-<run>-<i> <padding>`, recorded in `ledger`.
fn make_lines(run: &str, n: usize, rng: &mut fastrand::Rng, ledger: &mut Ledger) -> String {
    let mut text = String::new();
    for i in 0..n {
        let len = rng.usize(10..120);
        let line = format!("line-{run}-{i} {}", padding(rng, len));
        ledger.record(&line);
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Waits until the sink holds exactly `n` events (failing at once if it holds more), then
/// checks them against `ledger` and returns them.
fn wait_exactly(agg: &Aggregator, n: usize, ledger: &Ledger, what: &str) -> Vec<serde_json::Value> {
    let start = Instant::now();
    let mut last = 0;
    let waited = logferry_e2e::wait_until(DELIVERY_TIMEOUT, &format!("{n} events"), || {
        last = sink::count_lines(&agg.sink_path).unwrap_or(0);
        last >= n
    });
    let events = agg.events().expect("reading the sink");
    let accounting = Accounting::of(&events, ledger);
    if let Err(e) = waited {
        panic!(
            "{what}: {e} (only {last} after {:?}): {accounting}\n(UDP datagrams the kernel dropped on this host so far: {})",
            start.elapsed(),
            udp_rcvbuf_errors()
        );
    }
    accounting.assert_exactly_once(what);
    events
}

/// `RcvbufErrors` from `/proc/net/snmp`: UDP datagrams dropped for a full socket buffer.
fn udp_rcvbuf_errors() -> String {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return "unknown".to_owned();
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.to_owned())
}

/// Checks how one event of run `run` looks.
fn check_event(events: &[serde_json::Value], run: &str, path: &str, appname: &str) {
    let prefix = format!("line-{run}-");
    let e = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no event of run {run}"));
    assert_eq!(e["format"], "syslog", "{e}");
    assert_eq!(e["source"]["type"], "syslog", "{e}");
    assert_eq!(e["source"]["path"], path, "{e}");
    assert_eq!(e["host"], "127.0.0.1", "{e}");
    assert_eq!(e["fields"]["appname"], appname, "{e}");
    assert!(e["fields"]["hostname"].is_string(), "{e}");
}

#[test]
fn logger_over_udp_and_tcp_delivers_every_line_once() {
    let logger = tool("logger", "bsdutils");
    let dir = TestDir::new().expect("test dir");
    let options = AggregatorOptions::default()
        .input(
            "udp",
            "type = \"syslog\"\nmode = \"udp\"\nlisten = \"127.0.0.1:0\"",
        )
        .input(
            "tcp",
            "type = \"syslog\"\nmode = \"tcp\"\nlisten = \"127.0.0.1:0\"",
        );
    let mut agg = Aggregator::start(&dir, options).expect("start the aggregator");
    let mut rng = fastrand::Rng::with_seed(seed("logger_over_udp_and_tcp"));
    let mut ledger = Ledger::new();
    // (run, input, logger flags, lines). UDP stays small: loopback datagrams are not
    // lost at this volume, but the test must not depend on socket buffer sizes.
    let runs: [(&str, &str, &[&str], usize); 4] = [
        ("udp5424", "udp", &["--udp", "--rfc5424"], 300),
        ("udp3164", "udp", &["--udp", "--rfc3164"], 300),
        (
            "tcp5424",
            "tcp",
            &["--tcp", "--octet-count", "--rfc5424"],
            5000,
        ),
        ("tcp3164", "tcp", &["--tcp", "--rfc3164"], 5000),
    ];
    let mut total = 0;
    for (run, input, flags, n) in runs {
        let text = make_lines(run, n, &mut rng, &mut ledger);
        total += n;
        run_logger(&logger, agg.input_addrs[input].port(), run, flags, &text);
        if input == "udp" {
            // One run at a time into the UDP socket, so its buffer never overflows.
            wait_exactly(&agg, total, &ledger, run);
        }
    }
    let events = wait_exactly(&agg, total, &ledger, "logger");
    check_event(&events, "udp5424", "syslog+udp://127.0.0.1/udp", "udp5424");
    check_event(&events, "udp3164", "syslog+udp://127.0.0.1/udp", "udp3164");
    check_event(&events, "tcp5424", "syslog+tcp://127.0.0.1/tcp", "tcp5424");
    check_event(&events, "tcp3164", "syslog+tcp://127.0.0.1/tcp", "tcp3164");
    agg.stop().expect("SIGTERM: exit 0");
    let after = agg.events().expect("reading the sink");
    Accounting::of(&after, &ledger).assert_exactly_once("logger, after shutdown");
}

#[test]
fn rsyslog_forwards_over_tcp_and_tls_every_line_once() {
    let rsyslogd = tool("rsyslogd", "rsyslog");
    rsyslog_module("imfile.so", "rsyslog");
    rsyslog_module("lmnsd_gtls.so", "rsyslog-gnutls");
    let dir = TestDir::new().expect("test dir");
    let tls = format!(
        "type = \"syslog\"\nmode = \"tls\"\nlisten = \"127.0.0.1:0\"\n[inputs.tls]\ncert = {}\nkey = {}\nclient_ca = {}",
        toml_path(&dir.cert("server.pem")),
        toml_path(&dir.cert("server-key.pem")),
        toml_path(&dir.cert("ca.pem")),
    );
    let options = AggregatorOptions::default()
        .input(
            "tcp",
            "type = \"syslog\"\nmode = \"tcp\"\nlisten = \"127.0.0.1:0\"",
        )
        .input("tls", &tls);
    let mut agg = Aggregator::start(&dir, options).expect("start the aggregator");

    let mut rng = fastrand::Rng::with_seed(seed("rsyslog_forwards"));
    let mut ledger = Ledger::new();
    let n = 20_000;
    let tcp_log = dir
        .write(
            "logs/tcp.log",
            &make_lines("rstcp", n, &mut rng, &mut ledger),
        )
        .expect("tcp.log");
    let tls_log = dir
        .write(
            "logs/tls.log",
            &make_lines("rstls", n, &mut rng, &mut ledger),
        )
        .expect("tls.log");
    let work = dir.join("rsyslog-work");
    std::fs::create_dir_all(&work).expect("rsyslog work dir");
    let q = |p: &Path| p.display().to_string();
    let conf = format!(
        r#"global(workDirectory="{work}"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imfile" mode="inotify")
input(type="imfile" file="{tcp_log}" tag="rstcp:" ruleset="to_tcp")
input(type="imfile" file="{tls_log}" tag="rstls:" ruleset="to_tls")
ruleset(name="to_tcp") {{
  action(type="omfwd" target="127.0.0.1" port="{tcp_port}" protocol="tcp"
         tcp_framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}}
ruleset(name="to_tls") {{
  action(type="omfwd" target="127.0.0.1" port="{tls_port}" protocol="tcp"
         streamDriver="gtls" streamDriverMode="1" streamDriverAuthMode="x509/name"
         streamDriverPermittedPeers="localhost")
}}
"#,
        work = q(&work),
        ca = q(&dir.cert("ca.pem")),
        cert = q(&dir.cert("client.pem")),
        key = q(&dir.cert("client-key.pem")),
        tcp_log = q(&tcp_log),
        tls_log = q(&tls_log),
        tcp_port = agg.input_addrs["tcp"].port(),
        tls_port = agg.input_addrs["tls"].port(),
    );
    let conf_path = dir.write("rsyslog.conf", &conf).expect("rsyslog.conf");
    let check = Command::new(&rsyslogd)
        .args(["-N1", "-f"])
        .arg(&conf_path)
        .output()
        .expect("running rsyslogd -N1");
    assert!(
        check.status.success(),
        "rsyslogd rejects the config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let args: Vec<std::ffi::OsString> = vec![
        "-n".into(),
        "-f".into(),
        conf_path.into(),
        "-i".into(),
        dir.join("rsyslogd.pid").into(),
    ];
    let mut rsyslog =
        ManagedProcess::spawn("rsyslogd", &rsyslogd, &args, &dir.join("rsyslogd.log"), &[])
            .expect("starting rsyslogd");

    let events = wait_exactly(&agg, 2 * n, &ledger, "rsyslog");
    check_event(&events, "rstcp", "syslog+tcp://127.0.0.1/tcp", "rstcp");
    check_event(&events, "rstls", "syslog+tls://127.0.0.1/tls", "rstls");
    let metrics = agg
        .metrics(&logferry_e2e::http::client(&dir, false).expect("http client"))
        .expect("metrics");
    assert!(
        metrics.contains("logferry_input_connections_total{input=\"tls\",result=\"accepted\"}"),
        "{metrics}"
    );
    rsyslog.stop().expect("rsyslogd stops on SIGTERM");
    agg.stop().expect("SIGTERM: exit 0");
    let after = agg.events().expect("reading the sink");
    Accounting::of(&after, &ledger).assert_exactly_once("rsyslog, after shutdown");
}

/// Sends `text` through `logger` to 127.0.0.1:`port`, tagged `tag`, with `flags`
/// (transport and format); fails the test if logger fails.
fn run_logger(logger: &Path, port: u16, tag: &str, flags: &[&str], text: &str) {
    let mut child = Command::new(logger)
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-t",
            tag,
        ])
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting logger");
    child
        .stdin
        .take()
        .expect("logger's stdin")
        .write_all(text.as_bytes())
        .expect("writing to logger");
    let out = child.wait_with_output().expect("waiting for logger");
    assert!(
        out.status.success(),
        "logger {flags:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `logger` over TCP with octet counting, RFC 5424.
fn logger_tcp(logger: &Path, port: u16, tag: &str, text: &str) {
    run_logger(
        logger,
        port,
        tag,
        &["--tcp", "--octet-count", "--rfc5424"],
        text,
    );
}

/// SIGHUP applies the config's inputs: an added input starts and its lines arrive, the
/// unchanged one keeps its listener, a removed one stops listening; every line once.
#[test]
fn sighup_adds_and_removes_inputs() {
    let logger = tool("logger", "bsdutils");
    let dir = TestDir::new().expect("test dir");
    let tcp = "type = \"syslog\"\nmode = \"tcp\"\nlisten = \"127.0.0.1:0\"";
    let options = AggregatorOptions::default().input("tcp", tcp);
    let mut agg = Aggregator::start(&dir, options.clone()).expect("start the aggregator");
    let mut rng = fastrand::Rng::with_seed(seed("sighup_adds_and_removes_inputs"));
    let mut ledger = Ledger::new();
    let tcp_port = agg.input_addrs["tcp"].port();
    logger_tcp(
        &logger,
        tcp_port,
        "before",
        &make_lines("before", 1000, &mut rng, &mut ledger),
    );
    wait_exactly(&agg, 1000, &ledger, "before the reload");

    // Add `tcp2`.
    let added = options.clone().input("tcp2", tcp);
    std::fs::write(&agg.config_path, added.config_text(&dir)).expect("writing the config");
    agg.process.signal(libc::SIGHUP).expect("SIGHUP");
    let addrs = agg
        .process
        .wait_listening(&["input.tcp2"], DELIVERY_TIMEOUT)
        .expect("tcp2 listens after the reload");
    let tcp2_port = addrs["input.tcp2"].port();
    logger_tcp(
        &logger,
        tcp2_port,
        "added",
        &make_lines("added", 1000, &mut rng, &mut ledger),
    );
    logger_tcp(
        &logger,
        tcp_port,
        "kept",
        &make_lines("kept", 1000, &mut rng, &mut ledger),
    );
    let events = wait_exactly(&agg, 3000, &ledger, "after adding tcp2");
    check_event(&events, "added", "syslog+tcp://127.0.0.1/tcp2", "added");
    check_event(&events, "kept", "syslog+tcp://127.0.0.1/tcp", "kept");

    // Remove `tcp`: it stops listening; tcp2 goes on.
    let removed = AggregatorOptions::default().input("tcp2", tcp);
    std::fs::write(&agg.config_path, removed.config_text(&dir)).expect("writing the config");
    agg.process.signal(libc::SIGHUP).expect("SIGHUP");
    logferry_e2e::wait_until(DELIVERY_TIMEOUT, "tcp stopped", || {
        agg.process
            .log_text()
            .contains("input removed from the config: stopped")
    })
    .expect("the removal in the log");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", tcp_port)).is_err(),
        "the removed input still listens"
    );
    logger_tcp(
        &logger,
        tcp2_port,
        "after",
        &make_lines("after", 1000, &mut rng, &mut ledger),
    );
    wait_exactly(&agg, 4000, &ledger, "after removing tcp");
    assert!(agg.is_running());
    agg.stop().expect("SIGTERM: exit 0");
    let after = agg.events().expect("reading the sink");
    Accounting::of(&after, &ledger).assert_exactly_once("after shutdown");
}
