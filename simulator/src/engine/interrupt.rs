//! Ctrl-C and SIGTERM during a run: the first signal cancels [`token`] (generators and
//! action drivers stop scheduling, the run drains briefly and writes a partial report,
//! exit [`exit::INTERRUPTED`]); a second one exits at once. One per process, since a
//! signal is.

use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::engine::error::exit;

/// Longest drain after an interruption (the plan's drain timeout if shorter).
pub const DRAIN_CAP: Duration = Duration::from_secs(2);

static TOKEN: LazyLock<CancellationToken> = LazyLock::new(CancellationToken::new);
static RECEIVED: OnceLock<(&'static str, Instant)> = OnceLock::new();

/// Cancelled on the first SIGINT/SIGTERM of this process.
pub fn token() -> CancellationToken {
    TOKEN.clone()
}

/// Whether a signal asked the run to stop.
pub fn requested() -> bool {
    TOKEN.is_cancelled()
}

/// The first signal (`SIGINT`/`SIGTERM`) and when it came.
pub fn received() -> Option<(&'static str, Instant)> {
    RECEIVED.get().copied()
}

/// The drain allowed after traffic ended: `planned`, capped at [`DRAIN_CAP`] once
/// interrupted.
pub fn drain_timeout(planned: Duration) -> Duration {
    if requested() { planned.min(DRAIN_CAP) } else { planned }
}

/// Installs the SIGINT/SIGTERM handlers on the current tokio runtime (call inside it).
/// `each` runs on every signal (e.g. to forward it to agent processes), before the
/// first cancels [`token`] and before the second exits with [`exit::INTERRUPTED`].
pub fn listen(each: impl Fn(&'static str) + Send + 'static) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = int.recv() => "SIGINT",
                Some(()) = term.recv() => "SIGTERM",
                else => return,
            };
            each(name);
            if RECEIVED.set((name, Instant::now())).is_ok() {
                eprintln!("firehose-sim: {name}: stopping; writing what was measured (again to quit at once)");
                TOKEN.cancel();
            } else {
                eprintln!("firehose-sim: {name} again: quitting without a report");
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
    Ok(())
}

/// The partial-report reason of a run interrupted `after` its traffic started, with
/// `unsent` of `scheduled` requests never sent.
pub fn reason(name: &str, after: Duration, unsent: u64, scheduled: u64) -> String {
    format!(
        "interrupted by {name} after {:.1} s of traffic; {unsent} of {scheduled} scheduled requests were never sent \
         (they owe no deliveries, so they count as neither sent nor lost)",
        after.as_secs_f64()
    )
}
