//! Bookmarks and tags in the database.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::writer::{Change, WriteOp, Writer};
use super::{Store, StoreError, now_timestamp};
use crate::accounts::User;
use crate::bookmarks::{Bookmark, NewBookmark};

/// Tags travel as one column joined by the ASCII unit separator, which validation
/// never lets into a tag name.
const TAG_SEP: char = '\u{1f}';

/// The separator is written into the statement as the character itself: SQLite and
/// PostgreSQL spell "the character 31" differently (`char` against `chr`).
const SELECT_BOOKMARK: &str = "SELECT b.id AS id, b.title AS title, b.description AS description, b.url AS url, \
     b.public AS public, b.inserted_at AS inserted_at, u.id AS user_id, u.username AS username, \
     (SELECT string_agg(t.name, '\u{1f}' ORDER BY bt.position) FROM bookmark_tags bt JOIN tags t ON t.id = bt.tag_id \
      WHERE bt.bookmark_id = b.id) AS tags \
     FROM bookmarks b JOIN users u ON u.id = b.user_id";

fn bookmark_from_row(row: &AnyRow) -> Bookmark {
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
        let sql = format!("{SELECT_BOOKMARK} WHERE b.id = $1");
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
                let sql = format!("{SELECT_BOOKMARK} WHERE b.public = 1 AND b.id < $1 ORDER BY b.id DESC LIMIT $2");
                sqlx::query(&sql).bind(before).bind(limit).fetch_all(&self.read).await?
            }
            Some(tag) => {
                let sql = format!(
                    "{SELECT_BOOKMARK} WHERE b.id IN (SELECT bt.bookmark_id FROM bookmark_tags bt \
                     JOIN tags t ON t.id = bt.tag_id WHERE t.name = $1 AND bt.bookmark_id < $2) \
                     AND b.public = 1 ORDER BY b.id DESC LIMIT $3"
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

    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<Arc<Bookmark>, StoreError>> {
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

/// Bookmarks in a few multi-row statements, whatever their number and tags: new tag
/// names, the bookmarks, their tag links. Every statement is a round trip to the
/// connection's thread, so a batch of 50 bookmarks costs a handful of them instead of
/// 150. Rows go in chunks of the sizes in `CHUNKS`, so each statement has one of a few
/// shapes and stays prepared in the connection's statement cache. The bookmarks come
/// back in the order given: the ids of the rows of one `INSERT … VALUES` are handed out
/// in their order, each chunk after the one before (AUTOINCREMENT: each larger than any
/// before), so the returned ids sorted are the rows in order.
pub(super) async fn insert_bookmarks(
    conn: &mut AnyConnection,
    items: &[(&User, &NewBookmark)],
) -> Result<Vec<Arc<Bookmark>>, StoreError> {
    let now = now_timestamp();
    // Each name once: in a batch the popular tags repeat, and each repeat would be one
    // more index lookup for a row that is already there.
    let mut names: Vec<&str> = items.iter().flat_map(|(_, new)| new.tags.iter().map(String::as_str)).collect();
    names.sort_unstable();
    names.dedup();
    for chunk in chunked(&names) {
        let sql = format!("INSERT INTO tags (name) VALUES {} ON CONFLICT (name) DO NOTHING", tuples(1, chunk.len()));
        let mut query = sqlx::query(&sql);
        for name in chunk {
            query = query.bind(*name);
        }
        query.execute(&mut *conn).await?;
    }
    let mut ids: Vec<i64> = Vec::with_capacity(items.len());
    for chunk in chunked(items) {
        let sql = format!(
            "INSERT INTO bookmarks (user_id, title, description, url, public, inserted_at) VALUES {} RETURNING id",
            tuples(6, chunk.len())
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for (owner, new) in chunk {
            query = query
                .bind(owner.id)
                .bind(&new.title)
                .bind(&new.description)
                .bind(&new.url)
                .bind(i64::from(new.public))
                .bind(&now);
        }
        ids.extend(query.fetch_all(&mut *conn).await?);
    }
    if ids.len() != items.len() {
        return Err(StoreError::Commit(format!("{} bookmarks inserted of {}", ids.len(), items.len())));
    }
    ids.sort_unstable();
    let links: Vec<(i64, i64, &str)> = items
        .iter()
        .zip(&ids)
        .flat_map(|((_, new), id)| new.tags.iter().zip(0..).map(move |(tag, pos)| (*id, pos, tag.as_str())))
        .collect();
    for chunk in chunked(&links) {
        let sql = format!(
            "INSERT INTO bookmark_tags (bookmark_id, tag_id, position) \
             SELECT v.column1, t.id, v.column2 FROM (VALUES {}) v JOIN tags t ON t.name = v.column3",
            tuples(3, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for (id, pos, tag) in chunk {
            query = query.bind(id).bind(pos).bind(*tag);
        }
        query.execute(&mut *conn).await?;
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

/// The row counts a multi-row statement is made for: a batch goes in the largest that
/// fit, then the next (at most 6 × 64 = 384 bound values a statement, far under
/// SQLite's limit).
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// `items` in consecutive chunks of the sizes in `CHUNKS`, largest first.
fn chunked<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|&c| c <= items.len())?;
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

/// `rows` tuples of `width` parameters, numbered on from `$1`: the rows of a `VALUES`
/// list.
fn tuples(width: usize, rows: usize) -> String {
    (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=width).map(|col| format!("${}", row * width + col)).collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

struct DeleteBookmark(Arc<Bookmark>);

impl WriteOp for DeleteBookmark {
    type Output = bool;

    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM bookmarks WHERE id = $1").bind(self.0.id).execute(conn).await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn change(&self, deleted: &bool) -> Option<Change> {
        deleted.then(|| Change::BookmarkDeleted(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_in_chunks_of_a_few_sizes_in_order() {
        for n in 0..300 {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = chunked(&items).collect();
            assert_eq!(chunks.concat(), items, "every row once, in order ({n})");
            assert!(chunks.iter().all(|c| CHUNKS.contains(&c.len())), "{n}");
            assert!(chunks.windows(2).all(|w| w[0].len() >= w[1].len()), "largest first ({n})");
        }
        assert_eq!(chunked(&[0; 100]).map(<[i32]>::len).collect::<Vec<_>>(), [64, 32, 4]);
        assert_eq!(tuples(2, 3), "($1, $2), ($3, $4), ($5, $6)");
        assert_eq!(tuples(1, 2), "($1), ($2)");
    }
}
