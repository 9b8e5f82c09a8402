//! `GET /api/openapi.json`: an OpenAPI 3.0 description of the admin endpoint. It is
//! written by hand next to [`super::ROUTES`]; a test checks that the two list the same
//! operations and that the router serves each of them.

use serde_json::{json, Value};

fn error_responses(codes: &[&str]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for c in codes {
        let what = match *c {
            "400" => "Invalid request; `detail` names the key and the reason",
            "401" => "Missing or unknown token",
            "403" => "The token's role does not allow this",
            "404" => "No such rule",
            "409" => "A rule with this name exists",
            "413" => "Body too large",
            "500" => "The change could not be persisted; nothing changed",
            "503" => "Not ready, or no capacity left; `detail` says why",
            _ => "Error",
        };
        m.insert(
            (*c).to_owned(),
            json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    m
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn op(summary: &str, ok_code: &str, ok_body: Value, errors: &[&str], secured: bool) -> Value {
    let mut responses = error_responses(errors);
    responses.insert(ok_code.to_owned(), ok_body);
    let mut o = json!({"summary": summary, "responses": responses});
    if !secured {
        o["security"] = json!([]);
    }
    o
}

/// A static file of the web page.
fn asset(content_type: &str) -> Value {
    json!({"description": "The file", "content": {content_type: {"schema": {"type": "string"}}}})
}

fn rule_ref() -> Value {
    json!({"$ref": "#/components/schemas/Rule"})
}

/// A rule body: JSON, or TOML as under `[[rules]]` in the config file.
fn rule_body() -> Value {
    json!({"required": true, "content": {
        "application/json": {"schema": rule_ref()},
        "application/toml": {"schema": {"type": "string"}, "description": "The rule as TOML: name = ..., [when], [[actions]] (or one [[rules]] entry as in the config file); errors name the key, or the line and column of a syntax error"},
    }})
}

fn id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true, "description": "The rule's name", "schema": {"type": "string"}}])
}

/// The filters `/api/logs` and `/api/tail` share ([`super::query`]), then `extra`.
fn filter_params(extra: &[Value]) -> Value {
    let mut p = vec![
        json!({"name": "q", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Text the event's JSON line contains (ASCII case ignored)"}),
        json!({"name": "level", "in": "query", "required": false, "schema": {"type": "string"}, "description": "This level or above"}),
        json!({"name": "source", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Prefix of source.path"}),
        json!({"name": "host", "in": "query", "required": false, "schema": {"type": "string"}}),
        json!({"name": "namespace", "in": "query", "required": false, "schema": {"type": "string"}}),
    ];
    p.extend_from_slice(extra);
    Value::Array(p)
}

/// The document.
pub fn document() -> Value {
    let read = ["401", "403"];
    let view = || json!({"$ref": "#/components/schemas/RuleView"});
    let mut add_responses = error_responses(&["400", "401", "403", "409", "413", "500"]);
    add_responses.insert("201".into(), ok("Added", view()));
    let mut put_responses = error_responses(&["400", "401", "403", "404", "409", "413", "500"]);
    put_responses.insert("200".into(), ok("Replaced", view()));
    let mut logs_responses = error_responses(&["400", "401", "403", "503"]);
    logs_responses.insert(
        "200".into(),
        ok(
            "A page of events",
            json!({"type": "object", "properties": {"events": {"type": "array", "items": {"type": "object"}}, "next_cursor": {"type": "string", "nullable": true}}}),
        ),
    );
    let mut tail_responses = error_responses(&["400", "401", "403", "503"]);
    tail_responses.insert(
        "200".into(),
        json!({"description": "Event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}),
    );
    let mut dead_responses = error_responses(&["400", "401", "403", "404", "500"]);
    dead_responses.insert(
        "200".into(),
        ok(
            "A page of dead letters",
            json!({"type": "object", "properties": {"sink": {"type": "string"}, "dead_letters": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "at": {"type": "string"}, "reason": {"type": "string"}, "event": {}}}}, "next": {"type": "integer", "nullable": true}}}),
        ),
    );
    let mut stats_responses = error_responses(&["400", "401", "403"]);
    stats_responses.insert(
        "200".into(),
        ok(
            "Summaries",
            json!({"type": "object", "properties": {"traffic": {"type": "object"}, "alerts_firing": {"type": "array"}, "notifications": {"type": "object"}}}),
        ),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Logferry aggregator admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Health, metrics, rules, traffic summaries. Reads need a viewer token, changes an admin token (Authorization: Bearer); with no tokens configured the API is open on a loopback listener only.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "detail": {}},
                },
                "Rule": {
                    "type": "object",
                    "required": ["name", "actions"],
                    "description": "A rule as in the config's [[rules]]: see README, Rules and alerts.",
                    "properties": {
                        "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
                        "enabled": {"type": "boolean", "default": true},
                        "when": {"type": "object", "description": "Condition: {field, equals|not_equals|in|contains|starts_with|ends_with|regex|exists|lt|lte|gt|gte} or {all|any: [...]} or {not: {...}}"},
                        "actions": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string", "enum": ["drop", "sample", "rate_limit", "set", "rename", "remove", "tag", "redact", "route", "notify", "alert"]}}}},
                    },
                },
                "RuleView": {
                    "type": "object",
                    "properties": {
                        "position": {"type": "integer"},
                        "rule": rule_ref(),
                        "stats": {"type": "object", "properties": {
                            "name": {"type": "string"}, "matched": {"type": "integer"},
                            "dropped": {"type": "integer"}, "redacted": {"type": "integer"},
                            "firing": {"type": "array", "items": {"type": "array"}},
                        }},
                    },
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": op("Liveness", "200", ok("Serving", json!({"type": "object"})), &[], false)},
            "/readyz": {"get": op("Readiness: data dir writable, inbox below its limit", "200", ok("Ready", json!({"type": "object"})), &["503"], false)},
            "/metrics": {"get": op("Prometheus text exposition (logferry_ prefix)", "200", json!({"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}), &[], false)},
            "/api/rules": {
                "get": op("The rules in force, in order, with their counters (with Accept: application/toml, the rules as a config file's [[rules]] entries)", "200", json!({"description": "Rules", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {"origin": {"type": "object"}, "rules": {"type": "array", "items": {"$ref": "#/components/schemas/RuleView"}}}}},
                    "application/toml": {"schema": {"type": "string"}},
                }}), &read, true),
                "post": {
                    "summary": "Add a rule (validated, persisted, applied atomically)",
                    "parameters": [{"name": "position", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}, "description": "Where to insert (default: last)"}],
                    "requestBody": rule_body(),
                    "responses": add_responses,
                },
            },
            "/api/rules/{id}": {
                "parameters": id_param(),
                "get": op("One rule (with Accept: application/toml, the rule as TOML, as PUT takes it back)", "200", json!({"description": "The rule", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RuleView"}},
                    "application/toml": {"schema": {"type": "string"}},
                }}), &["401", "403", "404"], true),
                "put": {
                    "summary": "Replace a rule in place (the body may rename it)",
                    "requestBody": rule_body(),
                    "responses": put_responses,
                },
                "delete": op("Delete a rule", "200", ok("The deleted rule", json!({"type": "object", "properties": {"deleted": rule_ref()}})), &["401", "403", "404", "500"], true),
            },
            "/api/stats": {"get": {
                "summary": "Traffic summaries per interval, alerts firing now, notification counters",
                "parameters": [{"name": "last", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}, "description": "Only the last N intervals"}],
                "responses": stats_responses,
            }},
            "/api/logs": {"get": {
                "summary": "Search recent events, newest first, a page at a time",
                "parameters": filter_params(&[
                    json!({"name": "since", "in": "query", "required": false, "schema": {"type": "string"}, "description": "RFC 3339, epoch ms, or a duration ago (15m); inclusive"}),
                    json!({"name": "until", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Same forms; exclusive"}),
                    json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}),
                    json!({"name": "cursor", "in": "query", "required": false, "schema": {"type": "string"}, "description": "next_cursor of the previous page"}),
                ]),
                "responses": logs_responses,
            }},
            "/api/tail": {"get": {
                "summary": "Live stream of kept events (Server-Sent Events; data: one JSON line; event: lagged with the number of batches missed)",
                "parameters": filter_params(&[]),
                "responses": tail_responses,
            }},
            "/api/agents": {"get": op("Agents seen since start: last seen, batches, duplicates, events, bytes, last seq, version, host, delay of the last batch", "200", ok("Agents", json!({"type": "object", "properties": {"agents": {"type": "array", "items": {"type": "object"}}}})), &read, true)},
            "/api/sinks": {"get": op("Each sink's writes, failures, last write and last error (queued sinks: their queue, deliveries and dead letters), and the inbox they share", "200", ok("Sinks", json!({"type": "object", "properties": {"sinks": {"type": "array", "items": {"type": "object"}}, "queue": {"type": "object"}}})), &read, true)},
            "/api/sinks/{name}/dead-letters": {
                "parameters": [{"name": "name", "in": "path", "required": true, "description": "A queued sink's name", "schema": {"type": "string"}}],
                "get": {
                    "summary": "Events the sink's service refused for good, oldest first, a page at a time",
                    "parameters": [
                        {"name": "after", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}, "description": "next of the previous page"},
                        {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                    ],
                    "responses": dead_responses,
                },
                "delete": op("Remove every dead letter of the sink", "200", ok("How many were removed", json!({"type": "object", "properties": {"sink": {"type": "string"}, "removed": {"type": "integer"}}})), &["401", "403", "404", "500"], true),
            },
            "/api/openapi.json": {"get": op("This document", "200", ok("OpenAPI 3", json!({"type": "object"})), &read, true)},
            "/": {"get": op("The web page (search, live tail, stats, rules, agents, sinks); its script calls the API with the token typed into it", "200", asset("text/html"), &[], false)},
            "/ui/common.js": {"get": op("The web page's shared helpers (elements as text, token, API calls)", "200", asset("text/javascript"), &[], false)},
            "/ui/chart.js": {"get": op("The web page's traffic chart (SVG)", "200", asset("text/javascript"), &[], false)},
            "/ui/rules.js": {"get": op("The web page's rules view (JSON and TOML editor)", "200", asset("text/javascript"), &[], false)},
            "/ui/app.js": {"get": op("The web page's script", "200", asset("text/javascript"), &[], false)},
            "/ui/style.css": {"get": op("The web page's style sheet", "200", asset("text/css"), &[], false)},
        },
    })
}
