//! The Phoenix codec from the client's side: any bytes, as a V1 text frame, a V2 text
//! frame and a V2 binary push. Whatever decodes must encode and decode again to the
//! same frame, and encoding must then be a fixed point; whatever does not decode must
//! give an error that renders.

#![no_main]

use firehose_app::wire::{
    self, BinaryPush, InFrame, Vsn, decode_binary_push, encode_binary_broadcast, encode_binary_client_push,
    encode_binary_push, encode_binary_reply,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for vsn in [Vsn::V1, Vsn::V2] {
            text_round_trip(vsn, text);
        }
    }
    binary_round_trip(data);
});

fn reencode(vsn: Vsn, f: &InFrame<'_>) -> String {
    wire::encode_text(vsn, f.join_ref.as_deref(), f.msg_ref.as_deref(), &f.topic, &f.event, f.payload)
}

fn text_round_trip(vsn: Vsn, text: &str) {
    let frame = match wire::decode_text(vsn, text) {
        Ok(frame) => frame,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    let encoded = reencode(vsn, &frame);
    let again = wire::decode_text(vsn, &encoded)
        .unwrap_or_else(|e| panic!("{vsn:?} {text:?} re-encoded as {encoded:?} does not decode: {e}"));
    // V1 never sends join_ref, so it does not survive a V1 re-encoding.
    let join_ref = if vsn == Vsn::V2 { frame.join_ref.as_deref() } else { None };
    assert_eq!(again.join_ref.as_deref(), join_ref, "{vsn:?} join_ref of {text:?} -> {encoded:?}");
    assert_eq!(again.msg_ref, frame.msg_ref, "{vsn:?} ref of {text:?} -> {encoded:?}");
    assert_eq!(again.topic, frame.topic, "{vsn:?} topic of {text:?} -> {encoded:?}");
    assert_eq!(again.event, frame.event, "{vsn:?} event of {text:?} -> {encoded:?}");
    assert_eq!(again.payload.get(), frame.payload.get(), "{vsn:?} payload of {text:?} -> {encoded:?}");
    assert_eq!(again.payload_is_object(), frame.payload_is_object());
    assert_eq!(reencode(vsn, &again), encoded, "{vsn:?} encoding of {text:?} is not a fixed point");
}

fn binary_round_trip(data: &[u8]) {
    let push = match decode_binary_push(data) {
        Ok(push) => push,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    // The payload is the rest of the frame, so a decoded push encodes to exactly its input.
    let encoded = encode_binary_client_push(&push).expect("decoded fields fit in one byte each");
    assert_eq!(encoded, data, "{push:?}");
    assert_eq!(decode_binary_push(&encoded).as_ref(), Ok(&push));

    // The server's frames of the same fields: their one-byte headers and the fields after.
    let BinaryPush { join_ref, msg_ref, topic, event, payload } = push;
    let frame = encode_binary_push(join_ref, topic, event, payload).expect("short fields");
    check_layout(&frame, 0, &[join_ref, topic, event], payload);
    let frame = encode_binary_reply(join_ref, msg_ref, topic, event, payload).expect("short fields");
    check_layout(&frame, 1, &[join_ref, msg_ref, topic, event], payload);
    let frame = encode_binary_broadcast(topic, event, payload).expect("short fields");
    check_layout(&frame, 2, &[topic, event], payload);
}

/// `kind, len(field)…, field…, payload`.
fn check_layout(frame: &[u8], kind: u8, fields: &[&str], payload: &[u8]) {
    let header: Vec<u8> = std::iter::once(kind).chain(fields.iter().map(|f| f.len() as u8)).collect();
    let body: Vec<u8> = fields.iter().flat_map(|f| f.bytes()).chain(payload.iter().copied()).collect();
    assert_eq!(frame, [header, body].concat(), "kind {kind} {fields:?}");
}
