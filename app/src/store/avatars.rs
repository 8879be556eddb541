//! A user's avatar: one of their own image uploads, by its public key.

use sqlx::Row;

use super::{Store, StoreError};

/// Why an upload cannot become an avatar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvatarRefusal {
    /// No such upload, or someone else's (indistinguishable on purpose).
    NotYours,
    NotAnImage,
}

impl Store {
    /// Sets (or with `None` clears) the avatar of `user_id` to upload `upload_id`.
    pub async fn set_avatar(
        &self,
        user_id: i64,
        upload_id: Option<i64>,
    ) -> Result<Result<(), AvatarRefusal>, StoreError> {
        let mut tx = self.write.begin().await?;
        let key = match upload_id {
            None => None,
            Some(id) => {
                let row = sqlx::query("SELECT public_id, content_type FROM uploads WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else { return Ok(Err(AvatarRefusal::NotYours)) };
                let content_type: String = row.get("content_type");
                if !content_type.starts_with("image/") {
                    return Ok(Err(AvatarRefusal::NotAnImage));
                }
                Some(row.get::<String, _>("public_id"))
            }
        };
        sqlx::query("UPDATE users SET avatar_path = $1 WHERE id = $2")
            .bind(key)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}
