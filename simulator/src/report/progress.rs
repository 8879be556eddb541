//! Live progress on stderr while a run goes: the phase (seeding, connecting listeners
//! N/M, traffic elapsed/planned, draining) and, once a second from the timeline sampler,
//! the current request rate, deliveries/s, open connections, the firehose delivery p99
//! of the latest interval and errors so far.
//!
//! On a terminal it is an `indicatif` bar; when stderr is not a terminal (CI logs) a
//! plain status line at each new phase and every [`PLAIN_EVERY`] within one instead;
//! nothing at all when switched off.
//! Every phase and interval is also published to [`live`] (the dashboard, an agent's
//! parent), shown or not.
//! The library starts switched off (tests, embedders); the `firehose-sim` binary turns
//! it on unless `--quiet` (see [`set_enabled`]).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

use crate::report::live::{self, LiveEvent};
use crate::report::timeline::TimelineRow;

/// How often a plain status line is printed when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns live progress on or off for the runs that start afterwards in this process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The progress display of one run.
pub struct Progress {
    out: Output,
    errors: Mutex<u64>,
}

enum Output {
    Off,
    Bar(ProgressBar),
    /// When the last line was printed, and its phase.
    Plain {
        last: Mutex<Option<(Instant, String)>>,
    },
}

impl Progress {
    /// A display for a run starting now: a bar on a terminal, plain lines otherwise,
    /// nothing when progress is switched off.
    pub fn start() -> Arc<Self> {
        let out = if !ENABLED.load(Ordering::Relaxed) {
            Output::Off
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {prefix} {wide_msg}").expect("valid template"));
            bar.enable_steady_tick(Duration::from_millis(200));
            Output::Bar(bar)
        } else {
            Output::Plain { last: Mutex::new(None) }
        };
        Arc::new(Self { out, errors: Mutex::new(0) })
    }

    /// A display that shows nothing.
    pub fn off() -> Arc<Self> {
        Arc::new(Self { out: Output::Off, errors: Mutex::new(0) })
    }

    /// A phase without figures, e.g. `seeding`.
    pub fn phase(&self, phase: &str, detail: &str) {
        self.show(phase, detail.to_owned());
    }

    /// Listener connection progress.
    pub fn connecting(&self, joined: u64, total: u64) {
        self.show("connecting", format!("listeners {joined}/{total} joined"));
    }

    /// Shows `connecting` with `counts()` (joined, planned) every 200 ms until the
    /// returned guard is dropped.
    pub fn watch_connecting(
        self: &Arc<Self>,
        counts: impl Fn() -> (u64, u64) + Send + 'static,
    ) -> tokio_util::sync::DropGuard {
        let stop = tokio_util::sync::CancellationToken::new();
        if !matches!(self.out, Output::Off) || live::watched() {
            let (me, token) = (Arc::clone(self), stop.clone());
            tokio::spawn(async move {
                loop {
                    let (joined, total) = counts();
                    me.connecting(joined, total);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                        () = token.cancelled() => break,
                    }
                }
            });
        }
        stop.drop_guard()
    }

    /// One sampled interval of the traffic phase (or of the drain, once past `planned`).
    pub fn traffic(&self, elapsed: Duration, planned: Duration, row: &TimelineRow) {
        if live::watched() {
            let (elapsed_s, planned_s) = (elapsed.as_secs_f64(), planned.as_secs_f64());
            live::publish(&LiveEvent::Row { elapsed_s, planned_s, row: row.clone() });
        }
        let errors = {
            let mut e = self.errors.lock();
            *e += row.errors();
            *e
        };
        let phase = if elapsed > planned { "draining" } else { "traffic" };
        // The p99 of the group with the most deliveries in the interval.
        let busiest = row.groups.iter().filter(|(_, g)| g.latency.count > 0).max_by_key(|(_, g)| g.deliveries);
        let p99 = busiest.map_or_else(|| "-".to_owned(), |(name, g)| format!("{name} p99 {:.1}ms", g.latency.p99_ms));
        let detail = format!(
            "{:.0}/{:.0}s · {:.0} actions/s · {:.0} deliveries/s · {} open · {p99} · {errors} errors",
            elapsed.as_secs_f64(),
            planned.as_secs_f64(),
            row.actions_per_s(),
            row.deliveries_per_s(),
            row.open_connections,
        );
        self.show(phase, detail);
    }

    /// Removes the bar (the terminal summary follows).
    pub fn finish(&self) {
        if let Output::Bar(bar) = &self.out {
            bar.finish_and_clear();
        }
    }

    /// Shows `phase` and `detail`: at once on the bar; as a plain line when the phase
    /// changed or [`PLAIN_EVERY`] passed since the last line.
    fn show(&self, phase: &str, detail: String) {
        if live::watched() {
            live::publish(&LiveEvent::Phase { phase: phase.to_owned(), detail: detail.clone() });
        }
        match &self.out {
            Output::Off => {}
            Output::Bar(bar) => {
                bar.set_prefix(phase.to_owned());
                bar.set_message(detail);
            }
            Output::Plain { last } => {
                let mut last = last.lock();
                if last.as_ref().is_none_or(|(t, p)| p != phase || t.elapsed() >= PLAIN_EVERY) {
                    *last = Some((Instant::now(), phase.to_owned()));
                    eprintln!("firehose-sim: {phase} {detail}");
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
