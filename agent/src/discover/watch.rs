//! The inotify side of discovery: watches on the directories the include globs start
//! from (and, for a glob that reaches deeper, every directory below), with a mask of
//! entry changes only — created, deleted and renamed entries, the watched directory
//! itself deleted or moved. Writes to files are not in the mask: the kernel does not queue
//! an event per `write(2)`, so a busy log costs this thread nothing; open files are read
//! by the tailer's poll instead.
//!
//! One thread per watcher waits on the inotify descriptor (with a one-second timeout, so
//! it notices when the watcher is dropped at a reload) and asks the tailer for a scan when
//! anything arrives, including a queue overflow.
//!
//! Adding a watch to a directory already watched is a no-op for the kernel (same
//! descriptor), so [`Watcher::watch_tree`] simply adds every directory at every scan: a
//! directory created since (a new pod's), or one deleted and created again, is covered by
//! the next scan without bookkeeping. A directory that cannot be watched (the
//! `max_user_watches` limit) is reported once and tried again at later scans; the
//! periodic scan finds its files meanwhile.

use std::collections::HashSet;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use inotify::{Inotify, WatchMask, Watches};

use super::Wake;

/// Deepest directory level below a recursive root that gets a watch; deeper levels are
/// left to the periodic scan (log trees are shallow: `/var/log/pods/<pod>/<container>`).
const MAX_DEPTH: usize = 8;

/// Most directories one watcher adds watches to; beyond that the periodic scan serves.
const MAX_DIRS: usize = 20_000;

/// Entry changes only: no `MODIFY`, `ACCESS`, `OPEN` or `CLOSE` events.
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// An inotify instance whose thread wakes the tailer; dropping it stops the thread
/// within a second and closes the descriptor.
pub struct Watcher {
    watches: Watches,
    stop: Arc<AtomicBool>,
    /// The thread, not joined at drop (it ends within a second on its own).
    thread: Option<std::thread::JoinHandle<()>>,
    /// Directories whose watch failed and was reported; reported again only after one
    /// succeeded.
    failed: HashSet<PathBuf>,
}

impl Watcher {
    /// Starts the watcher thread.
    pub fn start(wake: Arc<Wake>) -> io::Result<Watcher> {
        let inotify = Inotify::init()?;
        let watches = inotify.watches();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("inotify".to_owned())
            .spawn(move || run(inotify, &wake, &thread_stop))?;
        Ok(Watcher {
            watches,
            stop,
            thread: Some(thread),
            failed: HashSet::new(),
        })
    }

    /// Watches `root`, and with `recursive` every directory below it (up to
    /// [`MAX_DEPTH`] levels). Returns how many directories are watched. A root that does
    /// not exist yet is not an error: the periodic scan tries again.
    pub fn watch_tree(&mut self, root: &Path, recursive: bool) -> usize {
        let mut watched = 0;
        // Directories met on this walk by (device, inode): symlinked directories are
        // followed (as the globs follow them), and a link loop ends here.
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        let mut todo = vec![(root.to_path_buf(), 0usize)];
        while let Some((dir, depth)) = todo.pop() {
            if recursive {
                match std::fs::metadata(&dir) {
                    Ok(m) if seen.insert((m.dev(), m.ino())) => {}
                    _ => continue,
                }
            }
            if !self.watch_dir(&dir) {
                continue;
            }
            watched += 1;
            if !recursive || depth >= MAX_DEPTH || watched + todo.len() >= MAX_DIRS {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let is_dir = match entry.file_type() {
                    Ok(t) if t.is_symlink() => entry.path().is_dir(),
                    Ok(t) => t.is_dir(),
                    Err(_) => false,
                };
                if is_dir {
                    todo.push((entry.path(), depth + 1));
                }
            }
        }
        watched
    }

    fn watch_dir(&mut self, dir: &Path) -> bool {
        match self.watches.add(dir, mask()) {
            Ok(_) => {
                if self.failed.remove(dir) {
                    tracing::info!(dir = %dir.display(), "watching again");
                }
                true
            }
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                false
            }
            Err(e) => {
                if self.failed.insert(dir.to_path_buf()) {
                    tracing::warn!(dir = %dir.display(), error = %e,
                        "cannot watch directory (inotify watches exhausted? see fs.inotify.max_user_watches); relying on the periodic scan");
                }
                false
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Detached, not joined: the tailer (reloading) should not wait up to a second
        // for the thread's poll timeout.
        drop(self.thread.take());
    }
}

/// The watcher thread: waits for events and turns any into a scan request.
fn run(mut inotify: Inotify, wake: &Wake, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    let fd = inotify.as_raw_fd();
    while !stop.load(Ordering::Acquire) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call, and `fd` stays
        // open as long as `inotify` lives (until this function returns).
        let ready = unsafe { libc::poll(&mut pfd, 1, 1000) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::warn!(error = %e, "inotify wait failed; finding files by periodic scan only");
            return;
        }
        if ready == 0 {
            continue;
        }
        match inotify.read_events(&mut buf) {
            Ok(mut events) => {
                if events.next().is_some() {
                    wake.request_scan();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::warn!(error = %e, "inotify read failed; finding files by periodic scan only");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Waits for a scan request for up to ten seconds.
    fn woken(wake: &Wake) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if wake.wait(Duration::from_millis(200)) {
                return true;
            }
        }
        false
    }

    #[test]
    fn entry_changes_wake_and_writes_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let wake = Arc::new(Wake::default());
        let mut w = Watcher::start(wake.clone()).unwrap();
        assert_eq!(w.watch_tree(dir.path(), false), 1);

        let file = dir.path().join("a.log");
        std::fs::write(&file, b"first\n").unwrap();
        assert!(woken(&wake), "a created file asks for a scan");
        // Let the creation's own events (create, close) drain.
        while wake.wait(Duration::from_millis(300)) {}

        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        for _ in 0..100 {
            std::io::Write::write_all(&mut f, b"more\n").unwrap();
        }
        assert!(
            !wake.wait(Duration::from_millis(500)),
            "writes to a file are not in the mask"
        );

        std::fs::rename(&file, dir.path().join("a.log.1")).unwrap();
        assert!(woken(&wake), "a rename asks for a scan");
        std::fs::remove_file(dir.path().join("a.log.1")).unwrap();
        assert!(woken(&wake), "a delete asks for a scan");
    }

    #[test]
    fn a_recursive_tree_covers_directories_made_after_the_first_scan() {
        let dir = tempfile::tempdir().unwrap();
        let wake = Arc::new(Wake::default());
        let mut w = Watcher::start(wake.clone()).unwrap();
        std::fs::create_dir_all(dir.path().join("ns_pod_1/app")).unwrap();
        assert_eq!(w.watch_tree(dir.path(), true), 3);

        // A new pod: its directory wakes the root's watch; the scan that follows adds
        // watches below it, so a file created there wakes the tailer too.
        std::fs::create_dir_all(dir.path().join("ns_pod_2/app")).unwrap();
        assert!(woken(&wake));
        assert_eq!(w.watch_tree(dir.path(), true), 5);
        while wake.wait(Duration::from_millis(300)) {}
        std::fs::write(dir.path().join("ns_pod_2/app/0.log"), b"x\n").unwrap();
        assert!(woken(&wake), "a file in a new directory asks for a scan");

        // Not recursive: only the root.
        assert_eq!(w.watch_tree(dir.path(), false), 1);
        // A root that does not exist yet is left to the scan.
        assert_eq!(w.watch_tree(&dir.path().join("missing"), true), 0);
    }

    #[test]
    fn symlinked_directories_are_followed_and_a_link_loop_ends() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let wake = Arc::new(Wake::default());
        let mut w = Watcher::start(wake.clone()).unwrap();
        std::fs::create_dir_all(dir.path().join("real/deeper")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("linked")).unwrap();
        // A loop back to the root: its target is the root, already met.
        std::os::unix::fs::symlink(dir.path(), dir.path().join("real/up")).unwrap();
        // root, real, real/deeper, linked (elsewhere).
        assert_eq!(w.watch_tree(dir.path(), true), 4);
        while wake.wait(Duration::from_millis(300)) {}
        std::fs::write(elsewhere.path().join("0.log"), b"x\n").unwrap();
        assert!(
            woken(&wake),
            "a file in a symlinked directory asks for a scan"
        );
    }

    #[test]
    fn a_dropped_watcher_stops_its_thread() {
        let wake = Arc::new(Wake::default());
        let mut w = Watcher::start(wake).unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(w.watch_tree(dir.path(), false), 1);
        let thread = w.thread.take().unwrap();
        assert!(!thread.is_finished());
        drop(w);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the thread did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        thread.join().unwrap();
    }
}
