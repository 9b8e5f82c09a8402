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
        Ok(FileSink {
            name: name.to_owned(),
            path: path.to_owned(),
            file,
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
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }
}
