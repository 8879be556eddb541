//! Writes a report to disk: `<out>/<UTC timestamp>-<run id>/report.json` plus one
//! `<name>.hgrm` and one `<name>.hlog` (interval log) per histogram, `report.html`,
//! `summary.md` and `junit.xml`. A report folder is created fresh and never
//! overwritten; a clash gets a numeric suffix.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Report, ci, html};
use crate::report::histo;
use crate::report::timeline::IntervalLogs;

/// Writes `report` under `out` and returns the new folder.
pub fn write(report: &Report, out: &Path) -> io::Result<PathBuf> {
    let dir = create_stamped(out, &report.model.run_id)?;
    let mut model = report.model.clone();
    model.histogram_logs = write_histogram_logs(&dir, &report.histograms, &report.intervals, &report.model.started_at)?;
    write_histograms_and_model(&dir, &report.histograms, &model)?;
    create_new(&dir.join("report.html"))?.write_all(html::render(&model, &report.histograms).as_bytes())?;
    create_new(&dir.join("summary.md"))?.write_all(ci::summary_md(&report.model).as_bytes())?;
    create_new(&dir.join("junit.xml"))?.write_all(ci::junit_xml(&report.model).as_bytes())?;
    Ok(dir)
}

/// Creates `out` if need be and, in it, a fresh folder `<UTC timestamp>-<label>`.
pub(crate) fn create_stamped(out: &Path, label: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(out)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    create_fresh(out, &format!("{stamp}-{label}"))
}

/// Writes one `<name>.hgrm` per histogram and `report.json` (`model`) into `dir`.
pub(crate) fn write_histograms_and_model(
    dir: &Path,
    histograms: &[(String, Histogram<u64>)],
    model: &impl Serialize,
) -> io::Result<()> {
    for (hist_name, hist) in histograms {
        let mut file = BufWriter::new(create_new(&dir.join(hgrm_file_name(hist_name)))?);
        histo::write_hgrm(hist, &mut file)?;
        file.flush()?;
    }
    let mut file = BufWriter::new(create_new(&dir.join("report.json"))?);
    serde_json::to_writer_pretty(&mut file, model)?;
    file.write_all(b"\n")?;
    file.flush()
}

/// Writes one `<name>.hlog` per histogram into `dir` from `logs` (intervals completed
/// so each adds up exactly to its histogram; one interval spanning the run for a
/// histogram that was not sampled). `started_at` (RFC 3339) stands in for t0 when the
/// logs have none. Returns histogram name → file name, for `histogram_logs`.
pub fn write_histogram_logs(
    dir: &Path,
    histograms: &[(String, Histogram<u64>)],
    logs: &IntervalLogs,
    started_at: &str,
) -> io::Result<BTreeMap<String, String>> {
    let t0 = logs.t0.unwrap_or_else(|| {
        chrono::DateTime::parse_from_rfc3339(started_at).map_or(SystemTime::UNIX_EPOCH, SystemTime::from)
    });
    let mut names = BTreeMap::new();
    for (name, hist) in histograms {
        let file_name = hlog_file_name(name);
        let mut file = BufWriter::new(create_new(&dir.join(&file_name))?);
        histo::write_hlog(name, t0, &logs.exact_for(name, hist), &mut file)?;
        file.flush()?;
        names.insert(name.clone(), file_name);
    }
    Ok(names)
}

/// The `.hlog` (interval log) file name of histogram `name`.
pub fn hlog_file_name(name: &str) -> String {
    format!("{name}.hlog")
}

/// The `.hgrm` file name of histogram `name`.
pub fn hgrm_file_name(name: &str) -> String {
    format!("{name}.hgrm")
}

pub(crate) fn create_fresh(out: &Path, name: &str) -> io::Result<PathBuf> {
    for attempt in 0..1000 {
        let dir = if attempt == 0 { out.join(name) } else { out.join(format!("{name}-{attempt}")) };
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name}: too many report folders of that name")))
}

pub(crate) fn create_new(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_never_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let a = create_fresh(tmp.path(), "x").unwrap();
        let b = create_fresh(tmp.path(), "x").unwrap();
        assert_ne!(a, b);
        assert!(b.ends_with("x-1"));
        assert!(create_new(&a.join("f")).is_ok());
        assert!(create_new(&a.join("f")).is_err());
    }
}
