//! The Phoenix Channels wire contract, shared by the app and the simulator.
//!
//! Pure and IO-free (serde only): decoding client frames (V1 objects, V2 arrays, V2
//! binary), encoding server frames (replies, pushes, broadcasts) and the JSON payload
//! types that travel on firehose's topics. Decoding borrows from the input wherever the
//! JSON allows it; encoding writes straight into one buffer.

mod binary;
mod decode;
mod encode;
mod payloads;

pub use binary::{
    BinaryError, BinaryPush, decode_binary_push, encode_binary_broadcast, encode_binary_client_push,
    encode_binary_push, encode_binary_reply,
};
pub use decode::{DecodeError, InFrame, decode_text};
pub use encode::{encode_broadcast, encode_push, encode_reply, encode_text};
pub use payloads::{BookmarkEvent, BookmarkUser, ErrorReason, JoinSince, with_seq};

/// The serializer a socket negotiated with `vsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vsn {
    /// `vsn` absent or `1.0.0`: JSON objects, no `join_ref` on the way out.
    V1,
    /// `vsn=2.0.0`: JSON arrays `[join_ref, ref, topic, event, payload]`, plus binary frames.
    V2,
}

impl Vsn {
    /// Parses the `vsn` query parameter; `None` for a version firehose does not speak.
    pub fn from_param(vsn: Option<&str>) -> Option<Self> {
        match vsn {
            None => Some(Vsn::V1),
            Some(v) if v.starts_with("1.") => Some(Vsn::V1),
            Some(v) if v.starts_with("2.") => Some(Vsn::V2),
            Some(_) => None,
        }
    }
}

/// Reserved event names of the protocol.
pub mod events {
    pub const JOIN: &str = "phx_join";
    pub const LEAVE: &str = "phx_leave";
    pub const REPLY: &str = "phx_reply";
    pub const CLOSE: &str = "phx_close";
    pub const ERROR: &str = "phx_error";
    pub const HEARTBEAT: &str = "heartbeat";
    /// The topic heartbeats travel on.
    pub const PHOENIX_TOPIC: &str = "phoenix";
}

/// Status of a `phx_reply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    Ok,
    Error,
}

impl ReplyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests;
