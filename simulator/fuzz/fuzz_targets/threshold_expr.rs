//! Threshold expressions (`--threshold`, a scenario's `thresholds`, `knee --slo`): any
//! text must parse into a threshold or give an error that renders — never a panic. A
//! threshold is then judged, with the default gates it leaves in force, on a real
//! report (the committed smoke baseline).

#![no_main]

use std::sync::LazyLock;

use firehose_sim::report::ReportModel;
use firehose_sim::report::gate::{Threshold, default_gates, evaluate_all};
use libfuzzer_sys::fuzz_target;

static REPORT: LazyLock<ReportModel> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../../reports/baselines/smoke.json")).expect("the smoke baseline is a report")
});

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else { return };
    let threshold = match Threshold::parse(expr) {
        Ok(threshold) => threshold,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    let outcome = threshold.evaluate(&REPORT);
    let _ = serde_json::to_string(&outcome).expect("an outcome serializes");
    let again = Threshold::parse(&threshold.expr).expect("a parsed threshold's own text parses");
    assert_eq!(again, threshold, "{expr:?}");
    let thresholds = [threshold];
    let _ = default_gates(&thresholds).count();
    let _ = evaluate_all(&thresholds, &REPORT);
});
