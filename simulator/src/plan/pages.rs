//! Page readers ("N readers online"): the `page` listener group and the `page_readers`
//! traffic kind. Page listeners join `page:<path>` anonymously on a few hot paths
//! (spread evenly) and read `presence_state`/`presence_diff`; readers arrive on the
//! open model (intended times `t0 + curve.offset(k)`, so stages shape them), each on a
//! Zipf-hot path, signed in as one of a pool of reader accounts (the app keys a
//! signed-in reader by its user id, so a diff's join names the reader), stay `dwell`
//! and leave.
//!
//! This file owns the plan (`[listeners] page`, `[actions.page_readers]`, their flags);
//! `run` owns the sockets, the accounting and the report entries.

use std::time::Duration;

use serde::Serialize;

use crate::plan::args::RunArgs;
use crate::plan::scenario::Scenario;
use crate::plan::{Origin, PlanError, parse_duration};

/// The listener group's key in `report.json`'s `groups`.
pub const GROUP: &str = "page";
/// The traffic kind's key in `report.json`'s `actions`.
pub const KIND: &str = "page_readers";
/// Hot page paths readers and listeners use (Zipf over readers, even over listeners).
pub const PATHS: usize = 4;

/// `[listeners] page` and `[actions.page_readers]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PagesPlan {
    /// Page listeners (`--page-listeners`), spread evenly over the hot paths.
    pub listeners: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readers: Option<ReadersPlan>,
}

/// `[actions.page_readers]` / `--page-reader-rate`, `--page-dwell`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadersPlan {
    /// Reader arrivals per second (scaled by the stages).
    pub rate_per_s: f64,
    /// How long each reader stays on its page.
    #[serde(rename = "dwell_ms", serialize_with = "crate::plan::millis")]
    pub dwell: Duration,
}

impl PagesPlan {
    pub fn is_active(&self) -> bool {
        self.listeners > 0 || self.readers.is_some()
    }

    /// Readers present at once at most, for a peak multiplier `max_scale` of the
    /// stages: rate × scale × dwell, plus one for rounding.
    pub fn peak_readers(&self, max_scale: f64) -> u64 {
        // Saturating (`as` saturates too): an absurd rate is refused by the descriptor
        // check, never wrapped into a small number that passes it.
        self.readers
            .as_ref()
            .map_or(0, |r| ((r.rate_per_s * max_scale * r.dwell.as_secs_f64()).ceil() as u64).saturating_add(1))
    }

    /// Sockets held at once: the listeners and the peak of concurrent readers.
    pub fn sockets(&self, max_scale: f64) -> u64 {
        u64::from(self.listeners).saturating_add(self.peak_readers(max_scale))
    }

    /// Agent `index` of `count`'s share: listeners split, the rate divided.
    pub fn share(&self, index: u32, count: u32) -> PagesPlan {
        PagesPlan {
            listeners: crate::plan::share_of(self.listeners, index, count),
            readers: self
                .readers
                .clone()
                .map(|r| ReadersPlan { rate_per_s: r.rate_per_s / f64::from(count.max(1)), ..r }),
        }
    }

    /// `--page-listeners`, `--page-reader-rate`, `--page-dwell` over the scenario's
    /// `[listeners] page` and `[actions.page_readers]`.
    pub fn from_layers(args: &RunArgs, scenario: Option<&Scenario>) -> Result<PagesPlan, PlanError> {
        let place = |s: &Scenario, key: &str, span| Origin::File(Box::new(s.place(key, span)));
        let invalid = |origin, reason: String| PlanError::Invalid { origin, reason };
        let listeners = match scenario.and_then(|s| s.file.listeners.page.as_ref()) {
            Some(v) if !args.given("page_listeners") => *v.get_ref(),
            _ => args.page_listeners,
        };
        let file = scenario.and_then(|s| s.file.actions.page_readers.as_ref().map(|t| (s, t)));
        let rate = match file.and_then(|(s, t)| t.get_ref().rate.as_ref().map(|r| (s, r))) {
            Some((s, r)) if !args.given("page_reader_rate") => {
                Some((*r.get_ref(), place(s, "actions.page_readers.rate", r.span())))
            }
            _ => args.page_reader_rate.map(|r| (r, Origin::Flag("page-reader-rate"))),
        };
        let rate = match (rate, file) {
            (Some(r), _) => Some(r),
            (None, Some((s, t))) => {
                return Err(invalid(place(s, "actions.page_readers", t.span()), "needs a `rate` (per second)".into()));
            }
            (None, None) => None,
        };
        let readers = match rate {
            None => None,
            Some((rate, origin)) => {
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(PlanError::Rate { origin, value: rate });
                }
                let (text, origin) = match file.and_then(|(s, t)| t.get_ref().dwell.as_ref().map(|d| (s, d))) {
                    Some((s, d)) if !args.given("page_dwell") => {
                        (d.get_ref().clone(), place(s, "actions.page_readers.dwell", d.span()))
                    }
                    _ => (args.page_dwell.clone(), Origin::Flag("page-dwell")),
                };
                let dwell = parse_duration(&text).map_err(|reason| PlanError::Duration {
                    origin: origin.clone(),
                    value: text.clone(),
                    reason,
                })?;
                if dwell.is_zero() {
                    return Err(invalid(origin, "must be longer than zero: a reader has to stay to be seen".into()));
                }
                Some(ReadersPlan { rate_per_s: rate, dwell })
            }
        };
        Ok(PagesPlan { listeners, readers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(flags: &[&str], fd_limit: Option<u64>) -> Result<crate::plan::Plan, PlanError> {
        let args = RunArgs::try_parse_from(std::iter::once("run").chain(flags.iter().copied())).unwrap();
        crate::plan::Plan::from_layers(&args, None, fd_limit)
    }

    #[test]
    fn the_fd_budget_counts_page_listeners_and_the_peak_of_readers() {
        let flags = ["--listeners", "10", "--page-listeners", "40", "--page-reader-rate", "20", "--page-dwell", "5s"];
        let p = plan(&flags, None).unwrap();
        // 20/s × 5 s + 1 at once.
        assert_eq!(p.pages.peak_readers(1.0), 101);
        assert_eq!(p.total_sockets(), 10 + 40 + 101);
        // A 3× spike triples the peak.
        let spiked: Vec<&str> = flags.iter().copied().chain(["--stage", "5s:1", "--stage", "5s:3"]).collect();
        assert_eq!(plan(&spiked, None).unwrap().pages.peak_readers(3.0), 301);
        // Embedded: both ends of each socket, so 151 sockets do not fit in 300 files.
        let err = plan(&flags, Some(300)).unwrap_err().to_string();
        assert!(err.contains("151") || err.contains("302"), "{err}");
        let share = p.pages.share(1, 2);
        assert_eq!((share.listeners, share.readers.unwrap().rate_per_s), (20, 10.0));
    }
}
