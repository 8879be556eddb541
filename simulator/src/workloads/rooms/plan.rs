//! `firehose-sim rooms` flags, and the validated `RoomsPlan` they become: every number
//! checked once, here, with an error that says what to change.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use crate::plan::{TargetSpec, http_base_url, millis, open_files_limit, parse_duration, secs};
use crate::report::exit::EXIT_CODES_HELP;

/// File descriptors kept back for the runtime, the HTTP client, the database and logs.
const FD_RESERVE: u64 = 128;
/// Events of one kind a run may schedule (their bookkeeping is preallocated).
const MAX_EVENTS: u64 = 5_000_000;

/// `firehose-sim rooms` flags, unvalidated.
#[derive(Debug, Clone, Parser)]
#[command(name = "rooms", after_help = EXIT_CODES_HELP)]
pub struct RoomsArgs {
    /// Target base URL (http://host:port), run with `--rate-messages off --rate-typing off`.
    /// Without it, the app is booted in-process on 127.0.0.1 with SQLite in a temporary
    /// directory (its rate limits off).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// Public rooms created for the run (`room:<slug>` topics).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub rooms: u32,

    /// Members per room: each is a user of its own with one socket joined to its room.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub members: u32,

    /// `new_msg` pushes per second, over all rooms (open model; rooms Zipf-skewed).
    #[arg(long, default_value_t = 10.0, value_name = "PER_S")]
    pub message_rate: f64,

    /// `typing` pushes per second, over all rooms (0: none).
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub typing_rate: f64,

    /// Extra sockets per second that join a room (presence churn), stay `--churn-hold`,
    /// then leave (0: none). Measures join push → `presence_diff` at every member.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub presence_churn: f64,

    /// How long a churn socket stays joined before it closes.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub churn_hold: String,

    /// Length of the traffic phase, warm-up included ("20s", "500ms", "2m").
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub duration: String,

    /// Events intended before this offset are left out of latency figures (still
    /// accounted for loss).
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub warmup: String,

    /// Seed for every random choice (rooms, senders, typists, message lines).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// A run whose generator fired any event later than this after its intended time is
    /// marked invalid.
    #[arg(long, default_value = "50ms", value_name = "DURATION")]
    pub max_lag: String,

    /// Member sockets opened per second during setup.
    #[arg(long, default_value_t = 500.0, value_name = "PER_S")]
    pub connect_rate: f64,

    /// After the last event, how long to wait for outstanding deliveries.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub drain_timeout: String,

    /// Directory under which `<UTC timestamp>-rooms-<id>/` report folders are written.
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,
}

impl RoomsArgs {
    /// The defaults, as `firehose-sim rooms` with no flags.
    pub fn defaults() -> Self {
        Self::parse_from(["rooms"])
    }
}

/// A validated rooms run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomsPlan {
    pub target: TargetSpec,
    pub rooms: u32,
    pub members: u32,
    pub message_rate_per_s: f64,
    pub typing_rate_per_s: f64,
    pub presence_churn_per_s: f64,
    #[serde(rename = "churn_hold_s", serialize_with = "secs")]
    pub churn_hold: Duration,
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Duration,
    #[serde(rename = "warmup_s", serialize_with = "secs")]
    pub warmup: Duration,
    pub seed: u64,
    #[serde(rename = "max_lag_ms", serialize_with = "millis")]
    pub max_lag: Duration,
    pub connect_rate_per_s: f64,
    #[serde(rename = "drain_timeout_s", serialize_with = "secs")]
    pub drain_timeout: Duration,
    pub out: PathBuf,
}

/// Why the flags do not make a runnable rooms plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct RoomsPlanError(pub String);

impl RoomsPlan {
    pub fn from_args(args: &RoomsArgs) -> Result<Self, RoomsPlanError> {
        Self::from_args_with_fd_limit(args, open_files_limit())
    }

    pub fn from_args_with_fd_limit(args: &RoomsArgs, fd_limit: Option<u64>) -> Result<Self, RoomsPlanError> {
        let err = |s: String| Err(RoomsPlanError(s));
        let dur = |flag: &str, v: &str| {
            parse_duration(v).map_err(|e| RoomsPlanError(format!("--{flag} {v:?}: {e} (use e.g. \"10s\", \"500ms\")")))
        };
        let target = match &args.target {
            None => TargetSpec::Embedded,
            Some(raw) => TargetSpec::External { url: parse_target(raw)? },
        };
        let (duration, warmup) = (dur("duration", &args.duration)?, dur("warmup", &args.warmup)?);
        let churn_hold = dur("churn-hold", &args.churn_hold)?;
        let max_lag = dur("max-lag", &args.max_lag)?;
        let drain_timeout = dur("drain-timeout", &args.drain_timeout)?;
        if duration.is_zero() {
            return err("--duration must be longer than zero".into());
        }
        if warmup >= duration {
            return err(format!(
                "--warmup ({warmup:?}) must be shorter than --duration ({duration:?}), or nothing is measured"
            ));
        }
        if args.rooms == 0 {
            return err("--rooms must be at least 1".into());
        }
        if args.members < 2 {
            return err("--members must be at least 2: a message is delivered to the other members".into());
        }
        if !(args.message_rate.is_finite() && args.message_rate > 0.0) {
            return err(format!("--message-rate must be a positive number per second, got {}", args.message_rate));
        }
        for (flag, v) in [("typing-rate", args.typing_rate), ("presence-churn", args.presence_churn)] {
            if !(v.is_finite() && v >= 0.0) {
                return err(format!("--{flag} must be zero or a positive number per second, got {v}"));
            }
        }
        if !(args.connect_rate.is_finite() && args.connect_rate > 0.0) {
            return err(format!("--connect-rate must be a positive number per second, got {}", args.connect_rate));
        }
        for (flag, rate) in [
            ("message-rate", args.message_rate),
            ("typing-rate", args.typing_rate),
            ("presence-churn", args.presence_churn),
        ] {
            let events = (rate * duration.as_secs_f64()).floor() as u64;
            if events > MAX_EVENTS {
                return err(format!(
                    "--{flag} {rate} for {duration:?} makes {events} events; at most {MAX_EVENTS} fit"
                ));
            }
        }
        let plan = RoomsPlan {
            target,
            rooms: args.rooms,
            members: args.members,
            message_rate_per_s: args.message_rate,
            typing_rate_per_s: args.typing_rate,
            presence_churn_per_s: args.presence_churn,
            churn_hold,
            duration,
            warmup,
            seed: args.seed,
            max_lag,
            connect_rate_per_s: args.connect_rate,
            drain_timeout,
            out: args.out.clone(),
        };
        plan.check_fd_budget(fd_limit)?;
        Ok(plan)
    }

    /// Member sockets: one per (room, member) slot.
    pub fn member_sockets(&self) -> u64 {
        u64::from(self.rooms) * u64::from(self.members)
    }

    /// Churn sockets open at once, at most (each lives about its hold plus its join).
    pub fn churn_sockets(&self) -> u64 {
        (self.presence_churn_per_s * (self.churn_hold.as_secs_f64() + 2.0)).ceil() as u64
    }

    pub fn messages(&self) -> u64 {
        (self.message_rate_per_s * self.duration.as_secs_f64()).floor() as u64
    }

    pub fn typings(&self) -> u64 {
        (self.typing_rate_per_s * self.duration.as_secs_f64()).floor() as u64
    }

    pub fn churn_joins(&self) -> u64 {
        (self.presence_churn_per_s * self.duration.as_secs_f64()).floor() as u64
    }

    fn check_fd_budget(&self, limit: Option<u64>) -> Result<(), RoomsPlanError> {
        let Some(limit) = limit else { return Ok(()) };
        // In-process, every socket is open twice: the client's end and the server's.
        let per_socket = if self.target == TargetSpec::Embedded { 2 } else { 1 };
        let sockets = self.member_sockets() + self.churn_sockets();
        let needed = sockets * per_socket + FD_RESERVE;
        if needed <= limit {
            return Ok(());
        }
        let fit = limit.saturating_sub(FD_RESERVE) / per_socket;
        Err(RoomsPlanError(format!(
            "{} rooms x {} members (+ {} churn sockets) need about {needed} file descriptors ({per_socket} per socket{}, \
             {FD_RESERVE} reserved) but this process may open {limit}; at most {fit} sockets fit: lower --rooms or \
             --members (one member is one socket){}",
            self.rooms,
            self.members,
            self.churn_sockets(),
            if per_socket == 2 { ": client and in-process server ends" } else { "" },
            if per_socket == 2 { ", or run the server as its own process (--target)" } else { "" },
        )))
    }
}

impl fmt::Display for RoomsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            TargetSpec::Embedded => "embedded (in-process, SQLite in a temp dir)".to_owned(),
            TargetSpec::External { url } => url.clone(),
        };
        writeln!(f, "firehose-sim rooms plan")?;
        writeln!(f, "  target          {target}")?;
        writeln!(
            f,
            "  rooms           {} rooms x {} members = {} member sockets (opened at {}/s)",
            self.rooms,
            self.members,
            self.member_sockets(),
            self.connect_rate_per_s
        )?;
        writeln!(
            f,
            "  traffic         {} msg/s, {} typing/s, {} presence joins/s (hold {:?}) for {:?} ({:?} warm-up)",
            self.message_rate_per_s,
            self.typing_rate_per_s,
            self.presence_churn_per_s,
            self.churn_hold,
            self.duration,
            self.warmup
        )?;
        write!(f, "  seed {}, max lag {:?}, drain timeout {:?}", self.seed, self.max_lag, self.drain_timeout)
    }
}

fn parse_target(raw: &str) -> Result<String, RoomsPlanError> {
    http_base_url(raw)
        .map_err(|reason| RoomsPlanError(format!("--target {raw:?}: {reason} (expected http://host:port)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> RoomsArgs {
        RoomsArgs::parse_from(std::iter::once("rooms").chain(flags.iter().copied()))
    }

    #[test]
    fn defaults_make_a_plan_and_counts_follow_rates() {
        let plan = RoomsPlan::from_args_with_fd_limit(&RoomsArgs::defaults(), Some(20_000)).unwrap();
        assert_eq!(plan.member_sockets(), 50);
        assert_eq!(plan.messages(), 100);
        assert_eq!(plan.typings(), 0);
        let plan = RoomsPlan::from_args_with_fd_limit(
            &args(&["--typing-rate", "2.5", "--presence-churn", "1", "--duration", "4s", "--warmup", "1s"]),
            None,
        )
        .unwrap();
        assert_eq!((plan.typings(), plan.churn_joins()), (10, 4));
    }

    #[test]
    fn bad_values_say_which_flag() {
        let bad = |flags: &[&str], needle: &str| {
            let e = RoomsPlan::from_args_with_fd_limit(&args(flags), Some(20_000)).unwrap_err();
            assert!(e.0.contains(needle), "{e}");
        };
        bad(&["--members", "1"], "--members");
        bad(&["--rooms", "0"], "--rooms");
        bad(&["--message-rate", "0"], "--message-rate");
        bad(&["--typing-rate=-1"], "--typing-rate");
        bad(&["--warmup", "10s"], "--warmup");
        bad(&["--duration", "ten"], "--duration");
        bad(&["--target", "https://x"], "--target");
        bad(&["--rooms", "2000", "--members", "10"], "at most 9936 sockets fit");
        assert!(
            RoomsPlan::from_args_with_fd_limit(&args(&["--rooms", "1000", "--members", "5"]), Some(20_000)).is_ok()
        );
    }
}
