//! Fuzzes every built-in parser through auto-detection: any line, any bytes (made UTF-8
//! lossily, as the aggregator does), must yield an event and never panic.
//!
//! Run: `cargo +nightly fuzz run parse_line -- -max_total_time=60` from the repo root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logferry_aggregator::parse::detect::Detector;
use logferry_aggregator::parse::Zone;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Ok(detector) = Detector::new(Zone::Utc, &[], &[]) {
        let mut plan = detector.plan("/fuzz.log");
        let _ = detector.detect(&mut plan, &line);
        // Again with the fast path primed by the previous line's format.
        let _ = detector.detect(&mut plan, &line);
    }
});
