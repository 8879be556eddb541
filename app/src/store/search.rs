//! Message search in the database: FTS5 `MATCH` over `messages_fts` (migration 0006),
//! joined back to the messages, their rooms and authors, filtered by what the caller
//! may read and ranked by bm25. The match expression is built by
//! `crate::search::fts_query` from quoted strings only, and is bound as a parameter.

use sqlx::Row;

use super::{Store, StoreError};
use crate::search::{Hit, RoomAccess, SNIPPET_TOKENS, Scope};

/// The sentinels of `crate::search::{MARK_OPEN, MARK_CLOSE}` as SQL: U+E000 and U+E001.
const MARKS: &str = "char(57344), char(57345)";

impl Store {
    /// The room `slug` and whether `user` is a member of it; `None` if there is none.
    pub async fn room_access(&self, slug: &str, user: Option<i64>) -> Result<Option<RoomAccess>, StoreError> {
        let row = sqlx::query(
            "SELECT r.id AS id, r.private AS private, \
             EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = r.id AND rm.user_id = ?) AS member \
             FROM rooms r WHERE r.slug = ?",
        )
        .bind(user)
        .bind(slug)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|row| RoomAccess {
            id: row.get("id"),
            private: row.get::<i64, _>("private") != 0,
            member: row.get::<i64, _>("member") != 0,
        }))
    }

    /// Messages matching `expr` (an FTS5 expression from `fts_query`) in `scope`, best
    /// first, at most `limit`.
    pub async fn search_messages(&self, expr: &str, scope: &Scope, limit: u32) -> Result<Vec<Hit>, StoreError> {
        let (filter, room_or_user) = match scope {
            Scope::Room(id) => ("m.room_id = ?2", Some(*id)),
            Scope::Readable { member } => {
                ("(r.private = 0 OR r.id IN (SELECT rm.room_id FROM room_members rm WHERE rm.user_id = ?2))", *member)
            }
        };
        let sql = format!(
            "SELECT m.id AS id, m.room_id AS room_id, r.slug AS room_slug, m.user_id AS user_id, \
             u.username AS username, m.inserted_at AS inserted_at, \
             snippet(messages_fts, 0, {MARKS}, '…', {SNIPPET_TOKENS}) AS snippet, \
             highlight(messages_fts, 0, {MARKS}) AS highlight, \
             bm25(messages_fts) AS score, \
             instr(m.body, char(57344)) > 0 OR instr(m.body, char(57345)) > 0 AS tainted \
             FROM messages_fts \
             JOIN messages m ON m.id = messages_fts.rowid \
             JOIN rooms r ON r.id = m.room_id \
             JOIN users u ON u.id = m.user_id \
             WHERE messages_fts MATCH ?1 AND {filter} \
             ORDER BY score, m.id DESC \
             LIMIT ?3"
        );
        let rows = sqlx::query(&sql).bind(expr).bind(room_or_user).bind(limit).fetch_all(&self.read).await?;
        Ok(rows
            .iter()
            .map(|row| Hit {
                id: row.get("id"),
                room_id: row.get("room_id"),
                room_slug: row.get("room_slug"),
                user_id: row.get("user_id"),
                username: row.get("username"),
                inserted_at: row.get("inserted_at"),
                snippet: row.get("snippet"),
                highlight: row.get("highlight"),
                bm25: row.get("score"),
                tainted: row.get::<i64, _>("tainted") != 0,
            })
            .collect())
    }
}
