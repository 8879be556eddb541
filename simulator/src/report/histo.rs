//! Latency histograms: HdrHistogram in microseconds with 3 significant figures,
//! sharded recorders merged at the end (or taken interval by interval while the run
//! goes), summaries for the report, the `.hgrm` percentile-distribution text and the
//! `.hlog` interval logs that HdrHistogram's own tools read.
//!
//! Why shards and not one histogram per listener task: a 3-significant-figure histogram
//! holds 2,048 counters per power of two of range, tens of KiB once it has seen a few
//! hundred milliseconds. Ten thousand listeners each owning one would cost hundreds of
//! MiB and swamp the few KiB per listener we aim for. Instead, each listener task pushes
//! its values onto a handful of lock-free queues (no lock on the receive path); they are
//! folded into one histogram per shard by the sampler every second, and the shards are
//! merged at the end. Memory stays flat and exact: every value is counted once.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use crossbeam_queue::SegQueue;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
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
///
/// The receive path takes no lock: [`Sharded::record`] pushes the value onto its
/// shard's lock-free queue (crossbeam's `SegQueue`). Values are folded into the shard's
/// histogram by whoever reads (the once-a-second sampler, `merged`), or by a recorder
/// that finds [`FOLD_EVERY`] values waiting and the shard free (`try_lock`, never a
/// wait), so an unread queue stays bounded.
///
/// Each shard's histogram holds what was folded since the last
/// [`Sharded::take_interval`]; the intervals taken so far are kept added up in `taken`,
/// so [`Sharded::merged`] is everything ever recorded whether or not anyone samples
/// intervals. Every value lands in exactly one interval.
pub struct Sharded {
    pending: Box<[Pending]>,
    shards: Box<[Mutex<Histogram<u64>>]>,
    /// Σ of the intervals taken so far. Lock order: `taken`, then a shard.
    taken: Mutex<Histogram<u64>>,
}

/// Values recorded into a shard and not yet folded into its histogram.
struct Pending {
    queue: SegQueue<u64>,
    since_fold: AtomicU32,
}

/// A recorder folds its shard's queue after this many pushes, if the shard is free.
pub const FOLD_EVERY: u32 = 4096;

impl Sharded {
    pub fn new(shards: usize) -> Self {
        let n = shards.max(1);
        let shards = (0..n).map(|_| Mutex::new(new_histogram())).collect();
        let pending = (0..n).map(|_| Pending { queue: SegQueue::new(), since_fold: AtomicU32::new(0) }).collect();
        Self { pending, shards, taken: Mutex::new(new_histogram()) }
    }

    /// Records into the shard picked by `key` (e.g. the listener's index), lock-free.
    pub fn record(&self, key: usize, d: Duration) {
        let i = key % self.shards.len();
        let pending = &self.pending[i];
        pending.queue.push(micros(d));
        if pending.since_fold.fetch_add(1, Ordering::Relaxed) + 1 >= FOLD_EVERY
            && let Some(mut shard) = self.shards[i].try_lock()
        {
            self.fold(i, &mut shard);
        }
    }

    /// Moves shard `i`'s queued values into its histogram (held by the caller).
    fn fold(&self, i: usize, shard: &mut Histogram<u64>) {
        let pending = &self.pending[i];
        pending.since_fold.store(0, Ordering::Relaxed);
        while let Some(us) = pending.queue.pop() {
            if shard.record(us).is_err() {
                shard.saturating_record(us);
            }
        }
    }

    /// All shards added together: every value recorded so far.
    pub fn merged(&self) -> Histogram<u64> {
        let taken = self.taken.lock();
        let mut total = taken.clone();
        for (i, shard) in self.shards.iter().enumerate() {
            let mut shard = shard.lock();
            self.fold(i, &mut shard);
            total.add(&*shard).expect("auto-resizing histograms of equal precision add");
        }
        total
    }

    /// What was recorded since the previous call (or since creation): moves every
    /// shard's current interval into the returned histogram and keeps it in the running
    /// total, so `merged()` is unchanged and the intervals add up exactly to it. Shards
    /// are reset, not reallocated, so recording after a take does not allocate again.
    pub fn take_interval(&self) -> Histogram<u64> {
        let mut taken = self.taken.lock();
        let mut interval = new_histogram();
        for (i, shard) in self.shards.iter().enumerate() {
            let mut shard = shard.lock();
            self.fold(i, &mut shard);
            interval.add(&*shard).expect("auto-resizing histograms of equal precision add");
            shard.reset();
        }
        taken.add(&interval).expect("auto-resizing histograms of equal precision add");
        interval
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

/// One interval of an HdrHistogram interval log: when it started (from the log's start
/// time, the run's t0), how long it lasted, and what was recorded in it (µs).
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub start: Duration,
    pub length: Duration,
    pub histogram: Histogram<u64>,
}

/// Whether `a` and `b` hold exactly the same counts at the same values (unlike `==`,
/// regardless of how far each has grown its range).
pub fn same_counts(a: &Histogram<u64>, b: &Histogram<u64>) -> bool {
    a.len() == b.len() && a.iter_recorded().all(|v| b.count_at(v.value_iterated_to()) == v.count_at_value())
}

/// `.hlog` interval max values are written in milliseconds: microseconds divided by this.
pub const HLOG_MAX_VALUE_DIVISOR: f64 = 1000.0;

/// Makes `intervals` add up exactly to `total`: unchanged when they already do; when
/// `total` holds values no interval has (recorded after the last one was taken), those
/// go into one more interval ending at `span`; when the intervals do not fit inside
/// `total` at all, one interval `[0, span)` holding `total` replaces them. No intervals
/// at all is the one-interval case (a histogram that was not sampled over time).
pub fn exact_intervals(total: &Histogram<u64>, intervals: &[Interval], span: Duration) -> Vec<Interval> {
    let whole = || vec![Interval { start: Duration::ZERO, length: span, histogram: total.clone() }];
    if intervals.is_empty() {
        return whole();
    }
    let sum = merge(intervals.iter().map(|i| i.histogram.clone()));
    if same_counts(&sum, total) {
        return intervals.to_vec();
    }
    let mut rest = total.clone();
    if rest.subtract(&sum).is_err() || rest.len() + sum.len() != total.len() {
        return whole();
    }
    let end = intervals.iter().map(|i| i.start + i.length).max().unwrap_or_default();
    let mut out = intervals.to_vec();
    out.push(Interval { start: end, length: span.saturating_sub(end), histogram: rest });
    out
}

/// Writes `intervals` as an HdrHistogram interval log (the `.hlog` format of Java's
/// `HistogramLogWriter`): `#[StartTime]` and `#[BaseTime]` both `start_time` (the run's
/// t0), interval timestamps in seconds from it, histograms V2 + deflate, base64; the
/// max column in milliseconds. Every interval is tagged `name`.
pub fn write_hlog(name: &str, start_time: SystemTime, intervals: &[Interval], out: &mut impl Write) -> io::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(&format!("firehose-sim interval log of histogram {name}; values in microseconds"))
        .with_start_time(start_time)
        .with_base_time(start_time)
        .with_max_value_divisor(HLOG_MAX_VALUE_DIVISOR)
        .begin_log_with(out, &mut serializer)?;
    writer
        .write_comment("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
    let tag = Tag::new(name);
    for interval in intervals {
        writer
            .write_histogram(&interval.histogram, interval.start, interval.length, tag)
            .map_err(|e| io::Error::other(format!("interval log of {name}: {e}")))?;
    }
    Ok(())
}

/// A parsed `.hlog` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Hlog {
    /// `#[StartTime]`, seconds since the Unix epoch.
    pub start_time_s: Option<f64>,
    /// `#[BaseTime]`, seconds since the Unix epoch: interval starts count from it.
    pub base_time_s: Option<f64>,
    /// Interval starts as written (from `BaseTime` when there is one).
    pub intervals: Vec<Interval>,
}

impl Hlog {
    /// Every interval added together.
    pub fn sum(&self) -> Histogram<u64> {
        merge(self.intervals.iter().map(|i| i.histogram.clone()))
    }
}

/// Reads an interval log (what [`write_hlog`] wrote, or any V2 interval log) with
/// hdrhistogram's `IntervalLogIterator`.
pub fn read_hlog(bytes: &[u8]) -> Result<Hlog, String> {
    let mut log = Hlog { start_time_s: None, base_time_s: None, intervals: Vec::new() };
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        match entry.map_err(|e| format!("{e:?}"))? {
            LogEntry::StartTime(t) => log.start_time_s = Some(t.as_secs_f64()),
            LogEntry::BaseTime(t) => log.base_time_s = Some(t.as_secs_f64()),
            LogEntry::Interval(i) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .map_err(|e| format!("interval at {:?}: base64: {e}", i.start_timestamp()))?;
                let decoded: Histogram<u64> = deserializer
                    .deserialize(&mut io::Cursor::new(raw))
                    .map_err(|e| format!("interval at {:?}: {e:?}", i.start_timestamp()))?;
                let mut histogram = new_histogram();
                histogram.add(&decoded).map_err(|e| format!("interval at {:?}: {e:?}", i.start_timestamp()))?;
                log.intervals.push(Interval { start: i.start_timestamp(), length: i.duration(), histogram });
            }
        }
    }
    Ok(log)
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
    use std::sync::Arc;

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
    fn intervals_taken_while_recording_add_up_to_the_merged_histogram() {
        let sharded = Arc::new(Sharded::new(4));
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let sharded = Arc::clone(&sharded);
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        sharded.record(t * 7 + i as usize, Duration::from_micros(1 + i * (t as u64 + 1)));
                    }
                })
            })
            .collect();
        let mut intervals = Vec::new();
        while writers.iter().any(|w| !w.is_finished()) {
            intervals.push(sharded.take_interval());
            std::thread::yield_now();
        }
        for w in writers {
            w.join().unwrap();
        }
        intervals.push(sharded.take_interval());
        let merged = sharded.merged();
        assert_eq!(merged.len(), 80_000);
        // Lock-free queues, folds by recorders (every FOLD_EVERY) and by takes: every
        // value is counted exactly once, as if recorded into one histogram.
        let mut direct = new_histogram();
        for t in 0..4u64 {
            for i in 0..20_000u64 {
                record(&mut direct, Duration::from_micros(1 + i * (t + 1)));
            }
        }
        assert!(same_counts(&direct, &merged));
        assert!(same_counts(&merge(intervals.iter().cloned()), &merged));
        assert!(sharded.take_interval().is_empty(), "a take leaves nothing behind");
        assert!(same_counts(&sharded.merged(), &merged), "taking intervals does not change the total");
    }

    #[test]
    fn hlog_round_trips_and_its_intervals_add_up_exactly() {
        let total = filled((1..=3000).map(|v| v * 37));
        let parts = [filled((1..=1000).map(|v| v * 37)), filled((1001..=2500).map(|v| v * 37))];
        let intervals: Vec<Interval> = parts
            .iter()
            .enumerate()
            .map(|(k, h)| Interval {
                start: Duration::from_secs(k as u64),
                length: Duration::from_secs(1),
                histogram: h.clone(),
            })
            .collect();
        // The last 500 values were never taken as an interval: they become one more.
        let exact = exact_intervals(&total, &intervals, Duration::from_millis(2500));
        assert_eq!(exact.len(), 3);
        assert_eq!(exact[2].start, Duration::from_secs(2));
        assert_eq!(exact[2].length, Duration::from_millis(500));
        assert_eq!(exact[2].histogram.len(), 500);
        // Intervals that do not fit in the total are replaced by one spanning the run.
        let alien = [Interval { start: Duration::ZERO, length: Duration::from_secs(1), histogram: filled([1]) }];
        assert_eq!(exact_intervals(&total, &alien, Duration::from_secs(3)).len(), 1);
        assert!(same_counts(&exact_intervals(&total, &[], Duration::from_secs(3))[0].histogram, &total));
        assert!(!same_counts(&total, &exact[0].histogram));

        let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let mut out = Vec::new();
        write_hlog("delivery_firehose", t0, &exact, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("#[StartTime: 1700000000.250 (seconds since epoch)]"), "{text}");
        assert!(text.contains("#[BaseTime: 1700000000.250 (seconds since epoch)]"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("Tag=delivery_firehose,1.000,1.000,")), "{text}");
        let log = read_hlog(&out).unwrap();
        assert_eq!(log.start_time_s, Some(1_700_000_000.25));
        assert_eq!(log.intervals.len(), 3);
        assert_eq!(log.intervals[1].start, Duration::from_secs(1));
        assert!(same_counts(&log.intervals[2].histogram, &exact[2].histogram));
        assert!(same_counts(&log.sum(), &total));
        assert_eq!(Summary::of(&log.sum()), Summary::of(&total));
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
