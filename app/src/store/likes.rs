//! Likes in the database: who likes which bookmark, and how many do.

use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, Row};

use super::writer::{Change, WriteOp, Writer};
use super::{Store, StoreError, now_timestamp};
use crate::likes::LikeSummary;

/// A bookmark's visibility, and its likes as one viewer sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookmarkLikes {
    pub owner_id: i64,
    pub public: bool,
    pub likes: LikeSummary,
}

/// The result of a like or unlike that was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikeWrite {
    /// The bookmark's like count right after the write, read in its transaction.
    pub count: i64,
    /// Whether a row was inserted or deleted (false for a double like, or an unlike of
    /// a bookmark that was not liked).
    pub changed: bool,
}

impl Store {
    /// Owner, visibility, like count and whether `viewer` likes it; `None` when there
    /// is no such bookmark.
    pub async fn bookmark_likes(
        &self,
        bookmark_id: i64,
        viewer: Option<i64>,
    ) -> Result<Option<BookmarkLikes>, StoreError> {
        let row = sqlx::query(
            "SELECT b.user_id AS owner_id, b.public AS public, \
             (SELECT COUNT(*) FROM likes l WHERE l.bookmark_id = b.id) AS count, \
             CASE WHEN EXISTS (SELECT 1 FROM likes l WHERE l.bookmark_id = b.id AND l.user_id = $1) THEN 1 ELSE 0 END AS liked \
             FROM bookmarks b WHERE b.id = $2",
        )
        .bind(viewer)
        .bind(bookmark_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|row| BookmarkLikes {
            owner_id: row.get("owner_id"),
            public: row.get::<i64, _>("public") != 0,
            likes: LikeSummary { count: row.get("count"), liked: row.get::<i64, _>("liked") != 0 },
        }))
    }
}

impl Writer {
    /// Makes `user_id` like (`liked`) or not like `bookmark_id`, and reads the new count,
    /// in one transaction. Only a bookmark the user may see counts: a public one, or
    /// their own. `None` when there is no such bookmark for this user (nothing written).
    /// A changed count is published (`Change::LikeCount`) before this answers.
    ///
    /// Idempotent: liking twice or unliking what is not liked writes nothing and
    /// answers the same count (`changed: false`).
    pub async fn set_like(&self, user_id: i64, bookmark_id: i64, liked: bool) -> Result<Option<LikeWrite>, StoreError> {
        self.write(SetLike { user_id, bookmark_id, liked }).await
    }
}

struct SetLike {
    user_id: i64,
    bookmark_id: i64,
    liked: bool,
}

impl WriteOp for SetLike {
    type Output = Option<LikeWrite>;

    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<Option<LikeWrite>, StoreError>> {
        Box::pin(set_like(conn, self.user_id, self.bookmark_id, self.liked))
    }

    fn change(&self, write: &Option<LikeWrite>) -> Option<Change> {
        let write = write.filter(|w| w.changed)?;
        Some(Change::LikeCount { bookmark_id: self.bookmark_id, count: write.count })
    }
}

async fn set_like(
    conn: &mut AnyConnection,
    user_id: i64,
    bookmark_id: i64,
    liked: bool,
) -> Result<Option<LikeWrite>, StoreError> {
    // Checked in the write's transaction: a bookmark deleted meanwhile is simply not
    // found, never a foreign-key error.
    let visible = sqlx::query("SELECT 1 FROM bookmarks WHERE id = $1 AND (public = 1 OR user_id = $2)")
        .bind(bookmark_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !visible {
        return Ok(None);
    }
    let done = if liked {
        sqlx::query(
            "INSERT INTO likes (user_id, bookmark_id, inserted_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, bookmark_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(bookmark_id)
        .bind(now_timestamp())
        .execute(&mut *conn)
        .await?
    } else {
        sqlx::query("DELETE FROM likes WHERE user_id = $1 AND bookmark_id = $2")
            .bind(user_id)
            .bind(bookmark_id)
            .execute(&mut *conn)
            .await?
    };
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM likes WHERE bookmark_id = $1")
        .bind(bookmark_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some(LikeWrite { count, changed: done.rows_affected() > 0 }))
}
