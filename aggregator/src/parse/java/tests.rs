//! Tests of the Java parser.

use super::*;
use crate::parse::testkit::{check_corpus, ctx, expect_field as field, has, s, ts};
use proptest::prelude::*;

fn p(line: &str) -> Parsed<'_> {
    JavaParser
        .parse(line, &ctx())
        .unwrap_or_else(|| panic!("refused {line}"))
}

fn fields<'a>(e: &'a Parsed<'_>) -> Vec<(&'a str, Value<'a>)> {
    e.fields
        .iter()
        .map(|(k, v)| (k.as_ref(), v.clone()))
        .collect()
}

#[test]
fn log4j_level_thread_logger() {
    let e = p("2026-11-22 10:00:00,123 ERROR [main] com.shop.OrderService - payment declined");
    assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(e.level, Some(Level::Error));
    assert_eq!(e.message, "payment declined");
    assert_eq!(
        fields(&e),
        vec![
            ("thread", s("main")),
            ("logger", s("com.shop.OrderService"))
        ]
    );
    let e = p("2026-11-22 10:00:00.123 WARN  [http-nio-8080-exec-3] c.s.Api           : slow: 2s");
    assert_eq!(e.message, "slow: 2s");
    assert_eq!(*field(&e, "thread"), s("http-nio-8080-exec-3"));
}

#[test]
fn logback_default_time_only() {
    let e = p("10:00:00.123 [main] WARN  c.s.App - msg");
    assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(e.level, Some(Level::Warn));
    assert_eq!(e.message, "msg");
    assert_eq!(
        fields(&e),
        vec![("thread", s("main")), ("logger", s("c.s.App"))]
    );
    // Near midnight the nearest day wins.
    let c = ParseContext {
        now: ts("2026-11-22T00:05:00Z"),
        ..ctx()
    };
    let e = JavaParser
        .parse("23:59:58.000 [main] INFO a.B - x", &c)
        .unwrap();
    assert_eq!(e.timestamp, Some(ts("2026-11-21T23:59:58Z")));
    let c = ParseContext {
        now: ts("2026-11-22T23:59:59Z"),
        ..ctx()
    };
    let e = JavaParser
        .parse("00:00:01.000 [main] INFO a.B - x", &c)
        .unwrap();
    assert_eq!(e.timestamp, Some(ts("2026-11-23T00:00:01Z")));
    // The day is the local day in the configured zone.
    let c = ParseContext {
        zone: crate::parse::Zone::parse("Asia/Tokyo").unwrap(),
        now: ts("2026-11-22T20:00:00Z"),
    };
    let e = JavaParser
        .parse("05:00:00,000 [main] INFO a.B - x", &c)
        .unwrap();
    assert_eq!(e.timestamp, Some(ts("2026-11-22T20:00:00Z")));
    let e = p("2026-11-22 10:00:00.123 [main] DEBUG c.s.App - msg");
    assert_eq!(e.level, Some(Level::Debug));
}

#[test]
fn spring_boot() {
    let e = p("2026-11-22 10:00:00.123  INFO 1234 --- [nio-8080-exec-1] c.s.web.Controller       : request served");
    assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(e.level, Some(Level::Info));
    assert_eq!(e.message, "request served");
    assert_eq!(
        fields(&e),
        vec![
            ("pid", Value::Int(1234)),
            ("thread", s("nio-8080-exec-1")),
            ("logger", s("c.s.web.Controller")),
        ]
    );
    let e = p("2026-11-22T11:00:00.123+01:00  WARN 7 --- [shop-api] [           main] [4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7] o.s.b.StartupInfoLogger : Started ShopApplication in 3.2 seconds");
    assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(*field(&e, "application"), s("shop-api"));
    assert_eq!(*field(&e, "thread"), s("main"));
    assert_eq!(
        *field(&e, "correlation"),
        s("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7")
    );
    let e = p("2026-11-22T10:00:00.123Z ERROR 7 --- [main] [0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : Servlet.service() failed");
    assert!(!has(&e, "application"));
    assert_eq!(
        *field(&e, "logger"),
        s("o.a.c.c.C.[.[.[/].[dispatcherServlet]")
    );
    assert_eq!(e.message, "Servlet.service() failed");
    assert_eq!(*field(&e, "thread"), s("main"));
    let e = p("2026-11-22 10:00:00.123  INFO   --- [main] c.s.App : up");
    assert!(!has(&e, "pid"));
    assert_eq!(*field(&e, "thread"), s("main"));
    assert_eq!(e.message, "up");
}

#[test]
fn other_layouts() {
    let e =
        p("[2026-11-22 10:00:00,123] INFO [KafkaServer id=1] started (kafka.server.KafkaServer)");
    assert_eq!(e.message, "[KafkaServer id=1] started");
    assert_eq!(fields(&e), vec![("logger", s("kafka.server.KafkaServer"))]);
    let e = p("[2026-11-22 10:00:00,123] INFO [Thread-7] com.shop.Worker: picked job 17");
    assert_eq!(
        fields(&e),
        vec![("thread", s("Thread-7")), ("logger", s("com.shop.Worker"))]
    );
    assert_eq!(e.message, "picked job 17");
    let e = p("[2026-11-22T10:00:00,123][WARN ][o.e.c.r.a.DiskThresholdMonitor] [es-node-1] high disk watermark [90%] exceeded");
    assert_eq!(e.level, Some(Level::Warn));
    assert_eq!(*field(&e, "node"), s("es-node-1"));
    assert_eq!(e.message, "high disk watermark [90%] exceeded");
    let e = p("22-Nov-2026 10:00:00.123 INFO [main] org.apache.catalina.startup.Catalina.start Server startup in [812] milliseconds");
    assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(
        *field(&e, "logger"),
        s("org.apache.catalina.startup.Catalina.start")
    );
    assert_eq!(e.message, "Server startup in [812] milliseconds");
    assert_eq!(
        p("22-Nov-2026 10:00:00.123 SEVERE [main] a.B.c x").level,
        Some(Level::Error)
    );
    let e = p("10:00:00,123 INFO  [org.jboss.as] (MSC service thread 1-2) WFLYSRV0049: WildFly 34 starting");
    assert_eq!(
        fields(&e),
        vec![
            ("thread", s("MSC service thread 1-2")),
            ("logger", s("org.jboss.as"))
        ]
    );
    let e = p("2026-11-22 10:00:00,123 INFO  com.shop.App - started");
    assert_eq!(fields(&e), vec![("logger", s("com.shop.App"))]);
    let e = p("2026-11-22 10:00:00,123 INFO c.s.App [main] Started");
    assert_eq!(
        fields(&e),
        vec![("logger", s("c.s.App")), ("thread", s("main"))]
    );
    assert_eq!(e.message, "Started");
}

#[test]
fn refuses_near_misses() {
    for bad in [
        "2026-11-22 10:00:00,123 INFO app.db: pool ready",
        "2026-11-22 10:00:00,123 - app.db - ERROR - connection lost",
        "2026-11-22 10:00:00,123 INFO app - started",
        "2026-11-22 10:00:00,123 WARNING [main] a.B - x",
        "2026-11-22 10:00:00,123 Info [main] a.B - x",
        "2026-11-22 10:00:00,123 INFO [main] a.B x",
        "2026-11-22 10:00:00,123 INFO [] a.B - x",
        "2026-11-22 10:00:00,123 INFO 12 -- [main] a.B : x",
        "2026/11/22 10:00:00 INFO [main] a.B - x",
        "[2026-11-22 10:00:00,123] ERROR in app: Exception on /x [POST]",
        "[2026-11-22 10:00:00,123] ERROR in app: failed (db.Timeout)",
        "[2026-11-22 10:00:00,123: INFO/MainProcess] Connected",
        "[2026-11-22 10:00:00 +0000] [7] [INFO] Booting worker",
        "[2026-11-22 10:00:00,123] INFO started the thing",
        "10:00:00 just a time",
        "22-Nov-2026 10:00:00.123 ERROR [main] a.B x",
        "22/Nov/2026:10:00:00 +0000 x",
    ] {
        assert!(JavaParser.parse(bad, &ctx()).is_none(), "{bad}");
    }
}

#[test]
fn corpus() {
    check_corpus(&JavaParser);
}

proptest! {
    #[test]
    fn never_panics(line in "\\PC*") {
        let _ = JavaParser.parse(&line, &ctx());
    }

    #[test]
    fn never_panics_on_near_lines(line in r#"\[?(2026-11-22[ T]|22-Nov-2026 )?10:00:0[0-9]([.,][0-9]{0,4})?\]?[ \[]{0,2}(INFO|WARN|SEVERE|ERROR)?[ \]\[]{0,3}[0-9]{0,3}( --- )?(\[[a-zé -]{0,5}\]? ?){0,3}[a-zé.$]{0,6}[ :\-\]\)\(]{0,3}.{0,8}"#) {
        let _ = JavaParser.parse(&line, &ctx());
    }

    #[test]
    fn round_trips(
        form in 0usize..5,
        level in prop::sample::select(vec!["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]),
        thread in "[a-zA-Z][a-zA-Z0-9 -]{0,14}[a-zA-Z0-9]",
        logger in "[a-z]{1,4}(\\.[a-z]{1,6}){1,3}\\.[A-Z][A-Za-z]{0,12}",
        secs in 0i64..4_000_000_000,
        millis in 0i64..1000,
        pid in 1i64..4_000_000,
        msg in "[^ ]\\PC{0,40}|",
    ) {
        let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let date = format!("{}.{millis:03}", t.format("%Y-%m-%d %H:%M:%S"));
        let line = match form {
            0 => format!("{date} {level:<5} [{thread}] {logger} - {msg}"),
            1 => format!("{date} [{thread}] {level:<5} {logger} - {msg}"),
            2 => format!("{date} {level:>5} {pid} --- [{thread:>15}] {logger:<40} : {msg}"),
            3 => format!("[{date}] {level} [{thread}] {logger}: {msg}"),
            _ => format!("{date} {level:<5} {logger} - {msg}"),
        };
        let e = JavaParser.parse(&line, &ctx()).unwrap();
        prop_assert_eq!(e.timestamp, Some(Timestamp(secs * 1_000_000_000 + millis * 1_000_000)));
        prop_assert_eq!(e.level, level::from_word(level));
        prop_assert_eq!(field(&e, "logger"), &s(&logger));
        if form != 4 {
            prop_assert_eq!(field(&e, "thread"), &s(&thread));
        }
        if form == 2 {
            prop_assert_eq!(field(&e, "pid"), &Value::Int(pid));
        }
        prop_assert_eq!(e.message.as_ref(), msg.as_str());
    }
}
