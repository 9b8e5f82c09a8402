//! Sinks: where rendered events go. A sink is one folder (or file) implementing [`Sink`],
//! registered in [`build`]; nothing else needs to change to add one.
//!
//! Contract: `write` may buffer; after `flush` returns `Ok`, everything written before it
//! is durable (for a file: on disk, fsynced). The pipeline records each sink's
//! [`Sink::position`] after a flush, together with the inbox progress, and rewinds sinks
//! to it after a crash, which makes a file sink exactly-once.

mod file;
mod stdout;

use crate::config::SinkConfig;

pub use file::FileSink;
pub use stdout::StdoutSink;

/// A destination for JSON-line events.
pub trait Sink: Send {
    /// The sink's name from the config.
    fn name(&self) -> &str;
    /// Appends complete JSON lines (each ends with `\n`).
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()>;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> std::io::Result<()>;
    /// A position that identifies how much is durable (a file's length), recorded with
    /// the inbox's progress; `None` for sinks that cannot rewind (stdout).
    fn position(&self) -> Option<u64> {
        None
    }
    /// The key the position is recorded under: what the position is a position *in*
    /// (for a file, its path), so a sink pointed at another file never applies an old
    /// position to it.
    fn position_key(&self) -> String {
        self.name().to_owned()
    }
    /// Drops whatever was written after `position` (from a crash, or a failed round).
    fn rewind_to(&mut self, _position: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds the sink a config entry describes.
pub fn build(name: &str, config: &SinkConfig) -> std::io::Result<Box<dyn Sink>> {
    Ok(match config {
        SinkConfig::File { path } => Box::new(FileSink::open(name, path)?),
        SinkConfig::Stdout {} => Box::new(StdoutSink::new(name)),
    })
}
