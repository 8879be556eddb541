//! `bookmarks:firehose` and `bookmarks:tag:<tag>`: receive-only streams of bookmark
//! events. Joining subscribes; client events other than `ping` are refused.

use serde_json::Value;
use serde_json::value::RawValue;

use super::channel::{Ctx, JoinGrant};

pub async fn join(_ctx: &Ctx<'_>, _topic: &str, _payload: &RawValue) -> Result<JoinGrant, Value> {
    Ok(JoinGrant::subscribe())
}
