//! `debug:*` topics, enabled only by `Config::debug_topics`: a channel whose `crash`
//! event panics inside its handler, so the channel-failure path (`phx_error`, the
//! socket and its other channels living on) can be exercised end to end.

use super::channel::{Outcome, reason};

pub fn handle_in(event: &str) -> Outcome {
    match event {
        "crash" => panic!("debug channel asked to crash"),
        _ => Outcome::Error(reason("unknown event")),
    }
}
