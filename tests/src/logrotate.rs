//! The real `logrotate` (Debian package `logrotate`) and `gzip`, for rotation tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `logrotate` binary, or `None` (after a loud message) when it is not installed and
/// the run is not CI. Under CI (`CI` set) a missing logrotate fails the test.
pub fn logrotate_or_skip(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("logrotate"))
        .find(|p| p.is_file());
    if found.is_none() {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        assert!(
            !ci,
            "{test}: logrotate is not installed (Debian package `logrotate`; .ci/run installs it)"
        );
        eprintln!(
            "\n!!!!!!!! {test} SKIPPED: logrotate is not installed. Install the Debian \
             package `logrotate` to run it (under CI this is a failure). !!!!!!!!\n"
        );
    }
    found
}

/// Runs `logrotate -s STATE -f CONF`, which rotates whether or not the file is due.
///
/// # Panics
///
/// When logrotate fails.
pub fn run_logrotate(bin: &Path, state: &Path, conf: &Path) {
    let out = Command::new(bin)
        .arg("-s")
        .arg(state)
        .arg("-f")
        .arg(conf)
        .output()
        .expect("run logrotate");
    assert!(
        out.status.success(),
        "logrotate failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `gzip -c INPUTS... > OUT` with the real gzip: one member per input, as `gzip -c a b`
/// writes them.
///
/// # Panics
///
/// When gzip fails or is missing (it is part of every Debian system; `.ci/run` installs
/// it where it is not).
pub fn gzip_files(inputs: &[&Path], out: &Path) {
    let file =
        std::fs::File::create(out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let status = Command::new("gzip")
        .arg("-c")
        .args(inputs)
        .stdout(file)
        .status()
        .expect("run gzip (Debian package `gzip`)");
    assert!(status.success(), "gzip -c failed: {status}");
}

/// The decompressed content of a gzip file, all members (for checking a scenario on disk).
///
/// # Panics
///
/// When the file cannot be read or decoded.
pub fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("gunzip {}: {e}", path.display()));
    out
}
