//! Read queries the web pages need beside the domain ones: like counts of a page of
//! bookmarks in one query, and member counts of rooms. Columns are read by name.

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError};
use crate::likes::LikeSummary;

impl Store {
    /// Like count and whether `viewer` likes it, for each of `bookmark_ids` that has
    /// likes (absent ids have none). Visibility is the caller's business.
    pub async fn like_summaries(
        &self,
        bookmark_ids: &[i64],
        viewer: Option<i64>,
    ) -> Result<HashMap<i64, LikeSummary>, StoreError> {
        if bookmark_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let placeholders: Vec<String> = (2..bookmark_ids.len() + 2).map(|n| format!("${n}")).collect();
        let placeholders = placeholders.join(", ");
        let sql = format!(
            "SELECT bookmark_id, COUNT(*) AS likes, COALESCE(MAX(CASE WHEN user_id = $1 THEN 1 ELSE 0 END), 0) AS mine FROM likes \
             WHERE bookmark_id IN ({placeholders}) GROUP BY bookmark_id"
        );
        let mut query = sqlx::query(&sql).bind(viewer);
        for id in bookmark_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.read).await?;
        rows.iter()
            .map(|row| {
                let summary = LikeSummary {
                    count: row.try_get("likes")?,
                    liked: row.try_get::<Option<i64>, _>("mine")? == Some(1),
                };
                Ok((row.try_get("bookmark_id")?, summary))
            })
            .collect()
    }

    /// Members of every room that has any, by room id.
    pub async fn member_counts(&self) -> Result<HashMap<i64, i64>, StoreError> {
        let rows = sqlx::query("SELECT room_id, COUNT(*) AS members FROM room_members GROUP BY room_id")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("room_id")?, row.try_get("members")?))).collect()
    }

    /// Members of one room.
    pub async fn room_member_count(&self, room_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM room_members WHERE room_id = $1")
            .bind(room_id)
            .fetch_one(&self.read)
            .await?)
    }
}
