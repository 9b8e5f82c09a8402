//! The rules API in TOML over real HTTP: added, read back, replaced and listed as TOML,
//! errors naming the key, roles as for JSON.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{serve, tokens, Served};

async fn send(
    s: &Served,
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, String, String) {
    let mut req = s.client.request(method, s.url(path)).bearer_auth(token);
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    if let Some(b) = body {
        req = req.body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ty = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ty, resp.text().await.unwrap())
}

const RULE: &str = r#"
name = "toml-errors"

[when]
field = "level"
gte = "error"

[[actions]]
type = "tag"
tags = ["paged"]
"#;

#[tokio::test]
async fn rules_go_in_and_out_as_toml() {
    let s = serve(tokens(), true).await;
    let toml = Some("application/toml");
    let (st, _, body) = send(
        &s,
        Method::POST,
        "/api/rules",
        "view",
        toml,
        None,
        Some(RULE),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let (st, ty, body) = send(
        &s,
        Method::POST,
        "/api/rules",
        "boss",
        toml,
        None,
        Some(RULE),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert!(ty.starts_with("application/json"), "{ty}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rule"]["name"], "toml-errors");
    assert_eq!(v["rule"]["when"]["gte"], "error");
    assert_eq!(s.rules.list().len(), 1);

    // A bad rule names the key, and nothing changes.
    let bad = RULE.replace("tags = [\"paged\"]", "tags = \"paged\"");
    let bad = bad.replace("toml-errors", "toml-bad");
    let (st, _, body) = send(
        &s,
        Method::POST,
        "/api/rules",
        "boss",
        toml,
        None,
        Some(&bad),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "invalid rule");
    assert_eq!(v["detail"]["key"], "actions[0]", "{v}");
    assert!(
        v["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("sequence"),
        "{v}"
    );
    let (st, _, body) = send(
        &s,
        Method::POST,
        "/api/rules",
        "boss",
        toml,
        None,
        Some("name = \"x\"\n[when\n"),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("invalid TOML") && body.contains("line 2"),
        "{body}"
    );
    // A TOML rule that does not compile is named by the rule engine as for JSON.
    let regex = RULE.replace("gte = \"error\"", "regex = \"(\"");
    let (st, _, body) = send(
        &s,
        Method::POST,
        "/api/rules",
        "boss",
        toml,
        None,
        Some(&regex),
    )
    .await;
    assert!(
        st == StatusCode::BAD_REQUEST || st == StatusCode::CONFLICT,
        "{body}"
    );
    assert_eq!(s.rules.list().len(), 1, "nothing changed");

    // Read back as TOML, changed, and put back.
    let (st, ty, text) = send(
        &s,
        Method::GET,
        "/api/rules/toml-errors",
        "view",
        None,
        Some("application/toml"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    assert!(ty.starts_with("application/toml"), "{ty}");
    assert!(text.contains("name = \"toml-errors\""), "{text}");
    let changed = text.replace("\"paged\"", "\"paged\", \"night\"");
    assert_ne!(changed, text, "{text}");
    let (st, _, body) = send(
        &s,
        Method::PUT,
        "/api/rules/toml-errors",
        "boss",
        Some("application/toml; charset=utf-8"),
        None,
        Some(&changed),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["rule"]["actions"][0]["tags"],
        serde_json::json!(["paged", "night"])
    );

    // The whole list as a config file's [[rules]].
    let (st, _, text) = send(
        &s,
        Method::GET,
        "/api/rules",
        "view",
        None,
        Some("application/toml"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let rules = crate::rules::config::rules_from_toml(&text).unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0], s.rules.list()[0]);
    // JSON stays the default.
    let (_, ty, _) = send(&s, Method::GET, "/api/rules", "view", None, None, None).await;
    assert!(ty.starts_with("application/json"), "{ty}");
}
