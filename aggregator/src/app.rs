//! Builds the aggregator from its config and runs it until shutdown.
//!
//! Shutdown order: stop accepting connections and let in-flight requests finish (bounded
//! by the drain timeout), let inputs admit what they read, then let the pipeline drain
//! the inbox for a few seconds. Every batch answered 2xx is durable in the inbox before
//! the answer; what the pipeline did not reach is processed after the next start.
//!
//! Alongside the data path: the rule set (config rules, or those changed at run time and
//! persisted in `<data_dir>/rules`), the notification dispatcher (its durable queue in
//! `<data_dir>/notifications`, on a thread of its own, which also ticks the rules so
//! digests and alert recoveries go out when no event arrives) and the traffic summaries
//! the pipeline workers keep. [`Running::reload`] applies a new config's rules.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::DecodeLimits;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::config::{rule_error, AggregatorConfig};
use crate::inbox::Inbox;
use crate::ingest::{self, IngestState};
use crate::metrics::{collectors, Metrics};
use crate::notify::service::DeliveryStats;
use crate::notify::Dispatcher;
use crate::pipeline::{self, Wake};
use crate::rules::{Clock, Outbox, RuleSet, SystemClock};
use crate::stats::SharedTraffic;
use crate::{http, input, sink};

/// Notifications waiting between the rules and the dispatcher, at most (the dispatcher
/// drains them every quarter second; more are counted and dropped by the outbox).
const OUTBOX_CAPACITY: usize = 10_000;

/// A started aggregator.
#[derive(Debug)]
pub struct Running {
    /// Where agents connect.
    pub ingest_addr: SocketAddr,
    /// Where the admin endpoint listens.
    pub admin_addr: SocketAddr,
    /// The inputs (syslog, http and otlp listeners), stopped before the pipeline drains.
    pub inputs: input::Inputs,
    shutdown: Shutdown,
    ingest: JoinHandle<()>,
    admin: JoinHandle<()>,
    pipeline: std::thread::JoinHandle<()>,
    notify: std::thread::JoinHandle<()>,
    search_thread: Option<std::thread::JoinHandle<()>>,
    deliveries: Vec<JoinHandle<()>>,
    delivery_stop: Shutdown,
    wake: Arc<Wake>,
    /// The rules in force (the admin endpoint's rules API changes them).
    pub rules: Arc<RuleSet>,
    /// The traffic summaries.
    pub traffic: Arc<SharedTraffic>,
    /// Notification delivery counters.
    pub notifications: Arc<DeliveryStats>,
}

/// Binds the listeners and starts serving.
pub async fn start(cfg: AggregatorConfig) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("data_dir {}", cfg.data_dir.display()))?;
    let tokens = cfg.agent_tokens()?;
    let tls_config = cfg.ingest.tls.server_config()?;
    let mut metrics = Metrics::new();
    let inbox = Arc::new(
        Inbox::open(&cfg.data_dir.join("inbox"), cfg.inbox.max_bytes)
            .context("opening the inbox")?,
    );
    // Sinks that send to a service keep their own durable queues (sink::queue).
    let queues = if cfg.sinks.values().any(|s| s.queued().is_some()) {
        Some(
            sink::queue::QueueStore::open(&cfg.data_dir.join("queues"))
                .context("opening the sink queues")?,
        )
    } else {
        None
    };
    if let Some(store) = &queues {
        // A queue whose sink was removed or renamed keeps its events on disk; say so.
        for name in store.names() {
            if cfg.sinks.get(&name).is_none_or(|s| s.queued().is_none()) {
                match store.waiting(&name) {
                    Ok(0) => {}
                    Ok(events) => {
                        tracing::warn!(sink = %name, events, "a sink queue holds events but no such queued sink is configured; they are kept, not delivered (configure the sink again to deliver them)")
                    }
                    Err(e) => {
                        tracing::warn!(sink = %name, error = %e, "cannot read the queue of a sink that is no longer configured")
                    }
                }
            }
        }
    }
    let build_ctx = sink::BuildContext {
        queues: queues.as_ref(),
        families: &metrics.delivery,
    };
    let mut sinks = Vec::new();
    let mut board_entries = Vec::new();
    let mut delivery_tasks = Vec::new();
    for (name, sc) in &cfg.sinks {
        let built = sink::build(name, sc, &build_ctx).with_context(|| format!("sink {name}"))?;
        sinks.push(built.sink);
        board_entries.push((name.clone(), sc.kind(), built.queue));
        if let Some(task) = built.delivery {
            delivery_tasks.push((board_entries.len() - 1, task));
        }
    }
    let sink_board = Arc::new(sink::SinkBoard::with_queues(board_entries));
    metrics.register_collector(Box::new(collectors::SinkQueueMetrics(sink_board.clone())));

    let limits = DecodeLimits {
        max_frame_bytes: cfg.ingest.max_body_bytes,
        max_raw_bytes: cfg.ingest.max_decompressed_bytes,
    };
    let shutdown = Shutdown::new();
    let wake = Arc::new(Wake::default());
    let detector = cfg.detector()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let outbox = Arc::new(Outbox::new(OUTBOX_CAPACITY));
    // Rules route by sink index: `[sinks]` is a sorted map, and both the rule set's
    // context and `sinks` above follow its order.
    let rules = Arc::new(
        RuleSet::from_config(&cfg, clock.clone(), outbox.clone())
            .map_err(rule_error)
            .context("loading the rules")?,
    );
    let dispatcher = Dispatcher::from_config(&cfg, outbox, clock)
        .map_err(anyhow::Error::msg)
        .context("starting the notifiers")?;
    let notifications = dispatcher.stats();
    metrics.register_collector(Box::new(collectors::RuleMetrics(rules.clone())));
    metrics.register_collector(Box::new(collectors::NotificationMetrics(
        notifications.clone(),
    )));
    let metrics = Arc::new(metrics);
    let ticked = rules.clone();
    let notify = dispatcher
        .spawn(shutdown.clone(), move || ticked.engine().tick())
        .context("starting the notification thread")?;
    let workers = cfg.pipeline.workers;
    let traffic = Arc::new(SharedTraffic::new(cfg.stats.settings(), workers));
    let (tail, _) = tokio::sync::broadcast::channel(admin::tail::TAIL_CAPACITY);
    // Log search is a cache: if its store cannot be opened, events still flow.
    let search = match crate::search::EventStore::from_config(&cfg.search, &cfg.data_dir) {
        Ok(store) => store.map(Arc::new),
        Err(e) => {
            tracing::error!(error = %e, dir = %crate::search::SearchConfig::dir(&cfg.data_dir).display(), "cannot open the log search store; running without log search");
            None
        }
    };
    let (search_feed, search_thread) = match &search {
        Some(store) => {
            let (feed, handle) = pipeline::search_feed::spawn(store.clone(), metrics.clone())
                .context("starting the search feed")?;
            (Some(feed), Some(handle))
        }
        None => (None, None),
    };
    let setup = pipeline::PipelineSetup {
        inbox: inbox.clone(),
        detector,
        sinks,
        limits,
        workers,
        metrics: metrics.clone(),
        wake: wake.clone(),
        rules: Some(rules.clone()),
        traffic: Some(traffic.clone()),
        board: Some(sink_board.clone()),
        tail: Some(tail.clone()),
        search: search_feed,
    };
    let pipeline = pipeline::spawn(setup, shutdown.clone()).context("starting the pipeline")?;

    let ingest_listener = TcpListener::bind(cfg.ingest.listen)
        .await
        .with_context(|| format!("ingest.listen {}", cfg.ingest.listen))?;
    let admin_listener = TcpListener::bind(cfg.admin.listen)
        .await
        .with_context(|| format!("admin.listen {}", cfg.admin.listen))?;
    let ingest_addr = ingest_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let agents = Arc::new(crate::agents::AgentRegistry::default());
    let state = Arc::new(IngestState {
        tokens: tokens.into_iter().map(String::into_bytes).collect(),
        max_body_bytes: cfg.ingest.max_body_bytes,
        limits,
        inbox: inbox.clone(),
        wake: wake.clone(),
        metrics: metrics.clone(),
        agents: agents.clone(),
    });
    let ingest = tokio::spawn(http::serve_tls(
        ingest_listener,
        Arc::new(tls_config),
        ingest::router(state),
        cfg.ingest.max_connections,
        shutdown.clone(),
    ));
    let auth =
        admin::AdminAuth::from_config(&cfg.admin.tokens, admin_addr).map_err(anyhow::Error::msg)?;
    if !auth.is_open() && cfg.admin.tokens.is_empty() {
        tracing::warn!(addr = %admin_addr, "the admin API is refused: it listens beyond loopback and [admin] tokens are not configured");
    }
    let metrics_for_inputs = metrics.clone();
    let admin_state = AdminState {
        metrics,
        inbox: inbox.clone(),
        data_dir: cfg.data_dir.clone(),
        auth: Arc::new(auth),
        rules: rules.clone(),
        traffic: traffic.clone(),
        notifications: notifications.clone(),
        agents,
        sinks: sink_board.clone(),
        tail: Some(tail),
        tails: Arc::new(tokio::sync::Semaphore::new(admin::tail::MAX_TAILS)),
        shutdown: shutdown.clone(),
        search,
        searches: Arc::new(
            admin::background::Background::start(
                "search",
                admin::background::SEARCH_THREADS,
                admin::background::SEARCH_QUEUE,
            )
            .context("starting the search threads")?,
        ),
        tail_filters: Arc::new(
            admin::background::Background::start(
                "tail",
                admin::background::TAIL_THREADS,
                admin::background::TAIL_QUEUE,
            )
            .context("starting the tail threads")?,
        ),
    };
    let admin_shutdown = shutdown.clone();
    let admin_router = admin::router(admin_state);
    let admin = match &cfg.admin.tls {
        // HTTPS only, served like ingest (handshake and header timeouts, a drain).
        Some(t) => tokio::spawn(http::serve_tls(
            admin_listener,
            Arc::new(t.server_config().context("admin.tls")?),
            admin_router,
            admin::MAX_CONNECTIONS,
            admin_shutdown,
        )),
        None => tokio::spawn(async move {
            let served = axum::serve(admin_listener, admin_router)
                .with_graceful_shutdown(async move { admin_shutdown.wait().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin endpoint failed");
            }
        }),
    };
    tracing::info!(component = "ingest", addr = %ingest_addr, mtls = cfg.ingest.tls.client_ca.is_some(), "listening");
    let admin_tls = cfg.admin.tls.as_ref();
    tracing::info!(component = "admin", addr = %admin_addr, tls = admin_tls.is_some(), mtls = admin_tls.is_some_and(|t| t.client_ca.is_some()), "listening");
    let inputs = input::Inputs::start(
        &cfg.inputs,
        &input::InputContext {
            inbox: inbox.clone(),
            wake: wake.clone(),
            metrics: metrics_for_inputs,
            shutdown: shutdown.clone(),
            limits,
        },
    )
    .await?;
    // Delivery starts once everything else has (the pipeline has cut the queues back to
    // their recorded positions and committed them) and runs until the pipeline has
    // stopped (Running::stop), so what the pipeline queues while it drains is kept.
    let delivery_stop = Shutdown::new();
    let deliveries: Vec<JoinHandle<()>> = delivery_tasks
        .into_iter()
        .map(|(i, task)| {
            tokio::spawn(
                task.with_board(sink_board.clone(), i)
                    .run(delivery_stop.clone()),
            )
        })
        .collect();
    tracing::info!(waiting_batches = inbox.len(), rules = rules.engine().len(), rules_from = ?rules.origin(), "aggregator started");
    Ok(Running {
        ingest_addr,
        admin_addr,
        inputs,
        shutdown,
        ingest,
        admin,
        pipeline,
        notify,
        search_thread,
        deliveries,
        delivery_stop,
        wake,
        rules,
        traffic,
        notifications,
    })
}

impl Running {
    /// Applies what can change without a restart from a reloaded config: its rules (unless
    /// rules were changed at run time: those stay in force). A config whose rules do not
    /// compile changes nothing. Inputs are stopped, restarted or started as the new config
    /// says ([`input::Inputs::reload`]); an input's `format` takes effect at the next
    /// restart. Other changes (ingest and admin listeners, sinks, notifiers) are logged as
    /// needing a restart.
    pub async fn reload(
        &mut self,
        new: &AggregatorConfig,
        old: &AggregatorConfig,
    ) -> anyhow::Result<()> {
        // Rules are compiled against the running sinks and notifiers: a rule naming one
        // the new config adds is refused until the restart that starts it.
        match self.rules.reload_config(&new.rules).map_err(rule_error)? {
            true => tracing::info!(rules = new.rules.len(), "rules reloaded from the config"),
            false => tracing::warn!(
                "rules were changed at run time and stay in force; the config's rules are not applied"
            ),
        }
        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let restart_needed = [
            ("ingest", differs(&new.ingest, &old.ingest)),
            ("admin", differs(&new.admin, &old.admin)),
            ("sinks", differs(&new.sinks, &old.sinks)),
            ("notifiers", differs(&new.notifiers, &old.notifiers)),
            ("alerts", new.alerts != old.alerts),
            ("parse", differs(&new.parse, &old.parse)),
            ("pipeline", differs(&new.pipeline, &old.pipeline)),
            ("stats", differs(&new.stats, &old.stats)),
            ("inbox", differs(&new.inbox, &old.inbox)),
            ("search", differs(&new.search, &old.search)),
            ("data_dir", new.data_dir != old.data_dir),
        ];
        for (section, changed) in restart_needed {
            if changed {
                tracing::warn!(
                    section,
                    "changed in the config; takes effect at the next restart"
                );
            }
        }
        let inputs = self.inputs.reload(&new.inputs).await;
        for name in &inputs.stopped {
            tracing::info!(input = %name, "input removed from the config: stopped");
        }
        for name in &inputs.restarted {
            tracing::info!(input = %name, "input changed in the config: restarted");
        }
        for name in &inputs.started {
            tracing::info!(input = %name, "input added to the config: started");
        }
        for (name, reason) in &inputs.failed {
            tracing::error!(input = %name, reason = %reason, "input could not start with its new settings");
        }
        if inputs.started.iter().chain(&inputs.restarted).any(|name| {
            new.inputs
                .iter()
                // An otlp input's lines are JSON, which detection finds anyway.
                .any(|i| {
                    &i.name() == name
                        && !matches!(i, crate::input::InputConfig::Otlp(_))
                        && i.forced_format().is_some()
                })
        }) {
            tracing::warn!("an input's `format` applies to its lines from the next restart; until then their format is detected");
        }
        Ok(())
    }

    /// Stops accepting, drains in-flight requests, lets the pipeline drain, and returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        let _ = self.ingest.await;
        self.inputs.stop().await;
        let _ = tokio::time::timeout(http::DRAIN_TIMEOUT, self.admin).await;
        self.wake.notify();
        let pipeline = self.pipeline;
        tokio::task::spawn_blocking(move || pipeline.join())
            .await
            .context("joining the pipeline")?
            .map_err(|_| anyhow::anyhow!("the pipeline panicked"))?;
        // Queued sinks deliver until the pipeline is done, then finish their batch.
        self.delivery_stop.trigger();
        for d in self.deliveries {
            let grace = sink::delivery::STOP_GRACE + std::time::Duration::from_secs(2);
            if tokio::time::timeout(grace, d).await.is_err() {
                tracing::warn!("a sink delivery did not stop in time; its events stay queued");
            }
        }
        // The pipeline held the search feed: its thread flushes and ends.
        if let Some(search) = self.search_thread {
            tokio::task::spawn_blocking(move || search.join())
                .await
                .context("joining the search feed")?
                .map_err(|_| anyhow::anyhow!("the search feed panicked"))?;
        }
        let notify = self.notify;
        tokio::task::spawn_blocking(move || notify.join())
            .await
            .context("joining the notification thread")?
            .map_err(|_| anyhow::anyhow!("the notification thread panicked"))?;
        Ok(())
    }
}
