//! The Phoenix codec from the server's side: any frame fields (refs, topic, event, a
//! JSON payload) encoded as text in both serializers must decode to the same fields;
//! any binary push fields must encode (or be refused as too long, exactly when a field
//! passes 255 bytes) and decode to the same push.

#![no_main]

use arbitrary::Arbitrary;
use firehose_app::wire::{
    self, BinaryError, BinaryPush, Vsn, decode_binary_push, encode_binary_broadcast, encode_binary_client_push,
    encode_binary_push, encode_binary_reply,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Debug, Arbitrary)]
struct Fields {
    v2: bool,
    join_ref: Option<String>,
    msg_ref: Option<String>,
    topic: String,
    event: String,
    /// Parsed as JSON when it is JSON; otherwise sent as a JSON string.
    payload: String,
    binary_payload: Vec<u8>,
}

fuzz_target!(|f: Fields| {
    text(&f);
    binary(&f);
});

fn text(f: &Fields) {
    let vsn = if f.v2 { Vsn::V2 } else { Vsn::V1 };
    let payload: Value = serde_json::from_str(&f.payload).unwrap_or_else(|_| Value::String(f.payload.clone()));
    let encoded = wire::encode_text(vsn, f.join_ref.as_deref(), f.msg_ref.as_deref(), &f.topic, &f.event, &payload);
    let frame = wire::decode_text(vsn, &encoded).unwrap_or_else(|e| panic!("{f:?} encoded as {encoded:?}: {e}"));
    let join_ref = if vsn == Vsn::V2 { f.join_ref.as_deref() } else { None };
    assert_eq!(frame.join_ref.as_deref(), join_ref, "{encoded}");
    assert_eq!(frame.msg_ref.as_deref(), f.msg_ref.as_deref(), "{encoded}");
    assert_eq!(frame.topic, f.topic, "{encoded}");
    assert_eq!(frame.event, f.event, "{encoded}");
    // The payload travels as written: compare the text, not a re-parse.
    let written = serde_json::to_string(&payload).expect("a Value serializes");
    assert_eq!(frame.payload.get(), written, "{encoded}");
    assert_eq!(frame.payload_is_object(), payload.is_object(), "{encoded}");
}

fn binary(f: &Fields) {
    let join_ref = f.join_ref.as_deref().unwrap_or_default();
    let msg_ref = f.msg_ref.as_deref().unwrap_or_default();
    let push = BinaryPush { join_ref, msg_ref, topic: &f.topic, event: &f.event, payload: &f.binary_payload };
    let too_long = |fields: &[&str]| fields.iter().any(|s| s.len() > 255);
    let expect = |fields: &[&str], got: Result<Vec<u8>, BinaryError>| -> Option<Vec<u8>> {
        match got {
            Ok(bytes) => {
                assert!(!too_long(fields), "{fields:?} encoded although a field is over 255 bytes");
                Some(bytes)
            }
            Err(BinaryError::FieldTooLong) => {
                assert!(too_long(fields), "{fields:?} refused although every field fits");
                None
            }
            Err(other) => panic!("{fields:?}: unexpected {other}"),
        }
    };
    let all = [join_ref, msg_ref, push.topic, push.event];
    if let Some(bytes) = expect(&all, encode_binary_client_push(&push)) {
        assert_eq!(decode_binary_push(&bytes), Ok(push));
    }
    expect(&[join_ref, &f.topic, &f.event], encode_binary_push(join_ref, &f.topic, &f.event, &f.binary_payload));
    expect(&all, encode_binary_reply(join_ref, msg_ref, &f.topic, &f.event, &f.binary_payload));
    expect(&[&f.topic, &f.event], encode_binary_broadcast(&f.topic, &f.event, &f.binary_payload));
}
