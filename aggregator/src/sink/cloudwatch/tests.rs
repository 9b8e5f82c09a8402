//! Unit tests of the CloudWatch Logs sink: config, rejections, failures, names.

use super::batcher::{OutOfRange, Oversize};
use super::errors::worst;
use super::*;

fn config(extra: &str) -> anyhow::Result<CloudWatchConfig> {
    let text = format!("group = \"/logferry/{{k8s.namespace}}\"\nstream = \"{{host}}\"\n{extra}");
    Ok(toml::from_str(&text)?)
}

#[test]
fn config_defaults_and_validation() {
    let c = config("").unwrap();
    assert!(c.create);
    assert_eq!(c.concurrency, 4);
    assert_eq!(c.oversize, Oversize::Truncate);
    assert_eq!(c.too_old, OutOfRange::Drop);
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert!(CloudWatchSink::new("cw", &c, Adjustments::default()).is_ok());

    let c = config("retention_days = 30\noversize = \"split\"\ntoo_old = \"clamp\"\ntoo_new = \"clamp\"\nendpoint = \"http://127.0.0.1:4566\"\nregion = \"eu-west-1\"\n[queue]\nmax_bytes = 1000\n")
        .unwrap();
    assert_eq!(c.retention_days, Some(30));
    assert_eq!(c.oversize, Oversize::Split);
    assert_eq!(c.queue.max_bytes, 1000);
    assert!(CloudWatchSink::new("cw", &c, Adjustments::default()).is_ok());

    for bad in [
        "retention_days = 31",
        "concurrency = 0",
        "concurrency = 65",
        "endpoint = \"localhost\"",
        "endpoint = \"ftp://x\"",
        "region = \"eu west\"",
        "timeout = \"0s\"",
    ] {
        let c = config(bad).unwrap();
        let err = CloudWatchSink::new("cw", &c, Adjustments::default()).unwrap_err();
        assert!(err.to_string().contains("cw"), "{bad}: {err}");
    }
    for bad in ["oversize = \"cut\"", "colour = 1", "too_old = \"keep\""] {
        assert!(config(bad).is_err(), "{bad} was accepted");
    }
    assert!(toml::from_str::<CloudWatchConfig>("group = \"{x\"\nstream = \"s\"").is_err());
}

#[test]
fn readme_example_is_a_valid_config() {
    let doc = include_str!("../../../../README.md");
    let start = doc
        .find("[sinks.cloudwatch]\ntype = \"cloudwatch_logs\"")
        .unwrap();
    let end = start + doc[start..].find("```").unwrap();
    let table: toml::Table = toml::from_str(&doc[start..end]).unwrap();
    let mut sink = table["sinks"]["cloudwatch"].as_table().unwrap().clone();
    assert_eq!(
        sink.remove("type").unwrap().as_str(),
        Some("cloudwatch_logs")
    );
    let c: CloudWatchConfig = sink.try_into().unwrap();
    assert_eq!(c.retention_days, Some(30));
    assert!(CloudWatchSink::new("cloudwatch", &c, Adjustments::default()).is_ok());
}

#[test]
fn rejections_follow_the_service_indices() {
    let r = Rejections {
        too_old_end: Some(2),
        expired_end: Some(3),
        too_new_start: Some(5),
    };
    let verdicts: Vec<_> = (0..7).map(|i| r.verdict(i)).collect();
    assert_eq!(
        verdicts,
        [
            Some("too_old"),
            Some("too_old"),
            Some("too_old"),
            None,
            None,
            Some("too_new"),
            Some("too_new")
        ]
    );
    assert_eq!(Rejections::default().verdict(0), None);
}

#[test]
fn worst_failure_wins() {
    assert!(worst(vec![]).is_none());
    let e = worst(vec![
        DeliverError::new(FailureKind::Throttled, "a"),
        DeliverError::new(FailureKind::Refused, "b"),
        DeliverError::new(FailureKind::Unavailable, "c"),
    ])
    .unwrap();
    assert_eq!(e.kind, FailureKind::Refused);
    assert_eq!(e.message, "b (and 2 more failed streams)");
}

#[test]
fn prepare_reads_names_and_timestamps() {
    let c = config("").unwrap();
    let sink = CloudWatchSink::new("cw", &c, Adjustments::default()).unwrap();
    let batch = vec![
        Pending::new(
            r#"{"timestamp":"2026-11-22T10:00:00.123Z","host":"n:1","k8s":{"namespace":"shop"}}"#,
        ),
        Pending::new(r#"{"observed_timestamp":"2026-11-22T10:00:01Z","host":"n2"}"#),
        Pending::new(&b"not json \xff"[..]),
    ];
    let events = sink.prepare(&batch, 42);
    assert_eq!(events[0].group, "/logferry/shop");
    assert_eq!(events[0].stream, "n_1");
    assert_eq!(events[0].timestamp, 1_795_341_600_123);
    assert_eq!(events[1].group, "/logferry/unknown");
    assert_eq!(events[1].timestamp, 1_795_341_601_000);
    assert_eq!(events[2].timestamp, 42);
    assert_eq!(events[2].stream, "unknown");
    assert_eq!(events[2].message, "not json \u{fffd}");
}
