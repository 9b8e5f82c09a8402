//! Pipeline workers: each decodes a stored frame, parses and renders its records into the
//! job's output buffer, and hands the buffer back. Workers share one job queue (whoever is
//! free takes the next frame) and know nothing of sinks or of the inbox: ordering, writing
//! and recording progress are the coordinator's ([`super`]).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use logferry_shared::codec;
use logferry_shared::event::Timestamp;
use logferry_shared::wire::{self, DecodeLimits, WireError};

use crate::inbox::Decoded;
use crate::metrics::Metrics;
use crate::parse::detect::Detector;
use crate::render::{self, RenderStats};

/// A decompressed body larger than this is not kept for the next frame.
const KEEP_BODY_BYTES: usize = 16 << 20;

/// One frame to render.
pub(super) struct Job {
    /// Position in the coordinator's dispatch order.
    pub seq: u64,
    /// The frame's inbox key.
    pub key: u64,
    /// The stored frame.
    pub frame: sled::IVec,
    /// Its body as ingest decompressed it, when the inbox still held that.
    pub decoded: Option<Decoded>,
    /// An empty buffer to render into (recycled from an earlier job).
    pub out: Vec<u8>,
}

/// A rendered frame, or why there is no output.
pub(super) struct Rendered {
    /// As in the job.
    pub seq: u64,
    /// As in the job.
    pub key: u64,
    /// Bytes of the stored frame (what completing it frees in the inbox).
    pub frame_len: usize,
    /// JSON lines, one per record (empty on failure).
    pub out: Vec<u8>,
    /// What rendering found.
    pub result: Result<RenderStats, Failure>,
}

/// Why a frame produced no output.
pub(super) enum Failure {
    /// The stored frame does not decode (damaged on disk).
    Decode(WireError),
    /// Rendering panicked (a bug); the coordinator re-raises it.
    Panicked(Box<dyn Any + Send>),
}

/// Decodes frames and renders their records, reusing its buffers from frame to frame.
#[derive(Debug)]
pub struct FrameRenderer {
    detector: Detector,
    limits: DecodeLimits,
    body: Vec<u8>,
}

impl FrameRenderer {
    /// A renderer with its own detector (and so its own per-source memory).
    pub fn new(detector: Detector, limits: DecodeLimits) -> FrameRenderer {
        FrameRenderer {
            detector,
            limits,
            body: Vec::new(),
        }
    }

    /// Checks and decompresses `frame` (as [`wire::decode_frame`] does, into a reused
    /// buffer) and appends one JSON line per record to `out`. On error nothing is appended.
    pub fn render(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<RenderStats, WireError> {
        let (header, packed) = wire::decode_header(frame, &self.limits)?;
        let raw_len = header.raw_len as usize;
        codec::decompress_capped(header.codec, packed, raw_len, &mut self.body)?;
        if self.body.len() != raw_len {
            return Err(WireError::BadBody("body length differs from the header"));
        }
        let batch = wire::parse_body(&self.body, header.record_count)?;
        self.detector.set_now(Timestamp::now());
        let stats = render::render_batch(&batch, &mut self.detector, out);
        if self.body.capacity() > KEEP_BODY_BYTES {
            self.body = Vec::new();
        }
        Ok(stats)
    }

    /// [`FrameRenderer::render`] for a body ingest already decompressed and checked.
    pub fn render_decoded(
        &mut self,
        decoded: Decoded,
        out: &mut Vec<u8>,
    ) -> Result<RenderStats, WireError> {
        let batch = wire::parse_body(&decoded.body, decoded.record_count)?;
        self.detector.set_now(Timestamp::now());
        Ok(render::render_batch(&batch, &mut self.detector, out))
    }
}

/// A worker's loop: takes jobs until the queue closes or the coordinator is gone. Time
/// spent waiting for a job is counted as the `idle` stage.
pub(super) fn run(
    mut renderer: FrameRenderer,
    jobs: Arc<Mutex<Receiver<Job>>>,
    done: Sender<Rendered>,
    metrics: Arc<Metrics>,
) {
    loop {
        let waiting = Instant::now();
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        metrics.pipeline_time("idle", waiting);
        let Ok(Job {
            seq,
            key,
            frame,
            decoded,
            mut out,
        }) = job
        else {
            return;
        };
        out.clear();
        let rendered = std::panic::catch_unwind(AssertUnwindSafe(|| match decoded {
            Some(d) => renderer.render_decoded(d, &mut out),
            None => renderer.render(&frame, &mut out),
        }));
        let result = match rendered {
            Ok(Ok(stats)) => Ok(stats),
            Ok(Err(e)) => Err(Failure::Decode(e)),
            Err(panic) => Err(Failure::Panicked(panic)),
        };
        if result.is_err() {
            out.clear();
        }
        let panicked = matches!(result, Err(Failure::Panicked(_)));
        let reply = Rendered {
            seq,
            key,
            frame_len: frame.len(),
            out,
            result,
        };
        if done.send(reply).is_err() || panicked {
            return;
        }
    }
}
