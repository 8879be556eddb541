//! Every bookmark event of the run, whichever agent sends it: what it owes the firehose
//! and tag groups (set for all events when the clock starts, from the schedule and the
//! joined audience), how it ended (own events from their response; other agents' from
//! the outcomes exchanged at the end), and the per-event ledgers listeners count into.

use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

use super::audience::Audience;
use super::schedule::Schedule;
use crate::engine::delivery::EventLedger;
use crate::http::Draft;

/// Event states.
const PENDING: u8 = 0;
const IN_FLIGHT: u8 = 1;
const PUBLIC: u8 = 2;
const PRIVATE: u8 = 3;
/// Failed, never sent, or (for another agent's event) reported as owing nothing.
const NOT_OWED: u8 = 4;

/// The events of a run.
pub struct Events {
    state: Box<[AtomicU8]>,
    pub firehose: EventLedger,
    pub tag: EventLedger,
}

/// What this agent reports of its own events: those that owe nothing (failed, private
/// by the server's answer, never sent). The other events it fired were created public.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcomes {
    pub not_owed: Vec<u64>,
}

impl Events {
    pub fn new(requests: u64) -> Self {
        let n = requests as usize;
        Self {
            state: (0..n).map(|_| AtomicU8::new(PENDING)).collect(),
            firehose: EventLedger::new(n),
            tag: EventLedger::new(n),
        }
    }

    pub fn len(&self) -> u64 {
        self.state.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// At t0: every event the schedule makes public owes the joined audience of its
    /// draft's tags.
    pub fn owe_all(&self, schedule: &Schedule, drafts: &[Draft], audience: &Audience) {
        for i in 0..self.len() {
            if schedule.is_private(i) {
                continue;
            }
            if let Some(draft) = schedule.link(i).and_then(|l| drafts.get(l)) {
                self.set_owed(i, audience.owed(draft.tags.iter().map(String::as_str)));
            }
        }
    }

    fn set_owed(&self, i: u64, [firehose, tag]: [u32; 2]) {
        self.firehose.set_owed(i, firehose);
        self.tag.set_owed(i, tag);
    }

    /// Own event `i` goes out.
    pub fn sending(&self, i: u64) {
        self.store(i, IN_FLIGHT);
    }

    /// Own event `i` was created public; `owed` when the response says what it owes
    /// (tags read from the response), else as planned.
    pub fn created_public(&self, i: u64, owed: Option<[u32; 2]>) {
        self.store(i, PUBLIC);
        if let Some(owed) = owed {
            self.set_owed(i, owed);
        }
    }

    /// Own event `i` was created private (it owes nothing; a delivery is a leak).
    pub fn created_private(&self, i: u64) {
        self.store(i, PRIVATE);
        self.set_owed(i, [0, 0]);
    }

    /// Event `i` owes nothing: its request failed or never went out.
    pub fn not_owed(&self, i: u64) {
        self.store(i, NOT_OWED);
        self.set_owed(i, [0, 0]);
    }

    fn store(&self, i: u64, state: u8) {
        if let Some(s) = self.state.get(i as usize) {
            s.store(state, Ordering::Release);
        }
    }

    fn state(&self, i: u64) -> u8 {
        self.state.get(i as usize).map_or(NOT_OWED, |s| s.load(Ordering::Acquire))
    }

    /// Whether a delivery of event `i` is a private leak: the schedule made it private
    /// and the server did not say it created it public, or the server said private.
    pub fn is_private(&self, i: u64, schedule: &Schedule) -> bool {
        match self.state(i) {
            PRIVATE => true,
            PUBLIC => false,
            _ => schedule.is_private(i),
        }
    }

    /// Own events (`mine(i)`) never sent owe nothing (an interrupted run).
    pub fn unsent_owe_nothing(&self, mine: impl Fn(u64) -> bool) {
        for i in (0..self.len()).filter(|&i| mine(i)) {
            if matches!(self.state(i), PENDING | IN_FLIGHT) {
                self.not_owed(i);
            }
        }
    }

    /// This agent's report on its own events.
    pub fn outcomes(&self, mine: impl Fn(u64) -> bool) -> Outcomes {
        let not_owed =
            (0..self.len()).filter(|&i| mine(i) && matches!(self.state(i), NOT_OWED | PRIVATE | PENDING)).collect();
        Outcomes { not_owed }
    }

    /// Another agent's report on its events.
    pub fn absorb(&self, theirs: &Outcomes) {
        for &i in &theirs.not_owed {
            if self.state(i) != PRIVATE {
                self.not_owed(i);
            }
        }
    }

    /// Whether every owed delivery of both groups arrived.
    pub fn all_delivered(&self) -> bool {
        self.firehose.all_delivered() && self.tag.all_delivered()
    }
}
