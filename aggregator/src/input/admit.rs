//! Stores one HTTP request's records in the durable inbox as one batch, before the
//! request is answered: the HTTP inputs answer 2xx only once [`InboxWriter::store`] said
//! `Ok`, so a client that got its 2xx never has to send again, and one that did not
//! may resend without loss.
//!
//! # Identity
//!
//! Batches carry agent id `input:<name>`, a stream id new at every start (as the feed's,
//! see [`super::feed`]) and a seq. Requests run concurrently, so seqs are drawn from a
//! pool: a seq whose batch the inbox refused as full is put back and used by a later
//! request, so the stream keeps no gaps (which the inbox's accepted table would have to
//! remember). A seq whose admission failed in storage is not reused (the inbox may have
//! marked it accepted): a rare gap, which the table folds away in time.
//!
//! # Bounds
//!
//! A batch holds at most [`InboxWriter::max_batch_bytes`] of records (so its frame fits
//! the pipeline's decode limits); past it the request is refused as too large.

use std::sync::{Arc, Mutex};

use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::wire::{BatchBuilder, DecodeLimits};

use super::web::config::FRAME_OVERHEAD;
use super::InputContext;
use crate::inbox::{Admit, Decoded, Inbox};
use crate::metrics::Metrics;
use crate::pipeline::Wake;

/// zstd level for stored batches, as the feed's.
const ZSTD_LEVEL: i32 = 1;
/// zstd contexts kept for reuse (about 1 MiB each).
const SPARE_COMPRESSORS: usize = 4;

/// Why a request's records were not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The inbox is over its limit: 429, try later.
    #[error("the inbox holds {held} of {max} bytes; retry later")]
    Full {
        /// Bytes held.
        held: u64,
        /// The limit.
        max: u64,
    },
    /// The inbox cannot be written: 503, try later.
    #[error("the inbox cannot store the records: {0}")]
    Unavailable(String),
    /// Encoding failed or the inbox answered what it should not (a bug): 500.
    #[error("{0}")]
    Failed(String),
}

impl StoreError {
    /// The status to answer with.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            StoreError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `result` label of `logferry_input_requests_total`.
    pub fn result(&self) -> &'static str {
        match self {
            StoreError::Full { .. } => "throttled",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Failed(_) => "failed",
        }
    }

    /// Seconds to put in `Retry-After`, when the client should retry.
    pub fn retry_after(&self) -> Option<&'static str> {
        match self {
            StoreError::Full { .. } | StoreError::Unavailable(_) => Some("1"),
            StoreError::Failed(_) => None,
        }
    }
}

#[derive(Debug, Default)]
struct SeqPool {
    next: u64,
    free: Vec<u64>,
}

/// One HTTP input's way into the inbox.
#[derive(Debug)]
pub struct InboxWriter {
    input: String,
    agent_id: String,
    stream: String,
    seqs: Mutex<SeqPool>,
    compressors: Mutex<Vec<Compressor>>,
    inbox: Arc<Inbox>,
    wake: Arc<Wake>,
    metrics: Arc<Metrics>,
    max_batch_bytes: usize,
}

impl InboxWriter {
    /// The writer of input `name`.
    pub fn new(name: &str, ctx: &InputContext) -> InboxWriter {
        InboxWriter {
            input: name.to_owned(),
            agent_id: format!("input:{name}"),
            stream: super::feed::new_stream_id(),
            seqs: Mutex::new(SeqPool::default()),
            compressors: Mutex::new(Vec::new()),
            inbox: ctx.inbox.clone(),
            wake: ctx.wake.clone(),
            metrics: ctx.metrics.clone(),
            max_batch_bytes: max_batch_bytes(&ctx.limits),
        }
    }

    /// Most bytes of records one batch may hold.
    pub fn max_batch_bytes(&self) -> usize {
        self.max_batch_bytes
    }

    /// True when the inbox is at its limit (a cheap check before reading a body).
    pub fn inbox_full(&self) -> Option<StoreError> {
        let (held, max) = (self.inbox.bytes(), self.inbox.max_bytes());
        (held >= max).then_some(StoreError::Full { held, max })
    }

    /// A builder for one request's batch.
    pub fn builder(&self, observed_ms: u64) -> BatchBuilder {
        BatchBuilder::new("", observed_ms, 64 << 10)
    }

    /// Seals `batch` and stores it durably; `Ok` only once it is in the inbox. Blocking
    /// (compression, fsync): call it off the reactor.
    pub fn store(&self, batch: BatchBuilder) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(full) = self.inbox_full() {
            return Err(full);
        }
        let records = batch.record_count();
        let seq = self.take_seq();
        let mut compressor = match self.spare_compressor() {
            Some(c) => c,
            None => Compressor::new(Codec::Zstd, ZSTD_LEVEL)
                .map_err(|e| StoreError::Failed(format!("zstd: {e}")))?,
        };
        let sealed = batch.seal_with_body(&self.agent_id, &self.stream, seq, &mut compressor);
        self.keep_compressor(compressor);
        let (frame, mut body) = match sealed {
            Ok(s) => s,
            Err(e) => {
                self.give_back(seq);
                return Err(StoreError::Failed(format!("encoding the batch: {e}")));
            }
        };
        if body.capacity() > 2 * body.len() {
            body.shrink_to_fit();
        }
        let decoded = Decoded {
            record_count: records,
            body,
        };
        let admitted =
            self.inbox
                .admit_decoded(&self.agent_id, &self.stream, seq, &frame, Some(decoded));
        match admitted {
            Ok(Admit::Accepted) => {
                self.wake.notify();
                self.metrics.inbox_bytes.set(self.inbox.bytes() as i64);
                Ok(())
            }
            Ok(Admit::Full) => {
                self.give_back(seq);
                Err(StoreError::Full {
                    held: self.inbox.bytes(),
                    max: self.inbox.max_bytes(),
                })
            }
            Ok(Admit::Duplicate) => {
                // Cannot happen: the stream id is new at every start and seqs are drawn
                // once. Not answered 2xx: the records were not stored.
                tracing::error!(input = %self.input, seq, "the inbox took an input batch for a duplicate");
                Err(StoreError::Failed(
                    "the inbox refused the batch as a duplicate".into(),
                ))
            }
            Err(e) => {
                tracing::error!(input = %self.input, error = %e, "cannot store an input batch in the inbox");
                Err(StoreError::Unavailable(e.to_string()))
            }
        }
    }

    fn take_seq(&self) -> u64 {
        let mut pool = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = pool.free.pop() {
            return s;
        }
        pool.next += 1;
        pool.next
    }

    fn give_back(&self, seq: u64) {
        let mut pool = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        pool.free.push(seq);
    }

    fn spare_compressor(&self) -> Option<Compressor> {
        let mut spare = self.compressors.lock().unwrap_or_else(|p| p.into_inner());
        spare.pop()
    }

    fn keep_compressor(&self, c: Compressor) {
        let mut spare = self.compressors.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < SPARE_COMPRESSORS {
            spare.push(c);
        }
    }
}

/// Most bytes of records in one batch, so that its frame passes the pipeline's limits.
pub fn max_batch_bytes(limits: &DecodeLimits) -> usize {
    limits
        .max_frame_bytes
        .min(limits.max_raw_bytes)
        .saturating_sub(FRAME_OVERHEAD)
}
