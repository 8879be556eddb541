//! Sending a chat message: the one path every sender takes — the `new_msg` push on
//! `room:<slug>`, `POST /api/rooms/<slug>/messages` and the room page's form. The body
//! is validated, the user's message budget spent, the attachment checked to be the
//! sender's own upload, and the message handed to the room's actor, which checks that
//! the sender may write there, stores it and broadcasts `new_message`.

use std::time::Duration;

use serde_json::Value;

use super::{ChatError, MessageBody};
use crate::accounts::User;
use crate::http::ApiError;
use crate::ratelimit::Action;
use crate::state::AppState;

/// A message as a sender gives it, before validation: `{"body": …, "attachment_id"?: …}`.
pub struct Outgoing<'a> {
    pub body: Option<&'a Value>,
    pub attachment_id: Option<&'a Value>,
}

impl<'a> Outgoing<'a> {
    /// The fields of a JSON object (a push payload or an HTTP body).
    pub fn from_fields(fields: &'a Value) -> Self {
        Self { body: fields.get("body"), attachment_id: fields.get("attachment_id") }
    }

    /// The fields of a `POST /api/rooms/<slug>/messages` body: the object under
    /// `"message"`, or the body itself.
    pub fn from_http_body(body: &'a Value) -> Result<Self, ApiError> {
        match body.get("message") {
            Some(inner @ Value::Object(_)) => Ok(Self::from_fields(inner)),
            Some(_) => Err(ApiError::BadRequest("\"message\" must be a JSON object".into())),
            None => Ok(Self::from_fields(body)),
        }
    }

    /// The body and the attachment id, checked in themselves (nothing spent, nothing
    /// looked up): `Invalid` says what is wrong.
    pub fn validate(&self) -> Result<(MessageBody, Option<i64>), SendError> {
        let body = match self.body {
            Some(Value::String(raw)) => MessageBody::parse(raw).map_err(|msg| SendError::Invalid(msg.to_owned()))?,
            _ => return Err(SendError::Invalid("body must be a string".to_owned())),
        };
        let attachment_id = match self.attachment_id {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(id) if id > 0 => Some(id),
                _ => return Err(SendError::Invalid("attachment_id must be a positive integer".to_owned())),
            },
        };
        Ok((body, attachment_id))
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The body or the attachment id is not acceptable; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// Over the user's message budget; try again after this long.
    #[error("rate_limited")]
    RateLimited(Duration),
    /// `attachment_id` is not one of the sender's uploads.
    #[error("attachment not found")]
    AttachmentNotFound,
    /// The room refused (not readable, busy, gone…).
    #[error(transparent)]
    Room(#[from] ChatError),
}

/// Validates and sends a message to room `slug` as `user`; the new message's id.
pub async fn send(state: &AppState, slug: &str, user: &User, outgoing: Outgoing<'_>) -> Result<i64, SendError> {
    let (body, attachment_id) = outgoing.validate()?;
    state.limits.check(Action::Message, user.id).map_err(SendError::RateLimited)?;
    let attachment = match attachment_id {
        None => None,
        // Only the sender's own uploads: an id is guessable, an upload is not theirs to share.
        Some(id) => match state.store.own_upload(id, user.id).await {
            Ok(Some(upload)) => Some(upload),
            Ok(None) => return Err(SendError::AttachmentNotFound),
            Err(err) => {
                tracing::error!(%err, "cannot read upload");
                return Err(SendError::Room(ChatError::Internal));
            }
        },
    };
    Ok(state.rooms.post(slug, user.clone(), body, attachment).await?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn outgoing_messages_are_checked_before_anything_is_spent() {
        let body = json!({"message": {"body": "  hi ", "attachment_id": 3}});
        let (text, attachment) = Outgoing::from_http_body(&body).unwrap().validate().unwrap();
        assert_eq!((text.as_str(), attachment), ("hi", Some(3)));
        let flat = json!({"body": "x", "attachment_id": null});
        assert_eq!(Outgoing::from_http_body(&flat).unwrap().validate().unwrap().1, None);
        assert!(matches!(Outgoing::from_http_body(&json!({"message": "x"})), Err(ApiError::BadRequest(_))));
        for bad in [json!({"body": 1}), json!({"body": " "}), json!({"body": "x", "attachment_id": 0})] {
            let outgoing = Outgoing::from_http_body(&bad).unwrap();
            assert!(matches!(outgoing.validate(), Err(SendError::Invalid(_))), "{bad}");
        }
    }
}
