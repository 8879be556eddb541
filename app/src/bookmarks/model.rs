//! The stored bookmark and its two outward shapes (API JSON, broadcast payload).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::User;
use crate::wire::{BookmarkEvent, BookmarkUser};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub url: String,
    pub public: bool,
    /// Normalised, in the order given.
    pub tags: Vec<String>,
    pub user: User,
    pub inserted_at: String,
}

impl Bookmark {
    /// The JSON API representation.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "url": self.url,
            "public": self.public,
            "tags": self.tags,
            "user": {"id": self.user.id, "username": self.user.username},
            "inserted_at": self.inserted_at,
        })
    }

    /// Reads back what [`Bookmark::to_json`] wrote (another node's bookmark).
    pub fn from_json(value: &Value) -> Option<Bookmark> {
        #[derive(serde::Deserialize)]
        struct Json {
            id: i64,
            title: String,
            description: String,
            url: String,
            public: bool,
            tags: Vec<String>,
            user: JsonUser,
            inserted_at: String,
        }
        #[derive(serde::Deserialize)]
        struct JsonUser {
            id: i64,
            username: String,
        }
        let b = Json::deserialize(value).ok()?;
        Some(Bookmark {
            id: b.id,
            title: b.title,
            description: b.description,
            url: b.url,
            public: b.public,
            tags: b.tags,
            user: User { id: b.user.id, username: b.user.username },
            inserted_at: b.inserted_at,
        })
    }

    /// The broadcast payload for a topic whose next sequence number is `seq`.
    pub fn to_event(&self) -> BookmarkEvent {
        BookmarkEvent {
            id: self.id,
            title: self.title.clone(),
            description: self.description.clone(),
            url: self.url.clone(),
            tags: self.tags.clone(),
            user: BookmarkUser { id: self.user.id, username: self.user.username.clone() },
            inserted_at: self.inserted_at.clone(),
        }
    }
}
