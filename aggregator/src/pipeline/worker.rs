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
use crate::render::{self, RenderRules, RenderStats, RenderedLines};
use crate::rules::{Engine, EngineContext, Outbox, RuleSet, SystemClock};
use crate::stats::TrafficStats;

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
    pub out: RenderedLines,
}

/// A rendered frame, or why there is no output.
pub(super) struct Rendered {
    /// As in the job.
    pub seq: u64,
    /// As in the job.
    pub key: u64,
    /// Bytes of the stored frame (what completing it frees in the inbox).
    pub frame_len: usize,
    /// JSON lines, one per kept event, with their routes (empty on failure).
    pub out: RenderedLines,
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

/// Where a renderer takes its rules from.
#[derive(Debug, Clone)]
enum Rules {
    /// No rules: every event is kept and goes to every sink.
    None(Arc<Engine>),
    /// The rule set in force; its engine is taken once per frame, so a change applies
    /// from the next frame on.
    Set(Arc<RuleSet>),
}

/// Decodes frames, runs their records through parsing and the rules, and renders them,
/// reusing its buffers from frame to frame.
#[derive(Debug)]
pub struct FrameRenderer {
    detector: Detector,
    limits: DecodeLimits,
    body: Vec<u8>,
    rules: Rules,
    traffic: Option<Arc<Mutex<TrafficStats>>>,
}

impl FrameRenderer {
    /// A renderer with its own detector (and so its own per-source memory), no rules and
    /// no traffic summaries.
    pub fn new(detector: Detector, limits: DecodeLimits) -> FrameRenderer {
        let ctx = EngineContext {
            sinks: Vec::new(),
            notifiers: Vec::new(),
            clock: Arc::new(SystemClock),
            outbox: Arc::new(Outbox::new(1)),
        };
        FrameRenderer {
            detector,
            limits,
            body: Vec::new(),
            rules: Rules::None(Arc::new(Engine::empty(&ctx))),
            traffic: None,
        }
    }

    /// Runs the rules of `set` over every event.
    pub fn with_rules(mut self, set: Arc<RuleSet>) -> FrameRenderer {
        self.rules = Rules::Set(set);
        self
    }

    /// Counts every kept event in `traffic` (this renderer's own summaries: the lock is
    /// taken once per frame and only readers of the summaries contend for it).
    pub fn with_traffic(mut self, traffic: Arc<Mutex<TrafficStats>>) -> FrameRenderer {
        self.traffic = Some(traffic);
        self
    }

    /// Checks and decompresses `frame` (as [`wire::decode_frame`] does, into a reused
    /// buffer) and appends one JSON line per kept event to `out`. On error nothing is
    /// appended.
    pub fn render(
        &mut self,
        frame: &[u8],
        out: &mut RenderedLines,
    ) -> Result<RenderStats, WireError> {
        let (header, packed) = wire::decode_header(frame, &self.limits)?;
        let raw_len = header.raw_len as usize;
        let mut body = std::mem::take(&mut self.body);
        let rendered = codec::decompress_capped(header.codec, packed, raw_len, &mut body)
            .map_err(WireError::from)
            .and_then(|()| {
                if body.len() != raw_len {
                    return Err(WireError::BadBody("body length differs from the header"));
                }
                self.render_body(&body, header.record_count, out)
            });
        if body.capacity() <= KEEP_BODY_BYTES {
            self.body = body;
        }
        rendered
    }

    /// [`FrameRenderer::render`] for a body ingest already decompressed and checked.
    pub fn render_decoded(
        &mut self,
        decoded: Decoded,
        out: &mut RenderedLines,
    ) -> Result<RenderStats, WireError> {
        self.render_body(&decoded.body, decoded.record_count, out)
    }

    fn render_body(
        &mut self,
        body: &[u8],
        record_count: u32,
        out: &mut RenderedLines,
    ) -> Result<RenderStats, WireError> {
        let batch = wire::parse_body(body, record_count)?;
        self.detector.set_now(Timestamp::now());
        let engine = match &self.rules {
            Rules::None(e) => Arc::clone(e),
            Rules::Set(set) => set.engine(),
        };
        let now_ms = engine.context().clock.now_ms();
        let mut traffic = self
            .traffic
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()));
        let mut rules = RenderRules {
            engine: &engine,
            now_ms,
            traffic: traffic.as_deref_mut(),
        };
        Ok(render::render_batch(
            &batch,
            &mut self.detector,
            &mut rules,
            out,
        ))
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
