//! Exit codes of `firehose-sim`, and their explanation for `--help`.

pub const OK: u8 = 0;
/// The report could not be written, or another unexpected failure.
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const INVALID_RUN: u8 = 3;
pub const SETUP: u8 = 4;
/// A `--threshold` failed on a valid run.
pub const THRESHOLD: u8 = 5;
/// `compare`: a figure regressed beyond `--max-regression`.
pub const REGRESSION: u8 = 6;
/// The target answers but does not speak Phoenix Channels (no WebSocket upgrade at
/// the socket path, or no `phx_reply` to a heartbeat), found before traffic starts.
pub const NOT_PHOENIX: u8 = 7;
/// The target closed listener sockets or channels during the run (server closes,
/// EOF or read errors; never the simulator's own closes). The report is written
/// and partial; an invalid run (3) or a failed threshold (5) takes precedence.
pub const DROPPED: u8 = 8;
/// `run` was stopped by SIGINT (Ctrl-C) or SIGTERM: what was measured until then is
/// written as a partial report. A second signal exits with it at once, no report.
pub const INTERRUPTED: u8 = 9;

/// Exit codes, shown in `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  pass: the run completed, is valid and met every --threshold (loss or errors, if
     any and not gated, are in the report); `compare`: no regression beyond the bound;
     `knee`: the search ended (a level broke the --slo, or every level up to --max
     held; knee.json says which); `demo`: stopped by Ctrl-C or SIGTERM
  1  the report could not be written
  2  usage, plan or scenario error (bad flag or file, rate <= 0, unknown metric in a
     --threshold, more listeners than file descriptors allow, unreadable report to compare)
  3  the run is invalid: the generator fell behind its schedule (see the report's reasons;
     this code wins over a failed threshold)
  4  the target is unreachable (connection refused, DNS) or setup failed (boot, user or
     bookmark seeding, no listener joined)
  5  a --threshold failed (the report, summary.md and junit.xml say which)
  6  `compare`: a figure regressed beyond --max-regression
  7  the target is not a Phoenix Channels endpoint: no WebSocket upgrade at the profile's
     socket path (e.g. HTTP 404), or no phx_reply to a heartbeat; found before traffic
  8  the target dropped listener connections during the run (server close, EOF, error;
     never the simulator's own churn or storms), or some listeners never joined (a run
     with fewer listeners than planned): the report is written, marked partial.
     Precedence on a finished run: 3, then 5, then 8. A run that fails after listeners
     connected still writes a partial report and exits with its failure's code
  9  `run` was interrupted by SIGINT (Ctrl-C) or SIGTERM: it stopped scheduling, drained
     for at most 2 s and wrote a partial report (unsent requests owe nothing); this code
     wins over every other. A second signal quits at once without a report";
