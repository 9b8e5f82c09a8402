//! The pure parts of the file sink's rotation: how rotated files are named and found,
//! which rotation period a time falls in, and how much of a write fits in a file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `PATH.N`: generation `n` of `path` once rotated.
pub fn rotated_path(path: &Path, n: u64) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The generation a file name is the rotated form of, if it is `NAME.N` with `N` written
/// as the sink writes it (no sign, no leading zero).
fn generation_of(name: &str, base: &str) -> Option<u64> {
    let digits = name.strip_prefix(base)?.strip_prefix('.')?;
    let n: u64 = digits.parse().ok()?;
    (n.to_string() == digits).then_some(n)
}

/// The generations of `path`'s rotated files that exist, oldest first.
pub fn list_rotated(path: &Path) -> std::io::Result<Vec<u64>> {
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a file name in UTF-8", path.display()),
        ));
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(parent_dir(path))? {
        let entry = entry?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|n| generation_of(n, base))
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The directory `path` is in, for fsyncing renames.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The rotation period (of `every_secs` seconds, aligned to the Unix epoch) that
/// `unix_secs` falls in.
pub fn period(unix_secs: u64, every_secs: u64) -> u64 {
    unix_secs / every_secs.max(1)
}

/// How many bytes from the start of `lines` (complete lines) go into a file that has
/// `room` bytes left: the longest run of whole lines that fits, possibly 0.
pub fn fitting(lines: &[u8], room: u64) -> usize {
    if lines.len() as u64 <= room {
        return lines.len();
    }
    let room = room as usize;
    memchr::memrchr(b'\n', &lines[..room]).map_or(0, |i| i + 1)
}

/// The length of the first line of `lines`, its newline included.
pub fn first_line(lines: &[u8]) -> usize {
    memchr::memchr(b'\n', lines).map_or(lines.len(), |i| i + 1)
}
