//! `/api/rules`: list, read, add, replace and delete rules at run time.
//!
//! A rule is the JSON form of a `[[rules]]` entry (`name`, `when`, `actions`, `enabled`),
//! or its TOML form with `Content-Type: application/toml` ([`super::rule_format`]); its
//! id in URLs is its name. `GET` answers TOML when `Accept` asks for `application/toml`:
//! one rule as `PUT` takes it back, the list as a config file's `[[rules]]` entries. Every change is validated, persisted (flushed) and swapped
//! in atomically by [`RuleSet`](crate::rules::RuleSet) before the answer; a refused change
//! leaves everything as it was. Errors name the rule and the key:
//! `{"error":"invalid rule","detail":{"rule":"x","key":"when.regex","message":"..."}}`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::rule_format::{self, Format};
use super::AdminState;
use crate::http::error;
use crate::rules::{Origin, RuleConfig, RuleError, RuleStats};

/// A rule as the API shows it.
#[derive(Debug, Serialize)]
pub struct RuleView {
    /// Its place in evaluation order (0 first).
    pub position: usize,
    /// The rule as written.
    pub rule: RuleConfig,
    /// Its counters since it was created or last changed.
    pub stats: Option<RuleStats>,
}

/// `GET /api/rules`.
#[derive(Debug, Serialize)]
pub struct RuleList {
    /// Where the rules in force come from: the config, or run-time changes.
    pub origin: Origin,
    /// The rules, in order.
    pub rules: Vec<RuleView>,
}

/// `?position=N` on `POST /api/rules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddQuery {
    /// Where to insert the rule (default: last).
    pub position: Option<usize>,
}

fn views(st: &AdminState) -> Vec<RuleView> {
    let engine = st.rules.engine();
    let stats = engine.stats();
    engine
        .configs()
        .into_iter()
        .enumerate()
        .map(|(position, rule)| RuleView {
            position,
            stats: stats.get(position).cloned(),
            rule,
        })
        .collect()
}

/// A TOML answer, or a 500 naming what could not be written.
fn toml_answer(text: Result<String, String>) -> Response {
    match text {
        Ok(t) => (
            [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
            t,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a rule could not be written as TOML");
            error(StatusCode::INTERNAL_SERVER_ERROR, "cannot write TOML", e)
        }
    }
}

/// `GET /api/rules`.
pub async fn list(State(st): State<AdminState>, headers: HeaderMap) -> Response {
    if Format::wanted(&headers) == Format::Toml {
        let rules: Vec<RuleConfig> = views(&st).into_iter().map(|v| v.rule).collect();
        return toml_answer(rule_format::rules_to_toml(&rules));
    }
    Json(RuleList {
        origin: st.rules.origin(),
        rules: views(&st),
    })
    .into_response()
}

/// `GET /api/rules/{id}`.
pub async fn get_one(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match views(&st).into_iter().find(|v| v.rule.name == id) {
        Some(v) if Format::wanted(&headers) == Format::Toml => {
            toml_answer(rule_format::to_toml(&v.rule))
        }
        Some(v) => Json(v).into_response(),
        None => not_found(&id),
    }
}

/// `POST /api/rules[?position=N]`: 201 with the rule.
pub async fn add(
    State(st): State<AdminState>,
    Query(q): Query<AddQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rule = match parse_rule(&headers, &body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let name = rule.name.clone();
    let set = st.rules.clone();
    match tokio::task::spawn_blocking(move || set.add(rule, q.position)).await {
        Ok(Ok(_)) => {
            tracing::info!(rule = %name, "rule added through the API");
            created_or_ok(&st, &name, StatusCode::CREATED)
        }
        Ok(Err(e)) => rule_error(e),
        Err(e) => internal(e),
    }
}

/// `PUT /api/rules/{id}`: replaces the rule in place (the body may rename it).
pub async fn replace(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rule = match parse_rule(&headers, &body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let name = rule.name.clone();
    let set = st.rules.clone();
    let old = id.clone();
    match tokio::task::spawn_blocking(move || set.replace(&old, rule)).await {
        Ok(Ok(())) => {
            tracing::info!(rule = %id, now = %name, "rule replaced through the API");
            created_or_ok(&st, &name, StatusCode::OK)
        }
        Ok(Err(e)) => rule_error(e),
        Err(e) => internal(e),
    }
}

/// `DELETE /api/rules/{id}`: answers the deleted rule.
pub async fn delete(State(st): State<AdminState>, Path(id): Path<String>) -> Response {
    let set = st.rules.clone();
    let name = id.clone();
    match tokio::task::spawn_blocking(move || set.delete(&name)).await {
        Ok(Ok(rule)) => {
            tracing::info!(rule = %id, "rule deleted through the API");
            Json(serde_json::json!({ "deleted": rule })).into_response()
        }
        Ok(Err(e)) => rule_error(e),
        Err(e) => internal(e),
    }
}

fn created_or_ok(st: &AdminState, name: &str, status: StatusCode) -> Response {
    match views(st).into_iter().find(|v| v.rule.name == name) {
        Some(v) => (status, Json(v)).into_response(),
        // Changed again in between: the change itself succeeded.
        None => (status, Json(serde_json::json!({ "name": name }))).into_response(),
    }
}

/// Parses a rule in the body's form, naming the key of the first error.
fn parse_rule(headers: &HeaderMap, body: &[u8]) -> Result<RuleConfig, Box<Response>> {
    rule_format::parse(Format::of_body(headers), body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid rule",
            serde_json::json!({ "key": e.key, "message": e.message }),
        ))
    })
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "rule not found",
        serde_json::json!({ "rule": id }),
    )
}

fn rule_error(e: RuleError) -> Response {
    match e {
        RuleError::Invalid {
            rule, key, message, ..
        } => error(
            StatusCode::BAD_REQUEST,
            "invalid rule",
            serde_json::json!({ "rule": rule, "key": key, "message": message }),
        ),
        RuleError::Duplicate(name) => error(
            StatusCode::CONFLICT,
            "a rule with this name exists",
            serde_json::json!({ "rule": name }),
        ),
        RuleError::NotFound(name) => not_found(&name),
        e @ (RuleError::Persisted(_) | RuleError::Store(_)) => {
            tracing::error!(error = %e, "a rule change could not be persisted; nothing changed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot persist the rules",
                e.to_string(),
            )
        }
    }
}

fn internal(e: tokio::task::JoinError) -> Response {
    tracing::error!(error = %e, "a rule change failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error",
        "the change did not complete; see the aggregator's log",
    )
}
