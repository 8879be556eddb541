//! Browser sessions: stored by the hash of their token, with an expiry.

use sqlx::{Any, Transaction};

use super::{Store, StoreError, conflict_as, now_timestamp};
use crate::accounts::{NewSession, TokenHash};

impl Store {
    /// Starts a session for a user (login), dropping that user's expired sessions in
    /// the same transaction so they do not pile up.
    pub async fn create_session(&self, user_id: i64, session: &NewSession) -> Result<(), StoreError> {
        let now = now_timestamp();
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_at <= $2")
            .bind(user_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        insert_session(&mut tx, user_id, session, &now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends the session with this token hash (logout). Whether there was one.
    pub async fn delete_session(&self, token: &TokenHash) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token.as_bytes())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

pub(super) async fn insert_session(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
    session: &NewSession,
    now: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (user_id, token_hash, inserted_at, expires_at, user_agent) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(session.token.as_bytes())
    .bind(now)
    .bind(&session.expires_at)
    .bind(&session.user_agent)
    .execute(&mut **tx)
    .await
    .map_err(conflict_as("session"))?;
    Ok(())
}
