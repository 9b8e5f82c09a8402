//! The aggregator's admin endpoint (127.0.0.1 by default; plain HTTP, or HTTPS only with
//! `[admin.tls]`, served as ingest is by [`crate::http::serve_tls`]).
//!
//! - `/healthz` (the process serves requests), `/readyz` (the data dir is writable and the
//!   inbox is below its limit; 503 with the reason otherwise) and `/metrics`: no token.
//! - `/api/...`: the rules API ([`rules`]), the traffic summaries and alert states
//!   (`/api/stats`), log search ([`logs`], `/api/logs`), live tail ([`tail`], `/api/tail`), the agents seen (`/api/agents`), the sinks' state (`/api/sinks`) and
//!   the OpenAPI document (`/api/openapi.json`, [`openapi`]); reads need
//!   a `viewer` token, changes an `admin` one ([`auth`]).
//! - `/`: the web page ([`web`]; its script and style under `/ui/`), no token: the API
//!   calls it makes need one.
//!
//! Errors are JSON `{"error": ..., "detail": ...}` with the matching status.

pub mod auth;
pub mod background;
pub mod logs;
pub mod openapi;
pub mod query;
pub mod rule_format;
pub mod rules;
pub mod sinks;
pub mod tail;
#[cfg(test)]
mod tests;
pub mod web;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::http::error;
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::notify::service::DeliveryStats;
use crate::rules::RuleSet;
use crate::stats::SharedTraffic;
pub use auth::{AdminAuth, AdminTokenConfig, Role};

/// Most connections an HTTPS admin endpoint serves at once; more wait in the backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// Largest request body the API accepts (a rule).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Every route, as (method, path): the router serves exactly these, and the OpenAPI
/// document describes exactly these (a test holds all three together).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/rules"),
    ("POST", "/api/rules"),
    ("GET", "/api/rules/{id}"),
    ("PUT", "/api/rules/{id}"),
    ("DELETE", "/api/rules/{id}"),
    ("GET", "/api/stats"),
    ("GET", "/api/logs"),
    ("GET", "/api/tail"),
    ("GET", "/api/agents"),
    ("GET", "/api/sinks"),
    ("GET", "/api/sinks/{name}/dead-letters"),
    ("DELETE", "/api/sinks/{name}/dead-letters"),
    ("GET", "/api/openapi.json"),
    ("GET", "/"),
    ("GET", "/ui/common.js"),
    ("GET", "/ui/chart.js"),
    ("GET", "/ui/rules.js"),
    ("GET", "/ui/app.js"),
    ("GET", "/ui/style.css"),
];

/// What the admin handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The inbox.
    pub inbox: Arc<Inbox>,
    /// The data dir, checked for writability.
    pub data_dir: PathBuf,
    /// Who may use the API.
    pub auth: Arc<AdminAuth>,
    /// The rules in force.
    pub rules: Arc<RuleSet>,
    /// The traffic summaries.
    pub traffic: Arc<SharedTraffic>,
    /// Notification delivery counters.
    pub notifications: Arc<DeliveryStats>,
    /// The agents seen.
    pub agents: Arc<crate::agents::AgentRegistry>,
    /// The sinks' state.
    pub sinks: Arc<crate::sink::SinkBoard>,
    /// Where the pipeline publishes lines for live tail.
    pub tail: Option<crate::pipeline::TailSender>,
    /// Live tails running, at most [`tail::MAX_TAILS`].
    pub tails: Arc<tokio::sync::Semaphore>,
    /// Ends live tails at shutdown.
    pub shutdown: logferry_shared::runtime::Shutdown,
    /// Recent events for log search, when enabled.
    pub search: Option<Arc<crate::search::EventStore>>,
    /// Where searches run (threads of lower priority, bounded).
    pub searches: Arc<background::Background>,
    /// Where live tails filter frames (threads of lower priority, bounded).
    pub tail_filters: Arc<background::Background>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/rules", get(rules::list).post(rules::add))
        .route(
            "/rules/{id}",
            get(rules::get_one)
                .put(rules::replace)
                .delete(rules::delete),
        )
        .route("/stats", get(stats))
        .route(
            "/agents",
            get(|State(st): State<AdminState>| async move {
                Json(serde_json::json!({ "agents": st.agents.list() }))
            }),
        )
        .route("/sinks", get(sinks))
        .route(
            "/sinks/{name}/dead-letters",
            get(sinks::list).delete(sinks::purge),
        )
        .route("/tail", get(tail::tail))
        .route("/logs", get(logs::logs))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not found",
                "see /api/openapi.json for the endpoints",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(web::index))
        .route(
            "/ui/common.js",
            get(|| async { web::script("/ui/common.js") }),
        )
        .route(
            "/ui/chart.js",
            get(|| async { web::script("/ui/chart.js") }),
        )
        .route(
            "/ui/rules.js",
            get(|| async { web::script("/ui/rules.js") }),
        )
        .route("/ui/app.js", get(|| async { web::script("/ui/app.js") }))
        .route("/ui/style.css", get(web::style_css))
        .nest("/api", api)
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not found",
                "see /healthz, /readyz, /metrics and /api/openapi.json",
            )
        })
        .with_state(state)
}

/// Reads need a `viewer` token, anything else an `admin` one.
async fn authorize(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let needed = match *req.method() {
        Method::GET | Method::HEAD => Role::Viewer,
        _ => Role::Admin,
    };
    match st.auth.check(req.headers(), needed) {
        Ok(()) => next.run(req).await,
        Err(auth::Refusal::Unauthenticated) => {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <token> with a token from [admin] tokens",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            resp
        }
        Err(auth::Refusal::Forbidden) => error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs a token with the `{}` role", role_name(needed)),
        ),
        Err(auth::Refusal::NotConfigured) => error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin API listens beyond loopback without [admin] tokens; configure tokens to use it",
        ),
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Viewer => "viewer",
        Role::Admin => "admin",
    }
}

/// `GET /api/sinks`: each sink's writes and failures, and the queue they share (the
/// inbox: a batch leaves it once every sink has it).
async fn sinks(State(st): State<AdminState>) -> Response {
    Json(serde_json::json!({
        "sinks": st.sinks.snapshot(),
        "queue": {
            "kind": "inbox",
            "batches": st.inbox.len(),
            "bytes": st.inbox.bytes(),
            "max_bytes": st.inbox.max_bytes(),
        },
    }))
    .into_response()
}

/// `?last=N` on `/api/stats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// Only the last N intervals.
    last: Option<usize>,
}

/// `GET /api/stats`: traffic summaries, alerts firing now, notification counters.
async fn stats(
    State(st): State<AdminState>,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", e.body_text()),
    };
    let now_ms = logferry_shared::event::Timestamp::now().as_millis().max(0) as u64;
    let traffic = st.traffic.snapshot(now_ms, q.last);
    let alerts: Vec<serde_json::Value> = st
        .rules
        .stats()
        .into_iter()
        .flat_map(|r| {
            let rule = r.name;
            r.firing.into_iter().map(move |(group, since_ms)| {
                serde_json::json!({
                    "rule": rule,
                    "group": group,
                    "since": logferry_shared::event::Timestamp::from_millis(since_ms),
                })
            })
        })
        .collect();
    let n = &st.notifications;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    Json(serde_json::json!({
        "traffic": traffic,
        "alerts_firing": alerts,
        "notifications": {
            "delivered": load(&n.delivered),
            "failed_attempts": load(&n.failed_attempts),
            "dropped": load(&n.dropped),
            "duplicates": load(&n.duplicates),
        },
    }))
    .into_response()
}

async fn readyz(State(st): State<AdminState>) -> Response {
    let dir = st.data_dir.clone();
    let writable = tokio::task::spawn_blocking(move || {
        let probe = dir.join(".readyz-probe");
        std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe))
    })
    .await;
    let inbox = serde_json::json!({"bytes": st.inbox.bytes(), "max_bytes": st.inbox.max_bytes(), "batches": st.inbox.len()});
    let problems = st.sinks.problems();
    let reason = match writable {
        Ok(Ok(())) if st.inbox.bytes() >= st.inbox.max_bytes() => Some("inbox full".to_owned()),
        Ok(Ok(())) if !problems.is_empty() => Some(
            problems
                .iter()
                .map(|(sink, p)| format!("sink {sink}: queue {p}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("data dir not writable: {e}")),
        Err(e) => Some(format!("data dir check failed: {e}")),
    };
    match reason {
        Some(reason) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            serde_json::json!({"reason": reason, "inbox": inbox}),
        ),
        None => Json(serde_json::json!({"status": "ready", "inbox": inbox})).into_response(),
    }
}

async fn metrics(State(st): State<AdminState>) -> Response {
    st.metrics.inbox_bytes.set(st.inbox.bytes() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}
