//! Upload metadata in the database; the files themselves are `uploads::UploadDir`'s.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError, conflict_as, now_timestamp};
use crate::uploads::{Kind, NewUpload, Upload, UploadKey};

const COLUMNS: &str = "id, public_id, user_id, content_type, size, original_name, sha256, inserted_at";

/// A row as an `Upload`; the CHECK constraints make a bad key or type impossible, but
/// one would be a decode error, not a panic.
fn upload_from_row(row: &SqliteRow) -> Result<Upload, StoreError> {
    let decode = |what: String| StoreError::Database(sqlx::Error::Decode(what.into()));
    let key: String = row.get(1);
    let content_type: String = row.get(3);
    Ok(Upload {
        id: row.get(0),
        key: UploadKey::parse(&key).ok_or_else(|| decode(format!("bad upload key {key:?}")))?,
        user_id: row.get(2),
        kind: Kind::from_content_type(&content_type)
            .ok_or_else(|| decode(format!("bad upload content type {content_type:?}")))?,
        size: row.get(4),
        original_name: row.get(5),
        sha256: row.get(6),
        inserted_at: row.get(7),
    })
}

impl Store {
    /// Records a stored upload; returns it once committed.
    pub async fn insert_upload(&self, user_id: i64, new: &NewUpload) -> Result<Upload, StoreError> {
        let sql = format!(
            "INSERT INTO uploads (public_id, user_id, content_type, size, original_name, sha256, inserted_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.key.as_str())
            .bind(user_id)
            .bind(new.kind.content_type())
            .bind(new.size)
            .bind(&new.original_name)
            .bind(&new.sha256)
            .bind(now_timestamp())
            .fetch_one(&self.write)
            .await
            .map_err(conflict_as("upload"))?;
        upload_from_row(&row)
    }

    pub async fn upload_by_key(&self, key: &UploadKey) -> Result<Option<Upload>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM uploads WHERE public_id = ?");
        let row = sqlx::query(&sql).bind(key.as_str()).fetch_optional(&self.read).await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    /// Deletes upload `id` if `user_id` owns it; the deleted upload, `None` otherwise.
    pub async fn delete_upload(&self, id: i64, user_id: i64) -> Result<Option<Upload>, StoreError> {
        let sql = format!("DELETE FROM uploads WHERE id = ? AND user_id = ? RETURNING {COLUMNS}");
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(&sql).bind(id).bind(user_id).fetch_optional(&mut *tx).await?;
        let deleted = row.as_ref().map(upload_from_row).transpose()?;
        if let Some(upload) = &deleted {
            // An avatar never points at a file that is gone.
            sqlx::query("UPDATE users SET avatar_path = NULL WHERE avatar_path = ?")
                .bind(upload.key.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
