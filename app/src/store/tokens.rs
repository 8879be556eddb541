//! Presented tokens (API tokens and session tokens) resolved to their user, and the
//! API tokens a user manages.

use sqlx::Row;

use super::{Store, StoreError, conflict_as, now_timestamp};
use crate::accounts::{ApiTokenInfo, ResolvedToken, TokenHash, TokenKind, TokenOwner, User};

impl Store {
    /// Whose token this is: an API token, or a session that has not expired by `now`
    /// (with its expiry). One indexed lookup per table; the token cache
    /// (`accounts::TokenCache`) keeps it off most authenticated requests.
    pub async fn resolve_token(&self, token: &TokenHash, now: &str) -> Result<Option<ResolvedToken>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id AS user_id, u.username AS username, 0 AS is_session, t.id AS token_id, \
             t.last_used_at AS last_used_at, NULL AS expires_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 \
             UNION ALL \
             SELECT u.id, u.username, 1, s.id, NULL, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $2 AND s.expires_at > $3 \
             LIMIT 1",
        )
        .bind(token.as_bytes())
        .bind(token.as_bytes())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| {
            let user = User { id: r.get("user_id"), username: r.get("username") };
            let kind = if r.get::<i64, _>("is_session") == 0 {
                TokenKind::Api { id: r.get("token_id"), last_used_at: r.get("last_used_at") }
            } else {
                TokenKind::Session { id: r.get("token_id") }
            };
            ResolvedToken { owner: TokenOwner { user, kind }, expires_at: r.get("expires_at") }
        }))
    }

    /// Records a use of an API token, unless one at or after `since` is recorded already.
    pub async fn touch_api_token(&self, id: i64, now: &str, since: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(since)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Adds a named API token for a user; `None` when the user already has `max`.
    pub async fn create_api_token(
        &self,
        user_id: i64,
        name: &str,
        token: &TokenHash,
        max: i64,
    ) -> Result<Option<ApiTokenInfo>, StoreError> {
        let now = now_timestamp();
        let mut tx = self.write.begin().await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        if count >= max {
            return Ok(None);
        }
        let id: i64 = sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, inserted_at, name) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user_id)
        .bind(token.as_bytes())
        .bind(&now)
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("token"))?
        .get("id");
        tx.commit().await?;
        Ok(Some(ApiTokenInfo { id, name: name.to_owned(), inserted_at: now, last_used_at: None }))
    }

    /// A user's API tokens, oldest first.
    pub async fn api_tokens(&self, user_id: i64) -> Result<Vec<ApiTokenInfo>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, inserted_at, last_used_at FROM api_tokens WHERE user_id = $1 ORDER BY id")
                .bind(user_id)
                .fetch_all(&self.read)
                .await?;
        Ok(rows
            .iter()
            .map(|r| ApiTokenInfo {
                id: r.get("id"),
                name: r.get("name"),
                inserted_at: r.get("inserted_at"),
                last_used_at: r.get("last_used_at"),
            })
            .collect())
    }

    /// Revokes (deletes) one of the user's API tokens. Whether it was theirs and existed.
    pub async fn delete_api_token(&self, user_id: i64, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
