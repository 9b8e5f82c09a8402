//! Loading TOML configs: environment interpolation, environment overrides, and errors
//! that name the key.
//!
//! Order of operations:
//! 1. The file is parsed as TOML (a syntax error names the line and column).
//! 2. Keys are overridden from the environment: `<PREFIX>__A__B=value` sets `a.b`
//!    (segments are lowercased; a number addresses an array element, e.g.
//!    `LOGFERRY_AGENT__INPUTS__0__INCLUDE`). The value replaces a string as a string;
//!    otherwise it is read as a TOML value (`true`, `5`, `["a","b"]`) and kept as a string
//!    if that fails.
//! 3. In every string value, `${VAR}` is replaced by the variable (an error when unset),
//!    `${VAR:-default}` falls back to `default` when unset or empty, `${VAR:?message}`
//!    fails with `message` when unset or empty, and `$$` is a literal `$`.
//! 4. The tree is deserialised into the typed config; every config struct uses
//!    `deny_unknown_fields`, so a misspelt key is an error that names it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// What a bounded store does when it is full: the agent's spool (`[spool] when_full`) and
/// the aggregator's sink queues (`[sinks.NAME.queue] when_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Back-pressure: take nothing more until there is room (the agent stops reading and
    /// the files keep the data; the aggregator stops taking batches and ingest answers 429).
    #[default]
    Block,
    /// Make room by dropping the oldest entries (counted and logged).
    DropOldest,
}

/// A config problem, with the key it concerns where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}: invalid TOML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// Parser message with line and column.
        message: String,
    },
    /// A key has an unusable value.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted key path, e.g. `output.tls.ca`.
        key: String,
        /// Why it is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Reads, overrides, interpolates and deserialises the config at `path`.
/// `env_prefix` is e.g. `LOGFERRY_AGENT`.
pub fn load<T: DeserializeOwned>(path: &Path, env_prefix: &str) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let vars: Vec<(String, String)> = std::env::vars().collect();
    from_str(&text, &path.display().to_string(), &vars, env_prefix)
}

/// Like [`load`] with the text and environment given; `origin` names the text in errors.
pub fn from_str<T: DeserializeOwned>(
    text: &str,
    origin: &str,
    env: &[(String, String)],
    env_prefix: &str,
) -> Result<T, ConfigError> {
    let mut root: toml::Value = toml::from_str::<toml::Table>(text)
        .map(toml::Value::Table)
        .map_err(|e| ConfigError::Syntax {
            path: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
    apply_env_overrides(&mut root, env, env_prefix)?;
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    interpolate_tree(&mut root, &mut String::new(), &lookup)?;
    let de = root;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." {
            "(top level)".to_owned()
        } else {
            key
        };
        ConfigError::Invalid {
            key,
            message: e.into_inner().to_string(),
        }
    })
}

fn apply_env_overrides(
    root: &mut toml::Value,
    env: &[(String, String)],
    prefix: &str,
) -> Result<(), ConfigError> {
    let full_prefix = format!("{prefix}__");
    let mut overrides: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(&full_prefix))
        .collect();
    overrides.sort();
    for (name, value) in overrides {
        let path: Vec<String> = name[full_prefix.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::invalid(
                name.clone(),
                "empty key segment in override",
            ));
        }
        set_path(root, &path, value).map_err(|m| ConfigError::invalid(name.clone(), m))?;
    }
    Ok(())
}

fn set_path(root: &mut toml::Value, path: &[String], raw: &str) -> Result<(), String> {
    let mut node = root;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        node = match node {
            toml::Value::Table(t) => {
                if last {
                    let value = match t.get(seg) {
                        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
                        _ => parse_scalar(raw),
                    };
                    t.insert(seg.clone(), value);
                    return Ok(());
                }
                t.entry(seg.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| format!("`{seg}` is not an array index"))?;
                let len = a.len();
                let slot = a
                    .get_mut(idx)
                    .ok_or_else(|| format!("index {idx} is past the end of an array of {len}"))?;
                if last {
                    let value = match slot {
                        toml::Value::String(_) => toml::Value::String(raw.to_owned()),
                        _ => parse_scalar(raw),
                    };
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => return Err(format!("`{seg}` is below a value that is not a table")),
        };
    }
    Ok(())
}

fn parse_scalar(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn interpolate_tree(
    node: &mut toml::Value,
    key: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match node {
        toml::Value::String(s) if s.contains('$') => {
            *s = interpolate(s, env).map_err(|m| ConfigError::invalid(key.clone(), m))?;
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let len = key.len();
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
                interpolate_tree(v, key, env)?;
                key.truncate(len);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                let len = key.len();
                key.push_str(&format!("[{i}]"));
                interpolate_tree(v, key, env)?;
                key.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `$$` in `input`.
pub fn interpolate(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unclosed `${` in value".to_owned())?;
            out.push_str(&expand(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, op) = match expr.find(':') {
        Some(i) => (&expr[..i], Some(&expr[i + 1..])),
        None => (expr, None),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(format!("`${{{expr}}}` is not a valid variable reference"));
    }
    let value = env(name);
    match op {
        None => value.ok_or_else(|| format!("environment variable {name} is not set")),
        Some(op) => {
            let set = value.filter(|v| !v.is_empty());
            if let Some(default) = op.strip_prefix('-') {
                Ok(set.unwrap_or_else(|| default.to_owned()))
            } else if let Some(message) = op.strip_prefix('?') {
                set.ok_or_else(|| format!("{name}: {message}"))
            } else {
                Err(format!(
                    "`${{{expr}}}`: expected `:-` or `:?` after the name"
                ))
            }
        }
    }
}

/// Checks that `path` names a readable regular file; the error names `key`.
pub fn require_file(key: &str, path: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(ConfigError::invalid(
            key,
            format!("{} is not a file", path.display()),
        )),
        Err(e) => Err(ConfigError::invalid(
            key,
            format!("{}: {e}", path.display()),
        )),
    }
}

/// Reads a secret from a file, trimming one trailing newline (as `echo` and editors add).
pub fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let s = std::fs::read_to_string(path)?;
    Ok(s.strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&s)
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        data_dir: String,
        #[serde(default)]
        output: Output,
        #[serde(default)]
        inputs: Vec<Input>,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Output {
        #[serde(default)]
        url: String,
        #[serde(default)]
        batch_bytes: u64,
        #[serde(default)]
        token: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Input {
        include: Vec<String>,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn interpolation_forms() {
        let e = |n: &str| match n {
            "HOST" => Some("agg".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            interpolate("https://${HOST}:1", &e).unwrap(),
            "https://agg:1"
        );
        assert_eq!(interpolate("${MISSING:-dflt}", &e).unwrap(), "dflt");
        assert_eq!(interpolate("${EMPTY:-dflt}", &e).unwrap(), "dflt");
        assert_eq!(
            interpolate("cost $$5 and $x", &e).unwrap(),
            "cost $5 and $x"
        );
        assert_eq!(
            interpolate("${MISSING:?set it please}", &e).unwrap_err(),
            "MISSING: set it please"
        );
        assert!(interpolate("${MISSING}", &e)
            .unwrap_err()
            .contains("MISSING is not set"));
        assert!(interpolate("${HOST", &e).is_err());
        assert!(interpolate("${1BAD}", &e).is_err());
        assert!(interpolate("${HOST:x}", &e).is_err());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = from_str::<Cfg>(
            "data_dir = \"/d\"\n[output]\nurll = \"x\"\n",
            "t.toml",
            &[],
            "P",
        )
        .unwrap_err();
        match err {
            ConfigError::Invalid { key, message } => {
                assert_eq!(key, "output.urll");
                assert!(message.contains("unknown field `urll`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_type_is_named_with_the_full_path() {
        let err = from_str::<Cfg>(
            "data_dir = \"/d\"\n[output]\nbatch_bytes = \"lots\"\n",
            "t.toml",
            &[],
            "P",
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "output.batch_bytes"),
            "{err}"
        );
    }

    #[test]
    fn interpolation_error_names_the_key() {
        let err = from_str::<Cfg>(
            "data_dir = \"${NOPE:?data dir needed}\"\n",
            "t.toml",
            &[],
            "P",
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "data_dir: NOPE: data dir needed");
    }

    #[test]
    fn syntax_error_names_the_file_and_line() {
        let err = from_str::<Cfg>("data_dir = \n", "t.toml", &[], "P").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.toml: invalid TOML"), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn env_overrides_set_nested_keys_and_keep_types() {
        let text = "data_dir = \"/d\"\n[output]\nurl = \"a\"\ntoken = \"t\"\n[[inputs]]\ninclude = [\"/x\"]\n";
        let cfg: Cfg = from_str(
            text,
            "t.toml",
            &env(&[
                ("P__OUTPUT__URL", "https://${H}"),
                ("P__OUTPUT__BATCH_BYTES", "2048"),
                ("P__OUTPUT__TOKEN", "1234"),
                ("P__INPUTS__0__INCLUDE", "[\"/y\", \"/z\"]"),
                ("H", "agg"),
                ("OTHER__OUTPUT__URL", "ignored"),
            ]),
            "P",
        )
        .unwrap();
        assert_eq!(cfg.output.url, "https://agg");
        assert_eq!(cfg.output.batch_bytes, 2048);
        // A string key stays a string even when the value looks like a number.
        assert_eq!(cfg.output.token.as_deref(), Some("1234"));
        assert_eq!(cfg.inputs[0].include, vec!["/y", "/z"]);
    }

    #[test]
    fn env_override_of_a_misspelt_key_is_an_error() {
        let err = from_str::<Cfg>(
            "data_dir = \"/d\"\n",
            "t.toml",
            &env(&[("P__OUTPUTT__URL", "x")]),
            "P",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `outputt`"), "{err}");
        let err = from_str::<Cfg>(
            "data_dir = \"/d\"\n",
            "t.toml",
            &env(&[("P__INPUTS__3__INCLUDE", "x")]),
            "P",
        );
        // inputs is absent, so the override creates a table where a list is expected.
        assert!(err.is_err());
    }

    #[test]
    fn secret_files_lose_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "s3cret\n").unwrap();
        assert_eq!(read_secret_file(&p).unwrap(), "s3cret");
        std::fs::write(&p, "s3cret\r\n").unwrap();
        assert_eq!(read_secret_file(&p).unwrap(), "s3cret");
    }
}
