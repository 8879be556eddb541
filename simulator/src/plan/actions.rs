//! The actions part of a run's plan: flags (`ActionArgs`, flattened into `run`'s) over
//! the scenario's `[actions.<kind>]` tables, `[listeners] room/likes/user` and
//! `rooms`/`actor_users`, validated into an `ActionsPlan`. A rate left out is off; a rate
//! given must be a positive number. The actor users are planned from the rates so that
//! a server with its default per-user limits (10 messages, 30 likes, 30 typing pushes
//! per 10 s) does not refuse them; `--actor-users` overrides that (e.g. to provoke
//! `rate_limited`).

use std::fmt;

use serde::Serialize;
use toml::Spanned;

use crate::plan::args::RunArgs;
use crate::plan::scenario::Scenario;
use crate::plan::{Origin, PlanError};

/// Sustained per-user rates of a server with default limits, per second.
const DEFAULT_MESSAGES_PER_USER_S: f64 = 1.0;
const DEFAULT_LIKES_PER_USER_S: f64 = 3.0;
const DEFAULT_TYPING_PER_USER_S: f64 = 3.0;
/// Actor users are planned at this fraction of the per-user limit.
const LIMIT_HEADROOM: f64 = 0.5;
/// A typist types in a room again only this long after their last push there (the
/// server's typing timeout is 2 s; the margin absorbs jitter): so every typing push
/// produces a `user_typing`.
pub const TYPING_QUIET_S: f64 = 3.0;
/// Most actor users a plan may ask for.
const MAX_ACTORS: u32 = 5_000;

/// `firehose-sim run` flags of the actions beyond bookmark creation (0 = off).
#[derive(Debug, Clone, clap::Args)]
pub struct ActionArgs {
    /// Likes per second (HTTP `POST /api/bookmarks/{id}/like`) of Zipf-hot bookmarks.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub like_rate: f64,
    /// Unlikes per second, each of a like this run made.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub unlike_rate: f64,
    /// Bookmark deletions per second (of bookmarks created for it before measuring).
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub delete_rate: f64,
    /// Chat messages per second (`new_msg` pushes) in Zipf-hot public rooms.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub message_rate: f64,
    /// Typing pushes per second in Zipf-hot rooms.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub typing_rate: f64,
    /// Public chat rooms created for the run.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub rooms: u32,
    /// Listeners joined to one `room:<slug>` each, hot rooms getting more.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub room_listeners: u32,
    /// Listeners joined to one `likes:<bookmark_id>` each, hot bookmarks getting more.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub likes_listeners: u32,
    /// Signed-in listeners on their own `user:<id>`; chat messages @mention them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub user_listeners: u32,
    /// Share of chat messages that @mention one of the user listeners.
    #[arg(long, default_value_t = 0.05, value_name = "FRACTION")]
    pub mention_fraction: f64,
    /// Bookmarks liked (created before measuring, popularity Zipf by rank).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub like_targets: u32,
    /// Users that act (like, post, type, delete); default: planned from the rates so
    /// a server's default per-user limits are not reached.
    #[arg(long, value_name = "N")]
    pub actor_users: Option<u32>,
}

/// `[actions.like]`, `[actions.unlike]`, `[actions.delete_bookmark]`, `[actions.typing]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateOnly {
    pub rate: Option<Spanned<f64>>,
}

/// `[actions.like]`
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LikeFile {
    pub rate: Option<Spanned<f64>>,
    /// Bookmarks liked (`--like-targets`).
    pub targets: Option<Spanned<u32>>,
}

/// `[actions.chat_message]`
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatFile {
    pub rate: Option<Spanned<f64>>,
    /// Rooms (`--rooms`).
    pub rooms: Option<Spanned<u32>>,
    pub mention_fraction: Option<Spanned<f64>>,
    pub actor_users: Option<Spanned<u32>>,
}

fn rate_of(t: Option<&Spanned<RateOnly>>) -> Option<&Spanned<f64>> {
    t.and_then(|t| t.get_ref().rate.as_ref())
}

/// The validated actions of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionsPlan {
    pub like_rate_per_s: f64,
    pub unlike_rate_per_s: f64,
    pub delete_rate_per_s: f64,
    pub message_rate_per_s: f64,
    pub typing_rate_per_s: f64,
    pub rooms: u32,
    pub room_listeners: u32,
    pub likes_listeners: u32,
    pub user_listeners: u32,
    pub mention_fraction: f64,
    pub like_targets: u32,
    /// Users acting; `actor_sockets` of them hold a socket joined to their rooms (Zipf
    /// share: hot rooms get more actors).
    pub actor_users: u32,
    pub actor_sockets: u32,
}

impl Default for ActionsPlan {
    fn default() -> Self {
        Self {
            like_rate_per_s: 0.0,
            unlike_rate_per_s: 0.0,
            delete_rate_per_s: 0.0,
            message_rate_per_s: 0.0,
            typing_rate_per_s: 0.0,
            rooms: 0,
            room_listeners: 0,
            likes_listeners: 0,
            user_listeners: 0,
            mention_fraction: 0.0,
            like_targets: 0,
            actor_users: 0,
            actor_sockets: 0,
        }
    }
}

struct Pick<'a> {
    args: &'a RunArgs,
    scenario: Option<&'a Scenario>,
}

impl Pick<'_> {
    fn get<T: Clone>(&self, id: &str, flag: &'static str, typed: &T, file: Option<(&str, &Spanned<T>)>) -> (T, Origin) {
        match (self.scenario, file) {
            (Some(s), Some((key, v))) if !self.args.given(id) => {
                (v.get_ref().clone(), Origin::File(Box::new(s.place(key, v.span()))))
            }
            _ => (typed.clone(), Origin::Flag(flag)),
        }
    }

    /// Whether the value was written somewhere (a typed flag or a file key).
    fn written(&self, id: &str, in_file: bool) -> bool {
        self.args.given(id) || (in_file && self.scenario.is_some())
    }
}

impl ActionsPlan {
    /// Layers `args.actions` over the scenario's tables and validates the result.
    /// `peak` is the highest stage multiplier of the run (1 without stages): actors are
    /// planned for the rates at their peak, so a spike does not run out of quiet typists
    /// or push users past the server's per-user limits.
    pub fn from_layers(args: &RunArgs, scenario: Option<&Scenario>, peak: f64) -> Result<ActionsPlan, PlanError> {
        let a = &args.actions;
        let p = Pick { args, scenario };
        let f = scenario.map(|s| &s.file);
        let acts = f.map(|f| &f.actions);
        let l = f.map(|f| &f.listeners);
        let like = acts.and_then(|x| x.like.as_ref()).map(|v| v.get_ref());
        let chat = acts.and_then(|x| x.chat_message.as_ref()).map(|v| v.get_ref());

        let rate = |id: &str, flag: &'static str, typed: f64, file: Option<&Spanned<f64>>, key: &str| {
            let written = p.written(id, file.is_some());
            let (value, origin) = p.get(id, flag, &typed, file.map(|v| (key, v)));
            if written && !(value.is_finite() && value > 0.0) || !value.is_finite() || value < 0.0 {
                return Err(PlanError::Rate { origin, value });
            }
            Ok(value)
        };
        let like_rate =
            rate("like_rate", "like-rate", a.like_rate, like.and_then(|x| x.rate.as_ref()), "actions.like.rate")?;
        let unlike_rate = rate(
            "unlike_rate",
            "unlike-rate",
            a.unlike_rate,
            rate_of(acts.and_then(|x| x.unlike.as_ref())),
            "actions.unlike.rate",
        )?;
        let delete_rate = rate(
            "delete_rate",
            "delete-rate",
            a.delete_rate,
            rate_of(acts.and_then(|x| x.delete_bookmark.as_ref())),
            "actions.delete_bookmark.rate",
        )?;
        let message_rate = rate(
            "message_rate",
            "message-rate",
            a.message_rate,
            chat.and_then(|x| x.rate.as_ref()),
            "actions.chat_message.rate",
        )?;
        let typing_rate = rate(
            "typing_rate",
            "typing-rate",
            a.typing_rate,
            rate_of(acts.and_then(|x| x.typing.as_ref())),
            "actions.typing.rate",
        )?;
        let count = |id: &str, flag: &'static str, typed: u32, file: Option<&Spanned<u32>>, key: &str| {
            p.get(id, flag, &typed, file.map(|v| (key, v)))
        };
        let rooms = count("rooms", "rooms", a.rooms, chat.and_then(|x| x.rooms.as_ref()), "actions.chat_message.rooms");
        let room_listeners = count(
            "room_listeners",
            "room-listeners",
            a.room_listeners,
            l.and_then(|l| l.room.as_ref()),
            "listeners.room",
        );
        let likes_listeners = count(
            "likes_listeners",
            "likes-listeners",
            a.likes_listeners,
            l.and_then(|l| l.likes.as_ref()),
            "listeners.likes",
        );
        let user_listeners = count(
            "user_listeners",
            "user-listeners",
            a.user_listeners,
            l.and_then(|l| l.user.as_ref()),
            "listeners.user",
        );
        let like_targets = count(
            "like_targets",
            "like-targets",
            a.like_targets,
            like.and_then(|x| x.targets.as_ref()),
            "actions.like.targets",
        );
        let (mention_fraction, mention_origin) = p.get(
            "mention_fraction",
            "mention-fraction",
            &a.mention_fraction,
            chat.and_then(|x| x.mention_fraction.as_ref()).map(|v| ("actions.chat_message.mention_fraction", v)),
        );
        let actor_override = match (scenario, chat.and_then(|x| x.actor_users.as_ref())) {
            (Some(s), Some(v)) if !args.given("actor_users") => {
                Some((*v.get_ref(), Origin::File(Box::new(s.place("actions.chat_message.actor_users", v.span())))))
            }
            _ => a.actor_users.map(|n| (n, Origin::Flag("actor-users"))),
        };

        let invalid = |origin: Origin, reason: String| Err(PlanError::Invalid { origin, reason });
        if !(0.0..=1.0).contains(&mention_fraction) {
            return invalid(mention_origin, format!("must be between 0 and 1, got {mention_fraction}"));
        }
        let chatty = message_rate > 0.0 || typing_rate > 0.0 || room_listeners.0 > 0;
        if chatty && rooms.0 == 0 {
            return invalid(rooms.1, "must be at least 1 with chat messages, typing or room listeners".into());
        }
        let liking = like_rate > 0.0 || likes_listeners.0 > 0;
        if liking && like_targets.0 == 0 {
            return invalid(like_targets.1, "must be at least 1 with likes or likes listeners".into());
        }
        if unlike_rate > 0.0 && like_rate == 0.0 {
            return invalid(Origin::Flag("unlike-rate"), "needs likes to undo: give --like-rate too".into());
        }
        if let Some((0, origin)) = &actor_override {
            return invalid(origin.clone(), "must be at least 1".into());
        }

        let peak = if peak.is_finite() { peak.max(1.0) } else { 1.0 };
        let planned =
            planned_actors((like_rate + unlike_rate) * peak, message_rate * peak, typing_rate * peak, rooms.0);
        let actor_users = match &actor_override {
            Some((n, _)) => *n,
            None => planned.0.max(u32::from(like_rate + unlike_rate + delete_rate + message_rate + typing_rate > 0.0)),
        };
        if actor_users > MAX_ACTORS {
            let origin = actor_override.map_or(Origin::Flag("message-rate"), |(_, o)| o);
            return invalid(origin, format!("needs {actor_users} actor users; at most {MAX_ACTORS} fit in one run"));
        }
        let actor_sockets =
            if message_rate > 0.0 || typing_rate > 0.0 { actor_users.min(planned.1.max(1)).max(1) } else { 0 };
        let actor_sockets = if actor_override.is_some() && actor_sockets > 0 { actor_users } else { actor_sockets };
        Ok(ActionsPlan {
            like_rate_per_s: like_rate,
            unlike_rate_per_s: unlike_rate,
            delete_rate_per_s: delete_rate,
            message_rate_per_s: message_rate,
            typing_rate_per_s: typing_rate,
            rooms: if chatty { rooms.0 } else { 0 },
            room_listeners: room_listeners.0,
            likes_listeners: likes_listeners.0,
            user_listeners: user_listeners.0,
            mention_fraction: if user_listeners.0 > 0 { mention_fraction } else { 0.0 },
            like_targets: if liking { like_targets.0 } else { 0 },
            actor_users,
            actor_sockets,
        })
    }

    /// The base rate of `kind`, per second (0: off).
    pub fn rate(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Like => self.like_rate_per_s,
            Kind::Unlike => self.unlike_rate_per_s,
            Kind::DeleteBookmark => self.delete_rate_per_s,
            Kind::ChatMessage => self.message_rate_per_s,
            Kind::Typing => self.typing_rate_per_s,
        }
    }

    /// Kinds with a rate.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL.into_iter().filter(|k| self.rate(*k) > 0.0)
    }

    /// Listener sockets of the three groups.
    pub fn listeners(&self) -> u64 {
        u64::from(self.room_listeners) + u64::from(self.likes_listeners) + u64::from(self.user_listeners)
    }

    /// Sockets this part of the run holds open at once: listeners and actor sockets.
    pub fn sockets(&self) -> u64 {
        self.listeners() + u64::from(self.actor_sockets)
    }

    /// Agent `index` of `count`'s share: rates divided, listeners split (the rooms,
    /// targets and actor users stay whole: each agent sets up its own).
    pub fn share(&self, index: u32, count: u32) -> ActionsPlan {
        let per = |rate: f64| rate / f64::from(count.max(1));
        let split = |n: u32| crate::plan::share_range(u64::from(n), index, count).count() as u32;
        ActionsPlan {
            like_rate_per_s: per(self.like_rate_per_s),
            unlike_rate_per_s: per(self.unlike_rate_per_s),
            delete_rate_per_s: per(self.delete_rate_per_s),
            message_rate_per_s: per(self.message_rate_per_s),
            typing_rate_per_s: per(self.typing_rate_per_s),
            room_listeners: split(self.room_listeners),
            likes_listeners: split(self.likes_listeners),
            user_listeners: split(self.user_listeners),
            ..self.clone()
        }
    }

    /// Whether anything here runs at all.
    pub fn is_active(&self) -> bool {
        self.kinds().next().is_some() || self.listeners() > 0
    }
}

/// Actor users (all) and actor sockets (message senders and typists) for the rates, at
/// `LIMIT_HEADROOM` of a default server's per-user limits; typists also need enough
/// quiet time per room (`TYPING_QUIET_S`) in the hottest room.
fn planned_actors(likes: f64, messages: f64, typing: f64, rooms: u32) -> (u32, u32) {
    let need = |rate: f64, per_user: f64| (rate / (per_user * LIMIT_HEADROOM)).ceil().min(1e9) as u32;
    let hottest = if rooms > 0 { 1.0 / crate::workloads::actions::schedule::harmonic(rooms as usize) } else { 1.0 };
    // The hottest room gets its Zipf share `hottest` of the actors and of the typing.
    let typists = if typing > 0.0 { (typing * TYPING_QUIET_S * 1.5 + 1.0 / hottest).ceil() as u32 } else { 0 };
    let sockets = need(messages, DEFAULT_MESSAGES_PER_USER_S).max(need(typing, DEFAULT_TYPING_PER_USER_S)).max(typists);
    (sockets.max(need(likes, DEFAULT_LIKES_PER_USER_S)), sockets)
}

impl fmt::Display for ActionsPlan {
    /// The `actions` lines of the plan as `run` prints it (nothing when inactive).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_active() {
            return Ok(());
        }
        let kinds: Vec<String> = self.kinds().map(|k| format!("{} {}/s", k.name(), self.rate(k))).collect();
        writeln!(f, "  actions           {}", if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") })?;
        writeln!(
            f,
            "  action listeners  {} room ({} rooms), {} likes ({} bookmarks), {} user ({:.0}% of messages mention one)",
            self.room_listeners,
            self.rooms,
            self.likes_listeners,
            self.like_targets,
            self.user_listeners,
            self.mention_fraction * 100.0
        )?;
        writeln!(
            f,
            "  actors            {} users, {} with a socket in their rooms (hot rooms get more)",
            self.actor_users, self.actor_sockets
        )
    }
}

/// A traffic kind this module drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Like,
    Unlike,
    DeleteBookmark,
    ChatMessage,
    Typing,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Like, Kind::Unlike, Kind::DeleteBookmark, Kind::ChatMessage, Kind::Typing];

    /// The key in `report.json`'s `actions` and in scenario files' `[actions.<kind>]`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Like => "like",
            Kind::Unlike => "unlike",
            Kind::DeleteBookmark => "delete_bookmark",
            Kind::ChatMessage => "chat_message",
            Kind::Typing => "typing",
        }
    }
}

/// The listener groups this module adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Room,
    Likes,
    User,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Room, Group::Likes, Group::User];

    pub fn name(self) -> &'static str {
        match self {
            Group::Room => "room",
            Group::Likes => "likes",
            Group::User => "user",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::Plan;

    fn plan(flags: &[&str]) -> Result<Plan, PlanError> {
        let args = RunArgs::try_parse_from(std::iter::once("run").chain(flags.iter().copied())).unwrap();
        Plan::from_args_with_fd_limit(&args, Some(20_000))
    }

    fn from_file(text: &str) -> Result<Plan, PlanError> {
        let scenario = Scenario::parse(Path::new("s.toml"), text.to_owned())?;
        Plan::from_layers(&RunArgs::try_parse_from(["run"]).unwrap(), Some(&scenario), Some(20_000))
    }

    #[test]
    fn rates_left_out_are_off_and_given_ones_must_be_positive() {
        let p = plan(&[]).unwrap();
        assert!(!p.actions.is_active());
        assert_eq!(p.actions.sockets(), 0);
        for bad in ["--like-rate=0", "--message-rate=-2", "--typing-rate=NaN", "--delete-rate=inf"] {
            let err = plan(&[bad]).unwrap_err();
            assert!(matches!(err, PlanError::Rate { .. }), "{bad:?}: {err:?}");
            assert!(err.to_string().starts_with(bad.split('=').next().unwrap()), "{err}");
        }
        let err = from_file("[actions.like]\nrate = -1.5\n").unwrap_err().to_string();
        assert_eq!(err, "s.toml:2:8: actions.like.rate must be a positive number per second, got -1.5");
        let err = from_file("[actions.typing]\nrate = 0\n").unwrap_err().to_string();
        assert!(err.starts_with("s.toml:2:8: actions.typing.rate"), "{err}");
    }

    #[test]
    fn counts_and_fractions_are_checked_with_their_origin() {
        let err = plan(&["--message-rate", "5", "--rooms", "0"]).unwrap_err().to_string();
        assert!(err.starts_with("--rooms must be at least 1"), "{err}");
        let err = plan(&["--mention-fraction", "1.5"]).unwrap_err().to_string();
        assert!(err.contains("--mention-fraction must be between 0 and 1"), "{err}");
        let err = plan(&["--like-rate", "5", "--actor-users", "0"]).unwrap_err().to_string();
        assert!(err.starts_with("--actor-users must be at least 1"), "{err}");
        let err = plan(&["--unlike-rate", "5"]).unwrap_err().to_string();
        assert!(err.contains("--like-rate"), "{err}");
        let err = from_file("[listeners]\nroom = 5\n\n[actions.chat_message]\nrooms = 0\n").unwrap_err().to_string();
        assert!(err.starts_with("s.toml:5:9: actions.chat_message.rooms must be at least 1"), "{err}");
        let err = from_file("[actions.like]\nrat = 5\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `rat`"), "{err}");
        let err = from_file("[listeners]\nuser = -3\n").unwrap_err().to_string();
        assert!(err.starts_with("s.toml:2:8"), "{err}");
    }

    #[test]
    fn actors_are_planned_under_the_default_limits_and_sockets_count_in_the_fd_budget() {
        let p = plan(&["--message-rate", "20", "--like-rate", "30", "--room-listeners", "7", "--user-listeners", "2"])
            .unwrap();
        // 20 messages/s at half of 1/s per user; 30 likes/s at half of 3/s.
        assert_eq!((p.actions.actor_users, p.actions.actor_sockets), (40, 40));
        assert_eq!(p.actions.sockets(), 49);
        assert_eq!(p.total_sockets(), 100 + 49);
        let text = p.to_string();
        assert!(text.contains("actions           like 30/s, chat_message 20/s"), "{text}");
        let err = plan(&["--listeners", "9000", "--room-listeners", "900"]).unwrap_err();
        assert!(matches!(err, PlanError::FdBudget { .. }), "{err:?}");
        let p = plan(&["--message-rate", "20", "--actor-users", "1"]).unwrap();
        assert_eq!((p.actions.actor_users, p.actions.actor_sockets), (1, 1));
    }
}
