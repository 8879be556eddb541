//! Bookmarks and tags in the database.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::{Store, StoreError, now_timestamp};
use crate::accounts::User;
use crate::bookmarks::{Bookmark, NewBookmark};

/// Tags travel as one column joined by the ASCII unit separator, which validation
/// never lets into a tag name.
const TAG_SEP: char = '\u{1f}';

const SELECT_BOOKMARK: &str = "SELECT b.id AS id, b.title AS title, b.description AS description, b.url AS url, \
     b.public AS public, b.inserted_at AS inserted_at, u.id AS user_id, u.username AS username, \
     (SELECT group_concat(t.name, char(31) ORDER BY bt.position) FROM bookmark_tags bt JOIN tags t ON t.id = bt.tag_id \
      WHERE bt.bookmark_id = b.id) AS tags \
     FROM bookmarks b JOIN users u ON u.id = b.user_id";

fn bookmark_from_row(row: &SqliteRow) -> Bookmark {
    let tags: Option<String> = row.get("tags");
    Bookmark {
        id: row.get("id"),
        title: row.get("title"),
        description: row.get("description"),
        url: row.get("url"),
        public: row.get::<i64, _>("public") != 0,
        inserted_at: row.get("inserted_at"),
        user: User { id: row.get("user_id"), username: row.get("username") },
        tags: tags.map(|t| t.split(TAG_SEP).map(str::to_owned).collect()).unwrap_or_default(),
    }
}

impl Store {
    /// Stores a validated bookmark with its tags; returns it once committed.
    pub async fn insert_bookmark(&self, owner: &User, new: &NewBookmark) -> Result<Bookmark, StoreError> {
        let now = now_timestamp();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO bookmarks (user_id, title, description, url, public, inserted_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(owner.id)
        .bind(&new.title)
        .bind(&new.description)
        .bind(&new.url)
        .bind(new.public)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await?
        .get("id");
        for (position, tag) in new.tags.iter().enumerate() {
            let tag_id = upsert_tag(&mut tx, tag).await?;
            sqlx::query("INSERT INTO bookmark_tags (bookmark_id, tag_id, position) VALUES (?, ?, ?)")
                .bind(id)
                .bind(tag_id)
                .bind(position as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Bookmark {
            id,
            title: new.title.clone(),
            description: new.description.clone(),
            url: new.url.clone(),
            public: new.public,
            tags: new.tags.clone(),
            user: owner.clone(),
            inserted_at: now,
        })
    }

    /// One bookmark, public or not.
    pub async fn bookmark(&self, id: i64) -> Result<Option<Bookmark>, StoreError> {
        let sql = format!("{SELECT_BOOKMARK} WHERE b.id = ?");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.read).await?;
        Ok(row.as_ref().map(bookmark_from_row))
    }

    /// Newest public bookmarks, optionally with a tag, strictly older than `before_id`.
    pub async fn recent_public(
        &self,
        tag: Option<&str>,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Bookmark>, StoreError> {
        let before = before_id.unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match tag {
            None => {
                let sql = format!("{SELECT_BOOKMARK} WHERE b.public = 1 AND b.id < ? ORDER BY b.id DESC LIMIT ?");
                sqlx::query(&sql).bind(before).bind(limit).fetch_all(&self.read).await?
            }
            Some(tag) => {
                let sql = format!(
                    "{SELECT_BOOKMARK} WHERE b.id IN (SELECT bt.bookmark_id FROM bookmark_tags bt \
                     JOIN tags t ON t.id = bt.tag_id WHERE t.name = ? AND bt.bookmark_id < ?) \
                     AND b.public = 1 ORDER BY b.id DESC LIMIT ?"
                );
                sqlx::query(&sql).bind(tag).bind(before).bind(limit).fetch_all(&self.read).await?
            }
        };
        Ok(rows.iter().map(bookmark_from_row).collect())
    }

    /// Deletes a bookmark (its tag links cascade). Returns whether a row was deleted.
    pub async fn delete_bookmark(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM bookmarks WHERE id = ?").bind(id).execute(&self.write).await?;
        Ok(done.rows_affected() > 0)
    }
}

async fn upsert_tag(tx: &mut Transaction<'_, Sqlite>, name: &str) -> Result<i64, StoreError> {
    // The conflict clause makes the insert a no-op for known tags; the unique index is
    // what guarantees one row per name.
    sqlx::query("INSERT INTO tags (name) VALUES (?) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    let id = sqlx::query("SELECT id FROM tags WHERE name = ?").bind(name).fetch_one(&mut **tx).await?.get("id");
    Ok(id)
}
