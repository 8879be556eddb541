//! Message search in the database, joined back to the messages, their rooms and
//! authors and filtered by what the caller may read:
//! - SQLite: FTS5 `MATCH` over `messages_fts` (migration 0006), ranked by bm25; the
//!   match expression is `Terms::fts5` (quoted strings only), bound as a parameter.
//! - PostgreSQL: `messages.search @@` the terms as phrases (`phraseto_tsquery`, one
//!   bound parameter each, ANDed) under the `firehose_search` configuration (unaccented,
//!   no stemming), ranked by `ts_rank_cd`; marks and snippets from `ts_headline`.
//!
//! Both mark matches with the same sentinels and report a lower score as better.

use sqlx::Row;

use super::{Backend, Store, StoreError};
use crate::search::{Hit, MARK_CLOSE, MARK_OPEN, RoomAccess, SNIPPET_TOKENS, Scope, Terms};

/// The text search configuration of migration `postgres/0001`.
const PG_CONFIG: &str = "firehose_search";

/// The sentinels of `crate::search::{MARK_OPEN, MARK_CLOSE}` as SQL: U+E000 and U+E001.
const MARKS: &str = "char(57344), char(57345)";

impl Store {
    /// The room `slug` and whether `user` is a member of it; `None` if there is none.
    pub async fn room_access(&self, slug: &str, user: Option<i64>) -> Result<Option<RoomAccess>, StoreError> {
        let row = sqlx::query(
            "SELECT r.id AS id, r.private AS private, \
             CASE WHEN EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = r.id AND rm.user_id = $1) THEN 1 ELSE 0 END AS member \
             FROM rooms r WHERE r.slug = $2",
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

    /// Messages matching every one of `terms` in `scope`, best first, at most `limit`.
    pub async fn search_messages(&self, terms: &Terms, scope: &Scope, limit: u32) -> Result<Vec<Hit>, StoreError> {
        let (filter, room_or_user) = match scope {
            Scope::Room(id) => ("m.room_id = $1", Some(*id)),
            Scope::Readable { member } => {
                ("(r.private = 0 OR r.id IN (SELECT rm.room_id FROM room_members rm WHERE rm.user_id = $1))", *member)
            }
        };
        let sql = self.search_sql(terms, filter);
        let query = sqlx::query_as::<_, HitRow>(&sql).bind(room_or_user).bind(i64::from(limit));
        let rows = match self.backend {
            Backend::Sqlite => query.bind(terms.fts5()).fetch_all(&self.read).await?,
            Backend::Postgres => {
                let rows = terms.iter().fold(query, |q, term| q.bind(term)).fetch_all(&self.read).await?;
                rows.into_iter().map(HitRow::with_headlines_mended).collect()
            }
        };
        Ok(rows.into_iter().map(Hit::from).collect())
    }

    /// The search statement for this backend: `$1` the scope's room or member, `$2` the
    /// limit, then the match (SQLite: one FTS5 expression; PostgreSQL: one phrase per
    /// term, ANDed).
    fn search_sql(&self, terms: &Terms, filter: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!(
                "SELECT m.id AS id, m.room_id AS room_id, r.slug AS room_slug, m.user_id AS user_id, \
                 u.username AS username, m.inserted_at AS inserted_at, \
                 snippet(messages_fts, 0, {MARKS}, '…', {SNIPPET_TOKENS}) AS snippet, \
                 highlight(messages_fts, 0, {MARKS}) AS highlight, \
                 bm25(messages_fts) AS score, \
                 CASE WHEN instr(m.body, char(57344)) > 0 OR instr(m.body, char(57345)) > 0 THEN 1 ELSE 0 END \
                 AS tainted \
                 FROM messages_fts \
                 JOIN messages m ON m.id = messages_fts.rowid \
                 JOIN rooms r ON r.id = m.room_id \
                 JOIN users u ON u.id = m.user_id \
                 WHERE messages_fts MATCH $3 AND {filter} \
                 ORDER BY score, m.id DESC \
                 LIMIT $2"
            ),
            Backend::Postgres => {
                let phrases: Vec<String> =
                    (3..terms.iter().count() + 3).map(|n| format!("phraseto_tsquery('{PG_CONFIG}', ${n})")).collect();
                let query = phrases.join(" && ");
                let (open, close) = (MARK_OPEN, MARK_CLOSE);
                let marks = format!("StartSel=\"{open}\", StopSel=\"{close}\"");
                // As the index reads it (migration postgres/0001): `<` and `>` as
                // separators, so tags in a body are words like any other.
                let text = format!("translate(m.body, '<>', '{PG_LT}{PG_GT}')");
                format!(
                    "SELECT m.id AS id, m.room_id AS room_id, r.slug AS room_slug, m.user_id AS user_id, \
                     u.username AS username, m.inserted_at AS inserted_at, \
                     ts_headline('{PG_CONFIG}', {text}, q.query, \
                       '{marks}, MaxWords={SNIPPET_TOKENS}, MinWords={min}, ShortWord=0, MaxFragments=1') \
                     AS snippet, \
                     ts_headline('{PG_CONFIG}', {text}, q.query, '{marks}, HighlightAll=true') AS highlight, \
                     m.body AS body, \
                     -ts_rank_cd(m.search, q.query)::float8 AS score, \
                     CASE WHEN strpos(m.body, '{open}') > 0 OR strpos(m.body, '{close}') > 0 THEN 1 ELSE 0 END \
                     AS tainted \
                     FROM (SELECT {query} AS query) q \
                     JOIN messages m ON m.search @@ q.query \
                     JOIN rooms r ON r.id = m.room_id \
                     JOIN users u ON u.id = m.user_id \
                     WHERE {filter} \
                     ORDER BY score, m.id DESC \
                     LIMIT $2",
                    min = SNIPPET_TOKENS / 2,
                )
            }
        }
    }
}

/// How the PostgreSQL index reads `<` and `>` (U+E002, U+E003): separators.
const PG_LT: char = '\u{E002}';
const PG_GT: char = '\u{E003}';

/// A search result row, read by name.
#[derive(sqlx::FromRow)]
struct HitRow {
    id: i64,
    room_id: i64,
    room_slug: String,
    user_id: i64,
    username: String,
    inserted_at: String,
    snippet: String,
    highlight: String,
    score: f64,
    tainted: i64,
    /// The whole body (PostgreSQL only), to tell where a snippet was cut.
    #[sqlx(default)]
    body: Option<String>,
}

impl HitRow {
    /// PostgreSQL's headlines made like FTS5's: `<` and `>` back in place, and `…`
    /// where the snippet cuts the body (ts_headline marks no cut).
    fn with_headlines_mended(mut self) -> Self {
        let restore = |s: &str| s.replace(PG_LT, "<").replace(PG_GT, ">");
        self.highlight = restore(&self.highlight);
        let snippet = restore(&self.snippet);
        let plain: String = snippet.chars().filter(|&c| c != MARK_OPEN && c != MARK_CLOSE).collect();
        let body = self.body.as_deref().unwrap_or_default();
        let cut_before = !body.trim_start().starts_with(plain.trim_start());
        let cut_after = !body.trim_end().ends_with(plain.trim_end());
        self.snippet =
            format!("{}{}{}", if cut_before { "…" } else { "" }, snippet.trim(), if cut_after { "…" } else { "" });
        self
    }
}

impl From<HitRow> for Hit {
    fn from(row: HitRow) -> Self {
        Hit {
            id: row.id,
            room_id: row.room_id,
            room_slug: row.room_slug,
            user_id: row.user_id,
            username: row.username,
            inserted_at: row.inserted_at,
            snippet: row.snippet,
            highlight: row.highlight,
            bm25: row.score,
            tainted: row.tainted != 0,
        }
    }
}
