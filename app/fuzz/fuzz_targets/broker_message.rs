//! What crosses the broker between nodes, as a node receives it: any bytes either
//! decode to a message (numbered or a signal) whose parts encode back to the same
//! message, or give an error that renders; never a panic.

#![no_main]

use firehose_app::broker::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(m) => {
            let again = m.encode();
            let reread = decode(again.as_bytes()).expect("what was read re-encodes to something readable");
            assert_eq!(reread, m);
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
