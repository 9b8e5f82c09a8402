//! The `file` sink: appends JSON lines to a local file and fsyncs on flush.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Sink;

/// Appends to one file.
#[derive(Debug)]
pub struct FileSink {
    name: String,
    path: PathBuf,
    file: File,
    /// Bytes in the file (what has been written through this handle included).
    len: u64,
    unsynced: bool,
}

impl FileSink {
    /// Opens (creating) `path` for appending; parent directories are created.
    pub fn open(name: &str, path: &Path) -> std::io::Result<FileSink> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSink {
            name: name.to_owned(),
            path: path.to_owned(),
            file,
            len,
            unsynced: false,
        })
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.unsynced = true;
        self.file
            .write_all(lines)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        self.len += lines.len() as u64;
        Ok(())
    }

    fn position(&self) -> Option<u64> {
        Some(self.len)
    }

    fn position_key(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn rewind_to(&mut self, position: u64) -> std::io::Result<()> {
        let actual = self.file.metadata()?.len();
        if actual > position {
            tracing::warn!(path = %self.path.display(), from = actual, to = position,
                "cutting off events written after the last recorded position; they are written again");
            self.file.set_len(position)?;
            self.file.sync_all()?;
        } else if actual < position {
            tracing::warn!(path = %self.path.display(), size = actual, recorded = position,
                "the file is shorter than recorded (rotated or truncated by someone else); appending");
        }
        self.len = self.file.metadata()?.len();
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }
}
