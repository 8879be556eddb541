//! The verdict of a run, in one place: valid (no action sent later than `--max-lag`),
//! complete (no listener failed to join or was dropped by the target, not interrupted),
//! every gate passed (the default ones and the `--threshold`s). From it the exit code
//! and the one line the terminal, `summary.md`, JUnit and `report.html` all show.

use crate::report::exit;
use crate::report::gate::{self, Threshold};
use crate::report::model::ReportModel;

/// Why the run is invalid when any action went out late: what to do about it, with the
/// machine's load average.
pub fn lag_reason(model: &ReportModel) -> Option<String> {
    let late: Vec<String> = model
        .actions
        .iter()
        .filter(|(_, a)| a.late > 0)
        .map(|(k, a)| format!("{k}: {} of {} (max {:.1} ms)", a.late, a.sent, a.max_lag_ms))
        .collect();
    if late.is_empty() {
        return None;
    }
    let load = model.scheduler.load_average.map_or_else(String::new, |l| format!("; load average {l:.2}"));
    Some(format!(
        "actions were sent later than --max-lag ({} ms) after their intended start — {}{load}. The figures describe \
         the simulator, not the server: give it more room (fewer listeners, `--agents K`, the server in its own \
         process) or allow more lag with --max-lag",
        model.scheduler.max_lag_allowed_ms,
        late.join(", ")
    ))
}

/// Judges `model`: invalid reasons from lag, the gates, and the verdict with its exit
/// code and line. `partial` reasons already set (interruption, a failure after
/// listeners connected) are kept; dropped and unjoined listeners are added. Judging
/// again (a merge judges the figures it recomputed) adds no reason twice.
pub fn judge(model: &mut ReportModel, thresholds: &[Threshold], interrupted: bool) {
    if let Some(reason) = lag_reason(model)
        && !model.verdict.invalid_reasons.contains(&reason)
    {
        model.verdict.invalid_reasons.push(reason);
    }
    model.verdict.valid = model.verdict.invalid_reasons.is_empty();
    let l = &model.listeners;
    let mut partial: Vec<String> = model.verdict.partial.take().into_iter().collect();
    let mut add = |reason: String| {
        if !partial.iter().any(|p| p.contains(&reason)) {
            partial.push(reason);
        }
    };
    if l.failed_to_join > 0 {
        add(format!("{} of {} listeners could not join ({})", l.failed_to_join, l.requested, failures(model, false)));
    }
    if l.closed_during_run > 0 {
        add(format!(
            "the target closed {} listener sockets or channels during the run ({}); deliveries owed to them \
             afterwards count as lost",
            l.closed_during_run,
            failures(model, true)
        ));
    }
    model.verdict.partial = (!partial.is_empty()).then(|| partial.join("; "));
    model.thresholds = gate::evaluate_all(thresholds, model);
    model.verdict.failed_gates = model.thresholds.iter().filter(|t| !t.passed).map(|t| t.expr.clone()).collect();
    let v = &mut model.verdict;
    v.passed = v.valid && v.partial.is_none() && v.failed_gates.is_empty() && !interrupted;
    v.exit_code = if interrupted {
        exit::INTERRUPTED
    } else if !v.valid {
        exit::INVALID_RUN
    } else if !v.failed_gates.is_empty() {
        exit::THRESHOLD
    } else if v.partial.is_some() {
        exit::DROPPED
    } else {
        exit::OK
    };
    model.verdict.line = line(model);
}

/// The failure names of listeners, those of sockets closed during the run or those
/// that never joined.
fn failures(model: &ReportModel, closes: bool) -> String {
    let names: Vec<String> = model
        .listeners
        .failures
        .iter()
        .filter(|(name, _)| is_close(name) == closes)
        .map(|(name, n)| format!("{name} ×{n}"))
        .collect();
    if names.is_empty() { "no reason recorded".into() } else { names.join(", ") }
}

/// Whether a failure name (`phoenix::Failure::name`) is the target ending a joined
/// socket or channel; the same kinds as `Failure::is_close`.
fn is_close(name: &str) -> bool {
    name.starts_with("closed_")
        || name == "eof"
        || name.starts_with("io_")
        || name.starts_with("ws_")
        || name.starts_with("channel_")
}

/// `PASS`, or `FAIL: ` and why (the first reasons, most important first).
fn line(model: &ReportModel) -> String {
    let v = &model.verdict;
    if v.passed {
        let gates = model.thresholds.len();
        return format!("PASS: valid, complete, {gates} gate{} passed", if gates == 1 { "" } else { "s" });
    }
    let mut why = Vec::new();
    if v.exit_code == exit::INTERRUPTED {
        why.push("interrupted".to_owned());
    }
    if !v.valid {
        why.push("invalid run (actions sent late, see reasons)".to_owned());
    }
    for t in model.thresholds.iter().filter(|t| !t.passed) {
        let actual = if t.actual.is_null() { "no figure".to_owned() } else { format!("{} {}", t.actual, t.unit) };
        let kind = if t.default { "default gate" } else { "gate" };
        why.push(format!("{kind} `{}` failed (actual {})", t.expr, actual.trim_end()));
    }
    if let Some(p) = &v.partial {
        why.push(format!("partial: {p}"));
    }
    format!("FAIL (exit {}): {}", v.exit_code, why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report only has failure names; they must sort into closes and failures to
    /// open exactly as the failures themselves do.
    #[test]
    fn a_failure_name_is_a_close_exactly_when_the_failure_is() {
        use crate::phoenix::{Failure, Step};
        use std::io::ErrorKind;
        let all = [
            Failure::Connect(ErrorKind::ConnectionRefused),
            Failure::Tls("bad certificate".into()),
            Failure::UpgradeStatus(503),
            Failure::UpgradeProtocol("no Upgrade header"),
            Failure::Timeout(Step::Join),
            Failure::JoinRefused("unauthorized".into()),
            Failure::Undecodable,
            Failure::Closed(1013),
            Failure::Eof,
            Failure::Io(ErrorKind::ConnectionReset),
            Failure::Protocol("reset_without_close"),
            Failure::Channel("phx_close"),
        ];
        for failure in all {
            assert_eq!(is_close(&failure.name()), failure.is_close(), "{}", failure.name());
        }
    }

    /// Listeners a ramp holds back are neither failures nor among the listeners that
    /// should have joined before traffic.
    #[test]
    fn partial_counts_the_listeners_planned_before_traffic() {
        let mut m = crate::report::gate::tests_sample();
        // No error and no loss: only completeness decides.
        (m.totals.errors, m.totals.lost) = (0, 0);
        m.listeners.requested = 20;
        m.listeners.ramped = 10;
        m.listeners.joined = 20;
        judge(&mut m, &[], false);
        assert_eq!(m.verdict.partial, None, "{:?}", m.verdict);
        m.listeners.joined = 18;
        m.listeners.failed_to_join = 2;
        m.listeners.failures.insert("join_timeout".into(), 2);
        judge(&mut m, &[], false);
        let partial = m.verdict.partial.clone().unwrap_or_default();
        assert!(partial.starts_with("2 of 20 listeners could not join (join_timeout ×2)"), "{partial}");
        assert_eq!(m.verdict.exit_code, exit::DROPPED, "{:?}", m.verdict);
        // A merge judges again: the same reasons, not twice.
        m.scheduler.max_lag_allowed_ms = 1.0;
        m.scheduler.max_lag_ms = 5.0;
        let late = m.actions.values_mut().next().expect("the sample has an action");
        late.late = 3;
        judge(&mut m, &[], false);
        let once = (m.verdict.invalid_reasons.clone(), m.verdict.partial.clone());
        judge(&mut m, &[], false);
        assert_eq!(once.0.len(), 1, "{:?}", once.0);
        assert_eq!((m.verdict.invalid_reasons.clone(), m.verdict.partial.clone()), once);
    }
}
