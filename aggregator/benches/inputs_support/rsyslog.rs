//! rsyslog as the input benchmark's reference: Debian's `rsyslogd`, started unprivileged
//! in the foreground (`-n -f CONF -i PIDFILE`, its own work directory), with `imtcp` on a
//! free port of 127.0.0.1 and nothing else loaded (no imuxsock, no imklog), writing every
//! message as one JSON line (timestamp, host, app, PID, severity, facility, message: the
//! parsed syslog header, as the aggregator's events carry it) to a file with `omfile`.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use logferry_e2e::process::ManagedProcess;

/// Where Debian installs it.
pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// A running rsyslogd; stopped (SIGTERM, then killed) when dropped.
pub struct Rsyslog {
    pub process: ManagedProcess,
    /// Its imtcp listener.
    pub addr: SocketAddr,
    /// The file it writes the messages to.
    pub out: PathBuf,
}

/// `rsyslogd`'s path, if it is installed (on `PATH` or in /usr/sbin).
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("rsyslogd"))
        .chain([PathBuf::from(RSYSLOGD)])
        .find(|p| p.is_file())
}

/// A port of 127.0.0.1 free a moment ago (rsyslog 8.2302's imtcp cannot report a port it
/// chose itself).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("address").port()
}

impl Rsyslog {
    /// Writes the config into `dir`, checks it (`rsyslogd -N1`), starts rsyslogd and waits
    /// until imtcp accepts connections.
    pub fn start(rsyslogd: &Path, dir: &Path) -> Rsyslog {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).expect("rsyslog work dir");
        let out = dir.join("rsyslog-out.jsonl");
        let port = free_port();
        let q = |p: &Path| p.display().to_string();
        let conf = format!(
            r#"global(workDirectory="{work}")
module(load="imtcp")
template(name="bench_json" type="list" option.jsonf="on") {{
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="pid" name="procid" format="jsonf")
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="facility" name="syslogfacility-text" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
}}
ruleset(name="bench") {{
  action(type="omfile" file="{out}" template="bench_json")
}}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="bench")
action(type="omfile" file="{internal}")
"#,
            work = q(&work),
            out = q(&out),
            internal = q(&dir.join("rsyslog-internal.log")),
        );
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("writing rsyslog.conf");
        let check = Command::new(rsyslogd)
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
        let args: Vec<OsString> = vec![
            "-n".into(),
            "-f".into(),
            conf_path.into(),
            "-i".into(),
            dir.join("rsyslogd.pid").into(),
        ];
        let process =
            ManagedProcess::spawn("rsyslogd", rsyslogd, &args, &dir.join("rsyslogd.log"), &[])
                .expect("starting rsyslogd");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on {addr}: {}",
                process.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Rsyslog { process, addr, out }
    }
}
