//! The `parse_line` fuzz target's check, also run on stable over the target's seeds and
//! deterministic mutations of them by `tests/fuzz_seeds.rs`, so the two cannot drift.

use std::sync::OnceLock;

use super::detect::Detector;
use super::{builtin, Zone};

/// Detectors built once: automatic detection, and one source forced to each built-in
/// format (`/forced/<format>`).
fn detectors() -> &'static (Detector, Detector, Vec<&'static str>) {
    static DETECTORS: OnceLock<(Detector, Detector, Vec<&'static str>)> = OnceLock::new();
    DETECTORS.get_or_init(|| {
        let names: Vec<&'static str> = builtin().iter().map(|p| p.name()).collect();
        let sources: Vec<(String, String)> = names
            .iter()
            .map(|n| (format!("/forced/{n}"), (*n).to_owned()))
            .collect();
        let build = |sources: &[(String, String)]| match Detector::new(Zone::Utc, sources, &[]) {
            Ok(d) => d,
            Err(e) => panic!("the built-in detector: {e}"),
        };
        (build(&[]), build(&sources), names)
    })
}

/// Parses any bytes (made UTF-8 lossily, as the aggregator does) as one line, by
/// automatic detection and forced to each built-in format. It panics if a parser panics,
/// if the message is longer than the line, if an unknown format is reported, if a forced
/// line that parsed reports another format (one that did not must fall back to plain text
/// flagged `parse_error`), or if detection gives a different result for the same line
/// once the source's memory points at the format that matched.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    let (auto, forced, names) = detectors();
    let mut plan = auto.plan("/fuzz.log");
    let first = auto.detect(&mut plan, &line);
    assert!(names.contains(&first.format), "format {}", first.format);
    assert!(first.parsed.message.len() <= line.len());
    let again = auto.detect(&mut plan, &line);
    assert_eq!(
        (again.format, again.parse_error, &again.parsed),
        (first.format, first.parse_error, &first.parsed),
        "the same line detected again"
    );
    for name in names {
        let mut plan = forced.plan(&format!("/forced/{name}"));
        let got = forced.detect(&mut plan, &line);
        assert!(got.parsed.message.len() <= line.len());
        if got.parse_error {
            assert_eq!(got.format, "plain", "forced {name}");
        } else {
            assert_eq!(got.format, *name, "forced {name}");
        }
    }
}
