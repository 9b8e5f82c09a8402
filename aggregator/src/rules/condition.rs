//! Conditions, compiled once from [`ConditionConfig`]: field paths resolved, regexes
//! built, literals normalised (a level name becomes a [`Level`], a number is kept both as
//! text and as a number). Evaluation borrows from the event and never allocates.

use logferry_shared::event::Level;
use regex::Regex;

use super::config::{ConditionConfig, Literal};
use super::event::{FieldRef, RuleEvent, View};
use crate::parse::level;

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Always true (a rule without `when`).
    Always,
    /// Every one holds.
    All(Vec<Condition>),
    /// At least one holds.
    Any(Vec<Condition>),
    /// Does not hold.
    Not(Box<Condition>),
    /// A test on one field.
    Test(FieldRef, Test),
}

/// A test on one field's value.
#[derive(Debug, Clone)]
pub enum Test {
    /// Equal to the value.
    Equals(Expected),
    /// Present and not equal.
    NotEquals(Expected),
    /// Equal to one of them.
    In(Vec<Expected>),
    /// Contains the text (searcher built once).
    Contains(Box<memchr::memmem::Finder<'static>>),
    /// Starts with the text.
    StartsWith(String),
    /// Ends with the text.
    EndsWith(String),
    /// Matches the regex.
    Regex(Regex),
    /// Numeric comparison.
    Compare(Cmp, f64),
    /// Level comparison.
    CompareLevel(Cmp, Level),
    /// Present (true) or absent (false).
    Exists(bool),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Lte => a <= b,
            Cmp::Gt => a > b,
            Cmp::Gte => a >= b,
        }
    }
}

/// A literal prepared for equality against any kind of value.
#[derive(Debug, Clone)]
pub struct Expected {
    text: String,
    number: Option<f64>,
    boolean: Option<bool>,
    level: Option<Level>,
}

impl Expected {
    fn new(lit: &Literal) -> Expected {
        let text = lit.to_string();
        let number = match lit {
            Literal::Int(i) => Some(*i as f64),
            Literal::Float(f) => Some(*f),
            Literal::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            Literal::Bool(_) => None,
        };
        let boolean = match lit {
            Literal::Bool(b) => Some(*b),
            Literal::Str(s) if s == "true" => Some(true),
            Literal::Str(s) if s == "false" => Some(false),
            _ => None,
        };
        let level = match lit {
            Literal::Str(s) => level::from_word(s),
            _ => None,
        };
        Expected {
            text,
            number,
            boolean,
            level,
        }
    }

    fn matches(&self, v: &View<'_>) -> bool {
        match *v {
            View::Int(i) => self.number == Some(i as f64),
            View::Float(f) => self.number == Some(f),
            View::Bool(b) => self.boolean == Some(b),
            View::Level(l) => self.level == Some(l),
            _ => v.any_text(|s| s == self.text),
        }
    }
}

/// A compile error: the key under `when` (e.g. `all[1].regex`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    /// Path of the offending key below `when`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConditionError {
    ConditionError {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl Condition {
    /// Compiles a condition; `key` is its path for error messages (`when`).
    pub fn compile(cfg: &ConditionConfig, key: &str) -> Result<Condition, ConditionError> {
        let c = cfg;
        let mut ops: Vec<&'static str> = Vec::new();
        let present = [
            ("equals", c.equals.is_some()),
            ("not_equals", c.not_equals.is_some()),
            ("in", c.in_list.is_some()),
            ("contains", c.contains.is_some()),
            ("starts_with", c.starts_with.is_some()),
            ("ends_with", c.ends_with.is_some()),
            ("regex", c.regex.is_some()),
            ("lt", c.lt.is_some()),
            ("lte", c.lte.is_some()),
            ("gt", c.gt.is_some()),
            ("gte", c.gte.is_some()),
            ("exists", c.exists.is_some()),
            ("all", c.all.is_some()),
            ("any", c.any.is_some()),
            ("not", c.not.is_some()),
        ];
        for (name, set) in present {
            if set {
                ops.push(name);
            }
        }
        let op = match ops.as_slice() {
            [op] => *op,
            [] => {
                return Err(err(
                    key,
                    "no operator: use one of equals, not_equals, in, contains, starts_with, \
                     ends_with, regex, lt, lte, gt, gte, exists, all, any, not",
                ))
            }
            many => {
                return Err(err(
                    key,
                    format!(
                        "one operator per condition, found {}; combine several with all/any",
                        many.join(", ")
                    ),
                ))
            }
        };
        let sub = |name: &str| format!("{key}.{name}");
        match op {
            "all" | "any" => {
                if c.field.is_some() {
                    return Err(err(
                        &sub("field"),
                        format!("`field` does not go with `{op}`"),
                    ));
                }
                let list = if op == "all" { &c.all } else { &c.any };
                let mut out = Vec::new();
                for (i, s) in list.iter().flatten().enumerate() {
                    out.push(Condition::compile(s, &format!("{key}.{op}[{i}]"))?);
                }
                return Ok(if op == "all" {
                    Condition::All(out)
                } else {
                    Condition::Any(out)
                });
            }
            "not" => {
                if c.field.is_some() {
                    return Err(err(&sub("field"), "`field` does not go with `not`"));
                }
                let inner = c
                    .not
                    .as_deref()
                    .map_or(Ok(Condition::All(Vec::new())), |n| {
                        Condition::compile(n, &sub("not"))
                    })?;
                return Ok(Condition::Not(Box::new(inner)));
            }
            _ => {}
        }
        let Some(path) = &c.field else {
            return Err(err(&sub("field"), format!("`{op}` needs a `field`")));
        };
        let field = FieldRef::parse(path).map_err(|m| err(&sub("field"), m))?;
        let is_level = field == FieldRef::Level;
        let test = match op {
            "equals" => Test::Equals(expected(c.equals.as_ref(), is_level, &sub(op))?),
            "not_equals" => Test::NotEquals(expected(c.not_equals.as_ref(), is_level, &sub(op))?),
            "in" => {
                let mut list = Vec::new();
                for (i, l) in c.in_list.iter().flatten().enumerate() {
                    list.push(expected(Some(l), is_level, &format!("{key}.in[{i}]"))?);
                }
                Test::In(list)
            }
            "contains" => Test::Contains(Box::new(
                memchr::memmem::Finder::new(c.contains.as_deref().unwrap_or_default().as_bytes())
                    .into_owned(),
            )),
            "starts_with" => Test::StartsWith(c.starts_with.clone().unwrap_or_default()),
            "ends_with" => Test::EndsWith(c.ends_with.clone().unwrap_or_default()),
            "regex" => {
                let re = c.regex.as_deref().unwrap_or_default();
                Test::Regex(
                    regex::RegexBuilder::new(re)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| err(&sub(op), format!("invalid regex: {e}")))?,
                )
            }
            "exists" => Test::Exists(c.exists.unwrap_or(true)),
            _ => {
                let (cmp, lit) = match op {
                    "lt" => (Cmp::Lt, &c.lt),
                    "lte" => (Cmp::Lte, &c.lte),
                    "gt" => (Cmp::Gt, &c.gt),
                    _ => (Cmp::Gte, &c.gte),
                };
                let lit = lit.as_ref();
                if is_level {
                    let l = match lit {
                        Some(Literal::Str(s)) => level::from_word(s),
                        Some(Literal::Int(n)) => level::from_number(*n),
                        _ => None,
                    };
                    let l = l.ok_or_else(|| {
                        err(
                            &sub(op),
                            "`level` compares with a level: trace, debug, info, warn, error, fatal",
                        )
                    })?;
                    Test::CompareLevel(cmp, l)
                } else {
                    let n = match lit {
                        Some(Literal::Int(i)) => *i as f64,
                        Some(Literal::Float(f)) if f.is_finite() => *f,
                        _ => return Err(err(&sub(op), "expects a number")),
                    };
                    Test::Compare(cmp, n)
                }
            }
        };
        Ok(Condition::Test(field, test))
    }

    /// Evaluates the condition on `ev`.
    pub fn matches(&self, ev: &RuleEvent<'_>) -> bool {
        match self {
            Condition::Always => true,
            Condition::All(list) => list.iter().all(|c| c.matches(ev)),
            Condition::Any(list) => list.iter().any(|c| c.matches(ev)),
            Condition::Not(c) => !c.matches(ev),
            Condition::Test(field, test) => test.matches(ev.get(field)),
        }
    }
}

fn expected(lit: Option<&Literal>, is_level: bool, key: &str) -> Result<Expected, ConditionError> {
    let lit = lit.ok_or_else(|| err(key, "missing value"))?;
    let e = Expected::new(lit);
    if is_level && e.level.is_none() {
        return Err(err(
            key,
            format!("`{lit}` is not a level (trace, debug, info, warn, error, fatal)"),
        ));
    }
    Ok(e)
}

impl Test {
    fn matches(&self, v: Option<View<'_>>) -> bool {
        let Some(v) = v else {
            return matches!(self, Test::Exists(false));
        };
        match self {
            Test::Exists(want) => *want,
            Test::Equals(e) => match v {
                View::Tags(tags) => tags.iter().any(|t| e.matches(&View::Str(t))),
                _ => e.matches(&v),
            },
            Test::NotEquals(e) => match v {
                View::Tags(tags) => !tags.iter().any(|t| e.matches(&View::Str(t))),
                _ => !e.matches(&v),
            },
            Test::In(list) => match v {
                View::Tags(tags) => tags
                    .iter()
                    .any(|t| list.iter().any(|e| e.matches(&View::Str(t)))),
                _ => list.iter().any(|e| e.matches(&v)),
            },
            Test::Contains(f) => v.any_text(|t| f.find(t.as_bytes()).is_some()),
            Test::StartsWith(s) => v.any_text(|t| t.starts_with(s.as_str())),
            Test::EndsWith(s) => v.any_text(|t| t.ends_with(s.as_str())),
            Test::Regex(re) => v.any_text(|t| re.is_match(t)),
            Test::Compare(cmp, n) => v.as_f64().is_some_and(|x| cmp.holds(x, *n)),
            Test::CompareLevel(cmp, l) => match v {
                View::Level(x) => cmp.holds(x, *l),
                _ => false,
            },
        }
    }
}
