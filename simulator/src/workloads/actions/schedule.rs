//! The seeded timeline of every action kind: intended offsets from `t0` (each kind its
//! own `RateCurve`, built by `Plan::curve`), merged into one firing order, and what each
//! action does, picked before the run so a run is reproducible from its seed:
//! - `like` i: a Zipf-hot target bookmark and a liker who has not liked it yet (so
//!   every like changes the count and is broadcast); a target whose likers ran out
//!   passes the like to the next hottest;
//! - `chat_message` i: a Zipf-hot room, a sender (actor sockets in turn), and, for
//!   `mention_fraction` of them, a user listener to @mention (in turn);
//! - `typing` i: a Zipf-hot room and a typist who has been quiet there for
//!   `TYPING_QUIET_S` (so the server broadcasts it), or none (skipped);
//! - `delete_bookmark` i deletes the i-th bookmark made for deleting;
//! - `unlike` picks at firing time a like of this run that was answered;
//! - `room_presence` j: a Zipf-hot room and a presence user free again (its previous
//!   join left at least `PRESENCE_REST` ago).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::plan::actions::{ActionsPlan, KINDS, TYPING_QUIET_S};
use crate::plan::seeded::{Zipf, harmonic};
use crate::plan::stages::RateCurve;
use crate::report::names::Kind;

/// How long a presence user rests between its leave and its next join, so the diffs of
/// one join never mix with the next.
pub const PRESENCE_REST: Duration = Duration::from_secs(2);

/// A pick that found nobody (a typing push with no quiet typist, a like with no liker left).
pub const SKIPPED: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikePick {
    pub target: u32,
    pub user: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagePick {
    pub room: u32,
    /// Actor socket index.
    pub sender: u32,
    /// User listener index mentioned, if any.
    pub mention: Option<u32>,
    /// Corpus line (index into the lines) after the marker.
    pub line: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresencePick {
    pub room: u32,
    /// Presence user index.
    pub user: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypingPick {
    pub room: u32,
    /// Actor socket index, or `SKIPPED`.
    pub typist: u32,
}

/// One kind's timeline.
#[derive(Debug, Clone)]
pub struct Lane {
    pub curve: RateCurve,
    pub count: u64,
    pub warmup: u64,
}

/// Every kind's timeline and picks.
#[derive(Debug)]
pub struct Timeline {
    t0: OnceLock<Instant>,
    lanes: [Option<Lane>; 6],
    pub likes: Vec<LikePick>,
    pub messages: Vec<MessagePick>,
    pub typings: Vec<TypingPick>,
    pub presences: Vec<PresencePick>,
    /// Per actor socket: the rooms it posts and types in (and joins).
    pub actor_rooms: Vec<Vec<u32>>,
}

/// The actor sockets of each room, in proportion to the room's Zipf weight: with at
/// least as many actors as rooms, every room gets one and the rest go where the weight
/// is least served; with fewer, actor `k` serves every room `r` with `r % actors == k`.
/// Per-user rates are then the same in hot and cold rooms, and an actor's socket joins
/// only its own rooms (it would otherwise receive every room's traffic).
pub fn assign_actors(actors: u32, rooms: usize) -> Vec<Vec<u32>> {
    let rooms = rooms.max(1);
    if (actors as usize) < rooms {
        return (0..rooms).map(|r| vec![(r % actors.max(1) as usize) as u32]).collect();
    }
    let weight = |r: usize| 1.0 / (r + 1) as f64 / harmonic(rooms);
    let mut assigned: Vec<Vec<u32>> = (0..rooms).map(|r| vec![r as u32]).collect();
    for k in rooms as u32..actors {
        let total = f64::from(k + 1);
        let neediest = (0..rooms)
            .max_by(|&a, &b| {
                let deficit = |r: usize| weight(r) * total - assigned[r].len() as f64;
                deficit(a).total_cmp(&deficit(b)).then(b.cmp(&a))
            })
            .unwrap_or(0);
        assigned[neediest].push(k);
    }
    assigned
}

/// The lane index of one of this part's kinds.
fn slot(kind: Kind) -> usize {
    KINDS.iter().position(|&k| k == kind).unwrap_or(KINDS.len())
}

impl Timeline {
    /// `curve(rate)` gives each kind's intended offsets (`Plan::curve`); `lines` is how
    /// many chat lines there are to pick from.
    pub fn new(
        plan: &ActionsPlan,
        curve: impl Fn(f64) -> RateCurve,
        warmup: Duration,
        seed: u64,
        lines: usize,
    ) -> Self {
        let mut lanes: [Option<Lane>; 6] = Default::default();
        for kind in plan.kinds() {
            let curve = curve(plan.rate(kind));
            let count = curve.count().min(u64::from(u32::MAX - 1));
            let warm = curve.count_before(warmup).min(count);
            lanes[slot(kind)] = Some(Lane { curve, count, warmup: warm });
        }
        let n = |k: Kind| lanes[slot(k)].as_ref().map_or(0, |l| l.count as usize);
        let at = |k: Kind, i: usize| lanes[slot(k)].as_ref().map_or(Duration::ZERO, |l| l.curve.offset(i as u64));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0061_6374_696f_6e73);

        // Likes: a Zipf-hot target and the next liker who has not liked it.
        let targets = plan.like_targets.max(1) as usize;
        let target_zipf = Zipf::new(targets);
        let mut likers_used = vec![0u32; targets];
        let likes = (0..n(Kind::Like))
            .map(|_| {
                let hot = target_zipf.sample(&mut rng) as usize;
                (0..targets).map(|step| (hot + step) % targets).find(|&t| likers_used[t] < plan.actor_users).map_or(
                    LikePick { target: SKIPPED, user: SKIPPED },
                    |t| {
                        likers_used[t] += 1;
                        LikePick { target: t as u32, user: likers_used[t] - 1 }
                    },
                )
            })
            .collect();

        // Messages: a Zipf-hot room, that room's actors in turn, some mentioning a user
        // listener.
        let rooms = plan.rooms.max(1) as usize;
        let room_zipf = Zipf::new(rooms);
        let room_actors = assign_actors(plan.actor_sockets.max(1), rooms);
        let mut turn = vec![0usize; rooms];
        let mut mentions = 0u32;
        let messages = (0..n(Kind::ChatMessage))
            .map(|_| {
                let room = room_zipf.sample(&mut rng);
                let mine = &room_actors[room as usize];
                let sender = mine[turn[room as usize] % mine.len()];
                turn[room as usize] += 1;
                let mention = (plan.user_listeners > 0 && rng.random::<f64>() < plan.mention_fraction).then(|| {
                    mentions += 1;
                    (mentions - 1) % plan.user_listeners
                });
                let line = rng.random_range(0..lines.max(1)) as u32;
                MessagePick { room, sender, mention, line }
            })
            .collect();

        // Typing: a Zipf-hot room and one of its actors quiet there for long enough.
        let quiet = Duration::from_secs_f64(TYPING_QUIET_S);
        let mut last: Vec<Vec<Option<Duration>>> = room_actors.iter().map(|a| vec![None; a.len()]).collect();
        let mut next = vec![0usize; rooms];
        let typings = (0..n(Kind::Typing))
            .map(|i| {
                let room = room_zipf.sample(&mut rng);
                let t = at(Kind::Typing, i);
                let r = room as usize;
                let size = room_actors[r].len();
                let free = (0..size)
                    .map(|k| (next[r] + k) % size)
                    .find(|&j| last[r][j].is_none_or(|before| t.saturating_sub(before) >= quiet));
                match free {
                    Some(j) => {
                        last[r][j] = Some(t);
                        next[r] = (j + 1) % size;
                        TypingPick { room, typist: room_actors[r][j] }
                    }
                    None => TypingPick { room, typist: SKIPPED },
                }
            })
            .collect();
        // Presence joins: a Zipf-hot room and the presence user free the longest.
        let users = plan.presence_users(1.0).max(1) as usize;
        let mut free_at = vec![Duration::ZERO; users];
        let presences = (0..n(Kind::RoomPresence))
            .map(|j| {
                let room = room_zipf.sample(&mut rng);
                let t = at(Kind::RoomPresence, j);
                let user = (0..users).min_by_key(|&u| free_at[u]).unwrap_or(0);
                free_at[user] = free_at[user].max(t) + plan.presence_hold + PRESENCE_REST;
                PresencePick { room, user: user as u32 }
            })
            .collect();
        let mut actor_rooms = vec![Vec::new(); plan.actor_sockets as usize];
        for (r, actors) in room_actors.iter().enumerate() {
            for &a in actors {
                if let Some(list) = actor_rooms.get_mut(a as usize) {
                    list.push(r as u32);
                }
            }
        }
        Self { t0: OnceLock::new(), lanes, likes, messages, typings, presences, actor_rooms }
    }

    /// Starts the clock (once): the first intended start. Returns `t0`.
    pub fn start(&self, t0: Instant) -> Instant {
        *self.t0.get_or_init(|| t0)
    }

    pub fn t0(&self) -> Option<Instant> {
        self.t0.get().copied()
    }

    pub fn lane(&self, kind: Kind) -> Option<&Lane> {
        self.lanes.get(slot(kind))?.as_ref()
    }

    /// Actions of `kind` in the run (0 when off).
    pub fn count(&self, kind: Kind) -> u64 {
        self.lane(kind).map_or(0, |l| l.count)
    }

    pub fn is_warmup(&self, kind: Kind, i: u32) -> bool {
        self.lane(kind).is_some_and(|l| u64::from(i) < l.warmup)
    }

    /// `t0 + offset` of action `i` of `kind`, once the clock started.
    pub fn intended(&self, kind: Kind, i: u32) -> Option<Instant> {
        let lane = self.lane(kind)?;
        (u64::from(i) < lane.count).then(|| self.t0().map(|t0| t0 + lane.curve.offset(u64::from(i))))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ActionsPlan {
        ActionsPlan {
            like_rate_per_s: 20.0,
            message_rate_per_s: 10.0,
            typing_rate_per_s: 10.0,
            rooms: 3,
            user_listeners: 2,
            mention_fraction: 0.5,
            like_targets: 4,
            actor_users: 3,
            actor_sockets: 3,
            room_presence_rate_per_s: 4.0,
            ..ActionsPlan::default()
        }
    }

    fn timeline() -> Timeline {
        Timeline::new(&plan(), |r| RateCurve::constant(r, Duration::from_secs(5)), Duration::from_secs(1), 7, 10)
    }

    #[test]
    fn every_kind_follows_its_curve_in_one_firing_order() {
        let t = timeline();
        assert_eq!(t.count(Kind::Like), 100);
        assert_eq!(t.count(Kind::ChatMessage), 50);
        assert_eq!(t.count(Kind::Unlike), 0);
        assert!(t.is_warmup(Kind::Like, 19) && !t.is_warmup(Kind::Like, 20));
    }

    #[test]
    fn actors_are_shared_out_by_room_weight() {
        let rooms = assign_actors(20, 4);
        let mut all: Vec<u32> = rooms.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..20).collect::<Vec<_>>(), "each actor in exactly one room");
        let sizes: Vec<usize> = rooms.iter().map(Vec::len).collect();
        // Zipf(1) over 4 rooms: 48%, 24%, 16%, 12% of 20.
        assert_eq!(sizes, vec![10, 5, 3, 2]);
        // Fewer actors than rooms: every room still has one.
        assert!(assign_actors(2, 5).iter().all(|a| a.len() == 1 && a[0] < 2));
    }

    #[test]
    fn likes_never_repeat_a_pair_and_typists_stay_quiet() {
        let t = timeline();
        let mut pairs = std::collections::BTreeSet::new();
        for l in t.likes.iter().filter(|l| l.target != SKIPPED) {
            assert!(pairs.insert((l.target, l.user)), "{l:?} twice");
            assert!(l.user < 3);
        }
        // 4 targets × 3 likers: 12 likes at most, the rest skipped.
        assert_eq!(pairs.len(), 12);
        let quiet = Duration::from_secs_f64(TYPING_QUIET_S);
        let mut last = std::collections::BTreeMap::new();
        for (i, p) in t.typings.iter().enumerate().filter(|(_, p)| p.typist != SKIPPED) {
            let at = Duration::from_millis(100 * i as u64);
            if let Some(before) = last.insert((p.room, p.typist), at) {
                assert!(
                    at - before >= quiet,
                    "typist {} in room {} typed again after {:?}",
                    p.typist,
                    p.room,
                    at - before
                );
            }
        }
        assert!(t.messages.iter().any(|m| m.mention.is_some()));
        // A presence user joins again only after its hold and the rest.
        let mut last: std::collections::HashMap<u32, Duration> = std::collections::HashMap::new();
        for (j, p) in t.presences.iter().enumerate() {
            let at = Duration::from_millis(250 * j as u64);
            if let Some(before) = last.insert(p.user, at) {
                assert!(at >= before + Duration::from_secs(1) + PRESENCE_REST, "user {} reused too soon", p.user);
            }
        }
        for m in &t.messages {
            assert!(t.actor_rooms[m.sender as usize].contains(&m.room), "{m:?} from an actor not in the room");
        }
        assert_eq!(
            Timeline::new(&plan(), |r| RateCurve::constant(r, Duration::from_secs(5)), Duration::ZERO, 7, 10).messages,
            t.messages
        );
    }
}
