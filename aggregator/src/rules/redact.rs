//! Redaction: finding sensitive text and replacing it with `[REDACTED:<kind>]`.
//!
//! The built-in patterns are hand-written scanners, not regexes: each first looks for a
//! cheap anchor with `memchr` (`@`, `.`, `:`, `A`, `earer `) or counts digits eight bytes at a time,
//! so a line with nothing to redact costs one pass per pattern and no allocation.
//!
//! | kind | matches | not matched (look-alikes) |
//! |---|---|---|
//! | `email` | `local@domain.tld` (TLD of 2+ letters) | `@timestamp`, `user@localhost` |
//! | `ipv4` | four dotted numbers 0–255, not inside a longer dotted or alphanumeric run | `1.2.3.4.5`, `v1.2.3.4`, `300.1.1.1`, `2026.11.22` |
//! | `ipv6` | what `std::net::Ipv6Addr` parses, with at least one hex digit (`::1`, `fe80::1`, full form, `::ffff:10.0.0.1`) | times `10:00:00`, MAC addresses, `std::io` |
//! | `credit_card` | 13–19 digits, optionally in groups split by one space or `-`, with a known issuer prefix (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro) and a valid Luhn check digit | epoch milliseconds, order numbers failing Luhn, runs of 20+ digits |
//! | `bearer_token` | the token after `Bearer `, `bearer ` or `BEARER `, 8+ token characters; the word stays | `bearer of bad news` |
//! | `aws_access_key` | `AKIA`/`ASIA`/`ABIA`/`ACCA` plus 16 upper-case letters or digits, standing alone | longer runs |
//!
//! Raw JSON field values are redacted too; a custom regex match that holds a quote or a
//! backslash is left alone there, so the JSON stays valid.

use std::borrow::Cow;

use memchr::{memchr, memchr2_iter, memchr_iter};
use regex::Regex;

/// A built-in pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Email addresses.
    Email,
    /// IPv4 addresses.
    Ipv4,
    /// IPv6 addresses.
    Ipv6,
    /// Payment card numbers (Luhn-checked).
    CreditCard,
    /// `Authorization: Bearer` tokens.
    BearerToken,
    /// AWS access key ids.
    AwsAccessKey,
}

impl Pattern {
    /// Every pattern, in the order they are applied (IPv6 before IPv4, so an IPv4-mapped
    /// IPv6 address is one match).
    pub const ALL: [Pattern; 6] = [
        Pattern::Email,
        Pattern::CreditCard,
        Pattern::Ipv6,
        Pattern::Ipv4,
        Pattern::BearerToken,
        Pattern::AwsAccessKey,
    ];

    /// The kind written in the replacement.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Email => "email",
            Pattern::Ipv4 => "ipv4",
            Pattern::Ipv6 => "ipv6",
            Pattern::CreditCard => "credit_card",
            Pattern::BearerToken => "bearer_token",
            Pattern::AwsAccessKey => "aws_access_key",
        }
    }

    /// The pattern called `name`.
    pub fn from_name(name: &str) -> Option<Pattern> {
        Pattern::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The first match at or after byte `from`, as a byte range.
    pub fn find(self, s: &str, from: usize) -> Option<(usize, usize)> {
        let b = s.as_bytes();
        if from >= b.len() {
            return None;
        }
        match self {
            Pattern::Email => find_email(b, from),
            Pattern::Ipv4 => find_ipv4(b, from),
            Pattern::Ipv6 => find_ipv6(s, from),
            Pattern::CreditCard => find_card(b, from),
            Pattern::BearerToken => find_bearer(b, from),
            Pattern::AwsAccessKey => find_aws_key(b, from),
        }
    }

    /// `s` with every match replaced, or `None` when there is none.
    pub fn replace(self, s: &str) -> Option<(String, usize)> {
        let mut out: Option<String> = None;
        let mut n = 0;
        let mut last = 0;
        let mut pos = 0;
        while let Some((start, end)) = self.find(s, pos) {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len() + 16));
            o.push_str(&s[last..start]);
            o.push_str("[REDACTED:");
            o.push_str(self.name());
            o.push(']');
            n += 1;
            last = end;
            pos = end.max(start + 1);
        }
        let mut o = out?;
        o.push_str(&s[last..]);
        Some((o, n))
    }
}

/// A set of patterns applied together.
#[derive(Debug, Clone)]
pub struct Redactor {
    builtins: Vec<Pattern>,
    custom: Option<(Regex, String)>,
}

impl Redactor {
    /// Built-in patterns (applied in [`Pattern::ALL`] order) and an optional regex whose
    /// matches become `[REDACTED:<name>]`.
    pub fn new(patterns: &[Pattern], custom: Option<(Regex, &str)>) -> Redactor {
        let builtins = Pattern::ALL
            .into_iter()
            .filter(|p| patterns.contains(p))
            .collect();
        Redactor {
            builtins,
            custom: custom.map(|(re, name)| (re, format!("[REDACTED:{name}]"))),
        }
    }

    /// Redacts `text`; `json` says it is raw JSON (custom matches with `"` or `\` are
    /// kept). Returns the new text and the number of replacements, or `None` if unchanged.
    pub fn redact(&self, text: &str, json: bool) -> Option<(String, usize)> {
        let mut cur: Cow<'_, str> = Cow::Borrowed(text);
        let mut total = 0;
        // One pass over the bytes says which patterns could match at all.
        let hints = if self.builtins.is_empty() || text.len() < 2 {
            Hints::default()
        } else {
            Hints::of(text.as_bytes())
        };
        for p in &self.builtins {
            if !hints.allows(*p, cur.len()) {
                continue;
            }
            if let Some((s, n)) = p.replace(&cur) {
                cur = Cow::Owned(s);
                total += n;
            }
        }
        if let Some((re, repl)) = &self.custom {
            let mut n = 0;
            let replaced = re.replace_all(&cur, |c: &regex::Captures<'_>| {
                let m = c.get(0).map_or("", |m| m.as_str());
                if m.is_empty() || (json && (m.contains('"') || m.contains('\\'))) {
                    m.to_owned()
                } else {
                    n += 1;
                    repl.clone()
                }
            });
            if n > 0 {
                let s = replaced.into_owned();
                cur = Cow::Owned(s);
                total += n;
            }
        }
        match cur {
            Cow::Owned(s) if total > 0 => Some((s, total)),
            _ => None,
        }
    }
}

const AT: u8 = 1;
const DOT: u8 = 2;
const COLON: u8 = 4;
const DIGIT: u8 = 8;
const B: u8 = 16;
const UPPER_A: u8 = 32;
const HEX_LETTER: u8 = 64;

/// Which bytes a pattern needs, per byte value.
static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'@' as usize] = AT;
    t[b'.' as usize] = DOT;
    t[b':' as usize] = COLON;
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = DIGIT;
        d += 1;
    }
    let mut h = 0u8;
    while h < 6 {
        t[(b'a' + h) as usize] |= HEX_LETTER;
        t[(b'A' + h) as usize] |= HEX_LETTER;
        h += 1;
    }
    t[b'b' as usize] |= B;
    t[b'B' as usize] |= B;
    t[b'A' as usize] |= UPPER_A;
    t
};

/// What one pass over a text found: byte classes present and the number of digits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hints {
    classes: u8,
    digits: usize,
}

/// Bytes per step of [`Hints::of`]: lanes the compiler keeps in one vector register.
const LANES: usize = 16;
/// Below this length [`Hints::of`] reads a byte at a time: setting up and adding up the
/// lanes costs more than it saves on short texts (measured: break-even near 35 bytes).
const LANES_FROM: usize = 32;

impl Hints {
    /// The hints of `b`. Texts of [`LANES_FROM`] bytes or more go sixteen bytes per step:
    /// each lane keeps its own class bits and digit count in plain arrays and classes are
    /// found by comparisons, not a table lookup, so the compiler makes the inner loop a
    /// few vector compares per sixteen bytes (a table lookup per byte cannot be
    /// vectorised); about half the instructions of the table on a 200-byte line. The
    /// lanes' digit counts are added up every 255 steps, before a `u8` could overflow.
    pub(super) fn of(b: &[u8]) -> Hints {
        if b.len() < LANES_FROM {
            return Hints::by_table(b);
        }
        let mut classes = [0u8; LANES];
        let mut digits = 0usize;
        let mut chunks = b.chunks_exact(LANES);
        loop {
            let mut lane_digits = [0u8; LANES];
            let mut steps = 0;
            for chunk in chunks.by_ref().take(255) {
                for ((class, count), &c) in classes.iter_mut().zip(&mut lane_digits).zip(chunk) {
                    let digit = c.wrapping_sub(b'0') < 10;
                    let folded = c | 0x20;
                    *class |= (if c == b'@' { AT } else { 0 })
                        | (if c == b'.' { DOT } else { 0 })
                        | (if c == b':' { COLON } else { 0 })
                        | (if digit { DIGIT } else { 0 })
                        | (if folded == b'b' { B } else { 0 })
                        | (if c == b'A' { UPPER_A } else { 0 })
                        | (if folded.wrapping_sub(b'a') < 6 {
                            HEX_LETTER
                        } else {
                            0
                        });
                    // At most 255 steps between sums: never wraps (and an overflow check
                    // here would keep the loop from being vectorised in checked builds).
                    *count = count.wrapping_add(u8::from(digit));
                }
                steps += 1;
            }
            digits += sum_lanes(&lane_digits);
            if steps < 255 {
                break;
            }
        }
        let (lo, hi) = halves(&classes);
        let mut folded = lo | hi;
        folded |= folded >> 32;
        folded |= folded >> 16;
        folded |= folded >> 8;
        let mut hints = Hints::by_table(chunks.remainder());
        hints.classes |= folded as u8;
        hints.digits += digits;
        hints
    }

    /// The hints of `b` a byte at a time through the class table.
    pub(super) fn by_table(b: &[u8]) -> Hints {
        let mut classes = 0u8;
        let mut digits = 0usize;
        for &c in b {
            let k = CLASSES[usize::from(c)];
            classes |= k;
            digits += usize::from(k & DIGIT != 0);
        }
        Hints { classes, digits }
    }

    /// False when `p` cannot match a text of `len` bytes with these hints. The text may
    /// have changed by earlier patterns' replacements since; `[REDACTED:<kind>]` can
    /// never form a match, so hints of the original text still hold.
    fn allows(&self, p: Pattern, len: usize) -> bool {
        let has = |k: u8| self.classes & k != 0;
        match p {
            Pattern::Email => has(AT) && has(DOT) && len >= 6,
            Pattern::Ipv4 => has(DOT) && self.digits >= 4 && len >= 7,
            Pattern::Ipv6 => has(COLON) && (self.digits > 0 || has(HEX_LETTER)),
            Pattern::CreditCard => self.digits >= 13,
            Pattern::BearerToken => has(B) && len >= 15,
            Pattern::AwsAccessKey => has(UPPER_A) && len >= 20,
        }
    }
}

/// The sixteen lanes as two little-endian words.
fn halves(lanes: &[u8; LANES]) -> (u64, u64) {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&lanes[..8]);
    hi.copy_from_slice(&lanes[8..]);
    (u64::from_le_bytes(lo), u64::from_le_bytes(hi))
}

/// The sum of sixteen byte counters (each at most 255), without a loop.
fn sum_lanes(lanes: &[u8; LANES]) -> usize {
    const EVEN: u64 = 0x00ff_00ff_00ff_00ff;
    let pairs = |w: u64| (w & EVEN) + ((w >> 8) & EVEN);
    let (lo, hi) = halves(lanes);
    // Four 16-bit sums of at most 4 × 255 each; the multiply adds them into the top ones.
    let s = pairs(lo) + pairs(hi);
    (s.wrapping_mul(0x0001_0001_0001_0001) >> 48) as usize
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn before_ok(b: &[u8], start: usize) -> bool {
    start == 0 || !is_word(b[start - 1])
}

fn after_ok(b: &[u8], end: usize) -> bool {
    end >= b.len() || !is_word(b[end])
}

// ---- email ----

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn find_email(b: &[u8], from: usize) -> Option<(usize, usize)> {
    for at in memchr_iter(b'@', &b[from..]).map(|i| i + from) {
        let mut start = at;
        while start > from && is_local(b[start - 1]) {
            start -= 1;
        }
        while start < at && b[start] == b'.' {
            start += 1;
        }
        if start == at {
            continue;
        }
        let mut end = at + 1;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'.' || b[end] == b'-')
        {
            end += 1;
        }
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &b[at + 1..end];
        let Some(dot) = domain.iter().rposition(|&c| c == b'.') else {
            continue;
        };
        let tld = &domain[dot + 1..];
        let labels_ok = domain.split(|&c| c == b'.').all(|l| !l.is_empty());
        if labels_ok && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) {
            return Some((start, end));
        }
    }
    None
}

// ---- IPv4 ----

fn find_ipv4(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut pos = from;
    while let Some(i) = memchr(b'.', &b[pos..]).map(|i| i + pos) {
        let is_run = |c: u8| c.is_ascii_digit() || c == b'.';
        let mut start = i;
        while start > 0 && is_run(b[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < b.len() && is_run(b[end]) {
            end += 1;
        }
        pos = end;
        if start < from {
            // The run began inside an earlier match.
            if pos >= b.len() {
                break;
            }
            continue;
        }
        // A sentence may end right after the address.
        let mut e = end;
        if e > start && b[e - 1] == b'.' && (e == b.len() || !b[e].is_ascii_digit()) {
            e -= 1;
        }
        if before_ok(b, start) && after_ok(b, end) && is_ipv4(&b[start..e]) {
            return Some((start, e));
        }
        if pos >= b.len() {
            break;
        }
    }
    None
}

fn is_ipv4(s: &[u8]) -> bool {
    let mut parts = 0;
    for part in s.split(|&c| c == b'.') {
        parts += 1;
        if parts > 4 || part.is_empty() || part.len() > 3 {
            return false;
        }
        let v = part
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
        if v > 255 {
            return false;
        }
    }
    parts == 4
}

// ---- IPv6 ----

fn find_ipv6(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let is_run = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut pos = from;
    while let Some(i) = memchr(b':', &b[pos..]).map(|i| i + pos) {
        let mut start = i;
        while start > 0 && is_run(b[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < b.len() && is_run(b[end]) {
            end += 1;
        }
        pos = end;
        let (mut s0, mut e0) = (start, end);
        // `host:fe80::1` and `fe80::1: refused`: one separating colon is not the address.
        if b[s0] == b':' && b.get(s0 + 1) != Some(&b':') {
            s0 += 1;
        }
        while e0 > s0 && b[e0 - 1] == b'.' {
            e0 -= 1;
        }
        if e0 > s0 + 1 && b[e0 - 1] == b':' && b[e0 - 2] != b':' {
            e0 -= 1;
        }
        let cand = &s[s0..e0];
        if s0 >= from
            && e0 - s0 >= 2
            && e0 - s0 <= 45
            && before_ok(b, s0)
            && after_ok(b, end)
            && cand.bytes().filter(|&c| c == b':').count() >= 2
            && cand.bytes().any(|c| c.is_ascii_hexdigit())
            && cand.parse::<std::net::Ipv6Addr>().is_ok()
        {
            return Some((s0, e0));
        }
        if pos >= b.len() {
            break;
        }
    }
    None
}

// ---- credit cards ----

/// Counts ASCII digits eight bytes at a time.
pub fn count_digits(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut n = 0usize;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        // t holds 0..=9 in the bytes that are digits.
        let t = u64::from_le_bytes(w) ^ (0x30 * ONES);
        // High bit set where (t & 0x7f) >= 10, or where t itself had its high bit.
        let not_digit = (((t & !HIGH) + (0x76 * ONES)) | t) & HIGH;
        n += 8 - not_digit.count_ones() as usize;
    }
    n + chunks
        .remainder()
        .iter()
        .filter(|c| c.is_ascii_digit())
        .count()
}

fn find_card(b: &[u8], from: usize) -> Option<(usize, usize)> {
    if count_digits(&b[from..]) < 13 {
        return None;
    }
    // Scratch for each run of digit groups, filled before it is read (set up once: a
    // line has many runs, most too short to be a card).
    let mut digits = [0u8; 19];
    let mut ends: [(usize, usize); 19] = [(0, 0); 19];
    let mut i = from;
    while i < b.len() {
        if !b[i].is_ascii_digit() || !before_ok(b, i) {
            i += 1;
            continue;
        }
        // Read digit groups separated by a single space or dash; remember where each
        // group ends and how many digits precede that point. Only `digits[..n]` and
        // `ends[..n_ends]` of this run are read below.
        let mut n = 0usize;
        let mut n_ends = 0;
        let mut j = i;
        let mut too_long = false;
        loop {
            while j < b.len() && b[j].is_ascii_digit() {
                if n < 19 {
                    digits[n] = b[j] - b'0';
                }
                n += 1;
                j += 1;
            }
            if n > 19 {
                too_long = true;
            }
            if !too_long && n_ends < 19 {
                ends[n_ends] = (j, n);
                n_ends += 1;
            }
            if j + 1 < b.len()
                && matches!(b[j], b' ' | b'-')
                && b[j + 1].is_ascii_digit()
                && !too_long
            {
                j += 1;
                continue;
            }
            break;
        }
        // Longest candidate first; a candidate must end at a word boundary.
        for &(end, count) in ends[..n_ends].iter().rev() {
            if (13..=19).contains(&count)
                && after_ok(b, end)
                && issuer_ok(&digits[..count])
                && luhn(&digits[..count])
            {
                return Some((i, end));
            }
        }
        // Try again from the next group (a card may follow other digits), or past a run
        // too long to be a card.
        i = if n_ends > 0 {
            ends[0].0
        } else {
            let mut k = i;
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            k
        };
    }
    None
}

/// True if the digits pass the Luhn check.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn issuer_ok(d: &[u8]) -> bool {
    let len = d.len();
    let prefix = |k: usize| d[..k].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    match d[0] {
        4 => matches!(len, 13 | 16 | 19),
        5 => {
            let p2 = prefix(2);
            (51..=55).contains(&p2) && len == 16 || matches!(p2, 50 | 56..=59) && len >= 13
        }
        2 => (2221..=2720).contains(&prefix(4)) && len == 16,
        3 => {
            let p2 = prefix(2);
            let p4 = prefix(4);
            (matches!(p2, 34 | 37) && len == 15)
                || (matches!(p2, 36 | 38 | 39) || (300..=305).contains(&prefix(3))) && len >= 14
                || (3528..=3589).contains(&p4) && len >= 16
        }
        6 => len >= 13,
        _ => false,
    }
}

// ---- bearer tokens ----

fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

fn find_bearer(b: &[u8], from: usize) -> Option<(usize, usize)> {
    // `Bearer`, `bearer` and `BEARER` (other mixes are not worth a slower scan): one
    // vectorised pass for the first letter, then six bytes compared at each.
    for i in memchr2_iter(b'b', b'B', &b[from..]).map(|i| i + from) {
        let rest = b.get(i + 1..i + 7)?;
        if (rest != b"earer " && rest != b"EARER ") || !before_ok(b, i) {
            continue;
        }
        if let Some(token) = token_from(b, i + 7) {
            return Some(token);
        }
    }
    None
}

/// The token after `Bearer ` when the word ends at `j`: more spaces, then 8 or more token
/// characters and any `=` padding.
pub(super) fn token_from(b: &[u8], mut j: usize) -> Option<(usize, usize)> {
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    let start = j;
    while j < b.len() && is_token(b[j]) {
        j += 1;
    }
    while j < b.len() && b[j] == b'=' {
        j += 1;
    }
    (j - start >= 8).then_some((start, j))
}

// ---- AWS access key ids ----

fn find_aws_key(b: &[u8], from: usize) -> Option<(usize, usize)> {
    for i in memchr_iter(b'A', &b[from..]).map(|i| i + from) {
        if i + 20 > b.len() || !before_ok(b, i) {
            continue;
        }
        let prefix = &b[i..i + 4];
        if !matches!(prefix, b"AKIA" | b"ASIA" | b"ABIA" | b"ACCA") {
            continue;
        }
        let body = &b[i + 4..i + 20];
        if body
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && after_ok(b, i + 20)
        {
            return Some((i, i + 20));
        }
    }
    None
}
