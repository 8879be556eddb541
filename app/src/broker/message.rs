//! What crosses the broker for one broadcast: `<seq> <topic length> <event length>
//! <topic><event><payload>`, the payload a JSON object without its `seq`. The node
//! that publishes writes everything after the first space; the broker's script puts
//! the `seq` it assigned in front. Lengths, not separators, so no topic or event can
//! be misread.

/// One numbered broadcast as received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered<'a> {
    pub seq: u64,
    pub topic: &'a str,
    pub event: &'a str,
    pub payload: &'a str,
}

/// The body a node publishes (the broker prefixes `<seq> `).
pub fn encode_body(topic: &str, event: &str, payload: &str) -> String {
    let mut out = String::with_capacity(topic.len() + event.len() + payload.len() + 12);
    out.push_str(&topic.len().to_string());
    out.push(' ');
    out.push_str(&event.len().to_string());
    out.push(' ');
    out.push_str(topic);
    out.push_str(event);
    out.push_str(payload);
    out
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
pub fn decode(bytes: &[u8]) -> Result<Numbered<'_>, MessageError> {
    let text = std::str::from_utf8(bytes).map_err(|_| MessageError::NotUtf8)?;
    let (seq, rest) = number(text, "seq")?;
    let (topic_len, rest) = number(rest, "topic length")?;
    let (event_len, rest) = number(rest, "event length")?;
    let topic_len = usize::try_from(topic_len).map_err(|_| MessageError::Short)?;
    let event_len = usize::try_from(event_len).map_err(|_| MessageError::Short)?;
    let topic = rest.get(..topic_len).ok_or(MessageError::Short)?;
    let rest = &rest[topic_len..];
    let event = rest.get(..event_len).ok_or(MessageError::Short)?;
    Ok(Numbered { seq, topic, event, payload: &rest[event_len..] })
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
        assert_eq!(read, Numbered { seq: 42, topic, event: "bookmark_created", payload: r#"{"title":"1 2 3"}"# });
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
    }
}
