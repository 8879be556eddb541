//! Process resources: this process's resident set (`/proc/self/status`) and CPU time
//! (`/proc/self/stat`), and the server's resident set from its Prometheus
//! `process_resident_memory_bytes` gauge.

use std::time::Duration;

/// Linux reports CPU times in clock ticks of 1/100 s (USER_HZ) on every mainstream
/// architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// VmRSS of this process in bytes, where `/proc` exists.
pub fn vm_rss_bytes() -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

/// User + system CPU time this process used so far, where `/proc` exists.
pub fn cpu_time() -> Option<Duration> {
    parse_cpu_time(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn parse_cpu_time(stat: &str) -> Option<Duration> {
    // Fields after the command name (which may hold spaces) start at field 3, `state`;
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / TICKS_PER_SECOND))
}

/// The value of an unlabelled sample `name` in Prometheus text exposition.
pub fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == name).then(|| parts.next()?.parse().ok())?
    })
}

/// `(after − before) / count`, when both figures exist and `count` > 0.
pub fn per_item(before: Option<u64>, after: Option<u64>, count: u64) -> Option<f64> {
    let (before, after) = (before?, after?);
    (count > 0).then(|| (after as f64 - before as f64) / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_bytes() {
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t   2048 kB\nVmData: 1 kB\n"), Some(2 * 1024 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(vm_rss_bytes().unwrap_or(1) > 0);
    }

    #[test]
    fn reads_cpu_time_from_stat() {
        let stat = "42 (firehose sim) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_secs(2)));
        assert!(cpu_time().is_some());
    }

    #[test]
    fn reads_prometheus_gauges() {
        let text = "# HELP process_resident_memory_bytes Resident\n\
                    # TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes 1.5e7\n\
                    process_resident_memory_bytes_total 3\n";
        assert_eq!(prometheus_value(text, "process_resident_memory_bytes"), Some(1.5e7));
        assert_eq!(prometheus_value(text, "absent"), None);
        assert_eq!(per_item(Some(1000), Some(3000), 4), Some(500.0));
        assert_eq!(per_item(None, Some(3000), 4), None);
        assert_eq!(per_item(Some(1), Some(3), 0), None);
    }
}
