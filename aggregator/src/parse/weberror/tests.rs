//! Tests of the Nginx and Apache error-log parsers.

use super::*;
use crate::parse::testkit::{check_corpus, ctx, expect_field as field, has, s, ts};
use proptest::prelude::*;

fn nginx(line: &str) -> Parsed<'_> {
    NginxErrorParser
        .parse(line, &ctx())
        .unwrap_or_else(|| panic!("refused {line}"))
}

fn apache(line: &str) -> Parsed<'_> {
    ApacheErrorParser
        .parse(line, &ctx())
        .unwrap_or_else(|| panic!("refused {line}"))
}

#[test]
fn nginx_with_request_context() {
    let e = nginx(
        r#"2026/11/22 10:00:00 [error] 1234#5678: *99 open() "/usr/share/nginx/html/x" failed (2: No such file or directory), client: 1.2.3.4, server: shop, request: "GET /x HTTP/1.1", upstream: "http://10.0.0.5:8080/x", host: "shop.example", referrer: "https://shop.example/""#,
    );
    assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(e.level, Some(Level::Error));
    assert_eq!(
        e.message,
        r#"open() "/usr/share/nginx/html/x" failed (2: No such file or directory)"#
    );
    let want = vec![
        ("pid", Value::Int(1234)),
        ("tid", Value::Int(5678)),
        ("connection", Value::Int(99)),
        ("client", s("1.2.3.4")),
        ("server", s("shop")),
        ("request", s("GET /x HTTP/1.1")),
        ("upstream", s("http://10.0.0.5:8080/x")),
        ("host", s("shop.example")),
        ("referrer", s("https://shop.example/")),
    ];
    let got: Vec<_> = e
        .fields
        .iter()
        .map(|(k, v)| (k.as_ref(), v.clone()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn nginx_without_context_and_levels() {
    let e = nginx("2026/11/22 10:00:00 [notice] 1#1: start worker processes");
    assert_eq!(e.level, Some(Level::Info));
    assert_eq!(e.message, "start worker processes");
    assert!(!has(&e, "connection"));
    let e = nginx(
        "2026/11/22 10:00:00 [emerg] 1#1: bind() to 0.0.0.0:80 failed (98: Address already in use)",
    );
    assert_eq!(e.level, Some(Level::Fatal));
    let e = nginx("2026/11/22 10:00:00 [warn] 7#7: *1 a client request body is buffered to a temporary file /var/cache/nginx/client_temp/0000000001, client: 10.0.0.1, server: _, request: \"POST /upload HTTP/1.1\", host: \"files\"");
    assert_eq!(e.level, Some(Level::Warn));
    assert_eq!(*field(&e, "server"), s("_"));
    for bad in [
        "2026/11/22 10:00:00 [err] 1#1: x",
        "2026/11/22 10:00:00 [error] 1: x",
        "2026/11/22 10:00:00 [error] x#1: x",
        "2026/11/22 10:00:00 [ERROR] 1#1: x",
        "2026-11-22 10:00:00 [error] 1#1: x",
        "2026/11/22 10:00:00 error 1#1: x",
        "2026/11/22 10:00:00 [error] 1#2 x",
    ] {
        assert!(NginxErrorParser.parse(bad, &ctx()).is_none(), "{bad}");
    }
}

#[test]
fn nginx_context_with_quotes_and_unparsable_tails() {
    // A quote inside the request is kept: the closing quote is the one before `, host:`.
    let e = nginx(
        r#"2026/11/22 10:00:00 [error] 3#3: *5 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 10.0.0.9, server: api, request: "GET /q?x="y" HTTP/1.1", upstream: "http://127.0.0.1:9000/q?x="y"", host: "api""#,
    );
    assert_eq!(*field(&e, "request"), s(r#"GET /q?x="y" HTTP/1.1"#));
    assert_eq!(
        *field(&e, "upstream"),
        s(r#"http://127.0.0.1:9000/q?x="y""#)
    );
    assert_eq!(*field(&e, "host"), s("api"));
    // The stream module's byte counters are not pairs: everything stays in the message.
    let line = "2026/11/22 10:00:00 [info] 9#9: *7 client 10.0.0.1:5000 connected to 0.0.0.0:5432, client: 10.0.0.1, server: 0.0.0.0:5432, upstream: \"10.0.0.2:5432\", bytes from/to client:0/0, bytes from/to upstream:0/0";
    let e = nginx(line);
    assert_eq!(
        e.message,
        &line[line.find("client 10.0.0.1:5000").unwrap()..]
    );
    assert!(!has(&e, "client"));
    assert_eq!(*field(&e, "connection"), Value::Int(7));
}

#[test]
fn nginx_zone() {
    let c = ParseContext {
        zone: crate::parse::Zone::parse("Europe/Berlin").unwrap(),
        ..ctx()
    };
    let e = NginxErrorParser
        .parse("2026/11/22 10:00:00 [error] 1#1: x", &c)
        .unwrap();
    assert_eq!(e.timestamp, Some(ts("2026-11-22T09:00:00Z")));
}

#[test]
fn apache_24() {
    let e = apache(
        "[Sun Nov 22 10:00:00.123456 2026] [core:error] [pid 1234:tid 5678] [client 1.2.3.4:5555] AH00126: Invalid URI in request GET /x",
    );
    assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123456Z")));
    assert_eq!(e.level, Some(Level::Error));
    assert_eq!(e.message, "Invalid URI in request GET /x");
    let want = vec![
        ("module", s("core")),
        ("pid", Value::Int(1234)),
        ("tid", Value::Int(5678)),
        ("client", s("1.2.3.4:5555")),
        ("error_code", s("AH00126")),
    ];
    let got: Vec<_> = e
        .fields
        .iter()
        .map(|(k, v)| (k.as_ref(), v.clone()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn apache_22() {
    let e = apache(
        "[Sun Nov 22 10:00:00 2026] [error] [client 1.2.3.4] File does not exist: /var/www/x, referer: http://shop.example/",
    );
    assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(
        e.message,
        "[client 1.2.3.4] File does not exist: /var/www/x"
    );
    assert!(!has(&e, "module") && !has(&e, "pid") && !has(&e, "error_code"));
    assert_eq!(*field(&e, "client"), s("1.2.3.4"));
    assert_eq!(*field(&e, "referrer"), s("http://shop.example/"));
}

#[test]
fn apache_os_error_source_and_trace() {
    let e = apache(
        "[Sun Nov 22 10:00:00.5 2026] [proxy_http:error] [pid 77:tid 140233] (70007)The timeout specified has expired: [client 10.0.0.1:5555] AH01102: error reading status line from remote server 127.0.0.1:8080",
    );
    assert_eq!(
        *field(&e, "os_error"),
        s("(70007)The timeout specified has expired")
    );
    assert_eq!(*field(&e, "error_code"), s("AH01102"));
    assert_eq!(
        e.message,
        "error reading status line from remote server 127.0.0.1:8080"
    );
    let e = apache(
        "[Sun Nov 22 10:00:00.123456 2026] [ssl:trace3] [pid 9:tid 10] ssl_engine_io.c(2221): [client 10.0.0.1:4431] OpenSSL: Handshake: start",
    );
    assert_eq!(e.level, Some(Level::Trace));
    assert_eq!(*field(&e, "source_file"), s("ssl_engine_io.c"));
    assert_eq!(*field(&e, "source_line"), Value::Int(2221));
    assert_eq!(
        e.message,
        "[client 10.0.0.1:4431] OpenSSL: Handshake: start"
    );
    let e =
        apache("[Sun Nov  1 10:00:00 2026] [:error] [pid 5] [remote 10.1.1.1:80] PHP Warning:  x");
    assert_eq!(e.timestamp, Some(ts("2026-11-01T10:00:00Z")));
    assert!(!has(&e, "module"));
    assert_eq!(*field(&e, "client"), s("10.1.1.1:80"));
    for bad in [
        "[Sun Nov 22 10:00:00 2026] [fatal] x",
        "[Sun Nov 22 10:00:00 2026] [core:oops] x",
        "[Xyz Nov 22 10:00:00 2026] [error] x",
        "[Sun Nov 22 10:00:00 2026] error x",
        "[Sun Nov 31 10:00:00 2026] [error] x",
        "[Sun Nov 22 10:00 2026] [error] x",
        "[Sun Nov 22 10:00:00 2026][error] x",
        "[Sun Nov 22 10:00:00 2026] [error] [pid x] x",
    ] {
        assert!(ApacheErrorParser.parse(bad, &ctx()).is_none(), "{bad}");
    }
}

#[test]
fn corpora() {
    check_corpus(&NginxErrorParser);
    check_corpus(&ApacheErrorParser);
}

proptest! {
    #[test]
    fn never_panics(line in "\\PC*") {
        let _ = NginxErrorParser.parse(&line, &ctx());
        let _ = ApacheErrorParser.parse(&line, &ctx());
    }

    #[test]
    fn never_panics_on_near_lines(
        nginx_tail in r#"[a-z]{0,6}\]? ?[0-9]{0,3}#?[0-9]{0,3}:? ?\*?[0-9]{0,2} ?[a-zé "(),:]{0,20}(, [a-z]{1,6}: "?[a-z" ,:é]{0,8}){0,3}"#,
        apache_tail in r#"[a-z_:0-9]{0,12}\]?( \[pid [0-9]{0,3}(:tid [0-9]{0,3})?\]?)? ?([a-z_.]{0,6}\([0-9]{0,3}\)?:? )?(\([0-9-]{0,3}\)?[A-Za-zé ]{0,6}:? )?(\[client [0-9.:]{0,9}\]?)? ?(AH[0-9]{0,5}:?)?.{0,10}"#,
    ) {
        let _ = NginxErrorParser.parse(&format!("2026/11/22 10:00:00 [{nginx_tail}"), &ctx());
        let _ = ApacheErrorParser.parse(&format!("[Sun Nov 22 10:00:00.1 2026] [{apache_tail}"), &ctx());
    }

    #[test]
    fn nginx_round_trips(
        secs in 0i64..4_000_000_000,
        lvl in prop::sample::select(vec!["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"]),
        pid in 0i64..10_000_000,
        tid in 0i64..10_000_000,
        conn in proptest::option::of(0i64..1_000_000_000),
        msg in "[a-zA-Z0-9 ()/.:\"_-]{0,60}",
        client in "[0-9a-f.:]{1,20}",
        request in "[A-Z]{3,6} /[a-z0-9/?=&]{0,20} HTTP/1\\.1",
        host in "[a-z.-]{1,20}",
    ) {
        let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let conn_text = conn.map_or(String::new(), |c| format!("*{c} "));
        let line = format!(
            r#"{} [{lvl}] {pid}#{tid}: {conn_text}{msg}, client: {client}, server: shop, request: "{request}", host: "{host}""#,
            t.format("%Y/%m/%d %H:%M:%S"),
        );
        let e = NginxErrorParser.parse(&line, &ctx()).unwrap();
        prop_assert_eq!(e.timestamp, Some(logferry_shared::event::Timestamp(secs * 1_000_000_000)));
        prop_assert_eq!(e.level, nginx_level(lvl.as_bytes()));
        prop_assert_eq!(e.message.as_ref(), msg.as_str());
        prop_assert_eq!(field(&e, "pid"), &Value::Int(pid));
        prop_assert_eq!(field(&e, "tid"), &Value::Int(tid));
        prop_assert_eq!(has(&e, "connection"), conn.is_some());
        prop_assert_eq!(field(&e, "client"), &s(&client));
        prop_assert_eq!(field(&e, "request"), &s(&request));
        prop_assert_eq!(field(&e, "host"), &s(&host));
    }

    #[test]
    fn apache_round_trips(
        secs in 0i64..4_000_000_000,
        micros in 0u32..1_000_000,
        module in "[a-z_]{1,12}",
        lvl in prop::sample::select(vec!["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg", "trace5"]),
        pid in 0i64..10_000_000,
        tid in 0i64..1_000_000_000_000,
        client in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}:[0-9]{1,5}",
        code in 0u32..100_000,
        msg in "[a-zA-Z0-9 ()/.:\"_-]{0,60}",
    ) {
        let t = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap();
        let line = format!(
            "[{}] [{module}:{lvl}] [pid {pid}:tid {tid}] [client {client}] AH{code:05}: {msg}",
            t.format("%a %b %d %H:%M:%S%.6f %Y"),
        );
        let e = ApacheErrorParser.parse(&line, &ctx()).unwrap();
        prop_assert_eq!(e.timestamp, Some(logferry_shared::event::Timestamp(secs * 1_000_000_000 + i64::from(micros) * 1000)));
        prop_assert_eq!(e.level, apache_level(lvl.as_bytes()));
        prop_assert_eq!(field(&e, "module"), &s(&module));
        prop_assert_eq!(field(&e, "pid"), &Value::Int(pid));
        prop_assert_eq!(field(&e, "tid"), &Value::Int(tid));
        prop_assert_eq!(field(&e, "client"), &s(&client));
        let code_text = format!("AH{code:05}");
        prop_assert_eq!(field(&e, "error_code"), &s(&code_text));
        prop_assert_eq!(e.message.as_ref(), msg.as_str());
    }
}
