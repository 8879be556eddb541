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

use std::time::Duration;

use crate::plan::args::RunArgs;
use crate::plan::layers::Layers;
use crate::plan::scenario::{RateOnly, Scenario};
use crate::plan::{Origin, PlanError, parse_duration};
use crate::report::names::Kind;

/// The kinds this part of the plan drives, in order.
pub const KINDS: [Kind; 6] =
    [Kind::Like, Kind::Unlike, Kind::DeleteBookmark, Kind::ChatMessage, Kind::Typing, Kind::RoomPresence];

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
    pub room_presence_rate_per_s: f64,
    /// How long a presence join stays in its room.
    #[serde(rename = "presence_hold_ms", serialize_with = "crate::plan::millis")]
    pub presence_hold: Duration,
    pub rooms: u32,
    pub room_listeners: u32,
    /// Room listeners spread evenly, this many per room (else by popularity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_members: Option<u32>,
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
            room_presence_rate_per_s: 0.0,
            presence_hold: Duration::from_secs(1),
            rooms: 0,
            room_listeners: 0,
            room_members: None,
            likes_listeners: 0,
            user_listeners: 0,
            mention_fraction: 0.0,
            like_targets: 0,
            actor_users: 0,
            actor_sockets: 0,
        }
    }
}

impl ActionsPlan {
    /// Layers `args.actions` over the scenario's tables and validates the result.
    /// `peak` is the highest stage multiplier of the run (1 without stages): actors are
    /// planned for the rates at their peak, so a spike does not run out of quiet typists
    /// or push users past the server's per-user limits.
    pub fn from_layers(args: &RunArgs, scenario: Option<&Scenario>, peak: f64) -> Result<ActionsPlan, PlanError> {
        let a = &args.actions;
        let p = Layers { args, scenario };
        let f = scenario.map(|s| &s.file);
        let acts = f.map(|f| &f.actions);
        let l = f.map(|f| &f.listeners);
        let like = acts.and_then(|x| x.like.as_ref()).map(|v| v.get_ref());
        let chat = acts.and_then(|x| x.chat_message.as_ref()).map(|v| v.get_ref());

        let rate = |id: &str, flag: &'static str, typed: f64, file: Option<&Spanned<f64>>, key: &str| {
            let written = p.written(id, file.is_some());
            let (value, origin) = p.pick(id, flag, &typed, file.map(|v| (key, v)));
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
            p.pick(id, flag, &typed, file.map(|v| (key, v)))
        };
        let rooms = count("rooms", "rooms", a.rooms, chat.and_then(|x| x.rooms.as_ref()), "actions.chat_message.rooms");
        let presence = acts.and_then(|x| x.room_presence.as_ref()).map(|v| v.get_ref());
        let room_presence_rate = rate(
            "room_presence_rate",
            "room-presence-rate",
            a.room_presence_rate,
            presence.and_then(|x| x.rate.as_ref()),
            "actions.room_presence.rate",
        )?;
        let hold = p.pick(
            "presence_hold",
            "presence-hold",
            &a.presence_hold,
            presence.and_then(|x| x.hold.as_ref()).map(|v| ("actions.room_presence.hold", v)),
        );
        let presence_hold = parse_duration(&hold.0).map_err(|reason| PlanError::Duration {
            origin: hold.1.clone(),
            value: hold.0.clone(),
            reason,
        })?;
        let members = match (scenario, l.and_then(|l| l.room_members.as_ref())) {
            (Some(s), Some(v)) if !args.given("room_members") => {
                Some((*v.get_ref(), Origin::File(Box::new(s.place("listeners.room_members", v.span())))))
            }
            _ => a.room_members.map(|n| (n, Origin::Flag("room-members"))),
        };
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
        let (mention_fraction, mention_origin) = p.pick(
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
        if let Some((0, origin)) = &members {
            return invalid(origin.clone(), "must be at least 1".into());
        }
        if presence_hold.is_zero() {
            return invalid(hold.1, "must be longer than zero".into());
        }
        let room_listeners = match &members {
            Some((m, _)) => (m.saturating_mul(rooms.0), rooms.1.clone()),
            None => room_listeners,
        };
        let chatty = message_rate > 0.0 || typing_rate > 0.0 || room_presence_rate > 0.0 || room_listeners.0 > 0;
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
            room_presence_rate_per_s: room_presence_rate,
            presence_hold,
            rooms: if chatty { rooms.0 } else { 0 },
            room_listeners: room_listeners.0,
            room_members: members.map(|(m, _)| m),
            likes_listeners: likes_listeners.0,
            user_listeners: user_listeners.0,
            mention_fraction: if user_listeners.0 > 0 { mention_fraction } else { 0.0 },
            like_targets: if liking { like_targets.0 } else { 0 },
            actor_users,
            actor_sockets,
        })
    }

    /// The base rate of `kind`, per second (0: off or not an action of this part).
    pub fn rate(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Like => self.like_rate_per_s,
            Kind::Unlike => self.unlike_rate_per_s,
            Kind::DeleteBookmark => self.delete_rate_per_s,
            Kind::ChatMessage => self.message_rate_per_s,
            Kind::Typing => self.typing_rate_per_s,
            Kind::RoomPresence => self.room_presence_rate_per_s,
            _ => 0.0,
        }
    }

    /// Kinds with a rate.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        KINDS.into_iter().filter(|k| self.rate(*k) > 0.0)
    }

    /// Presence users needed: as many joins as can be held at once at the peak rate,
    /// each user reused only well after its last leave.
    pub fn presence_users(&self, peak: f64) -> u32 {
        if self.room_presence_rate_per_s <= 0.0 {
            return 0;
        }
        let held = self.room_presence_rate_per_s * peak.max(1.0) * (self.presence_hold.as_secs_f64() + 2.0);
        // `as` saturates: a rate too high to hold is u32::MAX users, refused by the
        // descriptor check, never an overflow.
        (held.ceil() as u32).max(1).saturating_mul(2)
    }

    /// Listener sockets of the three groups.
    pub fn listeners(&self) -> u64 {
        u64::from(self.room_listeners) + u64::from(self.likes_listeners) + u64::from(self.user_listeners)
    }

    /// Sockets this part of the run holds open at once: listeners, actor sockets and
    /// presence joins (at a peak multiplier of 1; presence sockets are few).
    pub fn sockets(&self) -> u64 {
        self.listeners() + u64::from(self.actor_sockets) + u64::from(self.presence_users(1.0))
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
            room_presence_rate_per_s: per(self.room_presence_rate_per_s),
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
    let hottest = if rooms > 0 { 1.0 / crate::plan::seeded::harmonic(rooms as usize) } else { 1.0 };
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
        let kinds: Vec<String> = self.kinds().map(|k| format!("{k} {}/s", self.rate(k))).collect();
        writeln!(f, "  actions           {}", if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") })?;
        let spread = self.room_members.map_or_else(String::new, |m| format!(", {m} per room"));
        writeln!(
            f,
            "  action listeners  {} room ({} rooms{spread}), {} likes ({} bookmarks), {} user ({:.0}% of messages mention one)",
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
