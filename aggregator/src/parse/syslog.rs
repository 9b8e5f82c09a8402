//! Syslog: RFC 5424, RFC 3164 (BSD) with or without `<PRI>` and with or without a year,
//! and the ISO-timestamped file format rsyslog writes (`RSYSLOG_FileFormat`).
//!
//! # Layouts
//!
//! | layout | example |
//! |---|---|
//! | RFC 5424 | `<165>1 2026-11-22T10:00:00.003Z host app 2211 ID47 [exampleSDID@32473 iut="3"] msg` |
//! | RFC 3164 | `<34>Oct 11 22:14:15 mymachine su: 'su root' failed` |
//! | BSD file line (no PRI) | `Nov 22 10:00:00 web-1 sshd[2211]: Accepted publickey ...` |
//! | with a year | `Nov 22 2026 10:00:00 host app: msg` (also after a PRI) |
//! | rsyslog ISO | `2026-11-22T10:00:00.123456+00:00 host app[pid]: msg` (also after a PRI) |
//! | PRI only | `<190>%ASA-6-302013: Built outbound ...`, `<13>date=2026-11-22 time=... devname=fw` |
//!
//! # When a line is claimed
//!
//! - With a valid `<PRI>` (0–191) first: always. RFC 5424 is tried when a version digit
//!   follows; if its header does not parse the line is read as RFC 3164, where the
//!   timestamp, hostname and tag are each optional (a network device may send just a PRI
//!   and text).
//! - Without PRI: only a BSD timestamp (`Mmm dd [yyyy ]HH:MM:SS[.frac]`) or an ISO one with
//!   `T` (`2026-11-22T10:00:00[.frac][zone]`), then a hostname, then a tag `name:`,
//!   `name[pid]:` or `name[pid]`. A hostname that is a level word (`INFO`, `ERROR`, ...) is
//!   refused, so `2026-11-22T10:00:00Z INFO main: started` is not syslog. Java/Python lines
//!   (`2026-11-22 10:00:00,123 ERROR ...`: no `T`), Go's `2026/11/22 ...`, JSON, logfmt,
//!   access logs and klog are not claimed.
//!
//! # What is extracted
//!
//! | part | goes to |
//! |---|---|
//! | PRI severity | level via [`level::from_syslog_severity`], and field `severity` (`emerg alert crit err warning notice info debug`) |
//! | PRI facility | field `facility` (`kern user mail daemon auth syslog lpr news uucp cron authpriv ftp ntp audit alert clockd local0`…`local7`, the names Vector uses) |
//! | timestamp | timestamp; 3164 without a year gets one from [`ParseContext::now`] ([`time::infer_year`]); times without a zone are read in [`ParseContext::zone`] |
//! | HOSTNAME | field `hostname` (the event's own `host` is the agent's and stays separate) |
//! | APP-NAME / tag name | field `appname` |
//! | PROCID / `[pid]` | field `procid` (a string: 5424 allows non-numeric ids) |
//! | MSGID (5424) | field `msgid` |
//! | STRUCTURED-DATA (5424) | one field per parameter, `sd.<SD-ID>.<PARAM-NAME>` → `Str` (escapes `\"`, `\\`, `\]` decoded; borrowed when there are none); an element without parameters gives `sd.<SD-ID>` → `Bool(true)`. Flat keys were chosen over one nested `Json` field so that each parameter can be filtered and indexed like any other field. A repeated parameter name keeps the last value. |
//! | MSG | message; a leading UTF-8 BOM is removed; leading spaces after the tag's `:` are cut |
//!
//! The 5424 NILVALUE `-` leaves the field out. Without a PRI there is no level (later
//! stages may find a level word in the message). When a 3164 line has no tag the message
//! is everything after the hostname (`<PRI>Mmm dd HH:MM:SS host text`); a Cisco ASA's
//! ` : ` after the hostname and `:` after the time are skipped.
//!
//! # Implementation: a hand-written scanner, not `syslog_loose`
//!
//! `syslog_loose` 0.21 (Vector's parser) was considered. It is written as the name says,
//! to accept anything: it turns any text into a "message", so detection would still need
//! all the checks above; it reads zoneless times only through a `TimeZone` convertible to
//! `DateTime<FixedOffset>`, which `chrono_tz::Tz` (our [`super::Zone::Named`]) is not, so
//! zoneless 5424/ISO times could not follow daylight saving; it allocates per line (month
//! names are lower-cased into a `String`) and brings in `nom`. The scanner below reuses
//! [`time::bsd_prefix`] / [`time::iso_prefix`], borrows every value from the line, and
//! allocates only for structured-data keys and escaped values.
//!
//! # Not handled
//!
//! Octet-counted framing (`123 <34>1 ...`, a transport concern), sequence numbers and `*`
//! before a Cisco IOS timestamp (`<189>12: *Nov 22 10:00:00.123 UTC: ...`: read as tag
//! `12` and message), zone abbreviations after BSD times (`10:00:00 UTC`), and Heroku's
//! drain form without a hostname (`2026-... heroku[router]: at=info ...`).

use std::borrow::Cow;

use logferry_shared::event::Timestamp;

use super::fields::{has_backslash, Fields};
use super::{level, time, ParseContext, Parsed, Parser, Value};

/// Parser for syslog lines. See the [module docs](self).
pub struct SyslogParser;

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clockd", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl Parser for SyslogParser {
    fn name(&self) -> &'static str {
        "syslog"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        let line = line.trim_end_matches(['\r', '\n']);
        match pri(line) {
            Some((pri, rest)) => rfc5424(pri, rest, ctx).or_else(|| rfc3164(Some(pri), rest, ctx)),
            None if line.starts_with('<') => None,
            None => rfc3164(None, line, ctx),
        }
    }
}

/// `<N>` with N in 0..=191, and the rest.
fn pri(s: &str) -> Option<(u8, &str)> {
    let rest = s.strip_prefix('<')?;
    let b = rest.as_bytes();
    let n = b.iter().take(4).take_while(|c| c.is_ascii_digit()).count();
    if !(1..=3).contains(&n) || b.get(n) != Some(&b'>') {
        return None;
    }
    let v: u16 = rest[..n].parse().ok()?;
    if v > 191 {
        return None;
    }
    Some((v as u8, &rest[n + 1..]))
}

/// The next space-delimited token and what follows the single space after it.
fn token(s: &str) -> (&str, Option<&str>) {
    match s.find(' ') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// A header token, `-` (NILVALUE) as `None`.
fn nil(t: &str) -> Option<&str> {
    (t != "-").then_some(t)
}

fn strip_bom(s: &str) -> &str {
    s.strip_prefix('\u{feff}').unwrap_or(s)
}

/// Facility and severity fields and the level from a PRI.
fn pri_parts<'a>(pri: u8, fields: &mut Fields<'a>) -> Option<logferry_shared::event::Level> {
    let facility = usize::from(pri >> 3);
    let severity = pri & 7;
    if let Some(name) = FACILITIES.get(facility) {
        fields.put(Cow::Borrowed("facility"), Value::Str(Cow::Borrowed(name)));
    }
    fields.put(
        Cow::Borrowed("severity"),
        Value::Str(Cow::Borrowed(SEVERITIES[usize::from(severity)])),
    );
    level::from_syslog_severity(severity)
}

fn put_str<'a>(fields: &mut Fields<'a>, key: &'static str, v: Option<&'a str>) {
    if let Some(v) = v {
        fields.put(Cow::Borrowed(key), Value::Str(Cow::Borrowed(v)));
    }
}

/// RFC 5424 after the PRI: `VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP
/// MSGID SP STRUCTURED-DATA [SP MSG]`. `None` when the header does not fit.
fn rfc5424<'a>(pri: u8, rest: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let (version, rest) = token(rest);
    let vb = version.as_bytes();
    if vb.is_empty() || vb.len() > 2 || vb[0] == b'0' || !vb.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (ts, rest) = token(rest?);
    let timestamp = match ts {
        "-" => None,
        t if t.as_bytes().get(10) == Some(&b'T') => Some(time::rfc3339(t, &ctx.zone)?),
        _ => return None,
    };
    let (host, rest) = token(rest?);
    let (app, rest) = token(rest?);
    let (procid, rest) = token(rest?);
    let (msgid, rest) = token(rest?);
    if [host, app, procid, msgid].iter().any(|t| t.is_empty()) {
        return None;
    }
    let mut fields = Fields::with_capacity(8);
    put_str(&mut fields, "hostname", nil(host));
    put_str(&mut fields, "appname", nil(app));
    put_str(&mut fields, "procid", nil(procid));
    put_str(&mut fields, "msgid", nil(msgid));
    let level = pri_parts(pri, &mut fields);
    let message = match rest {
        None => "",
        Some(sd_and_msg) => structured_data(sd_and_msg, &mut fields),
    };
    Some(Parsed {
        timestamp,
        level,
        message: Cow::Borrowed(strip_bom(message)),
        fields: fields.list,
    })
}

/// A parsed SD-ELEMENT parameter: (SD-ID, PARAM-NAME or `None` for an element without
/// parameters, raw PARAM-VALUE).
type SdParam<'a> = (&'a str, Option<&'a str>, &'a str);

/// STRUCTURED-DATA and MSG: adds the parameters to `fields` and returns the MSG. `-`, or
/// structured data that does not parse (then the whole text is the message), adds none.
fn structured_data<'a>(s: &'a str, fields: &mut Fields<'a>) -> &'a str {
    if let Some(msg) = s.strip_prefix('-') {
        return match msg.strip_prefix(' ') {
            Some(m) => m,
            None if msg.is_empty() => "",
            // `-text`: not a NILVALUE after all; keep it all as the message.
            None => s,
        };
    }
    if !s.starts_with('[') {
        // Non-conformant senders that leave out STRUCTURED-DATA.
        return s;
    }
    let mut params: Vec<SdParam<'a>> = Vec::new();
    let Some(end) = sd_elements(s, &mut params) else {
        return s;
    };
    for (id, name, raw) in params {
        match name {
            None => {
                fields.put(Cow::Owned(format!("sd.{id}")), Value::Bool(true));
            }
            Some(name) => {
                fields.put(
                    Cow::Owned(format!("sd.{id}.{name}")),
                    Value::Str(sd_unescape(raw)),
                );
            }
        }
    }
    let after = &s[end..];
    after.strip_prefix(' ').unwrap_or(after)
}

/// Parses `[id p="v" ...][...]` at the start of `s`; returns the byte offset after the
/// last `]`. Every offset is at an ASCII byte, so slicing is safe.
fn sd_elements<'a>(s: &'a str, out: &mut Vec<SdParam<'a>>) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let id_start = i;
        while i < b.len() && !matches!(b[i], b' ' | b']' | b'=' | b'"') {
            i += 1;
        }
        let id = &s[id_start..i];
        if id.is_empty() {
            return None;
        }
        let mut any = false;
        loop {
            match *b.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                b' ' => {
                    while b.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    if b.get(i) == Some(&b']') {
                        continue;
                    }
                    let name_start = i;
                    while i < b.len() && !matches!(b[i], b' ' | b']' | b'=' | b'"') {
                        i += 1;
                    }
                    let name = &s[name_start..i];
                    if name.is_empty() || b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                        return None;
                    }
                    i += 2;
                    let v_start = i;
                    loop {
                        match *b.get(i)? {
                            b'\\' => i += 2,
                            b'"' => break,
                            _ => i += 1,
                        }
                    }
                    out.push((id, Some(name), &s[v_start..i]));
                    any = true;
                    i += 1;
                }
                _ => return None,
            }
        }
        if !any {
            out.push((id, None, ""));
        }
    }
    Some(i)
}

/// PARAM-VALUE escapes: `\"`, `\\` and `\]` stand for the character; any other backslash
/// is kept (RFC 5424 §6.3.3).
fn sd_unescape(raw: &str) -> Cow<'_, str> {
    if !has_backslash(raw.as_bytes()) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n @ ('"' | '\\' | ']')) = chars.peek() {
                out.push(n);
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// A BSD (`Nov 22 10:00:00`, `Nov 22 2026 10:00:00`) or ISO-with-`T` timestamp at the
/// start of `s`, and the bytes it used.
fn timestamp_3164(s: &str, ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    let b = s.as_bytes();
    if b.first().is_some_and(u8::is_ascii_alphabetic) {
        return time::bsd_prefix(s, &ctx.zone, ctx.now);
    }
    if b.get(10) == Some(&b'T') {
        return time::iso_prefix(s, &ctx.zone);
    }
    None
}

/// A tag: `name:`, `name[pid]:` or `name[pid]` → (name, pid).
fn tag(t: &str) -> Option<(&str, Option<&str>)> {
    let (body, colon) = match t.strip_suffix(':') {
        Some(b) => (b, true),
        None => (t, false),
    };
    if body.len() > 128 {
        return None;
    }
    if let Some(inner) = body.strip_suffix(']') {
        let open = inner.find('[')?;
        let (name, pid) = (&inner[..open], &inner[open + 1..]);
        if name.is_empty() || pid.is_empty() || pid.contains(['[', ']']) || !valid_name(name) {
            return None;
        }
        return Some((name, Some(pid)));
    }
    if !colon || body.is_empty() || !valid_name(body) {
        return None;
    }
    Some((body, None))
}

/// A tag name: no brackets, colons or quotes, and at least one letter or digit.
fn valid_name(name: &str) -> bool {
    !name.contains(['[', ']', ':', '"', '='])
        && name.bytes().any(|c| c.is_ascii_alphanumeric() || c >= 0x80)
}

/// A hostname (or IP address): printable ASCII, no brackets, quotes, `=`, `,`, braces.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && !h.ends_with(':')
        && h.bytes().all(|c| {
            c.is_ascii_graphic() && !matches!(c, b'[' | b']' | b'"' | b'=' | b',' | b'{' | b'}')
        })
        && h.bytes().any(|c| c.is_ascii_alphanumeric())
}

/// RFC 3164 and its variants, after an optional PRI.
fn rfc3164<'a>(pri: Option<u8>, rest: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let mut timestamp = None;
    let mut s = rest;
    if pri.is_some() {
        s = s.trim_start_matches(' ');
    }
    let found = timestamp_3164(s, ctx);
    if found.is_none() && pri.is_none() {
        // Most lines of other formats end here: before anything is allocated.
        return None;
    }
    let mut fields = Fields::with_capacity(6);
    match found {
        Some((t, used)) => {
            timestamp = Some(t);
            s = &s[used..];
            if pri.is_some() {
                // Cisco ASA: `Nov 22 2026 10:00:00: %ASA-...`.
                if let Some(r) = s.strip_prefix(':') {
                    s = r;
                }
            }
            match s.strip_prefix(' ') {
                Some(r) => s = r.trim_start_matches(' '),
                // `<PRI>TIMESTAMP` and nothing or no space after it: the rest is the text.
                None if pri.is_some() => return Some(finish(pri, timestamp, s, fields)),
                None => return None,
            }
        }
        None if pri.is_none() => return None,
        None => {
            // PRI and no timestamp: only a tag may follow.
            if let (t, Some(msg)) = token(s) {
                if let Some((name, pid)) = tag(t) {
                    put_str(&mut fields, "appname", Some(name));
                    put_str(&mut fields, "procid", pid);
                    s = msg.trim_start_matches(' ');
                }
            }
            return Some(finish(pri, timestamp, s, fields));
        }
    }
    let (t1, after1) = token(s);
    if let (Some(_), Some((name, pid))) = (pri, tag(t1)) {
        // `<13>Nov 22 10:00:00 app[1]: msg`: local syslog(3), no hostname.
        put_str(&mut fields, "appname", Some(name));
        put_str(&mut fields, "procid", pid);
        return Some(finish(pri, timestamp, after1.unwrap_or(""), fields));
    }
    if !valid_host(t1) {
        pri?;
        return Some(finish(pri, timestamp, s, fields));
    }
    if pri.is_none() && t1.len() >= 3 && level::from_word(t1).is_some() {
        // `2026-11-22T10:00:00Z INFO main: started` is an application log, not syslog.
        return None;
    }
    put_str(&mut fields, "hostname", Some(t1));
    let Some(after1) = after1 else {
        pri?;
        return Some(finish(pri, timestamp, "", fields));
    };
    let after1 = after1.trim_start_matches(' ');
    let (t2, after2) = token(after1);
    if let Some((name, pid)) = tag(t2) {
        put_str(&mut fields, "appname", Some(name));
        put_str(&mut fields, "procid", pid);
        return Some(finish(pri, timestamp, after2.unwrap_or(""), fields));
    }
    pri?;
    // Cisco ASA with a device id: `host : %ASA-...`.
    let msg = match (t2, after2) {
        (":", Some(m)) => m,
        _ => after1,
    };
    Some(finish(pri, timestamp, msg, fields))
}

fn finish<'a>(
    pri: Option<u8>,
    timestamp: Option<Timestamp>,
    msg: &'a str,
    mut fields: Fields<'a>,
) -> Parsed<'a> {
    let level = pri.and_then(|p| pri_parts(p, &mut fields));
    Parsed {
        timestamp,
        level,
        message: Cow::Borrowed(strip_bom(msg.trim_start_matches(' '))),
        fields: fields.list,
    }
}

#[cfg(test)]
mod tests;
