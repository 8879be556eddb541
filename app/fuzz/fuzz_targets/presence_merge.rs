//! The presence diff merge against the phoenix.js client model of the model tests
//! (`presence::client_model`): the input chooses the tracker operations, where the
//! client joins, how diffs are merged into chunks and when the throttle's clock moves;
//! the client must converge on the tracker's state every way, and merging must be
//! associative.

#![no_main]

use arbitrary::Unstructured;
use firehose_app::fuzzing::presence_model::{Choices, check_associative, check_convergence, check_rejoin};
use libfuzzer_sys::fuzz_target;

/// Choices read from the fuzz input (zeros once it runs out).
struct Input<'a>(Unstructured<'a>);

impl Choices for Input<'_> {
    fn below(&mut self, n: usize) -> usize {
        self.0.choose_index(n).unwrap_or(0)
    }

    fn next_u64(&mut self) -> u64 {
        self.0.arbitrary().unwrap_or(0)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let input = &mut Input(Unstructured::new(rest));
    let result = match which % 3 {
        0 => check_convergence(input, 64),
        1 => check_rejoin(input, 64),
        _ => check_associative(input, 64),
    };
    if let Err(mismatch) = result {
        panic!("{mismatch}");
    }
});
