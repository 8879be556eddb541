//! Users and API tokens in the database.

use sqlx::Row;

use super::{Store, StoreError, conflict_as, now_timestamp};
use crate::accounts::{TokenHash, User};

impl Store {
    /// Creates a user and its first API token in one transaction.
    pub async fn create_user(&self, username: &str, token: &TokenHash) -> Result<User, StoreError> {
        let now = now_timestamp();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query("INSERT INTO users (username, inserted_at) VALUES (?, ?) RETURNING id")
            .bind(username)
            .bind(&now)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict_as("username"))?
            .get(0);
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, inserted_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(token.as_bytes())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(conflict_as("token"))?;
        tx.commit().await?;
        Ok(User { id, username: username.to_owned() })
    }

    /// The user owning the token with this hash.
    pub async fn user_by_token(&self, token: &TokenHash) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.username FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
        )
        .bind(token.as_bytes())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| User { id: r.get(0), username: r.get(1) }))
    }
}
