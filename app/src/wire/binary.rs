//! Phoenix's V2 binary frames (sent by phoenix.js when a payload is an ArrayBuffer).
//! All length fields are one byte.

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

/// A client binary push: `0, len(jr), len(ref), len(topic), len(event), jr, ref, topic, event, payload…`.
#[derive(Debug, PartialEq, Eq)]
pub struct BinaryPush<'a> {
    pub join_ref: &'a str,
    pub msg_ref: &'a str,
    pub topic: &'a str,
    pub event: &'a str,
    pub payload: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BinaryError {
    #[error("binary frame is empty")]
    Empty,
    #[error("binary frame kind {0} is not a client push")]
    UnknownKind(u8),
    #[error("binary frame is shorter than its header says")]
    Truncated,
    #[error("binary frame field is not UTF-8")]
    NotUtf8,
    #[error("binary frame field is longer than 255 bytes")]
    FieldTooLong,
}

/// Decodes a client binary push.
pub fn decode_binary_push(bytes: &[u8]) -> Result<BinaryPush<'_>, BinaryError> {
    let (&kind, rest) = bytes.split_first().ok_or(BinaryError::Empty)?;
    if kind != KIND_PUSH {
        return Err(BinaryError::UnknownKind(kind));
    }
    let lens = rest.get(..4).ok_or(BinaryError::Truncated)?;
    let mut body = &rest[4..];
    let mut take = |len: u8| -> Result<&str, BinaryError> {
        let len = usize::from(len);
        if body.len() < len {
            return Err(BinaryError::Truncated);
        }
        let (field, tail) = body.split_at(len);
        body = tail;
        std::str::from_utf8(field).map_err(|_| BinaryError::NotUtf8)
    };
    let join_ref = take(lens[0])?;
    let msg_ref = take(lens[1])?;
    let topic = take(lens[2])?;
    let event = take(lens[3])?;
    Ok(BinaryPush { join_ref, msg_ref, topic, event, payload: body })
}

/// Encodes a client binary push (what phoenix.js sends; the simulator's side of
/// [`decode_binary_push`]).
pub fn encode_binary_client_push(push: &BinaryPush<'_>) -> Result<Vec<u8>, BinaryError> {
    let BinaryPush { join_ref, msg_ref, topic, event, payload } = *push;
    let mut out = Vec::with_capacity(5 + join_ref.len() + msg_ref.len() + topic.len() + event.len() + payload.len());
    out.extend_from_slice(&[KIND_PUSH, len_u8(join_ref)?, len_u8(msg_ref)?, len_u8(topic)?, len_u8(event)?]);
    for part in [join_ref, msg_ref, topic, event] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(out)
}

fn len_u8(s: &str) -> Result<u8, BinaryError> {
    u8::try_from(s.len()).map_err(|_| BinaryError::FieldTooLong)
}

/// Server push: `0, len(jr), len(topic), len(event), jr, topic, event, payload…`.
pub fn encode_binary_push(join_ref: &str, topic: &str, event: &str, payload: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::with_capacity(4 + join_ref.len() + topic.len() + event.len() + payload.len());
    out.extend_from_slice(&[KIND_PUSH, len_u8(join_ref)?, len_u8(topic)?, len_u8(event)?]);
    for part in [join_ref, topic, event] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(out)
}

/// Server reply: `1, len(jr), len(ref), len(topic), len(status), jr, ref, topic, status, payload…`.
pub fn encode_binary_reply(
    join_ref: &str,
    msg_ref: &str,
    topic: &str,
    status: &str,
    payload: &[u8],
) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::with_capacity(5 + join_ref.len() + msg_ref.len() + topic.len() + status.len() + payload.len());
    out.extend_from_slice(&[KIND_REPLY, len_u8(join_ref)?, len_u8(msg_ref)?, len_u8(topic)?, len_u8(status)?]);
    for part in [join_ref, msg_ref, topic, status] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(out)
}

/// Broadcast: `2, len(topic), len(event), topic, event, payload…`.
pub fn encode_binary_broadcast(topic: &str, event: &str, payload: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::with_capacity(3 + topic.len() + event.len() + payload.len());
    out.extend_from_slice(&[KIND_BROADCAST, len_u8(topic)?, len_u8(event)?]);
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}
