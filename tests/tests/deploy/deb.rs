//! The deb packages: built by `packaging/deb/build.sh` from the debug binaries, clean
//! under lintian, units that `systemd-analyze verify` accepts inside the unpacked
//! packages, and (under CI) installed, run as their users and purged without a trace.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{
    ci, find_tool, lossy, output, repo, report, run_ok, scratch, shout, show, tools_or_skip, BINS,
};

/// Executables the units run that the base system provides, with the Debian package
/// the debs depend on for each.
const BASE_SYSTEM: [(&str, &str); 1] = [("/bin/kill", "procps")];

#[test]
fn deb_packages_lint_verify_install_and_purge() {
    let test = "deb_packages_lint_verify_install_and_purge";
    let Some([lintian, dpkg_deb, analyze, ..]) = tools_or_skip(
        test,
        [
            "lintian",
            "dpkg-deb",
            "systemd-analyze",
            "dpkg-shlibdeps",
            "dpkg-parsechangelog",
            "strip",
        ],
    ) else {
        return;
    };
    let scratch = scratch();
    let debs = build_debs(scratch.path());
    // The package version is the changelog's: the workspace's version, Debian revision 1.
    let changelog = std::fs::read_to_string(repo().join("packaging/deb/changelog")).unwrap();
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("workspace version")
        .trim_matches('"');
    assert!(
        changelog.starts_with(&format!("logferry ({version}-")),
        "packaging/deb/changelog's first entry must be for version {version}"
    );

    for (bin, deb) in BINS.iter().zip(&debs) {
        let short = bin.trim_start_matches("logferry-");
        let files = run_ok(Command::new(&dpkg_deb).arg("--contents").arg(deb));
        for path in [
            format!("./usr/bin/{bin}"),
            format!("./usr/lib/systemd/system/{bin}.service"),
            format!("./etc/logferry/{short}.toml"),
            format!("./usr/share/doc/{bin}/copyright"),
        ] {
            assert!(
                files.lines().any(|l| l.ends_with(&format!(" {path}"))),
                "{bin}: {path} missing from the deb:\n{files}"
            );
        }
        let conffiles = run_ok(
            Command::new(&dpkg_deb)
                .arg("--info")
                .arg(deb)
                .arg("conffiles"),
        );
        assert_eq!(conffiles.trim(), format!("/etc/logferry/{short}.toml"));
        let depends = run_ok(
            Command::new(&dpkg_deb)
                .arg("--field")
                .arg(deb)
                .arg("Depends"),
        );
        for (_, package) in BASE_SYSTEM {
            assert!(
                depends.contains(package),
                "{bin} must depend on {package}: {depends}"
            );
        }
        assert!(
            depends.contains("adduser"),
            "{bin}: postinst runs adduser: {depends}"
        );
        assert!(
            depends.starts_with("libc6 ("),
            "{bin}: the shared libraries it links (dpkg-shlibdeps): {depends}"
        );
    }

    let out = output(
        Command::new(&lintian)
            .args(["--fail-on", "error,warning"])
            .args(&debs),
    );
    assert!(
        out.status.success(),
        "lintian --fail-on error,warning:\n{}",
        show(&out)
    );
    report("lintian --fail-on error,warning: both debs clean");

    // `verify` resolves units and executables inside the root: the unpacked debs, the
    // host's units (targets, sockets) and the executables the base system provides.
    let root = scratch.path().join("root");
    for deb in &debs {
        run_ok(Command::new(&dpkg_deb).arg("-x").arg(deb).arg(&root));
    }
    copy_missing_units(
        Path::new("/usr/lib/systemd/system"),
        &root.join("usr/lib/systemd/system"),
    );
    for (exe, _) in BASE_SYSTEM {
        let at = root.join(exe.trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::copy(exe, &at).unwrap_or_else(|e| panic!("copy {exe}: {e}"));
    }
    let out = output(
        Command::new(&analyze)
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .args(BINS.map(|b| format!("/usr/lib/systemd/system/{b}.service"))),
    );
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify --root over the unpacked debs must print nothing:\n{}",
        show(&out)
    );
    report("systemd-analyze verify --root=<unpacked debs>: both units, no output");

    install_and_purge(test, &debs);
}

/// Copies the units of `from` that `to` lacks, links as links.
fn copy_missing_units(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if dst.symlink_metadata().is_ok() {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            std::fs::create_dir(&dst).unwrap();
            copy_missing_units(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), &dst).unwrap();
        }
    }
}

/// `packaging/deb/build.sh` for both binaries, from the debug build (it strips them), with
/// a fast payload compression.
fn build_debs(scratch: &Path) -> Vec<PathBuf> {
    BINS.iter()
        .map(|bin| {
            let out = run_ok(
                Command::new("sh")
                    .arg(repo().join("packaging/deb/build.sh"))
                    .arg(bin)
                    .arg(logferry_e2e::binary(bin))
                    .arg(scratch)
                    .args(["-Zgzip", "-z1"]),
            );
            PathBuf::from(out.lines().last().expect("build.sh prints the .deb").trim())
        })
        .collect()
}

/// Under CI (or with `LOGFERRY_DEPLOY_INSTALL=1`), as root: `dpkg -i` both debs, run
/// `--version` and `validate` as each service user, `dpkg --purge`, and check that
/// nothing is left behind.
fn install_and_purge(test: &str, debs: &[PathBuf]) {
    let opted_in = std::env::var("LOGFERRY_DEPLOY_INSTALL").is_ok_and(|v| v == "1");
    if !(ci() || opted_in) {
        shout(&format!(
            "{test}: install step SKIPPED (it installs and purges the debs on this machine: \
             set LOGFERRY_DEPLOY_INSTALL=1 to run it; CI runs it)"
        ));
        return;
    }
    // SAFETY: geteuid only reads the process's effective user id.
    assert_eq!(unsafe { libc::geteuid() }, 0, "{test}: dpkg -i needs root");
    let installed = |bin: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f", "${db:Status-Status}", bin])
            .output()
            .is_ok_and(|o| o.stdout == b"installed")
    };
    if BINS.iter().any(|b| installed(b)) {
        assert!(
            ci(),
            "{test}: a Logferry package is installed already; not touching it"
        );
        run_ok(Command::new("dpkg").arg("--purge").args(BINS));
    }
    let purge = Purge;
    run_ok(Command::new("dpkg").arg("-i").args(debs));
    // The files (not the shared directories) dpkg installed, which purge must remove.
    let shipped: Vec<PathBuf> = run_ok(Command::new("dpkg-query").arg("-L").args(BINS))
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.symlink_metadata().is_ok_and(|m| !m.is_dir()))
        .collect();
    assert!(
        shipped.len() >= 2 * 4,
        "dpkg-query -L lists too few files: {shipped:?}"
    );
    let runuser = find_tool("runuser").expect("runuser (util-linux)");
    for bin in BINS {
        let short = bin.trim_start_matches("logferry-");
        let version = run_ok(Command::new(format!("/usr/bin/{bin}")).arg("--version"));
        assert!(version.starts_with(bin), "{bin} --version: {version}");
        let valid = run_ok(
            Command::new(&runuser)
                .args(["-u", bin, "--"])
                .arg(format!("/usr/bin/{bin}"))
                .args(["validate", "--config"])
                .arg(format!("/etc/logferry/{short}.toml")),
        );
        assert!(
            valid.contains("config is valid"),
            "{bin} validate as {bin}: {valid}"
        );
        // `validate` checks that files exist; the service also has to read them.
        let secrets: &[&str] = match bin {
            "logferry-aggregator" => &AGGREGATOR_FILES,
            _ => &[],
        };
        run_ok(
            Command::new(&runuser)
                .args([
                    "-u",
                    bin,
                    "--",
                    "cat",
                    &format!("/etc/logferry/{short}.toml"),
                ])
                .args(secrets)
                .stdout(Stdio::null()),
        );
        let uid: u32 = run_ok(Command::new("id").args(["-u", bin]))
            .trim()
            .parse()
            .unwrap();
        let data_dir = format!("/var/lib/logferry/{short}");
        let data = std::fs::metadata(&data_dir).unwrap();
        assert_eq!(data.uid(), uid, "{data_dir} belongs to {bin}");
        assert_eq!(data.mode() & 0o777, 0o750, "{data_dir}: mode");
    }
    // Both services start as their users with the packaged configs (the agent with the
    // capability its unit grants), answer /healthz and stop cleanly on SIGTERM.
    let setpriv = find_tool("setpriv").expect("setpriv (util-linux)");
    smoke_run(&setpriv, "logferry-aggregator", 7401, None);
    smoke_run(&setpriv, "logferry-agent", 7402, Some("dac_read_search"));
    drop(purge);
    // Every file the debs shipped, and what the maintainer scripts made.
    let mut gone = shipped.clone();
    gone.extend(
        [
            "/etc/logferry",
            "/var/lib/logferry",
            "/var/lib/logferry/agent",
            "/var/lib/logferry/aggregator",
        ]
        .map(PathBuf::from),
    );
    for path in &gone {
        assert!(
            path.symlink_metadata().is_err(),
            "{} is left after dpkg --purge",
            path.display()
        );
    }
    // deb-systemd-helper's records of the units (postinst `update-state`).
    for dir in [
        "/var/lib/systemd/deb-systemd-helper-enabled",
        "/etc/systemd/system",
    ] {
        if !Path::new(dir).is_dir() {
            continue;
        }
        let left = run_ok(Command::new("find").args([dir, "-name", "logferry-*"]));
        assert!(left.is_empty(), "left after dpkg --purge:\n{left}");
    }
    for bin in BINS {
        for db in ["passwd", "group"] {
            let left = Command::new("getent").args([db, bin]).output().unwrap();
            assert!(
                !left.status.success(),
                "{db} entry {bin} is left after dpkg --purge"
            );
        }
    }
}

/// Files the packaged aggregator config names, which postinst makes for its user.
const AGGREGATOR_FILES: [&str; 3] = [
    "/etc/logferry/agent-token",
    "/etc/logferry/tls/server.pem",
    "/etc/logferry/tls/server-key.pem",
];

/// Runs the installed `bin` as its system user with its packaged config until its admin
/// endpoint answers `/healthz`, then stops it with SIGTERM, which must end it with 0.
fn smoke_run(setpriv: &Path, bin: &str, admin: u16, capability: Option<&str>) {
    let short = bin.trim_start_matches("logferry-");
    let mut cmd = Command::new(setpriv);
    cmd.arg(format!("--reuid={bin}"))
        .arg(format!("--regid={bin}"))
        .arg("--init-groups");
    if let Some(cap) = capability {
        cmd.arg(format!("--inh-caps=+{cap}"))
            .arg(format!("--ambient-caps=+{cap}"));
    }
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .arg(format!("/usr/bin/{bin}"))
        .arg("--config")
        .arg(format!("/etc/logferry/{short}.toml"))
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let healthy = logferry_e2e::wait_until(Duration::from_secs(30), "/healthz", || {
        http_status(admin, "/healthz") == Some(200)
    });
    // SAFETY: kill only sends a signal to the child we started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = (0..300)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            child.try_wait().unwrap()
        })
        .unwrap_or_else(|| {
            let _ = child.kill();
            child.wait().unwrap()
        });
    let log = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(
        healthy.is_ok(),
        "{bin} as {bin}: no /healthz on {admin}:\n{log}"
    );
    assert!(
        status.success(),
        "{bin} as {bin}: SIGTERM ended it with {status}:\n{log}"
    );
    report(&format!(
        "installed {bin}: ran as {bin}, /healthz 200 on {admin}, SIGTERM -> exit 0"
    ));
}

/// The status of a plain `GET path` on 127.0.0.1:`port`, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Read as _;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Purges both packages when dropped, also when a check failed half-way; a purge that
/// fails or warns fails the test (unless it is already failing).
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let Ok(out) = Command::new("dpkg").arg("--purge").args(BINS).output() else {
            return;
        };
        let all = format!("{}{}", lossy(&out.stdout), lossy(&out.stderr));
        if !std::thread::panicking() {
            assert!(
                out.status.success() && !all.contains("warning"),
                "dpkg --purge:\n{}",
                show(&out)
            );
        }
    }
}
