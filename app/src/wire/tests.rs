//! Codec tests: Phoenix's own serializer vectors and every frame of the capture from a
//! real Phoenix 1.7.24 server (`app/tests/data/phoenix-1.7.24-frames.txt`).

use serde_json::json;
use serde_json::value::RawValue;

use super::*;

const CAPTURE: &str = include_str!("../../tests/data/phoenix-1.7.24-frames.txt");

/// `(client, direction, frame text)` for every captured text frame.
fn captured_frames() -> Vec<(&'static str, &'static str, &'static str)> {
    CAPTURE
        .lines()
        .filter(|l| l.starts_with('['))
        .filter_map(|l| {
            let (client, rest) = l.split_once("] ")?;
            let (dir, text) = rest.split_once(" text: ")?;
            Some((&client[1..], dir, text))
        })
        .collect()
}

fn reencode(vsn: Vsn, frame: &InFrame<'_>) -> String {
    encode_text(vsn, frame.join_ref.as_deref(), frame.msg_ref.as_deref(), &frame.topic, &frame.event, frame.payload)
}

#[test]
fn every_captured_server_frame_reencodes_byte_for_byte() {
    let frames = captured_frames();
    let server: Vec<_> = frames.iter().filter(|(_, dir, _)| *dir == "S->C").collect();
    assert!(server.len() >= 25, "capture has {} server frames", server.len());
    for (client, _, text) in server {
        let vsn = if *client == "V1" { Vsn::V1 } else { Vsn::V2 };
        let frame = decode_text(vsn, text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&reencode(vsn, &frame), text);
    }
}

#[test]
fn every_captured_client_frame_decodes_except_the_garbage_one() {
    let mut decoded = 0;
    for (client, dir, text) in captured_frames() {
        if dir != "C->S" {
            continue;
        }
        let vsn = if client == "V1" { Vsn::V1 } else { Vsn::V2 };
        match decode_text(vsn, text) {
            Ok(frame) => {
                assert!(frame.payload_is_object(), "{text}");
                if vsn == Vsn::V2 {
                    assert_eq!(reencode(vsn, &frame), text);
                }
                decoded += 1;
            }
            Err(DecodeError::NotJson(_)) => assert_eq!(text, "this is not json"),
            Err(e) => panic!("{text}: {e}"),
        }
    }
    assert!(decoded >= 14, "decoded {decoded}");
}

#[test]
fn replies_match_the_capture() {
    let ok = encode_reply(Vsn::V2, Some("1"), Some("1"), "bookmarks:firehose", ReplyStatus::Ok, &json!({}));
    assert_eq!(ok, r#"["1","1","bookmarks:firehose","phx_reply",{"response":{},"status":"ok"}]"#);
    let hb = encode_reply(Vsn::V2, None, Some("3"), "phoenix", ReplyStatus::Ok, &json!({}));
    assert_eq!(hb, r#"[null,"3","phoenix","phx_reply",{"response":{},"status":"ok"}]"#);
    let unmatched =
        encode_reply(Vsn::V2, None, Some("6"), "nope:x", ReplyStatus::Error, &ErrorReason::new("unmatched topic"));
    assert_eq!(
        unmatched,
        r#"[null,"6","nope:x","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#
    );
    let v1 = encode_reply(Vsn::V1, Some("9"), Some("2"), "phoenix", ReplyStatus::Ok, &json!({}));
    assert_eq!(v1, r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"2","topic":"phoenix"}"#);
    let close = encode_text(Vsn::V2, Some("1"), Some("1"), "room:lobby", events::CLOSE, &json!({}));
    assert_eq!(close, r#"["1","1","room:lobby","phx_close",{}]"#);
    let push = encode_push(Vsn::V2, "4", "room:lobby", "presence_state", &json!({}));
    assert_eq!(push, r#"["4",null,"room:lobby","presence_state",{}]"#);
}

#[test]
fn broadcast_payload_round_trips_through_the_shared_type() {
    let event = BookmarkEvent {
        id: 9,
        title: "Phoenix \"quoted\" <b>".into(),
        description: "wire capture ✓".into(),
        url: "https://phoenixframework.org".into(),
        tags: vec!["elixir".into(), "web".into()],
        user: BookmarkUser { id: 1, username: "alice".into() },
        inserted_at: "2026-11-26T03:28:27.836000Z".into(),
    };
    let text = encode_broadcast(Vsn::V2, "bookmarks:firehose", "bookmark_created", &event);
    assert!(text.starts_with(r#"[null,null,"bookmarks:firehose","bookmark_created",{"id":9,"#));
    let frame = decode_text(Vsn::V2, &text).unwrap();
    assert_eq!(frame.join_ref, None);
    assert_eq!(frame.msg_ref, None);
    assert_eq!(frame.payload_as::<BookmarkEvent>().unwrap(), event);
    let v1 = encode_broadcast(Vsn::V1, "bookmarks:firehose", "bookmark_created", &event);
    let frame = decode_text(Vsn::V1, &v1).unwrap();
    assert_eq!(frame.payload_as::<BookmarkEvent>().unwrap(), event);
    // As broadcast: the pub/sub adds the topic's `seq`, which the shared type ignores.
    let numbered = with_seq(&serde_json::to_string(&event).unwrap(), 42);
    let v2 = encode_broadcast(
        Vsn::V2,
        "bookmarks:firehose",
        "bookmark_created",
        &serde_json::value::RawValue::from_string(numbered).unwrap(),
    );
    let frame = decode_text(Vsn::V2, &v2).unwrap();
    assert_eq!(frame.payload_as::<BookmarkEvent>().unwrap(), event);
    assert_eq!(frame.payload_as::<serde_json::Value>().unwrap()["seq"], 42);
}

#[test]
fn v2_decoding_tolerates_trailing_elements_and_integer_refs() {
    let f = decode_text(Vsn::V2, r#"["1",7,"t","e",{"a":1},"extra",[1,2]]"#).unwrap();
    assert_eq!(f.join_ref.as_deref(), Some("1"));
    assert_eq!(f.msg_ref.as_deref(), Some("7"));
    assert_eq!(f.payload.get(), r#"{"a":1}"#);
}

#[test]
fn escaped_strings_are_unescaped() {
    let f = decode_text(Vsn::V2, r#"[null,"1","bookmarks:tag:caf\u00e9","phx_join",{}]"#).unwrap();
    assert_eq!(f.topic, "bookmarks:tag:café");
}

#[test]
fn bad_shapes_keep_what_can_be_read() {
    match decode_text(Vsn::V2, r#"["1","2","topic"]"#) {
        Err(DecodeError::BadShape { msg_ref, topic, .. }) => {
            assert_eq!(msg_ref.as_deref(), Some("2"));
            assert_eq!(topic.as_deref(), Some("topic"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(decode_text(Vsn::V2, r#"{"topic":"x"}"#), Err(DecodeError::BadShape { .. })));
    assert!(matches!(decode_text(Vsn::V2, r#"[1,2,3,4,5]"#), Err(DecodeError::BadShape { .. })));
    assert!(matches!(decode_text(Vsn::V2, "this is not json"), Err(DecodeError::NotJson(_))));
    assert!(matches!(decode_text(Vsn::V2, r#"["1","2""#), Err(DecodeError::NotJson(_))));
    assert!(matches!(
        decode_text(Vsn::V1, r#"{"topic":"t","event":"e","ref":"1"}"#),
        Err(DecodeError::BadShape { .. })
    ));
}

#[test]
fn v1_accepts_join_ref_and_ignores_unknown_keys() {
    let f = decode_text(Vsn::V1, r#"{"topic":"t","event":"e","payload":{},"ref":"3","join_ref":"2","x":[1]}"#).unwrap();
    assert_eq!(f.join_ref.as_deref(), Some("2"));
    assert_eq!(f.msg_ref.as_deref(), Some("3"));
}

#[test]
fn phoenix_binary_vectors() {
    // From Phoenix's assets/test/serializer_test.js.
    let bytes = [&[0u8, 2, 1, 3, 2][..], b"10", b"1", b"top", b"ev", &[1]].concat();
    let push = decode_binary_push(&bytes).unwrap();
    assert_eq!(push, BinaryPush { join_ref: "10", msg_ref: "1", topic: "top", event: "ev", payload: &[1] });
    assert_eq!(encode_binary_client_push(&push).unwrap(), bytes);

    let out = encode_binary_push("10", "top", "ev", &[1]).unwrap();
    assert_eq!(out, [&[0u8, 2, 3, 2][..], b"10", b"top", b"ev", &[1]].concat());
    let reply = encode_binary_reply("10", "1", "top", "ok", &[1]).unwrap();
    assert_eq!(reply, [&[1u8, 2, 1, 3, 2][..], b"10", b"1", b"top", b"ok", &[1]].concat());
    let bc = encode_binary_broadcast("top", "ev", &[1]).unwrap();
    assert_eq!(bc, [&[2u8, 3, 2][..], b"top", b"ev", &[1]].concat());
}

#[test]
fn binary_errors_are_reported_not_panicked() {
    assert_eq!(decode_binary_push(&[]), Err(BinaryError::Empty));
    assert_eq!(decode_binary_push(&[1, 0, 0, 0, 0]), Err(BinaryError::UnknownKind(1)));
    assert_eq!(decode_binary_push(&[0, 2]), Err(BinaryError::Truncated));
    assert_eq!(decode_binary_push(&[0, 9, 0, 0, 0, b'a']), Err(BinaryError::Truncated));
    assert_eq!(decode_binary_push(&[0, 1, 0, 0, 0, 0xff]), Err(BinaryError::NotUtf8));
    let long = "x".repeat(256);
    assert_eq!(encode_binary_broadcast(&long, "e", &[]), Err(BinaryError::FieldTooLong));
}

#[test]
fn vsn_parsing() {
    assert_eq!(Vsn::from_param(None), Some(Vsn::V1));
    assert_eq!(Vsn::from_param(Some("1.0.0")), Some(Vsn::V1));
    assert_eq!(Vsn::from_param(Some("2.0.0")), Some(Vsn::V2));
    assert_eq!(Vsn::from_param(Some("3.0.0")), None);
    let _ = RawValue::from_string("{}".into()).unwrap();
}
