//! The two forms a rule travels in through the rules API: JSON (the default) and TOML
//! (`Content-Type: application/toml` on `POST`/`PUT`, `Accept: application/toml` on
//! `GET`), the same text an operator writes under `[[rules]]` in the config file.
//!
//! A TOML body is one rule as a document (`name = "..."`, `[when]`, `[[actions]]`), or a
//! document holding exactly one `[[rules]]` entry, as copied from a config file. Either
//! way an error names the key as the JSON form does (`actions[0].type`, prefixed
//! `rules[0].` when the body used `[[rules]]`), or the line and column of a syntax
//! error. Reading a rule as TOML gives the first form, which `PUT` takes back unchanged.

use axum::http::{header, HeaderMap};
use serde::Serialize;

use crate::rules::RuleConfig;

/// The media type of TOML rules.
pub const TOML: &str = "application/toml";

/// Why a body is not a rule: the key (empty for the whole body) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    /// Where, as a key path (`when.regex`, `actions[1]`); empty: the body as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A rule body's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`, and any body that does not say TOML.
    Json,
    /// `application/toml` (or `text/toml`).
    Toml,
}

fn is_toml(media: &str) -> bool {
    let media = media.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case(TOML) || media.eq_ignore_ascii_case("text/toml")
}

impl Format {
    /// The form of a request body, from its `Content-Type`.
    pub fn of_body(headers: &HeaderMap) -> Format {
        match headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            Some(t) if is_toml(t) => Format::Toml,
            _ => Format::Json,
        }
    }

    /// The form an answer is asked for in: TOML when `Accept` names it.
    pub fn wanted(headers: &HeaderMap) -> Format {
        let accept = headers.get_all(header::ACCEPT).iter();
        let toml = accept
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(is_toml);
        if toml {
            Format::Toml
        } else {
            Format::Json
        }
    }
}

/// Parses one rule in `format`.
pub fn parse(format: Format, body: &[u8]) -> Result<RuleConfig, BodyError> {
    match format {
        Format::Json => parse_json(body),
        Format::Toml => parse_toml(body),
    }
}

fn path_key(path: String) -> String {
    if path == "." {
        String::new()
    } else {
        path
    }
}

fn parse_json(body: &[u8]) -> Result<RuleConfig, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let rule: RuleConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| BodyError {
        key: path_key(e.path().to_string()),
        message: e.inner().to_string(),
    })?;
    de.end().map_err(|e| BodyError {
        key: String::new(),
        message: e.to_string(),
    })?;
    Ok(rule)
}

fn parse_toml(body: &[u8]) -> Result<RuleConfig, BodyError> {
    let whole = |message: String| BodyError {
        key: String::new(),
        message,
    };
    let text = std::str::from_utf8(body).map_err(|e| whole(format!("not UTF-8: {e}")))?;
    // Syntax first, so its error carries the line and column.
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        whole(format!("invalid TOML: {}", e.to_string().trim_end()))
    })?;
    if doc.len() == 1 && doc.contains_key("rules") {
        let mut rules = crate::rules::config::rules_from_toml(text).map_err(|e| {
            let (key, message) = e.split_once(": ").unwrap_or(("", &e));
            BodyError {
                key: key.to_owned(),
                message: message.to_owned(),
            }
        })?;
        return match (rules.pop(), rules.is_empty()) {
            (Some(rule), true) => Ok(rule),
            _ => Err(BodyError {
                key: "rules".into(),
                message: "give exactly one [[rules]] entry".into(),
            }),
        };
    }
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| BodyError {
        key: path_key(e.path().to_string()),
        message: e.into_inner().message().to_owned(),
    })
}

/// A rule (or anything else serialisable as a TOML document) as TOML text.
pub fn to_toml<T: Serialize>(value: &T) -> Result<String, String> {
    toml::to_string(value).map_err(|e| e.to_string())
}

/// The rules as a config file's `[[rules]]` entries.
pub fn rules_to_toml(rules: &[RuleConfig]) -> Result<String, String> {
    #[derive(Serialize)]
    struct Doc<'a> {
        rules: &'a [RuleConfig],
    }
    to_toml(&Doc { rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const RULE: &str = r#"
name = "page-on-errors"
description = "errors from the shop"

[when]
all = [{ field = "level", gte = "error" }, { field = "k8s.namespace", equals = "shop" }]

[[actions]]
type = "tag"
tags = ["page"]

[[actions]]
type = "alert"
notifier = "oncall"
window = "2m"
above = 10
group_by = "host"
"#;

    #[test]
    fn toml_and_json_give_the_same_rule_and_toml_reads_back() {
        let from_toml = parse(Format::Toml, RULE.as_bytes()).unwrap();
        let json = serde_json::to_vec(&from_toml).unwrap();
        assert_eq!(parse(Format::Json, &json).unwrap(), from_toml);
        assert_eq!(from_toml.actions.len(), 2);
        let text = to_toml(&from_toml).unwrap();
        assert_eq!(parse(Format::Toml, text.as_bytes()).unwrap(), from_toml);
        // As copied from a config file.
        let wrapped = rules_to_toml(std::slice::from_ref(&from_toml)).unwrap();
        assert!(wrapped.starts_with("[[rules]]"), "{wrapped}");
        assert_eq!(parse(Format::Toml, wrapped.as_bytes()).unwrap(), from_toml);
    }

    #[test]
    fn toml_errors_name_the_key_or_the_line() {
        let err = |body: &str| parse(Format::Toml, body.as_bytes()).unwrap_err();
        let e = err("name = \"x\"\n[[actions]]\ntype = \"explode\"\n");
        assert_eq!(e.key, "actions[0].type", "{e:?}");
        assert!(e.message.contains("explode"), "{e:?}");
        let e = err("name = \"x\"\nactions = [{ type = \"tag\", tags = [\"a\"] }]\n[when]\nfeild = \"level\"\n");
        assert_eq!(e.key, "when.feild", "{e:?}");
        assert!(e.message.contains("feild"), "{e:?}");
        let e = err("name = \"x\"\nactions = [{ type = \"sample\", one_in = \"ten\" }]\n");
        // Inside an action (an enum tagged by `type`) the key stops at the action.
        assert_eq!(e.key, "actions[0]", "{e:?}");
        assert!(e.message.contains("ten"), "{e:?}");
        let e = err("name = \"x\"\n");
        assert!(e.message.contains("actions"), "{e:?}");
        let e = err("name = \"x\nactions = []\n");
        assert_eq!(e.key, "");
        assert!(
            e.message.contains("invalid TOML") && e.message.contains("line 1"),
            "{e:?}"
        );
        let e = err("[[rules]]\nname = \"x\"\n[[rules.actions]]\ntype = \"nope\"\n");
        assert_eq!(e.key, "rules[0].actions[0].type", "{e:?}");
        let two = "[[rules]]\nname = \"a\"\nactions = [{ type = \"drop\" }]\n\
                   [[rules]]\nname = \"b\"\nactions = [{ type = \"drop\" }]\n";
        assert_eq!(err(two).key, "rules");
        assert!(err("\u{0}\u{ff}").message.contains("TOML"));
        let bad_utf8 = parse(Format::Toml, &[b'n', 0xff]).unwrap_err();
        assert!(bad_utf8.message.contains("UTF-8"), "{bad_utf8:?}");
    }

    #[test]
    fn formats_come_from_the_headers() {
        let h = |name: header::HeaderName, v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(name, HeaderValue::from_static(v));
            m
        };
        assert_eq!(Format::of_body(&HeaderMap::new()), Format::Json);
        assert_eq!(
            Format::of_body(&h(header::CONTENT_TYPE, "application/toml; charset=utf-8")),
            Format::Toml
        );
        assert_eq!(
            Format::of_body(&h(header::CONTENT_TYPE, "application/json")),
            Format::Json
        );
        assert_eq!(
            Format::wanted(&h(header::ACCEPT, "text/html, application/TOML")),
            Format::Toml
        );
        assert_eq!(Format::wanted(&h(header::ACCEPT, "*/*")), Format::Json);
    }
}
