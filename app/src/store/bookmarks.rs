//! Bookmarks and tags in the database.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::writer::{Change, WriteOp, Writer};
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
}

impl Writer {
    /// Stores a validated bookmark with its tags; returns it once committed (and, when
    /// public, cached and published).
    pub async fn insert_bookmark(&self, owner: &User, new: &NewBookmark) -> Result<Arc<Bookmark>, StoreError> {
        self.write(InsertBookmark { owner: owner.clone(), new: new.clone() }).await
    }

    /// Deletes a bookmark (its tag links and likes cascade). Returns whether a row was
    /// deleted (then it is uncached and its deletion published).
    pub async fn delete_bookmark(&self, bookmark: Arc<Bookmark>) -> Result<bool, StoreError> {
        self.write(DeleteBookmark(bookmark)).await
    }
}

struct InsertBookmark {
    owner: User,
    new: NewBookmark,
}

impl WriteOp for InsertBookmark {
    type Output = Arc<Bookmark>;

    fn apply<'c>(&'c self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Result<Arc<Bookmark>, StoreError>> {
        Box::pin(async move {
            let mut created = insert_bookmarks(conn, &[(&self.owner, &self.new)]).await?;
            created.pop().ok_or_else(|| StoreError::Commit("the bookmark was not inserted".to_owned()))
        })
    }

    fn as_bookmark(&self) -> Option<(&User, &NewBookmark)> {
        Some((&self.owner, &self.new))
    }

    fn bulk_output(&self, bookmark: Arc<Bookmark>) -> Option<Arc<Bookmark>> {
        Some(bookmark)
    }

    fn change(&self, bookmark: &Arc<Bookmark>) -> Option<Change> {
        Some(Change::BookmarkCreated(bookmark.clone()))
    }
}

/// Bookmarks in three statements, whatever their number and tags: new tag names, the
/// bookmarks, their tag links (each travels as one JSON array). Every statement is a
/// round trip to the connection's thread, so a batch of 50 bookmarks costs 3 of them
/// instead of 150. The bookmarks come back in the order given: the ids
/// of one `INSERT … SELECT … ORDER BY` are handed out in that order (AUTOINCREMENT:
/// each larger than any before), so the returned ids sorted are the rows in order.
pub(super) async fn insert_bookmarks(
    conn: &mut SqliteConnection,
    items: &[(&User, &NewBookmark)],
) -> Result<Vec<Arc<Bookmark>>, StoreError> {
    let now = now_timestamp();
    let names: Vec<&str> = items.iter().flat_map(|(_, new)| new.tags.iter().map(String::as_str)).collect();
    if !names.is_empty() {
        sqlx::query("INSERT INTO tags (name) SELECT value FROM json_each(?) WHERE true ON CONFLICT (name) DO NOTHING")
            .bind(serde_json::to_string(&names).map_err(|e| StoreError::Commit(e.to_string()))?)
            .execute(&mut *conn)
            .await?;
    }
    let rows: Vec<serde_json::Value> = items
        .iter()
        .map(|(owner, new)| serde_json::json!([owner.id, new.title, new.description, new.url, i64::from(new.public)]))
        .collect();
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO bookmarks (user_id, title, description, url, public, inserted_at) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, ? \
         FROM json_each(?) j ORDER BY j.key RETURNING id",
    )
    .bind(&now)
    .bind(serde_json::Value::from(rows).to_string())
    .fetch_all(&mut *conn)
    .await?;
    if ids.len() != items.len() {
        return Err(StoreError::Commit(format!("{} bookmarks inserted of {}", ids.len(), items.len())));
    }
    ids.sort_unstable();
    let links: Vec<serde_json::Value> = items
        .iter()
        .zip(&ids)
        .flat_map(|((_, new), id)| new.tags.iter().enumerate().map(move |(pos, tag)| serde_json::json!([id, pos, tag])))
        .collect();
    if !links.is_empty() {
        sqlx::query(
            "INSERT INTO bookmark_tags (bookmark_id, tag_id, position) \
             SELECT l.value ->> 0, t.id, l.value ->> 1 FROM json_each(?) l JOIN tags t ON t.name = l.value ->> 2",
        )
        .bind(serde_json::Value::from(links).to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(items
        .iter()
        .zip(ids)
        .map(|((owner, new), id)| {
            Arc::new(Bookmark {
                id,
                title: new.title.clone(),
                description: new.description.clone(),
                url: new.url.clone(),
                public: new.public,
                tags: new.tags.clone(),
                user: (*owner).clone(),
                inserted_at: now.clone(),
            })
        })
        .collect())
}

struct DeleteBookmark(Arc<Bookmark>);

impl WriteOp for DeleteBookmark {
    type Output = bool;

    fn apply<'c>(&'c self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM bookmarks WHERE id = ?").bind(self.0.id).execute(conn).await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn change(&self, deleted: &bool) -> Option<Change> {
        deleted.then(|| Change::BookmarkDeleted(self.0.clone()))
    }
}
