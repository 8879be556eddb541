//! Latency histograms: HdrHistogram in microseconds with 3 significant figures,
//! sharded recorders merged at the end, summaries for the report, and the `.hgrm`
//! percentile-distribution text that HdrHistogram's own tools (and plotters) read.
//!
//! Why shards and not one histogram per listener task: a 3-significant-figure histogram
//! holds 2,048 counters per power of two of range, tens of KiB once it has seen a few
//! hundred milliseconds. Ten thousand listeners each owning one would cost hundreds of
//! MiB and swamp the few KiB per listener we aim for. A handful of shards, each behind a
//! lock held only for one `record`, keeps contention low and memory flat.

use std::io::{self, Write};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Significant figures kept by every histogram of a run.
pub const SIGFIG: u8 = 3;

/// `.hgrm` values are written in milliseconds: microseconds divided by this.
pub const HGRM_UNIT_SCALING: f64 = 1000.0;

/// Percentile ticks per half distance in `.hgrm` output (HdrHistogram's default is 5).
pub const HGRM_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// A fresh, auto-resizing microsecond histogram (lowest discernible value 1 µs).
pub fn new_histogram() -> Histogram<u64> {
    // `new` only fails for sigfig > 5.
    Histogram::new(SIGFIG).expect("3 significant figures is a valid histogram precision")
}

/// Microseconds in `d`, saturating at `u64::MAX`.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Records `d` as microseconds, growing the histogram as needed; never fails.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = micros(d);
    // `saturating_record` alone would clamp to the current range instead of growing
    // it; it is only the fallback for a value past what any histogram can hold.
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// Several histograms written by many tasks, merged into one at the end.
pub struct Sharded {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

impl Sharded {
    pub fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1)).map(|_| Mutex::new(new_histogram())).collect();
        Self { shards }
    }

    /// Records into the shard picked by `key` (e.g. the listener's index).
    pub fn record(&self, key: usize, d: Duration) {
        let shard = &self.shards[key % self.shards.len()];
        record(&mut shard.lock(), d);
    }

    /// All shards added together.
    pub fn merged(&self) -> Histogram<u64> {
        merge(self.shards.iter().map(|s| s.lock().clone()))
    }
}

/// Adds histograms together. Auto-resizing histograms of equal precision always add.
pub fn merge(parts: impl IntoIterator<Item = Histogram<u64>>) -> Histogram<u64> {
    let mut total = new_histogram();
    for part in parts {
        total.add(&part).expect("auto-resizing histograms of equal precision add");
    }
    total
}

/// The figures of one histogram as the report shows them, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub stddev_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self {
                count: 0,
                min_ms: 0.0,
                mean_ms: 0.0,
                stddev_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
            };
        }
        Self {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            stddev_ms: h.stdev() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Writes `h` (microseconds) in HdrHistogram's percentile-distribution text format,
/// values in milliseconds, exactly as Java's `outputPercentileDistribution(out, 5, 1000.0)`.
pub fn write_hgrm(h: &Histogram<u64>, out: &mut impl Write) -> io::Result<()> {
    let digits = usize::from(h.sigfig());
    writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(HGRM_TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / HGRM_UNIT_SCALING;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q))?;
            } else {
                writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}")?;
            }
        }
    }
    let (mean, stddev) = if h.is_empty() { (0.0, 0.0) } else { (h.mean(), h.stdev()) };
    writeln!(
        out,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        mean / HGRM_UNIT_SCALING,
        stddev / HGRM_UNIT_SCALING
    )?;
    writeln!(out, "#[Max     = {:>12.digits$}, Total count    = {:>12}]", h.max() as f64 / HGRM_UNIT_SCALING, h.len())?;
    writeln!(out, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), sub_bucket_count(h.sigfig()))
}

/// HdrHistogram's sub-bucket count for a lowest discernible value of 1: the power of two
/// at or above 2 × 10^sigfig.
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// One row of a parsed `.hgrm` file.
#[derive(Debug, Clone, PartialEq)]
pub struct HgrmRow {
    pub value_ms: f64,
    pub percentile: f64,
    pub total_count: u64,
}

/// A parsed `.hgrm` file: its rows and the footer's total count and max.
#[derive(Debug, Clone, PartialEq)]
pub struct Hgrm {
    pub rows: Vec<HgrmRow>,
    pub total_count: u64,
    pub max_ms: f64,
}

/// Reads back what [`write_hgrm`] wrote (tests and report consumers use it).
pub fn parse_hgrm(text: &str) -> Result<Hgrm, String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty file")?;
    let columns: Vec<&str> = header.split_whitespace().collect();
    if columns != ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"] {
        return Err(format!("unexpected header {header:?}"));
    }
    let mut rows = Vec::new();
    let (mut total_count, mut max_ms) = (None, None);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        if let Some(footer) = line.strip_prefix("#[") {
            let field = |name: &str| -> Option<&str> {
                let start = footer.find(name)? + name.len();
                let rest = footer[start..].trim_start().strip_prefix('=')?;
                rest.split([',', ']']).next().map(str::trim)
            };
            if let Some(v) = field("Total count") {
                total_count = Some(v.parse::<u64>().map_err(|e| format!("total count {v:?}: {e}"))?);
            }
            if let Some(v) = field("Max") {
                max_ms = Some(v.parse::<f64>().map_err(|e| format!("max {v:?}: {e}"))?);
            }
            continue;
        }
        let cells: Vec<&str> = line.split_whitespace().collect();
        if !(3..=4).contains(&cells.len()) {
            return Err(format!("bad row {line:?}"));
        }
        let num = |s: &str| s.parse::<f64>().map_err(|e| format!("{s:?} in {line:?}: {e}"));
        rows.push(HgrmRow {
            value_ms: num(cells[0])?,
            percentile: num(cells[1])?,
            total_count: cells[2].parse().map_err(|e| format!("{line:?}: {e}"))?,
        });
    }
    Ok(Hgrm { rows, total_count: total_count.ok_or("no Total count footer")?, max_ms: max_ms.ok_or("no Max footer")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(values_us: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values_us {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn sharded_recorders_merge_to_the_sum_of_their_parts() {
        let sharded = Sharded::new(4);
        for i in 0..1000u64 {
            sharded.record(i as usize, Duration::from_micros(i + 1));
        }
        let merged = sharded.merged();
        assert_eq!(merged.len(), 1000);
        assert_eq!(merged.max(), merged.highest_equivalent(1000));
        assert_eq!(merged.value_at_quantile(0.5), merged.highest_equivalent(500));

        let direct = filled(1..=1000);
        assert_eq!(Summary::of(&merged), Summary::of(&direct));
    }

    #[test]
    fn recording_grows_the_range_instead_of_clamping() {
        let mut h = new_histogram();
        record(&mut h, Duration::from_millis(250));
        record(&mut h, Duration::from_secs(90));
        assert!(h.equivalent(h.min(), 250_000));
        assert!(h.equivalent(h.max(), 90_000_000));
        let sharded = Sharded::new(2);
        sharded.record(0, Duration::from_millis(12));
        assert!(sharded.merged().equivalent(sharded.merged().max(), 12_000));
    }

    #[test]
    fn merging_histograms_of_different_ranges_keeps_every_count() {
        let small = filled([5, 6, 7]);
        let large = filled([3_000_000, 60_000_000]);
        let merged = merge([small, large, new_histogram()]);
        assert_eq!(merged.len(), 5);
        assert_eq!(merged.min(), 5);
        assert!(merged.equivalent(merged.max(), 60_000_000));
    }

    #[test]
    fn summary_is_in_milliseconds_and_empty_is_zero() {
        let s = Summary::of(&filled([1_000, 2_000, 3_000, 4_000]));
        assert_eq!(s.count, 4);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.p50_ms, 2.0);
        assert!((s.max_ms - 4.0).abs() < 0.01);
        assert!((s.mean_ms - 2.5).abs() < 0.01);
        assert_eq!(Summary::of(&new_histogram()).count, 0);
    }

    #[test]
    fn hgrm_has_hdrhistograms_layout_and_reads_back() {
        let h = filled((1..=10_000).map(|v| v * 10));
        let mut out = Vec::new();
        write_hgrm(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines.next().unwrap(), "");
        let first = lines.next().unwrap();
        assert_eq!(first, "       0.010 0.000000000000          1           1.00");
        assert!(text.contains("#[Mean    =       50.006, StdDeviation   =       28.868]"), "{text}");
        assert!(text.contains("#[Max     =      100.031, Total count    =        10000]"), "{text}");
        assert!(text.ends_with(&format!("#[Buckets = {:>12}, SubBuckets     =         2048]\n", h.buckets())));

        let parsed = parse_hgrm(&text).unwrap();
        assert_eq!(parsed.total_count, 10_000);
        let last = parsed.rows.last().unwrap();
        assert_eq!(last.percentile, 1.0);
        assert_eq!(last.total_count, 10_000);
        assert!(parsed.rows.windows(2).all(|w| w[0].percentile <= w[1].percentile && w[0].value_ms <= w[1].value_ms));
        // 5 ticks per half distance: 0, .1, .2, .3, .4, .5, .55, ... so .5 and .75 appear.
        assert!(parsed.rows.iter().any(|r| r.percentile == 0.5));
        assert!(parsed.rows.iter().any(|r| r.percentile == 0.75));
        // The last row has no 1/(1-Percentile) column (it would be infinite).
        assert_eq!(text.lines().rev().nth(3).unwrap().split_whitespace().count(), 3);
    }

    #[test]
    fn empty_histogram_writes_a_parseable_file() {
        let mut out = Vec::new();
        write_hgrm(&new_histogram(), &mut out).unwrap();
        let parsed = parse_hgrm(std::str::from_utf8(&out).unwrap()).unwrap();
        assert!(parsed.rows.is_empty());
        assert_eq!(parsed.total_count, 0);
    }
}
