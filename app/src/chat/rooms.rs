//! The chat domain: rooms, memberships and messages as the rest of the app sees them,
//! their JSON forms, and the validation of every request that makes or changes one.
//! Every rule lives here; a `NewRoom`, `RoomPatch` or `MessageBody` is known good.

use serde_json::{Map, Value, json};

use crate::accounts::User;
use crate::http::ApiError;
use crate::uploads::Upload;
use crate::validation::{FieldErrors, Invalid};

pub const MAX_NAME: usize = 80;
pub const MAX_SLUG: usize = 64;
pub const MAX_DESCRIPTION: usize = 1000;
/// Longest message body, in characters, after trimming.
pub const MAX_BODY: usize = 4000;

/// A chat room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub private: bool,
    pub creator_id: i64,
    pub inserted_at: String,
    pub updated_at: String,
}

impl Room {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "description": self.description,
            "private": self.private,
            "creator_id": self.creator_id,
            "inserted_at": self.inserted_at,
            "updated_at": self.updated_at,
        })
    }

    /// The room's channel topic.
    pub fn topic(&self) -> String {
        topic(&self.slug)
    }
}

/// `room:<slug>`.
pub fn topic(slug: &str) -> String {
    format!("room:{slug}")
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A member of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub joined_at: String,
}

impl Member {
    pub fn to_json(&self) -> Value {
        json!({
            "user": user_json(&self.user),
            "role": self.role.as_str(),
            "joined_at": self.joined_at,
        })
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub room_id: i64,
    pub user: User,
    pub body: String,
    pub attachment: Option<Upload>,
    pub inserted_at: String,
}

impl Message {
    /// `{id, body, user: {id, username}, attachment?, inserted_at}`; the `attachment`
    /// key is present only when the message has one.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "body": self.body,
            "user": user_json(&self.user),
            "inserted_at": self.inserted_at,
        });
        if let Some(upload) = &self.attachment {
            v["attachment"] = upload.to_json();
        }
        v
    }
}

/// `{id, username}`: how chat payloads name a user.
pub fn user_json(user: &User) -> Value {
    json!({ "id": user.id, "username": user.username })
}

/// Whether `slug` is a valid room slug: 1–64 of `[a-z0-9-]`.
pub fn valid_slug(slug: &str) -> bool {
    (1..=MAX_SLUG).contains(&slug.len()) && slug.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

/// A slug made from a room name: ASCII letters and digits lowercased, every other run
/// of characters one `-`, no `-` at either end. `None` when nothing is left (a name
/// with no ASCII letter or digit needs an explicit slug).
pub fn derive_slug(name: &str) -> Option<String> {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if slug.len() == MAX_SLUG {
                break;
            }
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') && slug.len() < MAX_SLUG {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    (!slug.is_empty()).then_some(slug)
}

/// A validated room to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    pub name: String,
    pub slug: String,
    pub description: String,
    pub private: bool,
}

impl NewRoom {
    /// Validates `{"room": {name, slug?, description?, private?}}` (the fields may also
    /// be given at the top level): 400 for a wrong envelope, 422 with every failing
    /// field otherwise.
    pub fn from_body(body: &Value) -> Result<Self, Invalid> {
        let fields = envelope(body)?;
        let mut errors = FieldErrors::default();
        let name = text(fields, "name", MAX_NAME, true, &mut errors);
        let description = text(fields, "description", MAX_DESCRIPTION, false, &mut errors).unwrap_or_default();
        let private = flag(fields, "private", &mut errors).unwrap_or(false);
        let slug = match fields.get("slug") {
            None | Some(Value::Null) => match name.as_deref().map(derive_slug) {
                Some(Some(slug)) => Some(slug),
                Some(None) => {
                    errors.add("slug", "can't be derived from the name; give one of [a-z0-9-]");
                    None
                }
                None => None,
            },
            Some(Value::String(s)) if valid_slug(s) => Some(s.clone()),
            Some(_) => {
                errors.add("slug", format!("must be 1 to {MAX_SLUG} characters of a-z, 0-9 and -"));
                None
            }
        };
        match (name, slug) {
            (Some(name), Some(slug)) if errors.is_empty() => Ok(NewRoom { name, slug, description, private }),
            _ => Err(Invalid::Fields(errors)),
        }
    }
}

/// A validated change to a room. The slug cannot change: it names the room's topic,
/// which clients have joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub private: Option<bool>,
}

impl RoomPatch {
    pub fn from_body(body: &Value) -> Result<Self, Invalid> {
        let fields = envelope(body)?;
        let mut errors = FieldErrors::default();
        if fields.contains_key("slug") {
            errors.add("slug", "can't be changed");
        }
        let name = fields.contains_key("name").then(|| text(fields, "name", MAX_NAME, true, &mut errors)).flatten();
        let description = fields
            .contains_key("description")
            .then(|| text(fields, "description", MAX_DESCRIPTION, false, &mut errors).unwrap_or_default());
        let private = flag(fields, "private", &mut errors);
        if errors.is_empty() { Ok(RoomPatch { name, description, private }) } else { Err(Invalid::Fields(errors)) }
    }
}

/// Who an invitation names: `{"username": …}` (trimmed) or `{"user_id": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invitee {
    Username(String),
    Id(i64),
}

impl Invitee {
    /// 422 when neither is given; a `user_id` that is not a 64-bit integer names no
    /// user (404).
    pub fn from_body(body: &Value) -> Result<Self, ApiError> {
        match (body.get("username"), body.get("user_id")) {
            (Some(Value::String(name)), _) => Ok(Invitee::Username(name.trim().to_owned())),
            (_, Some(Value::Number(id))) => id.as_i64().map(Invitee::Id).ok_or(ApiError::NotFound("no such user")),
            _ => Err(ApiError::field("username", "give a username (string) or a user_id (integer)")),
        }
    }
}

/// A message body: trimmed, 1 to 4,000 characters, otherwise verbatim (HTML is text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let body = raw.trim();
        if body.is_empty() {
            return Err("body can't be blank");
        }
        if body.chars().count() > MAX_BODY {
            return Err("body is longer than 4000 characters");
        }
        if body.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err("body must not contain control characters other than line breaks and tabs");
        }
        Ok(Self(body.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn envelope(body: &Value) -> Result<&Map<String, Value>, Invalid> {
    match body.get("room") {
        Some(Value::Object(fields)) => Ok(fields),
        Some(_) => Err(Invalid::Shape("\"room\" must be a JSON object".into())),
        None => body.as_object().ok_or_else(|| Invalid::Shape("request body must be a JSON object".into())),
    }
}

/// A trimmed string field of at most `max` characters; `required` refuses absence and
/// blanks.
fn text(
    fields: &Map<String, Value>,
    name: &str,
    max: usize,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<String> {
    match fields.get(name) {
        None | Some(Value::Null) if required => {
            errors.add(name, "can't be blank");
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let s = s.trim();
            if required && s.is_empty() {
                errors.add(name, "can't be blank");
                None
            } else if s.chars().count() > max {
                errors.add(name, format!("must be at most {max} characters"));
                None
            } else {
                Some(s.to_owned())
            }
        }
        Some(_) => {
            errors.add(name, "must be a string");
            None
        }
    }
}

fn flag(fields: &Map<String, Value>, name: &str, errors: &mut FieldErrors) -> Option<bool> {
    match fields.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.add(name, "must be true or false");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(derive_slug("Rust Lang!! 2024").as_deref(), Some("rust-lang-2024"));
        assert_eq!(derive_slug("  --Hello--  ").as_deref(), Some("hello"));
        assert_eq!(derive_slug("日本語"), None);
        assert_eq!(derive_slug(&"a".repeat(100)).map(|s| s.len()), Some(MAX_SLUG));
        assert!(valid_slug("a-b-9"));
        assert!(!valid_slug("A"));
        assert!(!valid_slug(""));
        assert!(!valid_slug("a/b"));
        assert!(!valid_slug(&"a".repeat(65)));
    }

    #[test]
    fn new_room() {
        let r = NewRoom::from_body(&json!({"room": {"name": " General ", "private": true}})).unwrap();
        assert_eq!((r.name.as_str(), r.slug.as_str(), r.private), ("General", "general", true));
        assert!(matches!(NewRoom::from_body(&json!({"name": "x", "slug": "Bad"})), Err(Invalid::Fields(_))));
        assert!(matches!(NewRoom::from_body(&json!({"name": "★"})), Err(Invalid::Fields(_))));
        assert!(matches!(NewRoom::from_body(&json!({"room": 3})), Err(Invalid::Shape(_))));
        assert!(matches!(RoomPatch::from_body(&json!({"slug": "x"})), Err(Invalid::Fields(_))));
    }

    #[test]
    fn bodies() {
        assert_eq!(MessageBody::parse("  hi ").unwrap().as_str(), "hi");
        assert!(MessageBody::parse(" \n ").is_err());
        assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
        assert!(MessageBody::parse("a\u{0}b").is_err());
        assert!(MessageBody::parse("line one\nline two\ttab").is_ok());
        assert!(MessageBody::parse(&"é".repeat(4001)).is_err());
        assert_eq!(MessageBody::parse("<script>x</script>").unwrap().as_str(), "<script>x</script>");
    }

    #[test]
    fn invitees() {
        assert_eq!(Invitee::from_body(&json!({"username": " bob "})).unwrap(), Invitee::Username("bob".into()));
        assert_eq!(Invitee::from_body(&json!({"user_id": 7, "username": 1})).unwrap(), Invitee::Id(7));
        assert!(matches!(Invitee::from_body(&json!({"user_id": 1.5})), Err(ApiError::NotFound(_))));
        assert!(matches!(Invitee::from_body(&json!({"user_id": "7"})), Err(ApiError::Validation(_))));
    }
}
