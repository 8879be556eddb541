//! Rejoining without loss: a join may carry `since: {seq, epoch}` (or `since: null` to
//! learn the topic's position), and the reply replays every event broadcast after that
//! `seq` (`{recovered, epoch, seq, missed: [{event, payload}]}`). Churned, stormed and
//! ramped listeners all rejoin this way.

use std::time::Instant;

use firehose_app::wire::{self, Vsn};
use serde::{Deserialize, Serialize};

/// The `since` join parameter: absent (plain join), `null` (tell me where the topic
/// is) or a position to replay from.
#[derive(Debug, Serialize)]
pub struct JoinParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Option<Since<'a>>>,
}

impl JoinParams<'_> {
    /// No `since`: an ordinary join.
    pub const PLAIN: JoinParams<'static> = JoinParams { since: None };
    /// `since: null`: join and learn the topic's position.
    pub const POSITION: JoinParams<'static> = JoinParams { since: Some(None) };

    /// Replay everything after `seq` of `epoch` (or only learn the position when
    /// either is unknown).
    pub fn after<'a>(seq: Option<u64>, epoch: Option<&'a str>) -> JoinParams<'a> {
        JoinParams { since: Some(seq.zip(epoch).map(|(seq, epoch)| Since { seq, epoch })) }
    }
}

#[derive(Debug, Serialize)]
pub struct Since<'a> {
    pub seq: u64,
    pub epoch: &'a str,
}

/// Where a topic stood when a join with `since` was answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Position {
    #[serde(default)]
    pub epoch: Option<String>,
    #[serde(default)]
    pub seq: Option<u64>,
}

impl Position {
    /// The position in a join reply's response (empty for a plain join's).
    pub fn of(response: &serde_json::Value) -> Position {
        Position {
            epoch: response.get("epoch").and_then(|e| e.as_str()).map(str::to_owned),
            seq: response.get("seq").and_then(serde_json::Value::as_u64),
        }
    }
}

#[derive(Deserialize)]
struct Recovery {
    #[serde(default)]
    recovered: bool,
    #[serde(default)]
    missed: Vec<Missed>,
}

#[derive(Deserialize)]
struct Missed {
    event: String,
    payload: Box<serde_json::value::RawValue>,
}

/// Feeds the events a rejoin reply replays to `deliver`, as broadcast frames on `topic`
/// received now; how many, or `None` when the server could not recover the gap.
pub fn replay(
    topic: &str,
    response: serde_json::Value,
    deliver: &mut (dyn FnMut(&str, Instant) + Send),
) -> Option<u64> {
    let recovery: Recovery = serde_json::from_value(response).ok()?;
    let at = Instant::now();
    for m in &recovery.missed {
        let text = wire::encode_text(Vsn::V2, None, None, topic, &m.event, &*m.payload);
        deliver(&text, at);
    }
    recovery.recovered.then_some(recovery.missed.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_serialises_as_phoenix_expects() {
        assert_eq!(serde_json::to_string(&JoinParams::PLAIN).unwrap(), "{}");
        assert_eq!(serde_json::to_string(&JoinParams::POSITION).unwrap(), r#"{"since":null}"#);
        let p = JoinParams::after(Some(7), Some("e1"));
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"since":{"seq":7,"epoch":"e1"}}"#);
        assert_eq!(serde_json::to_string(&JoinParams::after(Some(7), None)).unwrap(), r#"{"since":null}"#);
    }

    #[test]
    fn a_reply_replays_its_missed_events() {
        let response = serde_json::json!({"recovered": true, "epoch": "e", "seq": 9,
            "missed": [{"event": "bookmark_created", "payload": {"seq": 8}}, {"event": "bookmark_created", "payload": {"seq": 9}}]});
        assert_eq!(Position::of(&response), Position { epoch: Some("e".into()), seq: Some(9) });
        let mut frames = Vec::new();
        assert_eq!(replay("t", response, &mut |text, _| frames.push(text.to_owned())), Some(2));
        assert!(frames[1].contains(r#""seq":9"#) && frames[0].contains("bookmark_created"), "{frames:?}");
        assert_eq!(replay("t", serde_json::json!({"recovered": false, "missed": []}), &mut |_, _| {}), None);
    }
}
