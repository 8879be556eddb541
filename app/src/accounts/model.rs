//! Account records as the store hands them to the accounts module. The rest of the app
//! sees only `User`.

use serde_json::{Value, json};

use super::{TokenHash, User};

/// A user with its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    /// `None` for token-only users made by `POST /api/users`.
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub avatar_path: Option<String>,
    pub inserted_at: String,
}

impl Account {
    /// The profile as the API shows it to its owner. `avatar_path` holds the avatar
    /// upload's key; the API shows where it is served.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.user.id,
            "username": self.user.username,
            "email": self.email,
            "display_name": self.display_name,
            "avatar_url": self.avatar_path.as_ref().map(|key| format!("/uploads/{key}")),
            "inserted_at": self.inserted_at,
        })
    }
}

/// How the new user's username is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernameChoice {
    /// Given by the user: taken means a validation error.
    Exact(String),
    /// Derived (from the email): the store appends a suffix until it is free.
    Derived(String),
}

/// A validated registration, its password already hashed.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub username: UsernameChoice,
}

/// A session to store.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: TokenHash,
    pub expires_at: String,
    pub user_agent: Option<String>,
}

/// An API token as listed to its owner: never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub name: String,
    pub inserted_at: String,
    pub last_used_at: Option<String>,
}

impl ApiTokenInfo {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "inserted_at": self.inserted_at,
            "last_used_at": self.last_used_at,
        })
    }
}

/// Whose a presented token is, and what kind of token it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub user: User,
    pub kind: TokenKind,
}

/// A token as the database resolved it: its owner, and when it stops being valid (a
/// session's `expires_at`; `None` for an API token, valid until revoked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedToken {
    pub owner: TokenOwner,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    Api { id: i64, last_used_at: Option<String> },
    Session { id: i64 },
}
