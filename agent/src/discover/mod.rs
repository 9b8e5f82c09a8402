//! Finding the files to tail: each input's include globs (`*`, `?`, `[..]`, `**`) are
//! expanded by a periodic scan, minus its exclude globs; paths are followed through
//! symlinks (as `/var/log/containers/*.log` point into `/var/log/pods`).
//!
//! Low latency comes from inotify ([`watch`]): the directory each include glob starts
//! from is watched (with every directory below it when the glob has more than one level
//! below it), and any create, remove or rename there asks for a scan at once. Writes are
//! not watched: open files are read by the tailer's poll. The periodic scan stays as the
//! fallback for file systems without inotify (NFS), directories that do not exist yet,
//! and exhausted inotify watches.

mod watch;

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::config::{AgentConfig, InputCompression, ReadFrom};

/// Wake-ups for the tailer thread: the inotify watcher asks for a scan. Setting an
/// already set request costs one atomic swap, so a busy directory costs little.
#[derive(Debug, Default)]
pub struct Wake {
    scan: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Wake {
    /// Asks for a scan and wakes the waiter.
    pub fn request_scan(&self) {
        if !self.scan.swap(true, Ordering::AcqRel) {
            let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.cv.notify_all();
        }
    }

    /// Waits up to `timeout` for a scan request; returns (and clears) whether one came.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.scan.swap(false, Ordering::AcqRel) {
            return true;
        }
        let g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // Checked again under the lock, so a request between the swap and the wait is
        // not missed (request_scan notifies under the same lock).
        if !self.scan.load(Ordering::Acquire) {
            let _ = self.cv.wait_timeout(g, timeout);
        }
        self.scan.swap(false, Ordering::AcqRel)
    }
}

/// One input's patterns.
#[derive(Debug)]
pub struct InputPatterns {
    /// Include globs.
    pub include: Vec<String>,
    /// Exclude globs, matched against the full path.
    pub exclude: Vec<glob::Pattern>,
    /// Where to start in files without a checkpoint found at the first scan.
    pub read_from: ReadFrom,
    /// Skip files without a checkpoint not modified for this long.
    pub ignore_older: Option<Duration>,
    /// Whether files are read decompressed.
    pub compression: InputCompression,
    /// Metric label.
    pub name: String,
    /// Not scanned yet: `read_from = "end"` applies to the files its first scan finds.
    pub fresh: bool,
}

/// A file found by a scan.
#[derive(Debug)]
pub struct Found {
    /// The path that matched (not resolved through symlinks).
    pub path: PathBuf,
    /// Index of the input whose glob matched first.
    pub input: usize,
    /// Metadata of the file (through symlinks).
    pub meta: std::fs::Metadata,
}

/// The discovery side of the tailer.
pub struct Discovery {
    /// The inputs, in config order.
    pub inputs: Vec<InputPatterns>,
    watcher: Option<watch::Watcher>,
    /// The directories the include globs start from, and whether files may lie deeper.
    roots: Vec<(PathBuf, RecursiveMode)>,
}

/// Whether a watch covers the directories below its root too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecursiveMode {
    /// Files may lie more than one level below the root.
    Recursive,
    /// Files lie directly in the root.
    NonRecursive,
}

impl Discovery {
    /// Builds discovery for `cfg`; with `tail.watch`, starts an inotify watcher that
    /// reports to `wake`.
    pub fn new(cfg: &AgentConfig, wake: Arc<Wake>) -> Discovery {
        let inputs: Vec<InputPatterns> = cfg
            .inputs
            .iter()
            .enumerate()
            .map(|(i, c)| InputPatterns {
                include: c.include.clone(),
                // Validated in AgentConfig::validate.
                exclude: c
                    .exclude
                    .iter()
                    .filter_map(|p| glob::Pattern::new(p).ok())
                    .collect(),
                read_from: c.read_from,
                ignore_older: c.ignore_older,
                compression: c.compression,
                name: cfg.input_name(i),
                fresh: true,
            })
            .collect();
        let mut roots: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        for p in inputs.iter().flat_map(|i| i.include.iter()) {
            let root = watch_root(p);
            match roots.iter_mut().find(|(r, _)| *r == root.0) {
                Some(existing) if root.1 == RecursiveMode::Recursive => existing.1 = root.1,
                Some(_) => {}
                None => roots.push(root),
            }
        }
        let watcher = if cfg.tail.watch {
            match watch::Watcher::start(wake) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "inotify is not available; finding files by periodic scan only");
                    None
                }
            }
        } else {
            None
        };
        Discovery {
            inputs,
            watcher,
            roots,
        }
    }

    /// Expands every input's globs. Also adds inotify watches for roots that appeared.
    /// The flag is false when a directory could not be read (e.g. out of descriptors):
    /// files not found then may still be there.
    pub fn scan(&mut self) -> (Vec<Found>, bool) {
        self.add_watches();
        let mut complete = true;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (idx, input) in self.inputs.iter().enumerate() {
            for pattern in &input.include {
                let entries = match glob::glob(pattern) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(pattern, error = %e, "bad include pattern");
                        continue;
                    }
                };
                for entry in entries {
                    let path = match entry {
                        Ok(p) => p,
                        Err(e) => {
                            complete = false;
                            tracing::debug!(error = %e, "cannot read a directory while scanning");
                            continue;
                        }
                    };
                    if input.exclude.iter().any(|p| p.matches_path(&path)) {
                        continue;
                    }
                    // metadata() follows symlinks.
                    let meta = match std::fs::metadata(&path) {
                        Ok(m) => m,
                        Err(e) => {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                complete = false;
                            }
                            continue;
                        }
                    };
                    if !meta.is_file() || !seen.insert(path.clone()) {
                        continue;
                    }
                    out.push(Found {
                        path,
                        input: idx,
                        meta,
                    });
                }
            }
        }
        (out, complete)
    }

    /// Watches every root (and the directories below a recursive one). Adding a watch
    /// the kernel already has is a no-op, so directories made since the last scan are
    /// covered and nothing needs to be remembered.
    fn add_watches(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for (root, mode) in &self.roots {
            let n = watcher.watch_tree(root, *mode == RecursiveMode::Recursive);
            tracing::trace!(dir = %root.display(), directories = n, "watching");
        }
    }
}

/// The directory a glob starts from (its components before the first one with a glob
/// character) and whether files may lie deeper than one level below it.
pub fn watch_root(pattern: &str) -> (PathBuf, RecursiveMode) {
    let path = Path::new(pattern);
    let mut root = PathBuf::new();
    let mut rest = 0;
    let mut globbed = false;
    for c in path.components() {
        let is_glob =
            matches!(c, Component::Normal(s) if s.to_string_lossy().contains(['*', '?', '[']));
        if globbed || is_glob {
            globbed = true;
            rest += 1;
        } else {
            root.push(c);
        }
    }
    if !globbed {
        // A plain path: watch its directory.
        root.pop();
        rest = 1;
    }
    let mode = if rest > 1 || pattern.contains("**") {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    if root.as_os_str().is_empty() {
        root.push(".");
    }
    (root, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_roots() {
        let cases = [
            ("/var/log/app.log", "/var/log", RecursiveMode::NonRecursive),
            ("/var/log/*.log", "/var/log", RecursiveMode::NonRecursive),
            (
                "/var/log/pods/*/*/*.log",
                "/var/log/pods",
                RecursiveMode::Recursive,
            ),
            ("/srv/**/x.log", "/srv", RecursiveMode::Recursive),
            ("/srv/app-[0-9]/x.log", "/srv", RecursiveMode::Recursive),
            ("*.log", ".", RecursiveMode::NonRecursive),
        ];
        for (pattern, root, mode) in cases {
            assert_eq!(
                watch_root(pattern),
                (PathBuf::from(root), mode),
                "{pattern}"
            );
        }
    }

    #[test]
    fn wake_returns_and_clears_a_request() {
        let w = Arc::new(Wake::default());
        assert!(!w.wait(Duration::from_millis(1)));
        w.request_scan();
        w.request_scan();
        assert!(w.wait(Duration::from_secs(5)));
        assert!(!w.wait(Duration::from_millis(1)));
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.wait(Duration::from_secs(30)));
        w.request_scan();
        assert!(t.join().unwrap() || w.wait(Duration::from_millis(1)));
    }
}
