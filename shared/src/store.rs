//! Opening sled databases: both binaries keep state in sled 0.34, whose lock on a
//! database outlives the `Db` handle for a moment (its background threads let go of it
//! asynchronously) and is held by a previous instance that is still exiting. Opening
//! therefore waits a bounded time for the lock instead of failing at once.

use std::time::{Duration, Instant};

/// How long [`open_waiting_for_lock`] waits by default.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// sled's error when another holder has the database's lock: sled 0.34 reports it as an
/// I/O error (kind `Other` or `WouldBlock`) naming the lock.
pub fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

/// Runs `open` until it returns anything but a lock error or `wait` has passed, polling
/// every 50 ms; the first wait is logged with `what` (e.g. the database's path).
pub fn open_waiting_for_lock<T, E>(
    what: &dyn std::fmt::Display,
    wait: Duration,
    mut open: impl FnMut() -> Result<T, E>,
    lock_error: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = Instant::now() + wait;
    let mut logged = false;
    loop {
        match open() {
            Err(e) if lock_error(&e) && Instant::now() < deadline => {
                if !logged {
                    tracing::warn!(db = %what, "the database is locked by another holder; waiting for it");
                    logged = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Opens `config`'s database, waiting up to [`LOCK_WAIT`] for its lock.
pub fn open(config: &sled::Config, what: &dyn std::fmt::Display) -> sled::Result<sled::Db> {
    open_waiting_for_lock(what, LOCK_WAIT, || config.open(), is_lock_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_database_can_be_reopened_at_once_many_times() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        for i in 0u32..20 {
            let db = open(&config, &dir.path().display()).unwrap();
            db.insert(i.to_be_bytes(), &[]).unwrap();
            db.flush().unwrap();
            assert_eq!(db.len(), i as usize + 1);
        }
    }

    #[test]
    fn a_held_lock_is_waited_for_then_reported() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        let held = open(&config, &"held").unwrap();
        let start = Instant::now();
        let err = open_waiting_for_lock(
            &"second",
            Duration::from_millis(300),
            || config.open(),
            is_lock_error,
        )
        .unwrap_err();
        assert!(is_lock_error(&err), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(300));
        drop(held);
        assert!(!is_lock_error(&sled::Error::Unsupported("x".into())));
    }
}
