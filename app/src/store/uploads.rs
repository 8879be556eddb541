//! Upload metadata in the database; the files themselves are `uploads::UploadDir`'s.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, conflict_as, now_timestamp};
use crate::uploads::{Kind, NewUpload, Upload, UploadKey};

/// The columns `upload_from_row` reads, in a SELECT of `uploads` alone.
pub(super) const COLUMNS: &str = "id, public_id, user_id, content_type, size, original_name, sha256, inserted_at";

/// An upload from a row that has the `uploads` columns named `<prefix><column>` (a
/// prefix such as `up_` tells them apart in a join). The CHECK constraints make a bad
/// key or type impossible, but one would be a decode error, not a panic.
pub(super) fn upload_from_row(row: &AnyRow, prefix: &str) -> Result<Upload, StoreError> {
    let column = |name: &str| format!("{prefix}{name}");
    let decode = |what: String| StoreError::Database(sqlx::Error::Decode(what.into()));
    let key: String = row.try_get(column("public_id").as_str())?;
    let content_type: String = row.try_get(column("content_type").as_str())?;
    Ok(Upload {
        id: row.try_get(column("id").as_str())?,
        key: UploadKey::parse(&key).ok_or_else(|| decode(format!("bad upload key {key:?}")))?,
        user_id: row.try_get(column("user_id").as_str())?,
        kind: Kind::from_content_type(&content_type)
            .ok_or_else(|| decode(format!("bad upload content type {content_type:?}")))?,
        size: row.try_get(column("size").as_str())?,
        original_name: row.try_get(column("original_name").as_str())?,
        sha256: row.try_get(column("sha256").as_str())?,
        inserted_at: row.try_get(column("inserted_at").as_str())?,
    })
}

impl Store {
    /// Records a stored upload if it keeps `user_id` within `quota` bytes stored in all
    /// (`None`: no quota); returns it once committed, or `None` when it would not fit.
    /// The sum and the insert are one statement on the one write connection, so
    /// concurrent uploads cannot both squeeze under the quota.
    pub async fn insert_upload(
        &self,
        user_id: i64,
        new: &NewUpload,
        quota: Option<u64>,
    ) -> Result<Option<Upload>, StoreError> {
        let sql = format!(
            "INSERT INTO uploads (public_id, user_id, content_type, size, original_name, sha256, inserted_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE $8 IS NULL OR (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads WHERE user_id = $2) + $4 <= $8 \
             RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.key.as_str())
            .bind(user_id)
            .bind(new.kind.content_type())
            .bind(new.size)
            .bind(&new.original_name)
            .bind(&new.sha256)
            .bind(now_timestamp())
            .bind(quota.map(|q| i64::try_from(q).unwrap_or(i64::MAX)))
            .fetch_optional(&self.write)
            .await
            .map_err(conflict_as("upload"))?;
        row.as_ref().map(|r| upload_from_row(r, "")).transpose()
    }

    /// Bytes of uploads `user_id` has stored.
    pub async fn uploaded_bytes(&self, user_id: i64) -> Result<u64, StoreError> {
        let used: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(&self.read)
                .await?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    /// The key and type of every recorded upload: the files that belong on disk.
    pub async fn upload_files(&self) -> Result<Vec<(UploadKey, Kind)>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM uploads");
        let rows = sqlx::query(&sql).fetch_all(&self.read).await?;
        rows.iter().map(|r| upload_from_row(r, "").map(|u| (u.key, u.kind))).collect()
    }

    pub async fn upload_by_key(&self, key: &UploadKey) -> Result<Option<Upload>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM uploads WHERE public_id = $1");
        let row = sqlx::query(&sql).bind(key.as_str()).fetch_optional(&self.read).await?;
        row.as_ref().map(|r| upload_from_row(r, "")).transpose()
    }

    /// Deletes upload `id` if `user_id` owns it; the deleted upload, `None` otherwise.
    pub async fn delete_upload(&self, id: i64, user_id: i64) -> Result<Option<Upload>, StoreError> {
        let sql = format!("DELETE FROM uploads WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}");
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(&sql).bind(id).bind(user_id).fetch_optional(&mut *tx).await?;
        let deleted = row.as_ref().map(|r| upload_from_row(r, "")).transpose()?;
        if let Some(upload) = &deleted {
            // An avatar never points at a file that is gone.
            sqlx::query("UPDATE users SET avatar_path = NULL WHERE avatar_path = $1")
                .bind(upload.key.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
