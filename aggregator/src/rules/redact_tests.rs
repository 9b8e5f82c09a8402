//! Redaction: every pattern, its look-alikes, and properties (nothing matching is left
//! behind; arbitrary text never panics; the engine never panics on arbitrary events).

use std::borrow::Cow;

use proptest::prelude::*;

use super::redact::{luhn, Hints, Pattern, Redactor};
use super::tests::{engine, ev};
use super::Verdict;
use crate::parse::Value;

fn all() -> Redactor {
    Redactor::new(&Pattern::ALL, None)
}

fn red(s: &str) -> String {
    all()
        .redact(s, false)
        .map_or_else(|| s.to_owned(), |(r, _)| r)
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| d - b'0')
        .collect()
}

#[test]
fn luhn_true_and_false_cases() {
    for good in [
        "4111111111111111",
        "4012888888881881",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
        "79927398713",
    ] {
        assert!(luhn(&digits(good)), "{good}");
    }
    for bad in [
        "4111111111111112",
        "5555555555554440",
        "378282246310006",
        "79927398710",
        "",
    ] {
        assert!(!luhn(&digits(bad)), "{bad}");
    }
}

#[test]
fn credit_cards_in_every_common_shape() {
    for (input, want) in [
        ("card 4111111111111111 ok", "card [REDACTED:credit_card] ok"),
        ("card 4111 1111 1111 1111.", "card [REDACTED:credit_card]."),
        (
            "card=4111-1111-1111-1111&x",
            "card=[REDACTED:credit_card]&x",
        ),
        ("amex 3782 822463 10005", "amex [REDACTED:credit_card]"),
        ("mc:5555555555554444", "mc:[REDACTED:credit_card]"),
        ("mc2 2223003122003222", "mc2 [REDACTED:credit_card]"),
        ("jcb 3530111333300000", "jcb [REDACTED:credit_card]"),
        (
            "ref 12 4111 1111 1111 1111",
            "ref 12 [REDACTED:credit_card]",
        ),
        (
            "4111 1111 1111 1111 2026-11-22",
            "[REDACTED:credit_card] 2026-11-22",
        ),
        (
            r#"{"pan":"6011111111111117"}"#,
            r#"{"pan":"[REDACTED:credit_card]"}"#,
        ),
    ] {
        assert_eq!(red(input), want, "{input}");
    }
}

#[test]
fn card_look_alikes_are_left_alone() {
    for input in [
        "order 4111111111111112 failed",    // Luhn fails
        "ts=1795341600123 took 12ms",       // epoch millis: no issuer prefix
        "id 41111111111111111111 too long", // 20 digits
        "phone +1 555 0100",                // short
        "x4111111111111111",                // glued to a word
        "version 1.2.3.4.5 build 20261122",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
    ] {
        assert_eq!(red(input), input);
    }
}

#[test]
fn emails() {
    assert_eq!(
        red("from bob.smith+x@mail.example.co.uk."),
        "from [REDACTED:email]."
    );
    assert_eq!(
        red("<a@b.io>,c_d@e-f.org"),
        "<[REDACTED:email]>,[REDACTED:email]"
    );
    for input in [
        "@timestamp",
        "user@localhost",
        "a@b",
        "x@1.2",
        "@",
        "a@.com",
        "me@host.",
    ] {
        assert_eq!(red(input), input);
    }
}

#[test]
fn ipv4_and_its_look_alikes() {
    assert_eq!(red("from 10.0.0.1:8080"), "from [REDACTED:ipv4]:8080");
    assert_eq!(red("client=192.168.1.254."), "client=[REDACTED:ipv4].");
    assert_eq!(
        red("[203.0.113.7] and 8.8.8.8"),
        "[[REDACTED:ipv4]] and [REDACTED:ipv4]"
    );
    for input in [
        "version 1.2.3.4.5",
        "v1.2.3.4",
        "300.1.1.1",
        "2026.11.22",
        "1.2.3",
        "took 1.25s",
        "10.0.0.1a",
        "ip 1..2.3",
    ] {
        assert_eq!(red(input), input);
    }
}

#[test]
fn ipv6_forms_and_look_alikes() {
    for (input, want) in [
        (
            "from 2001:0db8:85a3:0000:0000:8a2e:0370:7334 x",
            "from [REDACTED:ipv6] x",
        ),
        ("from 2001:db8::1", "from [REDACTED:ipv6]"),
        ("lo ::1 up", "lo [REDACTED:ipv6] up"),
        (
            "link fe80::1ff:fe23:4567:890a%eth0",
            "link [REDACTED:ipv6]%eth0",
        ),
        ("[2001:db8::7]:443", "[[REDACTED:ipv6]]:443"),
        ("mapped ::ffff:192.0.2.128", "mapped [REDACTED:ipv6]"),
        ("peer=fe80::1: refused", "peer=[REDACTED:ipv6]: refused"),
        ("host:fe80::1", "host:[REDACTED:ipv6]"),
        ("ends fe80::.", "ends [REDACTED:ipv6]."),
    ] {
        assert_eq!(red(input), want, "{input}");
    }
    for input in [
        "at 10:00:00.123",
        "mac 00:1a:2b:3c:4d:5e",
        "std::io::Error",
        "Foo::bar",
        "use crate::parse",
        "ratio 1:2:3",
        "::",
        "deadbeef:cafe",
    ] {
        assert_eq!(red(input), input, "{input}");
    }
}

#[test]
fn bearer_tokens_and_aws_keys() {
    assert_eq!(
        red("Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9-x_y==, next"),
        "Authorization: Bearer [REDACTED:bearer_token], next"
    );
    assert_eq!(
        red("authorization=bearer  abcdefgh12"),
        "authorization=bearer  [REDACTED:bearer_token]"
    );
    assert_eq!(red("BEARER abcdefghijk"), "BEARER [REDACTED:bearer_token]");
    assert_eq!(red("xbearer abcdefghijk"), "xbearer abcdefghijk");
    assert_eq!(red("the bearer of bad news"), "the bearer of bad news");
    assert_eq!(red("Bearer short"), "Bearer short");
    assert_eq!(
        red("key AKIAIOSFODNN7EXAMPLE used"),
        "key [REDACTED:aws_access_key] used"
    );
    assert_eq!(
        red("key=ASIAY34FZKBOKMUTVV7A"),
        "key=[REDACTED:aws_access_key]"
    );
    for input in [
        "AKIAIOSFODNN7EXAMPLEX",
        "XAKIAIOSFODNN7EXAMPLE",
        "AKIAiosfodnn7example",
        "AKIA1234",
    ] {
        assert_eq!(red(input), input);
    }
}

#[test]
fn only_the_chosen_patterns_and_a_custom_regex() {
    let r = Redactor::new(&[Pattern::Email], None);
    assert_eq!(
        r.redact("a@b.io 10.0.0.1", false).unwrap().0,
        "[REDACTED:email] 10.0.0.1"
    );
    let custom = regex::Regex::new(r#"ssn=\d{3}-\d{2}-\d{4}|"quoted""#).unwrap();
    let r = Redactor::new(&[], Some((custom, "ssn")));
    assert_eq!(
        r.redact("x ssn=123-45-6789 y", false).unwrap(),
        ("x [REDACTED:ssn] y".into(), 1)
    );
    assert_eq!(
        r.redact(r#"{"a":"quoted"}"#, true),
        None,
        "keeps JSON valid"
    );
    assert!(r.redact("nothing here", false).is_none());
}

#[test]
fn redact_action_covers_message_and_string_and_json_fields() {
    let eng = engine(
        r#"
[[rules]]
name = "pii"
actions = [{ type = "redact", patterns = ["email", "credit_card"] }]
[[rules]]
name = "only-user"
actions = [{ type = "redact", patterns = ["ipv4"], fields = ["user"] }]
"#,
    );
    let mut e = ev(
        None,
        "mail a@b.io",
        &[
            ("user", Value::Str(Cow::Borrowed("c@d.io at 10.0.0.1"))),
            ("client", Value::Str(Cow::Borrowed("10.0.0.2"))),
            (
                "ctx",
                Value::Json(Cow::Borrowed(r#"{"card":"4111111111111111"}"#)),
            ),
            ("n", Value::Int(4)),
        ],
    );
    assert_eq!(eng.apply(&mut e), Verdict::Keep);
    assert_eq!(e.parsed.message, "mail [REDACTED:email]");
    assert_eq!(
        e.field("user"),
        Some(&Value::Str("[REDACTED:email] at [REDACTED:ipv4]".into()))
    );
    assert_eq!(
        e.field("client"),
        Some(&Value::Str("10.0.0.2".into())),
        "not listed"
    );
    let Some(Value::Json(j)) = e.field("ctx") else {
        panic!()
    };
    let parsed: serde_json::Value = serde_json::from_str(j).unwrap();
    assert_eq!(parsed["card"], "[REDACTED:credit_card]");
    assert_eq!(eng.stats()[0].redacted, 3);
}

/// A valid card number of `len` digits starting with `prefix`, from `body` digits.
fn card(prefix: &str, len: usize, body: &[u8]) -> String {
    let mut d: Vec<u8> = prefix.bytes().map(|c| c - b'0').collect();
    let mut i = 0;
    while d.len() < len - 1 {
        d.push(body[i % body.len()] % 10);
        i += 1;
    }
    for check in 0..10 {
        d.push(check);
        if luhn(&d) {
            break;
        }
        d.pop();
    }
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

fn sep(s: &str, style: u8) -> String {
    match style % 3 {
        0 => s.to_owned(),
        1 => s
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" "),
        _ => s
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("-"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_card_or_email_survives(
        before in "[a-z ,:=(\\[]{0,12}",
        after in "[a-z ,.;)\\]]{0,12}",
        which in 0usize..5,
        body in proptest::collection::vec(any::<u8>(), 1..20),
        style in any::<u8>(),
        local in "[a-z0-9][a-z0-9._+-]{0,10}",
        domain in "[a-z0-9]{1,10}(\\.[a-z0-9-]{1,8}[a-z0-9])?\\.[a-z]{2,6}",
    ) {
        let secret = match which {
            0 => sep(&card("4", 16, &body), style),
            1 => sep(&card("51", 16, &body), style),
            2 => card("37", 15, &body),
            3 => sep(&card("6011", 16, &body), style),
            _ => format!("{local}@{domain}"),
        };
        let text = format!("{before} {secret} {after}");
        let out = red(&text);
        prop_assert!(!out.contains(&secret), "{text} -> {out}");
        for p in Pattern::ALL {
            prop_assert!(p.find(&out, 0).is_none(), "{p:?} still finds something in {out}");
        }
    }

    #[test]
    fn digits_are_counted_eight_at_a_time_like_one_by_one(b in proptest::collection::vec(any::<u8>(), 0..100)) {
        prop_assert_eq!(
            super::redact::count_digits(&b),
            b.iter().filter(|c| c.is_ascii_digit()).count()
        );
    }

    #[test]
    fn hints_sixteen_lanes_at_a_time_like_one_byte_at_a_time(
        b in proptest::collection::vec(
            prop_oneof![Just(b'@'), Just(b'.'), Just(b':'), Just(b'A'), Just(b'b'), Just(b'B'),
                b'0'..=b'9', b'a'..=b'g', b'A'..=b'G', any::<u8>()],
            0..300,
        ),
        digits_run in 0usize..5000,
    ) {
        prop_assert_eq!(Hints::of(&b), Hints::by_table(&b));
        // Past 255 steps of sixteen bytes the lane counts are added up and restarted.
        let mut long = vec![b'7'; digits_run];
        long.extend_from_slice(&b);
        prop_assert_eq!(Hints::of(&long), Hints::by_table(&long));
    }

    #[test]
    fn bearer_scan_by_first_letter_finds_what_a_substring_search_finds(
        parts in proptest::collection::vec(
            prop_oneof![Just("Bearer "), Just("bearer "), Just("BEARER "), Just("bEARER "),
                Just("BEarer "), Just("earer "), Just("b"), Just(" "), Just("="), Just("x"),
                Just("abcdefgh"), Just("12345"), Just(".-_~+/")],
            0..12,
        ),
    ) {
        let text = parts.concat();
        let b = text.as_bytes();
        for from in 0..=b.len() {
            prop_assert_eq!(
                Pattern::BearerToken.find(&text, from),
                bearer_by_substring(b, from),
                "{:?} from {}", text, from
            );
        }
    }

    #[test]
    fn redaction_never_panics_and_is_idempotent(text in "\\PC{0,200}") {
        let once = red(&text);
        let twice = red(&once);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn scanners_return_ordered_in_bounds_matches_on_noise(
        text in "[0-9.: @a-fA-F-]{0,80}",
    ) {
        // Any text: the scanners never panic on byte boundaries or odd separators.
        for p in Pattern::ALL {
            let mut pos = 0;
            while let Some((s, e)) = p.find(&text, pos) {
                prop_assert!(s >= pos && s < e && e <= text.len() && text.is_char_boundary(s) && text.is_char_boundary(e));
                pos = e;
            }
        }
    }

    #[test]
    fn the_engine_never_panics_on_arbitrary_events(
        message in "\\PC{0,120}",
        keys in proptest::collection::vec("[a-z_]{1,8}", 0..6),
        strs in proptest::collection::vec("\\PC{0,40}", 6),
        ints in proptest::collection::vec(any::<i64>(), 6),
        level in proptest::option::of(0u8..6),
    ) {
        let eng = engine(include_str!("bench_rules.toml"));
        let levels = [
            logferry_shared::event::Level::Trace,
            logferry_shared::event::Level::Debug,
            logferry_shared::event::Level::Info,
            logferry_shared::event::Level::Warn,
            logferry_shared::event::Level::Error,
            logferry_shared::event::Level::Fatal,
        ];
        let fields: Vec<(&str, Value<'_>)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let v = if i % 2 == 0 { Value::Str(Cow::Borrowed(strs[i].as_str())) } else { Value::Int(ints[i]) };
                (k.as_str(), v)
            })
            .collect();
        let mut e = ev(level.map(|l| levels[l as usize]), &message, &fields);
        let _ = eng.apply(&mut e);
        eng.tick();
    }
}

/// The bearer-token scan as it was written first (a substring search for each case): the
/// reference for the scan by first letter.
fn bearer_by_substring(b: &[u8], from: usize) -> Option<(usize, usize)> {
    if from >= b.len() {
        return None;
    }
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let lower = memchr::memmem::Finder::new(b"earer ");
    let upper = memchr::memmem::Finder::new(b"EARER ");
    let mut pos = from;
    loop {
        let hay = b.get(pos..)?;
        let found = match (lower.find(hay), upper.find(hay)) {
            (Some(a), Some(c)) => a.min(c),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        let e = pos + found;
        pos = e + 1;
        if e < from + 1 || !matches!(b[e - 1], b'b' | b'B') || (e >= 2 && is_word(b[e - 2])) {
            continue;
        }
        // The token after the word is read as before; only the search for the word changed.
        if let Some(token) = super::redact::token_from(b, e + 6) {
            return Some(token);
        }
    }
}
