//! The top-level JSON object scanner behind [`super::JsonParser`]: strings eight bytes at a
//! time, numbers and literals by hand, with exactly JSON's grammar (RFC 8259, as
//! serde_json reads it). Nested objects and arrays are validated and skipped by serde_json
//! as one `&RawValue` (iteratively, so any depth is fine), and strings with escapes are
//! decoded by it. A differential property test checks the scanner against serde_json.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::parse::Value;

pub(super) fn is_json_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Skips JSON whitespace from `i`.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_json_ws(b[i]) {
        i += 1;
    }
    i
}

/// Scans `s`, which must be exactly one JSON object (surrounding whitespace allowed),
/// calling `f(key, value, text)` for each member in order, `text` being the value's JSON
/// text. `None` when `s` is not valid JSON (RFC 8259, as serde_json reads it).
///
/// The top level is scanned here (eight bytes at a time inside strings); nested objects
/// and arrays are validated and skipped by serde_json as a `&RawValue`, and strings with
/// escapes are decoded by serde_json. Every slice boundary is at an ASCII byte.
pub(crate) fn scan_object<'a>(
    s: &'a str,
    mut f: impl FnMut(Cow<'a, str>, Value<'a>, &'a str),
) -> Option<()> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = scan_string(b, i + 1)?;
        let key = if escaped {
            // Keys must decode (a lone surrogate fails, as in serde_json).
            Cow::Owned(serde_json::from_str::<String>(s.get(i..=end)?).ok()?)
        } else {
            Cow::Borrowed(s.get(i + 1..end)?)
        };
        i = skip_ws(b, end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let start = i;
        let value = match *b.get(i)? {
            b'"' => {
                let (end, escaped) = scan_string(b, i + 1)?;
                i = end + 1;
                Value::Str(if escaped {
                    decode_str(s.get(start..i)?)
                } else {
                    Cow::Borrowed(s.get(start + 1..end)?)
                })
            }
            b'{' | b'[' => {
                let mut de = serde_json::Deserializer::from_str(s.get(i..)?);
                let raw = <&RawValue as serde::Deserialize>::deserialize(&mut de).ok()?;
                i += raw.get().len();
                Value::Json(Cow::Borrowed(s.get(start..i)?))
            }
            b't' if b.get(i..i + 4) == Some(b"true") => {
                i += 4;
                Value::Bool(true)
            }
            b'f' if b.get(i..i + 5) == Some(b"false") => {
                i += 5;
                Value::Bool(false)
            }
            b'n' if b.get(i..i + 4) == Some(b"null") => {
                i += 4;
                Value::Null
            }
            b'-' | b'0'..=b'9' => {
                i = scan_number(b, i)?;
                number(s.get(start..i)?)
            }
            _ => return None,
        };
        f(key, value, s.get(start..i)?);
        i = skip_ws(b, i);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return (skip_ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

/// From just after an opening quote: the index of the closing quote and whether escapes
/// came before it. `None` for an unterminated string, a raw control character or a bad
/// escape.
fn scan_string(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut escaped = false;
    loop {
        // Skip eight bytes at a time while none is `"`, `\` or below 0x20.
        while let Some(chunk) = b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let x = u64::from_le_bytes(w);
            let quote = x ^ (LO * u64::from(b'"'));
            let slash = x ^ (LO * u64::from(b'\\'));
            let special = (quote.wrapping_sub(LO) & !quote)
                | (slash.wrapping_sub(LO) & !slash)
                | (x.wrapping_sub(LO * 0x20) & !x);
            let hits = special & HI;
            if hits != 0 {
                // The lowest flagged byte is always a real hit: go straight to it.
                i += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *b.get(i)? {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                escaped = true;
                i += match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    _ => return None,
                };
            }
            0..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// A JSON number from `i`: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?;
/// the index after it.
fn scan_number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| {
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i > s).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match *b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
}

/// A JSON string literal with escapes (quotes included, already validated), decoded.
fn decode_str(lit: &str) -> Cow<'_, str> {
    match serde_json::from_str::<String>(lit) {
        Ok(s) => Cow::Owned(s),
        // Lone surrogate escapes (`"\ud800"`) are valid JSON but not text: keep them as
        // written, as serde_json's own `RawValue` would.
        Err(_) => Cow::Borrowed(
            lit.strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(lit),
        ),
    }
}

/// A JSON number's text as `Int`, `Float`, or (when it fits neither exactly) `Str`.
fn number(s: &str) -> Value<'_> {
    let integral = !s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if integral {
        return match s.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(Cow::Borrowed(s)),
        };
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::Float(f),
        _ => Value::Str(Cow::Borrowed(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---- serde_json as the oracle for the hand-written top-level scanner ----

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
    use std::fmt;

    /// Deserialises an object key, borrowing it when it has no escapes.
    struct KeySeed;

    impl<'de> DeserializeSeed<'de> for KeySeed {
        type Value = Cow<'de, str>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(KeySeed)
        }
    }

    impl<'de> Visitor<'de> for KeySeed {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }

    type Entries<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

    /// An object's entries as raw values, in order.
    struct EntriesVisitor;

    impl<'de> Visitor<'de> for EntriesVisitor {
        type Value = Entries<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = map.next_key_seed(KeySeed)? {
                let v: &'de RawValue = map.next_value()?;
                out.push((k, v));
            }
            Ok(out)
        }
    }

    /// What serde_json makes of `s`: its members as raw values, or `None`.
    fn oracle(s: &str) -> Option<Entries<'_>> {
        let mut de = serde_json::Deserializer::from_str(s);
        let e = de.deserialize_map(EntriesVisitor).ok()?;
        de.end().ok()?;
        Some(e)
    }

    /// A raw JSON value as the scanner should report it.
    fn to_value(raw: &RawValue) -> Value<'_> {
        let s = raw.get();
        match s.as_bytes().first() {
            Some(b'"') => Value::Str(if s.contains('\\') {
                decode_str(s)
            } else {
                Cow::Borrowed(&s[1..s.len() - 1])
            }),
            Some(b't') => Value::Bool(true),
            Some(b'f') => Value::Bool(false),
            Some(b'n') => Value::Null,
            Some(b'{') | Some(b'[') => Value::Json(Cow::Borrowed(s)),
            _ => number(s),
        }
    }

    fn scanned(s: &str) -> Option<Vec<(Cow<'_, str>, Value<'_>, &str)>> {
        let mut out = Vec::new();
        scan_object(s, |k, v, t| out.push((k, v, t)))?;
        Some(out)
    }

    fn same_as_serde(s: &str) -> Result<(), TestCaseError> {
        match (scanned(s), oracle(s)) {
            (None, None) => {}
            (Some(mine), Some(theirs)) => {
                prop_assert_eq!(mine.len(), theirs.len(), "{}", s);
                for ((k, v, t), (k2, raw)) in mine.iter().zip(&theirs) {
                    prop_assert_eq!(k, k2, "{}", s);
                    prop_assert_eq!(v, &to_value(raw), "{}", s);
                    prop_assert_eq!(*t, raw.get(), "{}", s);
                }
            }
            (mine, theirs) => prop_assert!(
                false,
                "scanner {:?} but serde_json {:?} for {:?}",
                mine.is_some(),
                theirs.is_some(),
                s
            ),
        }
        Ok(())
    }

    /// Random JSON-ish text: valid values, then mutated.
    fn jsonish() -> impl Strategy<Value = String> {
        (
            json_object(),
            any::<prop::sample::Index>(),
            0..4u8,
            "[\x00-\x7f]|\\PC",
        )
            .prop_map(|(s, at, how, ch)| {
                // Mutate at a character boundary: keep, delete a char, insert one, or cut.
                let cuts: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
                let i = cuts[at.index(cuts.len())];
                match how {
                    0 => s,
                    1 => {
                        let mut t = s.clone();
                        if i < t.len() {
                            t.remove(i);
                        }
                        t
                    }
                    2 => {
                        let mut t = s.clone();
                        t.insert_str(i, &ch);
                        t
                    }
                    _ => s[..i].to_string(),
                }
            })
    }

    /// Random valid JSON objects with varied keys, values, nesting and whitespace.
    fn json_object() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
            "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            r#""([a-z ]|\\[nrtbf"/\\]|\\u[0-9a-fA-F]{4}|[\u{80}-\u{10FFFF}]){0,10}""#,
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z\"\\\\]{0,4}", inner), 0..4).prop_map(|v| {
                    let m: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("{}:{}", serde_json::to_string(&k).unwrap(), v))
                        .collect();
                    format!("{{{}}}", m.join(","))
                }),
            ]
        });
        prop::collection::vec(("[a-zA-Z_@.\\\\\"]{0,6}", value, "[ \t\n\r]{0,2}"), 0..6).prop_map(
            |v| {
                let m: Vec<String> = v
                    .into_iter()
                    .map(|(k, v, ws)| {
                        format!("{ws}{}{ws}:{ws}{v}{ws}", serde_json::to_string(&k).unwrap())
                    })
                    .collect();
                format!("{{{}}}", m.join(","))
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn scanner_agrees_with_serde_json(s in jsonish()) {
            same_as_serde(&s)?;
        }

        #[test]
        fn scanner_reads_valid_objects(s in json_object()) {
            prop_assert!(scanned(&s).is_some(), "{}", s);
            same_as_serde(&s)?;
        }

        #[test]
        fn scanner_agrees_with_serde_json_on_noise(s in r#"[{}\[\]":,. 0-9a-zA-Z\\eE+\-\u{0}-\u{1f}]{0,40}"#) {
            same_as_serde(&format!("{{{s}}}"))?;
            same_as_serde(&s)?;
        }
    }

    #[test]
    fn scanner_edge_cases() {
        for s in [
            "{}",
            " { } ",
            "{\"a\":1}",
            "{\"a\":-0}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1e+}",
            "{\"a\":-}",
            "{\"a\":+1}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":truex}",
            "{\"a\":[1,]}",
            "{\"a\":{}}",
            "{\"a\":[]}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\t\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"\\ud800\":1}",
            "{\"a\"1}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":1}}",
            "{\"a\":\"é\\u00e9\"}",
            "{\"a\" : [ {\"b\" : null} ] , \"c\" : \"\"}",
            "{\"a\":1}\n",
            "{\"abcdefghijklmnop\":\"0123456789abcdefg\\\"h\"}",
        ] {
            same_as_serde(s).unwrap();
        }
    }
}
