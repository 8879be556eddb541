//! Users: token-only users (`POST /api/users`), registered accounts, profiles and
//! password changes.

use rand::Rng;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::sessions::insert_session;
use super::{Store, StoreError, conflict_as, now_timestamp};
use crate::accounts::{Account, NewAccount, NewSession, TokenHash, User, UsernameChoice};

const SELECT_ACCOUNT: &str = "SELECT id, username, email, display_name, avatar_path, inserted_at FROM users";

fn account_from_row(row: &AnyRow) -> Account {
    Account {
        user: User { id: row.get("id"), username: row.get("username") },
        email: row.get("email"),
        display_name: row.get("display_name"),
        avatar_path: row.get("avatar_path"),
        inserted_at: row.get("inserted_at"),
    }
}

impl Store {
    /// Creates a user and its first API token in one transaction.
    pub async fn create_user(&self, username: &str, token: &TokenHash) -> Result<User, StoreError> {
        let now = now_timestamp();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query("INSERT INTO users (username, inserted_at) VALUES ($1, $2) RETURNING id")
            .bind(username)
            .bind(&now)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict_as("username"))?
            .get("id");
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, inserted_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(token.as_bytes())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(conflict_as("token"))?;
        tx.commit().await?;
        Ok(User { id, username: username.to_owned() })
    }

    /// Creates a registered user and its first session in one transaction.
    /// `Conflict("email")` / `Conflict("username")` when taken.
    pub async fn register(&self, new: &NewAccount, session: &NewSession) -> Result<Account, StoreError> {
        let now = now_timestamp();
        // All writes go through one connection, so nothing can slip in between these
        // checks and the insert; the unique indexes stay the final word regardless.
        let mut tx = self.write.begin().await?;
        if exists(&mut tx, "SELECT 1 FROM users WHERE email = $1", &new.email).await? {
            return Err(StoreError::Conflict("email"));
        }
        let username = match &new.username {
            UsernameChoice::Exact(name) => {
                if exists(&mut tx, "SELECT 1 FROM users WHERE username = $1", name).await? {
                    return Err(StoreError::Conflict("username"));
                }
                name.clone()
            }
            UsernameChoice::Derived(base) => free_username(&mut tx, base).await?,
        };
        let id: i64 = sqlx::query(
            "INSERT INTO users (username, email, password_hash, display_name, inserted_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&username)
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(&new.display_name)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("email"))?
        .get("id");
        insert_session(&mut tx, id, session, &now).await?;
        tx.commit().await?;
        Ok(Account {
            user: User { id, username },
            email: Some(new.email.clone()),
            display_name: Some(new.display_name.clone()),
            avatar_path: None,
            inserted_at: now,
        })
    }

    /// The account with this (lowercased) email and its password hash, if any.
    pub async fn account_by_email(&self, email: &str) -> Result<Option<(Account, Option<String>)>, StoreError> {
        let sql = "SELECT id, username, email, display_name, avatar_path, inserted_at, password_hash \
                   FROM users WHERE email = $1";
        let row = sqlx::query(sql).bind(email).fetch_optional(&self.read).await?;
        Ok(row.map(|r| (account_from_row(&r), r.get("password_hash"))))
    }

    pub async fn account(&self, user_id: i64) -> Result<Option<Account>, StoreError> {
        let sql = format!("{SELECT_ACCOUNT} WHERE id = $1");
        let row = sqlx::query(&sql).bind(user_id).fetch_optional(&self.read).await?;
        Ok(row.as_ref().map(account_from_row))
    }

    /// The user's password hash; `None` for token-only users.
    pub async fn password_hash(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.and_then(|r| r.get("password_hash")))
    }

    /// Sets a new password hash and ends every session of the user, then (when given)
    /// starts the one replacing the caller's — all or nothing.
    pub async fn change_password(
        &self,
        user_id: i64,
        password_hash: &str,
        replacement: Option<&NewSession>,
    ) -> Result<(), StoreError> {
        let now = now_timestamp();
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        if let Some(session) = replacement {
            insert_session(&mut tx, user_id, session, &now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets the display name; the updated account, `None` if the user is gone.
    pub async fn set_display_name(&self, user_id: i64, display_name: &str) -> Result<Option<Account>, StoreError> {
        let sql = "UPDATE users SET display_name = $1 WHERE id = $2 \
                   RETURNING id, username, email, display_name, avatar_path, inserted_at";
        let row = sqlx::query(sql).bind(display_name).bind(user_id).fetch_optional(&self.write).await?;
        Ok(row.as_ref().map(account_from_row))
    }
}

async fn exists(tx: &mut Transaction<'_, Any>, sql: &str, value: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query(sql).bind(value).fetch_optional(&mut **tx).await?.is_some())
}

/// `base`, else `base_2` … `base_20`, else `base_<random>`: the first one not taken.
async fn free_username(tx: &mut Transaction<'_, Any>, base: &str) -> Result<String, StoreError> {
    let sequential = std::iter::once(base.to_owned()).chain((2..=20).map(|n| format!("{base}_{n}")));
    let random = (0..20).map(|_| format!("{base}_{}", rand::rng().random_range(21..10_000_000)));
    for candidate in sequential.chain(random) {
        if !exists(tx, "SELECT 1 FROM users WHERE username = $1", &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(StoreError::Conflict("username"))
}
