//! This process's resources as Linux reports them — its resident set
//! (`/proc/self/status`) and CPU time (`/proc/self/stat`) — and the machine's load
//! average (`/proc/loadavg`); with the Prometheus names `/metrics` gives the first two
//! under. The server exposes them and the simulator reads its own and the server's
//! through here, so both measure the same way.

use std::time::Duration;

/// `/metrics` name of [`vm_rss_bytes`] (a gauge).
pub const RSS_METRIC: &str = "process_resident_memory_bytes";
/// `/metrics` name of [`cpu_time`] in seconds (a counter).
pub const CPU_METRIC: &str = "process_cpu_seconds_total";

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

/// The 1-minute load average (`/proc/loadavg`), where `/proc` exists.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
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
    fn reads_the_load_average() {
        assert!(load_average().is_some_and(|l| l >= 0.0));
    }
}
