//! The `parse_line` and `syslog_framing` fuzz targets' checks on stable: each target's
//! seeds and 4,000 deterministic mutations of them through the function the target calls
//! (see `logferry_shared::fuzzing`), so CI checks what `cargo fuzz` explores on nightly.

use std::path::PathBuf;

use logferry_aggregator::input::syslog::framing;
use logferry_aggregator::parse;
use logferry_shared::fuzzing;

fn seeds(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
}

#[test]
fn syslog_framing_target_holds_on_seeds_and_mutations() {
    let n = fuzzing::run(&seeds("syslog_framing"), 4000, framing::fuzz_check);
    assert!(n > 4000, "{n} inputs");
}

#[test]
fn parse_line_target_holds_on_seeds_and_mutations() {
    let n = fuzzing::run(&seeds("parse_line"), 4000, parse::fuzz_check);
    assert!(n > 4000, "{n} inputs");
}

/// The `parse_line` seeds cover the built-in formats: a seed named `FORMAT` or
/// `FORMAT.variant` is detected as that format, and every format has a seed.
#[test]
fn parse_line_seeds_are_the_formats_they_are_named_after() {
    let detector = parse::detect::Detector::new(parse::Zone::Utc, &[], &[]).expect("detector");
    let mut covered = std::collections::BTreeSet::new();
    for (name, bytes) in fuzzing::read_seeds(&seeds("parse_line")).expect("seeds") {
        let line = String::from_utf8_lossy(&bytes);
        let mut plan = detector.plan("/seed.log");
        let got = detector.detect(&mut plan, &line);
        let want = name.split('.').next().unwrap_or_default();
        assert_eq!(got.format, want, "seed {name}");
        covered.insert(got.format);
    }
    let all: std::collections::BTreeSet<&str> = detector.format_names().into_iter().collect();
    assert_eq!(covered, all, "formats without a seed");
}
