//! The `stdout` sink: JSON lines on standard output (logs go to standard error).

use std::io::Write;

use super::Sink;

/// Writes to the process's standard output.
#[derive(Debug)]
pub struct StdoutSink {
    name: String,
}

impl StdoutSink {
    /// A sink named `name`.
    pub fn new(name: &str) -> StdoutSink {
        StdoutSink {
            name: name.to_owned(),
        }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        std::io::stdout().lock().write_all(lines)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}
