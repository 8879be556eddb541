//! Decoding client text frames (V1 objects and V2 arrays) without copying strings
//! that need no unescaping.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::Vsn;

/// One decoded client frame. The payload stays raw JSON until a handler asks for it.
#[derive(Debug)]
pub struct InFrame<'a> {
    pub join_ref: Option<Cow<'a, str>>,
    pub msg_ref: Option<Cow<'a, str>>,
    pub topic: Cow<'a, str>,
    pub event: Cow<'a, str>,
    pub payload: &'a RawValue,
}

impl InFrame<'_> {
    /// The payload parsed into `T`.
    pub fn payload_as<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }

    /// True when the payload is a JSON object, as the protocol requires.
    pub fn payload_is_object(&self) -> bool {
        self.payload.get().trim_start().starts_with('{')
    }
}

/// Why a text frame could not be decoded. `msg_ref`/`topic` are given when they could be
/// read, so the server can still answer the client with an error reply.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame is not valid JSON: {0}")]
    NotJson(String),
    #[error("frame does not have the shape of a Phoenix message: {reason}")]
    BadShape { reason: String, msg_ref: Option<String>, join_ref: Option<String>, topic: Option<String> },
}

/// Decodes one text frame for the serializer `vsn`.
pub fn decode_text(vsn: Vsn, text: &str) -> Result<InFrame<'_>, DecodeError> {
    let result = match vsn {
        Vsn::V2 => serde_json::from_str::<V2Frame<'_>>(text).map(|f| f.0),
        Vsn::V1 => serde_json::from_str::<V1Frame<'_>>(text).map(|f| f.0),
    };
    match result {
        Ok(frame) => Ok(frame),
        Err(err) if err.is_syntax() || err.is_eof() => Err(DecodeError::NotJson(err.to_string())),
        Err(err) => Err(salvage(vsn, text, err)),
    }
}

/// The JSON parsed but is not a frame: find what can be read of ref/topic for a reply.
fn salvage(vsn: Vsn, text: &str, err: serde_json::Error) -> DecodeError {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let pick = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let (join_ref, msg_ref, topic) = match (&value, vsn) {
        (serde_json::Value::Array(a), Vsn::V2) => (pick(a.first()), pick(a.get(1)), pick(a.get(2))),
        (serde_json::Value::Object(o), Vsn::V1) => (pick(o.get("join_ref")), pick(o.get("ref")), pick(o.get("topic"))),
        _ => (None, None, None),
    };
    DecodeError::BadShape { reason: err.to_string(), msg_ref, join_ref, topic }
}

/// A reference: a string, or (leniently) an integer, or null.
struct RefField<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for RefField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RefField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an integer or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RefField(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RefField(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(RefField(Some(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RefField(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RefField(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RefField(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RefField(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A required string field (topic, event), borrowed when no unescaping was needed.
struct StrField<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for StrField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrField(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrField(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StrField(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

struct V2Frame<'a>(InFrame<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for V2Frame<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = V2Frame<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array [join_ref, ref, topic, event, payload]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let missing = |i| de::Error::invalid_length(i, &"5 elements");
                let join_ref: RefField<'de> = seq.next_element()?.ok_or_else(|| missing(0))?;
                let msg_ref: RefField<'de> = seq.next_element()?.ok_or_else(|| missing(1))?;
                let topic: StrField<'de> = seq.next_element()?.ok_or_else(|| missing(2))?;
                let event: StrField<'de> = seq.next_element()?.ok_or_else(|| missing(3))?;
                let payload: &'de RawValue = seq.next_element()?.ok_or_else(|| missing(4))?;
                // Trailing extra elements are tolerated, as Phoenix does.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(V2Frame(InFrame {
                    join_ref: join_ref.0,
                    msg_ref: msg_ref.0,
                    topic: topic.0,
                    event: event.0,
                    payload,
                }))
            }
        }
        d.deserialize_seq(V)
    }
}

struct V1Frame<'a>(InFrame<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for V1Frame<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = V1Frame<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object {topic, event, payload, ref, join_ref?}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut join_ref = None;
                let mut msg_ref = None;
                let mut topic = None;
                let mut event = None;
                let mut payload = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "join_ref" => join_ref = map.next_value::<RefField<'de>>()?.0,
                        "ref" => msg_ref = map.next_value::<RefField<'de>>()?.0,
                        "topic" => topic = Some(map.next_value::<StrField<'de>>()?.0),
                        "event" => event = Some(map.next_value::<StrField<'de>>()?.0),
                        "payload" => payload = Some(map.next_value::<&'de RawValue>()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(V1Frame(InFrame {
                    join_ref,
                    msg_ref,
                    topic: topic.ok_or_else(|| de::Error::missing_field("topic"))?,
                    event: event.ok_or_else(|| de::Error::missing_field("event"))?,
                    payload: payload.ok_or_else(|| de::Error::missing_field("payload"))?,
                }))
            }
        }
        d.deserialize_map(V)
    }
}
