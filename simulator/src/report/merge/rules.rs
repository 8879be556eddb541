//! How the figures of several `report.json` files combine, field by field, generically
//! over the JSON so that fields added later merge too. The rule is chosen by the field's
//! name (and, for the server, its place):
//!
//! - counts add; rates (`*_per_s`) and CPU figures (`cpu_*`) add, since agents run side
//!   by side;
//! - maxima (`max*`, `*_max`, `*_ms` other than minima) take the maximum, minima
//!   (`min*`) the minimum, phase lengths (`*_s`) the maximum;
//! - one server measured by every agent (`server`, and each target's under `targets`):
//!   its `*before*` figures the minimum, `*after*` the maximum, CPU the maximum;
//! - `valid` and other all-must-hold flags (`all_*`, `*passed`) AND, other flags OR;
//! - `started_at` the earliest, `finished_at` the latest, other strings kept when equal
//!   and listed (comma separated) when not; arrays concatenate;
//! - a figure some inputs lack (`null`) is `null` when it would be added, else ignored.
//!
//! Latency summaries are recomputed from the merged histograms afterwards (see
//! `model.histogram_paths`), and derived fractions (RSS per listener) from the merged
//! totals; what these rules give for them is only a fallback.

use serde_json::{Map, Number, Value};

/// How one numeric field combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberRule {
    Sum,
    Max,
    Min,
}

/// The rule for the number at `key` under JSON pointer `parent`.
pub fn number_rule(parent: &str, key: &str) -> NumberRule {
    // The run's `server`, or one target's (`/targets/<i>/server`).
    if parent.split('/').any(|part| part == "server") {
        if key.contains("before") {
            return NumberRule::Min;
        }
        if key.contains("after") {
            return NumberRule::Max;
        }
        // Every agent read the same server's CPU over about the same traffic window.
        if key.starts_with("cpu_") {
            return NumberRule::Max;
        }
    }
    if key.ends_with("_per_s") || key.starts_with("cpu_") {
        NumberRule::Sum
    } else if key.starts_with("min") || key.ends_with("_min") {
        NumberRule::Min
    } else if key.starts_with("max") || key.ends_with("_max") || key.ends_with("_ms") || key.ends_with("_s") {
        NumberRule::Max
    } else {
        NumberRule::Sum
    }
}

/// Whether the flag `key` must hold in every input (AND) rather than in any (OR).
pub fn all_must_hold(key: &str) -> bool {
    key == "valid" || key.starts_with("all_") || key.ends_with("passed")
}

/// Merges the values several inputs hold at `key` under pointer `parent` (inputs that
/// lack the field are left out of `values`).
pub fn merge_values(parent: &str, key: &str, values: &[&Value]) -> Value {
    let present: Vec<&Value> = values.iter().copied().filter(|v| !v.is_null()).collect();
    let Some(first) = present.first() else { return Value::Null };
    match first {
        Value::Object(_) => {
            let path = format!("{parent}/{key}");
            let path = if key.is_empty() { String::new() } else { path };
            let mut keys: Vec<&String> = Vec::new();
            for v in &present {
                for k in v.as_object().into_iter().flat_map(Map::keys) {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            let mut out = Map::new();
            for k in keys {
                let children: Vec<&Value> = present.iter().filter_map(|v| v.get(k.as_str())).collect();
                out.insert(k.clone(), merge_values(&path, k, &children));
            }
            Value::Object(out)
        }
        Value::Number(_) => {
            let rule = number_rule(parent, key);
            if rule == NumberRule::Sum && present.len() < values.len() {
                // Adding a figure some inputs lack would understate the total.
                return Value::Null;
            }
            merge_numbers(rule, &present)
        }
        Value::Bool(_) => {
            let mut flags = present.iter().filter_map(|v| v.as_bool());
            Value::Bool(if all_must_hold(key) { flags.all(|b| b) } else { flags.any(|b| b) })
        }
        Value::String(_) => {
            let mut strings: Vec<&str> = present.iter().filter_map(|v| v.as_str()).collect();
            match key {
                // RFC 3339 in UTC with one format: text order is time order.
                "started_at" => Value::from(strings.iter().min().copied().unwrap_or_default()),
                "finished_at" => Value::from(strings.iter().max().copied().unwrap_or_default()),
                _ => {
                    strings.dedup();
                    let mut distinct: Vec<&str> = Vec::new();
                    for s in strings {
                        if !distinct.contains(&s) {
                            distinct.push(s);
                        }
                    }
                    Value::from(distinct.join(","))
                }
            }
        }
        Value::Array(_) => Value::Array(present.iter().filter_map(|v| v.as_array()).flatten().cloned().collect()),
        Value::Null => Value::Null,
    }
}

fn merge_numbers(rule: NumberRule, values: &[&Value]) -> Value {
    let all_unsigned: Option<Vec<u64>> = values.iter().map(|v| v.as_u64()).collect();
    if let Some(ints) = all_unsigned {
        let n = match rule {
            NumberRule::Sum => ints.iter().fold(0u64, |a, b| a.saturating_add(*b)),
            NumberRule::Max => ints.iter().copied().max().unwrap_or(0),
            NumberRule::Min => ints.iter().copied().min().unwrap_or(0),
        };
        return Value::from(n);
    }
    let floats = values.iter().filter_map(|v| v.as_f64());
    let x = match rule {
        NumberRule::Sum => floats.sum(),
        NumberRule::Max => floats.fold(f64::NEG_INFINITY, f64::max),
        NumberRule::Min => floats.fold(f64::INFINITY, f64::min),
    };
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn merged(values: &[Value]) -> Value {
        merge_values("", "", &values.iter().collect::<Vec<_>>())
    }

    #[test]
    fn rules_follow_the_field_names() {
        assert_eq!(number_rule("/requests", "sent"), NumberRule::Sum);
        assert_eq!(number_rule("/requests", "throughput_per_s"), NumberRule::Sum);
        assert_eq!(number_rule("/generator", "max_lag_ms"), NumberRule::Max);
        assert_eq!(number_rule("/requests/latency_corrected", "min_ms"), NumberRule::Min);
        assert_eq!(number_rule("/window", "traffic_s"), NumberRule::Max);
        assert_eq!(number_rule("/simulator", "cpu_s_during_traffic"), NumberRule::Sum);
        assert_eq!(number_rule("/simulator", "rss_before_bytes"), NumberRule::Sum);
        assert_eq!(number_rule("/server", "rss_before_bytes"), NumberRule::Min);
        assert_eq!(number_rule("/server", "rss_after_bytes"), NumberRule::Max);
        assert_eq!(number_rule("/server", "cpu_s_during_traffic"), NumberRule::Max);
        assert_eq!(number_rule("/simulator", "cpu_s_during_traffic"), NumberRule::Sum);
        // Each target's server, like the run's; its socket and failover counts add.
        assert_eq!(number_rule("/targets/1/server", "rss_before_bytes"), NumberRule::Min);
        assert_eq!(number_rule("/targets/1/server", "rss_after_bytes"), NumberRule::Max);
        assert_eq!(number_rule("/targets/1/server", "cpu_s_during_traffic"), NumberRule::Max);
        assert_eq!(number_rule("/targets/1/server", "sockets"), NumberRule::Sum);
        assert_eq!(number_rule("/targets/1", "sockets_connected"), NumberRule::Sum);
        assert!(all_must_hold("valid") && !all_must_hold("drain_timed_out"));
    }

    #[test]
    fn reports_merge_field_by_field_including_unknown_fields() {
        let a = json!({
            "valid": true, "requests": {"sent": 10, "errors": {"http_500": 1}, "throughput_per_s": 5.5},
            "generator": {"max_lag_ms": 3.0}, "window": {"drain_timed_out": false, "traffic_s": 10.0},
            "started_at": "2026-01-01T00:00:02+00:00", "target": {"url": "http://127.0.0.1:1"},
            "actions": {"like": {"ok": 4, "rate_per_s": 2.0}},
            "simulator": {"rss_before_bytes": 100}, "invalid_reasons": []
        });
        let b = json!({
            "valid": false, "requests": {"sent": 7, "errors": {"http_500": 2, "timeout": 1}, "throughput_per_s": 4.5},
            "generator": {"max_lag_ms": 9.5}, "window": {"drain_timed_out": true, "traffic_s": 10.5},
            "started_at": "2026-01-01T00:00:01+00:00", "target": {"url": "http://127.0.0.1:1"},
            "actions": {"like": {"ok": 6, "rate_per_s": 2.0}, "typing": {"ok": 1}},
            "simulator": {"rss_before_bytes": null}, "invalid_reasons": ["late"]
        });
        let m = merged(&[a, b]);
        assert_eq!(m["valid"], false);
        assert_eq!(m["requests"]["sent"], 17);
        assert_eq!(m["requests"]["errors"], json!({"http_500": 3, "timeout": 1}));
        assert_eq!(m["requests"]["throughput_per_s"], 10.0);
        assert_eq!(m["generator"]["max_lag_ms"], 9.5);
        assert_eq!(m["window"], json!({"drain_timed_out": true, "traffic_s": 10.5}));
        assert_eq!(m["started_at"], "2026-01-01T00:00:01+00:00");
        assert_eq!(m["target"]["url"], "http://127.0.0.1:1");
        assert_eq!(m["actions"]["like"], json!({"ok": 10, "rate_per_s": 4.0}));
        assert_eq!(m["actions"]["typing"]["ok"], 1);
        assert_eq!(m["simulator"]["rss_before_bytes"], Value::Null, "a sum some inputs lack is unknown");
        assert_eq!(m["invalid_reasons"], json!(["late"]));
    }
}
