//! Encoding server frames as text, straight into one buffer per frame.
//!
//! Object keys come out in the order Phoenix's serializer emits them (sorted), so a
//! capture of firehose and of Phoenix read the same.

use serde::Serialize;

use super::{ReplyStatus, Vsn};

/// Encodes any server frame. `join_ref` is dropped for V1, which never sends it.
pub fn encode_text<P: Serialize + ?Sized>(
    vsn: Vsn,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &P,
) -> String {
    let mut buf = Vec::with_capacity(96 + topic.len() + event.len());
    match vsn {
        Vsn::V2 => {
            buf.push(b'[');
            write_json(&mut buf, &join_ref);
            buf.push(b',');
            write_json(&mut buf, &msg_ref);
            buf.push(b',');
            write_json(&mut buf, topic);
            buf.push(b',');
            write_json(&mut buf, event);
            buf.push(b',');
            write_json(&mut buf, payload);
            buf.push(b']');
        }
        Vsn::V1 => {
            buf.extend_from_slice(b"{\"event\":");
            write_json(&mut buf, event);
            buf.extend_from_slice(b",\"payload\":");
            write_json(&mut buf, payload);
            buf.extend_from_slice(b",\"ref\":");
            write_json(&mut buf, &msg_ref);
            buf.extend_from_slice(b",\"topic\":");
            write_json(&mut buf, topic);
            buf.push(b'}');
        }
    }
    // serde_json only ever writes UTF-8.
    String::from_utf8(buf).unwrap_or_default()
}

/// A `phx_reply` to the client message `msg_ref`.
pub fn encode_reply<R: Serialize + ?Sized>(
    vsn: Vsn,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    status: ReplyStatus,
    response: &R,
) -> String {
    #[derive(Serialize)]
    struct Reply<'a, R: Serialize + ?Sized> {
        response: &'a R,
        status: &'static str,
    }
    let payload = Reply { response, status: status.as_str() };
    encode_text(vsn, join_ref, msg_ref, topic, super::events::REPLY, &payload)
}

/// A server push to one channel (`[join_ref, null, topic, event, payload]`).
pub fn encode_push<P: Serialize + ?Sized>(vsn: Vsn, join_ref: &str, topic: &str, event: &str, payload: &P) -> String {
    encode_text(vsn, Some(join_ref), None, topic, event, payload)
}

/// A broadcast (`[null, null, topic, event, payload]`): identical for every subscriber,
/// so it is encoded once per serializer and shared.
pub fn encode_broadcast<P: Serialize + ?Sized>(vsn: Vsn, topic: &str, event: &str, payload: &P) -> String {
    encode_text(vsn, None, None, topic, event, payload)
}

fn write_json<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    // Writing into a Vec cannot fail; a Serialize impl that errors writes nothing useful
    // and is a programming error in our own payload types, caught by the tests.
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.extend_from_slice(b"null");
    }
}
