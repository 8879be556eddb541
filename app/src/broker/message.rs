//! What crosses the broker's channel. Two kinds of message, told apart by their first
//! character:
//!
//! - a numbered broadcast: `<seq> <topic length> <event length> <topic><event><payload>`,
//!   the payload a JSON object without its `seq`. The node that publishes writes
//!   everything after the first space ([`encode_body`]); the broker's script puts the
//!   `seq` it assigned in front.
//! - a signal: `!<origin node> <except> <topic length> <event length>
//!   <topic><event><payload>`, published as is ([`encode_signal`]): not numbered, not
//!   kept, for what is ephemeral (typing) or state between nodes (page readers).
//!   `except` is a user id whose own channels skip it, or `-`.
//!
//! Lengths, not separators, so no topic or event can be misread.

/// One numbered broadcast as received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered<'a> {
    pub seq: u64,
    pub topic: &'a str,
    pub event: &'a str,
    pub payload: &'a str,
}

/// One signal as received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal<'a> {
    /// The node that sent it (a node ignores its own).
    pub origin: &'a str,
    /// The user whose channels do not get it, if any.
    pub except: Option<i64>,
    pub topic: &'a str,
    pub event: &'a str,
    pub payload: &'a str,
}

/// A message as received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Numbered(Numbered<'a>),
    Signal(Signal<'a>),
}

impl Message<'_> {
    /// The bytes the channel carries for this message.
    pub fn encode(&self) -> String {
        match self {
            Message::Numbered(m) => format!("{} {}", m.seq, encode_body(m.topic, m.event, m.payload)),
            Message::Signal(s) => encode_signal(s.origin, s.except, s.topic, s.event, s.payload),
        }
    }
}

/// The body a node publishes (the broker prefixes `<seq> `).
pub fn encode_body(topic: &str, event: &str, payload: &str) -> String {
    let mut out = String::with_capacity(topic.len() + event.len() + payload.len() + 12);
    push_parts(&mut out, topic, event, payload);
    out
}

/// A signal as published. `origin` must not contain a space.
pub fn encode_signal(origin: &str, except: Option<i64>, topic: &str, event: &str, payload: &str) -> String {
    let mut out = String::with_capacity(origin.len() + topic.len() + event.len() + payload.len() + 36);
    out.push(SIGNAL);
    out.push_str(origin);
    out.push(' ');
    match except {
        Some(user) => out.push_str(&user.to_string()),
        None => out.push(NO_ONE),
    }
    out.push(' ');
    push_parts(&mut out, topic, event, payload);
    out
}

const SIGNAL: char = '!';
const NO_ONE: char = '-';

fn push_parts(out: &mut String, topic: &str, event: &str, payload: &str) {
    out.push_str(&topic.len().to_string());
    out.push(' ');
    out.push_str(&event.len().to_string());
    out.push(' ');
    out.push_str(topic);
    out.push_str(event);
    out.push_str(payload);
}

/// Why a message from the broker was not understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("broker message is not UTF-8")]
    NotUtf8,
    #[error("broker message has no {0}")]
    Missing(&'static str),
    #[error("broker message's {0} is not a number")]
    NotANumber(&'static str),
    #[error("broker message is shorter than its lengths say")]
    Short,
}

/// Reads one message as the broker delivered it.
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, MessageError> {
    let text = std::str::from_utf8(bytes).map_err(|_| MessageError::NotUtf8)?;
    if let Some(signal) = text.strip_prefix(SIGNAL) {
        let (origin, rest) = signal.split_once(' ').ok_or(MessageError::Missing("origin"))?;
        let (except, rest) = rest.split_once(' ').ok_or(MessageError::Missing("except"))?;
        let except = match except {
            "-" => None,
            user => Some(user.parse().map_err(|_| MessageError::NotANumber("except"))?),
        };
        let (topic, event, payload) = parts(rest)?;
        return Ok(Message::Signal(Signal { origin, except, topic, event, payload }));
    }
    let (seq, rest) = number(text, "seq")?;
    let (topic, event, payload) = parts(rest)?;
    Ok(Message::Numbered(Numbered { seq, topic, event, payload }))
}

/// `<topic length> <event length> <topic><event><payload>` read back.
fn parts(text: &str) -> Result<(&str, &str, &str), MessageError> {
    let (topic_len, rest) = number(text, "topic length")?;
    let (event_len, rest) = number(rest, "event length")?;
    let topic_len = usize::try_from(topic_len).map_err(|_| MessageError::Short)?;
    let event_len = usize::try_from(event_len).map_err(|_| MessageError::Short)?;
    let topic = rest.get(..topic_len).ok_or(MessageError::Short)?;
    let rest = &rest[topic_len..];
    let event = rest.get(..event_len).ok_or(MessageError::Short)?;
    Ok((topic, event, &rest[event_len..]))
}

fn number<'a>(text: &'a str, what: &'static str) -> Result<(u64, &'a str), MessageError> {
    let (digits, rest) = text.split_once(' ').ok_or(MessageError::Missing(what))?;
    let n = digits.parse().map_err(|_| MessageError::NotANumber(what))?;
    Ok((n, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_numbered_by_the_broker_reads_back() {
        let topic = "page:/a b/ü";
        let body = encode_body(topic, "bookmark_created", r#"{"title":"1 2 3"}"#);
        let message = format!("{} {body}", 42);
        let read = decode(message.as_bytes()).unwrap();
        let expected = Numbered { seq: 42, topic, event: "bookmark_created", payload: r#"{"title":"1 2 3"}"# };
        assert_eq!(read, Message::Numbered(expected));
        assert_eq!(read.encode(), message);
    }

    #[test]
    fn a_signal_reads_back() {
        for except in [None, Some(7), Some(-3)] {
            let message = encode_signal("n0de", except, "room:a b", "user_typing", r#"{"user":{"id":7}}"#);
            let read = decode(message.as_bytes()).unwrap();
            let expected = Signal {
                origin: "n0de",
                except,
                topic: "room:a b",
                event: "user_typing",
                payload: r#"{"user":{"id":7}}"#,
            };
            assert_eq!(read, Message::Signal(expected));
            assert_eq!(read.encode(), message);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(decode(b""), Err(MessageError::Missing("seq")));
        assert_eq!(decode(b"x 1 1 ab{}"), Err(MessageError::NotANumber("seq")));
        assert_eq!(decode(b"1 9 1 ab{}"), Err(MessageError::Short));
        assert_eq!(decode(b"1 99999999999999999999 1 ab"), Err(MessageError::NotANumber("topic length")));
        assert_eq!(decode(&[0xff, b' ']), Err(MessageError::NotUtf8));
        // A length that cuts a character in two is short, not a panic.
        assert_eq!(decode("1 1 1 ü{}".as_bytes()), Err(MessageError::Short));
        assert_eq!(decode(b"!n0de"), Err(MessageError::Missing("origin")));
        assert_eq!(decode(b"!n0de x 1 1 ab{}"), Err(MessageError::NotANumber("except")));
        assert_eq!(decode(b"!n0de - 5 1 ab{}"), Err(MessageError::Short));
    }
}
