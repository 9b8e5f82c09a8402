//! Tests of the syslog parser.

use super::*;
use crate::parse::testkit::{check_cases, check_refuses, ctx, field, ts};
use crate::parse::Zone;
use logferry_shared::event::Level;
use proptest::prelude::*;

fn parse(line: &str) -> Option<Parsed<'_>> {
    SyslogParser.parse(line, &ctx())
}

fn s(v: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(v))
}

fn str_field<'p>(p: &'p Parsed<'_>, k: &str) -> Option<&'p str> {
    match field(p, k) {
        Some(Value::Str(v)) => Some(v.as_ref()),
        _ => None,
    }
}

#[test]
fn rfc5424_examples() {
    // RFC 5424 §6.5, examples 1, 3 and 4.
    let p = parse("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8").unwrap();
    assert_eq!(p.timestamp, Some(ts("2003-10-11T22:14:15.003Z")));
    assert_eq!(p.level, Some(Level::Fatal));
    assert_eq!(p.message, "'su root' failed for lonvick on /dev/pts/8");
    assert_eq!(str_field(&p, "hostname"), Some("mymachine.example.com"));
    assert_eq!(str_field(&p, "appname"), Some("su"));
    assert_eq!(field(&p, "procid"), None);
    assert_eq!(str_field(&p, "msgid"), Some("ID47"));
    assert_eq!(str_field(&p, "facility"), Some("auth"));
    assert_eq!(str_field(&p, "severity"), Some("crit"));

    let p = parse(r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry..."#).unwrap();
    assert_eq!(p.level, Some(Level::Info));
    assert_eq!(str_field(&p, "facility"), Some("local4"));
    assert_eq!(str_field(&p, "severity"), Some("notice"));
    assert_eq!(str_field(&p, "sd.exampleSDID@32473.iut"), Some("3"));
    assert_eq!(
        str_field(&p, "sd.exampleSDID@32473.eventSource"),
        Some("Application")
    );
    assert_eq!(p.message, "An application event log entry...");

    let p = parse(r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#).unwrap();
    assert_eq!(p.message, "");
    assert_eq!(
        str_field(&p, "sd.examplePriority@32473.class"),
        Some("high")
    );
    assert_eq!(str_field(&p, "sd.exampleSDID@32473.eventID"), Some("1011"));
}

#[test]
fn rfc5424_details() {
    // Offsets, escapes in SD values, parameterless elements, nil everything.
    let p = parse(r#"<14>1 2026-11-22T11:00:00.123456+01:00 web-1 api 2211 - [origin ip="10.0.0.1"][meta sequenceId="7" note="a \"q\" \] \\ \x"][timeQuality] body text"#).unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123456Z")));
    assert_eq!(str_field(&p, "procid"), Some("2211"));
    assert_eq!(field(&p, "msgid"), None);
    assert_eq!(str_field(&p, "sd.origin.ip"), Some("10.0.0.1"));
    assert_eq!(str_field(&p, "sd.meta.note"), Some(r#"a "q" ] \ \x"#));
    assert_eq!(field(&p, "sd.timeQuality"), Some(&Value::Bool(true)));
    assert_eq!(p.message, "body text");

    let p = parse("<0>1 - - - - - -").unwrap();
    assert_eq!(p.timestamp, None);
    assert_eq!(p.level, Some(Level::Fatal));
    assert_eq!(p.message, "");
    assert_eq!(str_field(&p, "facility"), Some("kern"));
    assert_eq!(str_field(&p, "severity"), Some("emerg"));
    assert_eq!(p.fields.len(), 2);

    // Zoneless 5424 time in the configured zone; malformed SD stays in the message.
    let berlin = ParseContext {
        zone: Zone::parse("Europe/Berlin").unwrap(),
        now: ts("2026-11-22T12:00:00Z"),
    };
    let p = SyslogParser
        .parse("<13>1 2026-07-01T10:00:00 h a - - [bad sd here", &berlin)
        .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-07-01T08:00:00Z")));
    assert_eq!(p.message, "[bad sd here");
    assert!(p.fields.iter().all(|(k, _)| !k.starts_with("sd.")));
}

#[test]
fn rfc3164_forms() {
    let p = parse("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
        .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-10-11T22:14:15Z")));
    assert_eq!(p.level, Some(Level::Fatal));
    assert_eq!(str_field(&p, "hostname"), Some("mymachine"));
    assert_eq!(str_field(&p, "appname"), Some("su"));
    assert_eq!(p.message, "'su root' failed for lonvick on /dev/pts/8");

    let p = parse("Nov 22 10:00:00 web-1 sshd[2211]: Accepted publickey for deploy from 192.0.2.10 port 51122 ssh2").unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(p.level, None);
    assert_eq!(str_field(&p, "hostname"), Some("web-1"));
    assert_eq!(str_field(&p, "appname"), Some("sshd"));
    assert_eq!(str_field(&p, "procid"), Some("2211"));
    assert_eq!(field(&p, "facility"), None);
    assert_eq!(
        p.message,
        "Accepted publickey for deploy from 192.0.2.10 port 51122 ssh2"
    );

    let p = parse("Nov 22 2025 10:00:00 host app: msg").unwrap();
    assert_eq!(p.timestamp, Some(ts("2025-11-22T10:00:00Z")));
    assert_eq!(p.message, "msg");

    let p = parse("Nov  2 09:08:07 db-1 kernel: [12345.678] eth0: link up").unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-02T09:08:07Z")));
    assert_eq!(p.message, "[12345.678] eth0: link up");

    let p = parse(
        "2026-11-22T10:00:00.123456+00:00 web-1 CRON[2290]: (root) CMD (/usr/local/bin/backup.sh)",
    )
    .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123456Z")));
    assert_eq!(str_field(&p, "appname"), Some("CRON"));
    assert_eq!(p.message, "(root) CMD (/usr/local/bin/backup.sh)");

    // Year inference: a December line read in January is from last year.
    let jan = ParseContext {
        zone: Zone::Utc,
        now: ts("2027-01-01T00:05:00Z"),
    };
    let p = SyslogParser
        .parse("Dec 31 23:59:59 h app: x", &jan)
        .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-12-31T23:59:59Z")));
}

#[test]
fn pri_variants_and_network_gear() {
    // Local syslog(3): no hostname.
    let p = parse("<13>Nov 22 10:00:00 myapp[42]: hello").unwrap();
    assert_eq!(field(&p, "hostname"), None);
    assert_eq!(str_field(&p, "appname"), Some("myapp"));
    assert_eq!(str_field(&p, "facility"), Some("user"));
    assert_eq!(p.level, Some(Level::Info));
    // Cisco ASA, with and without device id.
    let p = parse("<166>Nov 22 2026 10:00:00: %ASA-6-302013: Built outbound TCP connection 1 for outside:203.0.113.7/443").unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(str_field(&p, "appname"), Some("%ASA-6-302013"));
    assert_eq!(
        p.message,
        "Built outbound TCP connection 1 for outside:203.0.113.7/443"
    );
    let p = parse("<164>Nov 22 2026 10:00:00 asa-fw01 : %ASA-4-106023: Deny tcp src outside:198.51.100.9/4444").unwrap();
    assert_eq!(str_field(&p, "hostname"), Some("asa-fw01"));
    assert_eq!(
        p.message,
        "%ASA-4-106023: Deny tcp src outside:198.51.100.9/4444"
    );
    assert_eq!(p.level, Some(Level::Warn));
    // PRI and text only.
    let p = parse("<189>date=2026-11-22 time=10:00:00 devname=FW01 type=traffic").unwrap();
    assert_eq!(p.timestamp, None);
    assert_eq!(p.level, Some(Level::Info));
    assert_eq!(str_field(&p, "facility"), Some("local7"));
    assert_eq!(
        p.message,
        "date=2026-11-22 time=10:00:00 devname=FW01 type=traffic"
    );
    // PRI, time, host and untagged text.
    let p = parse("<30>Nov 22 10:00:00 MikroTik system,info,account user admin logged in").unwrap();
    assert_eq!(str_field(&p, "hostname"), Some("MikroTik"));
    assert_eq!(field(&p, "appname"), None);
    assert_eq!(p.message, "system,info,account user admin logged in");
    // PRI with an ISO time (rsyslog forwarding RFC 3339 in 3164 framing).
    let p =
        parse("<86>2026-11-22T10:00:00Z web-1 sudo: deploy : TTY=pts/0 ; COMMAND=/bin/ls").unwrap();
    assert_eq!(str_field(&p, "facility"), Some("authpriv"));
    assert_eq!(str_field(&p, "appname"), Some("sudo"));
    assert_eq!(p.message, "deploy : TTY=pts/0 ; COMMAND=/bin/ls");
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    // Tag with pid but no colon.
    let p = parse("Nov 22 10:00:00 web-1 nginx[77] worker started").unwrap();
    assert_eq!(str_field(&p, "procid"), Some("77"));
    assert_eq!(p.message, "worker started");
}

#[test]
fn values_are_borrowed() {
    let p = parse(r#"<165>1 2026-11-22T10:00:00Z h a 1 m [x y="z"] msg"#).unwrap();
    assert!(matches!(p.message, Cow::Borrowed(_)));
    for (_, v) in &p.fields {
        assert!(matches!(v, Value::Str(Cow::Borrowed(_))), "{v:?}");
    }
    assert_eq!(field(&p, "sd.x.y"), Some(&s("z")));
}

#[test]
fn not_syslog() {
    for line in [
        "",
        "hello world",
        r#"{"time":"2026-11-22T10:00:00Z","level":"info","msg":"Nov 22 10:00:00 h a: b"}"#,
        r#"time=2026-11-22T10:00:00Z level=info msg="hello""#,
        r#"203.0.113.7 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5120 "-" "curl/8.5.0""#,
        "2026-11-22 10:00:00,123 ERROR [main] x - y",
        "2026-11-22 10:00:01 INFO worker 3 picked up job 17",
        "2026-11-22T10:00:00.123Z INFO main: started",
        "2026-11-22T10:00:00.123Z ERROR [main] boom: x",
        "2026/11/22 10:00:00 main.go:12: listening",
        "2026/11/22 10:00:00 [error] 1234#0: *1 open() failed",
        "E1122 10:00:02.123456    4242 controller.go:42] failed to sync",
        "[Sun Nov 22 10:00:00.123456 2026] [core:error] [pid 1] AH00037",
        "Nov 22 10:00:00 just some words here",
        "Nov 22 10:00:00 web-1",
        "Nov 22, 2026 10:00:00 AM org.apache.catalina.startup.Catalina start",
        "Nov 22 10:00:00",
        "2026-11-22T10:00:00Z heroku[router]: at=info method=GET",
        "<html><body>",
        "<192>Nov 22 10:00:00 h a: x",
        "<1234>1 - - - - - -",
        "<>1 - - - - - -",
    ] {
        assert!(parse(line).is_none(), "{line}");
    }
}

proptest! {
    #[test]
    fn never_panics(line in "\\PC*") {
        let _ = parse(&line);
    }

    #[test]
    fn never_panics_on_syslogish(line in r#"(<[0-9]{1,3}>)?(1 )?[A-Za-z0-9 :\[\]"=\\.\-@é-]{0,60}"#) {
        let _ = parse(&line);
    }

    #[test]
    fn round_trips_5424(
        pri in 0u8..192,
        host in "[a-z][a-z0-9.-]{0,20}",
        app in "[a-zA-Z][a-zA-Z0-9_/-]{0,15}",
        pid in 1u32..4_000_000,
        msgid in "[A-Z0-9]{1,8}",
        sd_value in "\\PC*",
        msg in "\\PC*",
        nanos in 1_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
    ) {
        let t = time::to_utc(Timestamp(nanos)).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let escaped = sd_value.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]");
        let line = format!(r#"<{pri}>1 {t} {host} {app} {pid} {msgid} [meta@1 v="{escaped}"] {msg}"#);
        let p = parse(&line).unwrap();
        prop_assert_eq!(p.timestamp, Some(Timestamp(nanos)));
        prop_assert_eq!(p.level, level::from_syslog_severity(pri & 7));
        prop_assert_eq!(p.message.as_ref(), msg.strip_prefix('\u{feff}').unwrap_or(&msg));
        prop_assert_eq!(str_field(&p, "hostname"), Some(host.as_str()));
        prop_assert_eq!(str_field(&p, "appname"), Some(app.as_str()));
        let pid = pid.to_string();
        prop_assert_eq!(str_field(&p, "procid"), Some(pid.as_str()));
        prop_assert_eq!(str_field(&p, "msgid"), Some(msgid.as_str()));
        prop_assert_eq!(str_field(&p, "sd.meta@1.v"), Some(sd_value.as_str()));
        prop_assert_eq!(str_field(&p, "facility"), Some(FACILITIES[usize::from(pri >> 3)]));
    }

    #[test]
    fn round_trips_3164(
        host in "[a-z][a-z0-9.-]{0,20}",
        app in "[a-zA-Z][a-zA-Z0-9_/-]{0,15}",
        pid in 1u32..4_000_000,
        msg in "[^ \\p{C}]\\PC*",
        month in 1u32..=12,
        day in 1u32..=28,
        secs in 0u32..86_400,
    ) {
        prop_assume!(!(host.len() >= 3 && level::from_word(&host).is_some()));
        const M: [&str; 12] = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"];
        let (h, mi, se) = (secs / 3600, secs / 60 % 60, secs % 60);
        let line = format!("{} {day:>2} {h:02}:{mi:02}:{se:02} {host} {app}[{pid}]: {msg}", M[month as usize - 1]);
        let p = parse(&line).unwrap();
        let year = time::infer_year(month, day, ctx().now);
        let want = chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap()
            .and_hms_opt(h, mi, se).unwrap().and_utc().timestamp_nanos_opt().unwrap();
        prop_assert_eq!(p.timestamp, Some(Timestamp(want)));
        prop_assert_eq!(p.level, None);
        prop_assert_eq!(p.message.as_ref(), msg.strip_prefix('\u{feff}').unwrap_or(&msg));
        prop_assert_eq!(str_field(&p, "hostname"), Some(host.as_str()));
        prop_assert_eq!(str_field(&p, "appname"), Some(app.as_str()));
        let pid = pid.to_string();
        prop_assert_eq!(str_field(&p, "procid"), Some(pid.as_str()));
    }
}

#[test]
fn corpus_cases() {
    assert!(check_cases("syslog", &SyslogParser) >= 15);
    check_refuses(&["json", "logfmt"], &SyslogParser);
}
