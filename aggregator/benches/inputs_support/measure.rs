//! What the input benchmark measures: a process's CPU time from `/proc/PID/stat`, and a
//! receiving file followed as it grows, counting complete lines and the `seq=<n>` each
//! one carries, so "every event exactly once" is checked, not assumed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// CPU seconds (user + system) process `pid` has used, from `/proc/PID/stat` (Linux).
pub fn cpu_secs(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = text.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// A file that another process appends lines to, read from where the last phase ended.
pub struct Follower {
    path: PathBuf,
    offset: u64,
    /// Bytes of an incomplete last line.
    partial: Vec<u8>,
    /// Lines read in this phase.
    pub lines: u64,
    /// `seen[n]`: how many lines carried `seq=n` in this phase.
    seen: Vec<u8>,
    /// Lines without a `seq=` in range.
    pub strays: u64,
}

/// How a phase's events arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Distinct events found.
    pub found: u64,
    /// Events sent that are not in the file.
    pub missing: u64,
    /// Events found more than once (extra copies).
    pub duplicates: u64,
    /// Lines that carry no event of this phase.
    pub strays: u64,
}

impl Follower {
    /// Follows `path` from its current end (from the start if it does not exist yet).
    pub fn new(path: &Path) -> Follower {
        let offset = std::fs::metadata(path).map_or(0, |m| m.len());
        Follower {
            path: path.to_owned(),
            offset,
            partial: Vec::new(),
            lines: 0,
            seen: Vec::new(),
            strays: 0,
        }
    }

    /// Starts a phase of `n` events: counts start again from the file's current end.
    pub fn phase(&mut self, n: usize) {
        self.poll();
        self.lines = 0;
        self.strays = 0;
        self.seen = vec![0; n];
    }

    /// Reads what was appended since the last call; returns the lines now counted.
    pub fn poll(&mut self) -> u64 {
        let Ok(mut f) = File::open(&self.path) else {
            return self.lines;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return self.lines;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return self.lines;
        }
        self.offset += buf.len() as u64;
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(&buf);
        let end = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in data[..end].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            self.lines += 1;
            match seq_of(line).filter(|n| *n < self.seen.len()) {
                Some(n) => self.seen[n] = self.seen[n].saturating_add(1),
                None => self.strays += 1,
            }
        }
        self.partial = data[end..].to_vec();
        self.lines
    }

    /// Polls every 10 ms until `n` lines are in, or nothing arrived for `quiet` (some
    /// never came: UDP), or `deadline` passed. Returns whether all `n` came, and when the
    /// last line seen arrived (to 10 ms).
    pub fn wait(&mut self, n: u64, quiet: Duration, deadline: Instant) -> (bool, Instant) {
        let mut last = self.poll();
        let mut last_change = Instant::now();
        loop {
            let now = self.poll();
            let t = Instant::now();
            if now != last {
                last = now;
                last_change = t;
            }
            if now >= n {
                return (true, t);
            }
            if t.duration_since(last_change) > quiet || t > deadline {
                return (false, last_change);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The phase's accounting so far.
    pub fn tally(&self) -> Tally {
        let mut t = Tally {
            strays: self.strays,
            ..Tally::default()
        };
        for &c in &self.seen {
            match c {
                0 => t.missing += 1,
                c => {
                    t.found += 1;
                    t.duplicates += u64::from(c - 1);
                }
            }
        }
        t
    }
}

/// The number after the first `seq=` in a line.
fn seq_of(line: &[u8]) -> Option<usize> {
    let at = memchr::memmem::find(line, b"seq=")? + 4;
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// `RcvbufErrors` from `/proc/net/snmp`: UDP datagrams the kernel dropped, machine-wide,
/// because a socket's receive buffer was full.
pub fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
