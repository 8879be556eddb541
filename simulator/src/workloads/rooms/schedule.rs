//! The read-only timeline of a rooms run, computed from the seed before anything is
//! sent: which member posts message `i` in which room and when, who types when, which
//! churn user joins which room when. Three open-model streams (each `index / rate` after
//! `t0`), merged into one order the generator fires in. Rooms are Zipf-skewed: room 0
//! is the hottest.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A typist is picked only if their previous typing push was at least this long ago:
/// the server sends `user_typing` only to a user who is not typing already, and stops
/// counting them as typing 2 s after their last push. So every scheduled typing push
/// owes a `user_typing` to the room's other members.
pub const TYPING_QUIET: Duration = Duration::from_secs(3);

/// Zipf exponent of room popularity.
const ZIPF_S: f64 = 1.0;

/// The three kinds of event a rooms run generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    Typing,
    Join,
}

/// One planned event of a kind: when, in which room, by whom (a member slot for
/// messages and typing, a churn user for joins). `who == SKIPPED` for a typing event no
/// member was free for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub at: Duration,
    pub room: u32,
    pub who: u32,
}

pub const SKIPPED: u32 = u32::MAX;

/// The whole timeline.
#[derive(Debug)]
pub struct RoomsSchedule {
    t0: OnceLock<Instant>,
    warmup: Duration,
    pub rooms: u32,
    pub members: u32,
    pub messages: Vec<Planned>,
    pub typings: Vec<Planned>,
    pub joins: Vec<Planned>,
    /// Churn users, reused round-robin.
    pub churn_users: u32,
    /// `(kind, index)` in intended-time order.
    pub order: Vec<(Kind, u32)>,
    seed: u64,
}

/// Everything the timeline is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub rooms: u32,
    pub members: u32,
    pub messages: u64,
    pub message_rate: f64,
    pub typings: u64,
    pub typing_rate: f64,
    pub joins: u64,
    pub join_rate: f64,
    pub churn_hold: Duration,
    pub warmup: Duration,
    pub seed: u64,
}

impl RoomsSchedule {
    pub fn new(s: Shape) -> Self {
        let zipf = Zipf::new(s.rooms);
        let at = |i: u64, rate: f64| Duration::from_secs_f64(i as f64 / rate);
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let messages: Vec<Planned> = (0..s.messages)
            .map(|i| {
                let room = zipf.sample(&mut rng);
                let who = room * s.members + rng.random_range(0..s.members);
                Planned { at: at(i, s.message_rate), room, who }
            })
            .collect();

        let mut rng = ChaCha8Rng::seed_from_u64(s.seed.rotate_left(21));
        let mut last_typed: Vec<Option<Duration>> = vec![None; (s.rooms * s.members) as usize];
        let typings: Vec<Planned> = (0..s.typings)
            .map(|k| {
                let t = at(k, s.typing_rate);
                let first = zipf.sample(&mut rng);
                let offset = rng.random_range(0..s.members);
                let free = |slot: u32| last_typed[slot as usize].is_none_or(|last| t >= last + TYPING_QUIET);
                // The drawn member, else another in that room, else the next rooms.
                let pick = (0..s.rooms).find_map(|dr| {
                    let room = (first + dr) % s.rooms;
                    (0..s.members).map(|dm| room * s.members + (offset + dm) % s.members).find(|&slot| free(slot))
                });
                match pick {
                    Some(slot) => {
                        last_typed[slot as usize] = Some(t);
                        Planned { at: t, room: slot / s.members, who: slot }
                    }
                    None => Planned { at: t, room: first, who: SKIPPED },
                }
            })
            .collect();

        // Enough churn users that one is reused only long after it left its last room.
        let reuse_after = s.churn_hold.as_secs_f64() + 10.0;
        let churn_users = ((s.join_rate * reuse_after).ceil() as u64).clamp(1, s.joins.max(1)) as u32;
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed.rotate_left(42));
        let joins: Vec<Planned> = (0..s.joins)
            .map(|k| Planned {
                at: at(k, s.join_rate),
                room: zipf.sample(&mut rng),
                who: (k % u64::from(churn_users)) as u32,
            })
            .collect();

        let mut order: Vec<(Duration, Kind, u32)> = Vec::with_capacity(messages.len() + typings.len() + joins.len());
        order.extend(messages.iter().enumerate().map(|(i, p)| (p.at, Kind::Message, i as u32)));
        order.extend(typings.iter().enumerate().map(|(i, p)| (p.at, Kind::Typing, i as u32)));
        order.extend(joins.iter().enumerate().map(|(i, p)| (p.at, Kind::Join, i as u32)));
        order.sort_by_key(|(at, kind, i)| (*at, *kind as u8, *i));
        Self {
            t0: OnceLock::new(),
            warmup: s.warmup,
            rooms: s.rooms,
            members: s.members,
            messages,
            typings,
            joins,
            churn_users,
            order: order.into_iter().map(|(_, k, i)| (k, i)).collect(),
            seed: s.seed,
        }
    }

    /// Starts the clock; later calls keep the first instant.
    pub fn start(&self, t0: Instant) -> Instant {
        *self.t0.get_or_init(|| t0)
    }

    pub fn t0(&self) -> Option<Instant> {
        self.t0.get().copied()
    }

    pub fn planned(&self, kind: Kind, i: u32) -> Option<&Planned> {
        match kind {
            Kind::Message => self.messages.get(i as usize),
            Kind::Typing => self.typings.get(i as usize),
            Kind::Join => self.joins.get(i as usize),
        }
    }

    /// Intended time of event `i` of `kind`; `None` before the clock started.
    pub fn intended(&self, kind: Kind, i: u32) -> Option<Instant> {
        Some(self.t0()? + self.planned(kind, i)?.at)
    }

    /// Warm-up events are accounted for loss but left out of latency figures.
    pub fn is_warmup(&self, kind: Kind, i: u32) -> bool {
        self.planned(kind, i).is_none_or(|p| p.at < self.warmup)
    }

    /// The corpus chat line of message `i`, out of `lines`.
    pub fn line(&self, i: u32, lines: usize) -> usize {
        if lines == 0 {
            return 0;
        }
        let mut z = self.seed ^ u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % lines as u64) as usize
    }
}

/// Zipf over `n` ranks (rank 0 most popular), sampled by inverting the cumulative sum.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: u32) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n.max(1))
            .map(|r| {
                total += 1.0 / f64::from(r + 1).powf(ZIPF_S);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let x = rng.random::<f64>() * total;
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len() - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            rooms: 20,
            members: 4,
            messages: 2000,
            message_rate: 100.0,
            typings: 200,
            typing_rate: 10.0,
            joins: 40,
            join_rate: 2.0,
            churn_hold: Duration::from_secs(1),
            warmup: Duration::from_secs(2),
            seed: 7,
        }
    }

    #[test]
    fn rooms_are_skewed_and_choices_deterministic() {
        let a = RoomsSchedule::new(shape());
        let b = RoomsSchedule::new(shape());
        assert_eq!(a.messages, b.messages);
        assert_eq!(a.typings, b.typings);
        assert_eq!(a.joins, b.joins);
        let hot = a.messages.iter().filter(|p| p.room == 0).count();
        let cold = a.messages.iter().filter(|p| p.room == 19).count();
        assert!(hot > 5 * cold.max(1), "hot {hot} cold {cold}");
        assert!(a.messages.iter().all(|p| p.who / 4 == p.room));
        assert_eq!(a.order.len(), 2240);
        assert_eq!(a.messages[150].at, Duration::from_millis(1500));
        assert!(a.is_warmup(Kind::Message, 199) && !a.is_warmup(Kind::Message, 200));
    }

    #[test]
    fn a_typist_is_quiet_for_the_typing_timeout_before_typing_again() {
        let s = RoomsSchedule::new(shape());
        let mut last = std::collections::HashMap::new();
        for p in &s.typings {
            assert_ne!(p.who, SKIPPED);
            assert_eq!(p.who / 4, p.room);
            if let Some(prev) = last.insert(p.who, p.at) {
                assert!(p.at >= prev + TYPING_QUIET);
            }
        }
        // 2 members, 10 typing/s: at most 2 per 3 s can be served, the rest skipped.
        let busy = RoomsSchedule::new(Shape { rooms: 1, members: 2, ..shape() });
        assert!(busy.typings.iter().filter(|p| p.who == SKIPPED).count() > 150);
    }

    #[test]
    fn churn_users_are_reused_only_after_a_while() {
        let s = RoomsSchedule::new(shape());
        assert_eq!(s.churn_users, 22);
        assert_eq!(s.joins[0].who, s.joins[22].who);
        assert!(s.joins[22].at - s.joins[0].at >= Duration::from_secs(11));
    }
}
