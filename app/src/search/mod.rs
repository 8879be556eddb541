//! Message search: `GET /api/search?q=&room=&limit=` over chat message bodies, with
//! SQLite FTS5 (the `messages_fts` index of migration 0006, kept in sync by triggers)
//! or, on PostgreSQL, a GIN-indexed `tsvector` of each body (`store/search.rs`); the
//! API, the query rules and the marks below are the same on both.
//!
//! - **Ranking**: best first, ties newest first: bm25 on SQLite (more and rarer
//!   matching terms rank higher), `ts_rank_cd` on PostgreSQL (more and closer matches
//!   rank higher).
//! - **Scope**: `room=<slug>` searches one room, which must be readable by the caller
//!   (public, or private with the caller a member; otherwise 404, the same answer as
//!   for a room that does not exist, so private rooms are not revealed). Without
//!   `room`, every room the caller may read: public rooms plus, when signed in, the
//!   rooms they are a member of.
//! - **Safe queries**: user input never reaches query syntax. [`Terms`] splits `q`
//!   on whitespace and quotes every chunk as an FTS5 string (a `"` inside is doubled),
//!   so `*`, `-`, `(`, `:`, `NEAR`, `^`… are plain text that the tokenizer treats like
//!   the indexed bodies (`foo-bar` becomes the phrase "foo bar"). Chunks are ANDed:
//!   a message matches when it has every word. There are no operators: `AND`, `OR`,
//!   `NOT` and `NEAR`, in any case, are words like any other (`cats OR dogs` finds
//!   messages with all of "cats", "or" and "dogs"). Chunks without a letter or digit
//!   are dropped; a query left with nothing answers 200 with no results. A blank
//!   `q` is a 400, as is one longer than [`MAX_QUERY_CHARS`] or with more than
//!   [`MAX_TERMS`] terms.
//! - **Budget**: anonymous callers share a per-IP budget ([`check_anonymous`],
//!   `--rate-anon-search`, default 30 a minute): over it, 429 with `Retry-After`.
//! - **Safe output**: `snippet` (a window of up to [`SNIPPET_TOKENS`] tokens around the
//!   matches) and `highlight` (the whole body) are HTML: every match is wrapped in
//!   `<mark>`…`</mark>` and everything else is escaped ([`render_marked`]). FTS5 marks
//!   matches with two private-use sentinel characters, which are turned into tags only
//!   after escaping; a body that itself contains a sentinel gets no marks at all, so a
//!   stored message can never forge markup.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Value, json};

use crate::accounts::{ClientIp, MaybeUser, User};
use crate::http::{ApiError, params};
use crate::metrics::Metrics;
use crate::ratelimit::ip_key;
use crate::state::AppState;

/// Longest accepted `q`, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Most terms (whitespace-separated chunks) in one query.
pub const MAX_TERMS: usize = 16;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 50;
/// Tokens in a snippet.
pub const SNIPPET_TOKENS: u32 = 16;

/// Where FTS5 puts the start and end of a match (private-use code points).
pub const MARK_OPEN: char = '\u{E000}';
pub const MARK_CLOSE: char = '\u{E001}';

/// Which rooms a search covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One room, already checked to be readable.
    Room(i64),
    /// Public rooms and those `member` belongs to (`None`: anonymous, public only).
    Readable { member: Option<i64> },
}

/// One search result, straight from the store (`snippet`/`highlight` still carry the
/// sentinels).
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: i64,
    pub room_id: i64,
    pub room_slug: String,
    pub user_id: i64,
    pub username: String,
    pub inserted_at: String,
    pub snippet: String,
    pub highlight: String,
    /// bm25 (lower is better).
    pub bm25: f64,
    /// The stored body contains a sentinel character: its marks cannot be trusted.
    pub tainted: bool,
}

/// A room's readability for the caller: `None` when it does not exist.
#[derive(Debug, Clone, Copy)]
pub struct RoomAccess {
    pub id: i64,
    pub private: bool,
    pub member: bool,
}

/// Takes a token of an anonymous caller's per-IP search budget
/// (`AnonymousLimits::search`, shared by `GET /api/search` and the `/search` page);
/// `Err(wait)` over it. Signed-in callers are not limited here.
pub fn check_anonymous(state: &AppState, user: Option<&User>, ip: IpAddr) -> Result<(), Duration> {
    let Some(limiter) = state.anon_search.as_ref().filter(|_| user.is_none()) else { return Ok(()) };
    let checked = limiter.check(ip_key(ip));
    if checked.is_err() {
        Metrics::add(&state.metrics.anonymous_refused, 1);
    }
    checked
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/search", get(search))
}

#[derive(Debug, PartialEq, Eq)]
pub enum QueryError {
    Blank,
    TooLong,
    TooManyTerms,
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        ApiError::BadRequest(match err {
            QueryError::Blank => "q is required: the words to search for".to_owned(),
            QueryError::TooLong => format!("q is longer than {MAX_QUERY_CHARS} characters"),
            QueryError::TooManyTerms => format!("q has more than {MAX_TERMS} terms"),
        })
    }
}

/// A user's `q` made safe: its whitespace-separated chunks that have a letter or digit,
/// control characters dropped. Each is matched as a phrase of the words in it, and a
/// message matches when it has every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms(Vec<String>);

impl Terms {
    /// The terms of `q`; `Ok(None)` when nothing searchable is left.
    pub fn parse(q: &str) -> Result<Option<Self>, QueryError> {
        let q = q.trim();
        if q.is_empty() {
            return Err(QueryError::Blank);
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let chunks: Vec<&str> = q.split_whitespace().collect();
        if chunks.len() > MAX_TERMS {
            return Err(QueryError::TooManyTerms);
        }
        let terms: Vec<String> = chunks
            .into_iter()
            .filter(|chunk| chunk.chars().any(char::is_alphanumeric))
            // Control characters are never part of an indexed token; drop them so the
            // expression is plain text.
            .map(|chunk| chunk.chars().filter(|c| !c.is_control()).collect::<String>())
            .collect();
        Ok((!terms.is_empty()).then_some(Self(terms)))
    }

    /// The terms, in the user's order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The terms as an FTS5 `MATCH` expression: each a quoted FTS5 string (a `"` inside
    /// doubled), ANDed; operator words are quoted like the rest, so they are words to
    /// find. Also what the API reports as `meta.match`, whatever the database.
    pub fn fts5(&self) -> String {
        let quoted: Vec<String> = self.0.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect();
        quoted.join(" ")
    }
}

/// The FTS5 `MATCH` expression for the user's `q` ([`Terms::parse`], then
/// [`Terms::fts5`]). `Ok(None)` when nothing searchable is left.
pub fn fts_query(q: &str) -> Result<Option<String>, QueryError> {
    Ok(Terms::parse(q)?.map(|terms| terms.fts5()))
}

/// HTML for FTS5 output: matches (between [`MARK_OPEN`] and [`MARK_CLOSE`]) wrapped in
/// `<mark>`, the rest escaped. With `tainted`, sentinels are dropped instead (the
/// stored text contained one, so they do not reliably mark matches).
pub fn render_marked(text: &str, tainted: bool) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut open = false;
    for c in text.chars() {
        match c {
            MARK_OPEN | MARK_CLOSE if tainted => {}
            MARK_OPEN if !open => {
                out.push_str("<mark>");
                open = true;
            }
            MARK_CLOSE if open => {
                out.push_str("</mark>");
                open = false;
            }
            MARK_OPEN | MARK_CLOSE => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    if open {
        out.push_str("</mark>");
    }
    out
}

async fn search(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    ClientIp(ip): ClientIp,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    check_anonymous(&state, user.as_ref(), ip).map_err(ApiError::RateLimited)?;
    let q = params.get("q").map(String::as_str).unwrap_or_default();
    let terms = Terms::parse(q)?;
    let raw_limit = params.get("limit").map(|l| l.trim()).filter(|l| !l.is_empty());
    // Bounded by MAX_LIMIT (50), so it fits.
    let limit = params::limit(raw_limit, DEFAULT_LIMIT as usize, MAX_LIMIT as usize)? as u32;
    let user_id = user.as_ref().map(|u| u.id);
    let room = params.get("room").map(|r| r.trim()).filter(|r| !r.is_empty());
    let scope = match room {
        Some(slug) => {
            let access = state.store.room_access(slug, user_id).await?;
            match access {
                Some(a) if !a.private || a.member => Scope::Room(a.id),
                // Not there, or private and not ours: the same answer either way.
                _ => return Err(ApiError::NotFound("no such room")),
            }
        }
        None => Scope::Readable { member: user_id },
    };
    let hits = match &terms {
        Some(terms) => state.store.search_messages(terms, &scope, limit).await?,
        None => Vec::new(),
    };
    let data: Vec<Value> = hits
        .iter()
        .map(|h| {
            json!({
                "id": h.id,
                "room": h.room_slug,
                "room_id": h.room_id,
                "user": {"id": h.user_id, "username": h.username},
                "inserted_at": h.inserted_at,
                "snippet": render_marked(&h.snippet, h.tainted),
                "highlight": render_marked(&h.highlight, h.tainted),
                "score": -h.bm25,
            })
        })
        .collect();
    Ok(Json(json!({
        "data": data,
        "meta": {"q": q, "match": terms.as_ref().map(Terms::fts5), "room": room, "limit": limit},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_quoted_and_operator_words_are_plain_words() {
        assert_eq!(fts_query("hello world").unwrap().as_deref(), Some(r#""hello" "world""#));
        assert_eq!(fts_query(r#"say "hi""#).unwrap().as_deref(), Some(r#""say" """hi""""#));
        assert_eq!(fts_query("foo* -bar").unwrap().as_deref(), Some(r#""foo*" "-bar""#));
        assert_eq!(fts_query("a OR b").unwrap().as_deref(), Some(r#""a" "OR" "b""#));
        assert_eq!(fts_query("a NOT b AND c").unwrap().as_deref(), Some(r#""a" "NOT" "b" "AND" "c""#));
        assert_eq!(fts_query("NEAR( x").unwrap().as_deref(), Some(r#""NEAR(" "x""#));
        assert_eq!(fts_query("or").unwrap().as_deref(), Some(r#""or""#));
        assert_eq!(
            fts_query("x'; DROP TABLE messages;--").unwrap().as_deref(),
            Some(r#""x';" "DROP" "TABLE" "messages;--""#)
        );
        assert_eq!(fts_query("café 页面").unwrap().as_deref(), Some(r#""café" "页面""#));
        assert_eq!(fts_query("* - ( ) \" ;--").unwrap(), None);
        assert_eq!(fts_query("OR AND NOT NEAR").unwrap().as_deref(), Some(r#""OR" "AND" "NOT" "NEAR""#));
        assert_eq!(fts_query("  \t "), Err(QueryError::Blank));
        assert_eq!(fts_query(&"a".repeat(MAX_QUERY_CHARS + 1)), Err(QueryError::TooLong));
        assert_eq!(fts_query(&"a ".repeat(MAX_TERMS + 1)), Err(QueryError::TooManyTerms));
    }

    #[test]
    fn marks_become_tags_and_everything_else_is_escaped() {
        let text = format!("<b>{MARK_OPEN}x{MARK_CLOSE}</b> & \"'");
        assert_eq!(render_marked(&text, false), "&lt;b&gt;<mark>x</mark>&lt;/b&gt; &amp; &quot;&#39;");
        assert_eq!(render_marked(&text, true), "&lt;b&gt;x&lt;/b&gt; &amp; &quot;&#39;");
        // Unbalanced sentinels never leave an unbalanced tag.
        assert_eq!(render_marked(&format!("{MARK_CLOSE}a{MARK_OPEN}b"), false), "a<mark>b</mark>");
        assert_eq!(render_marked(&format!("{MARK_OPEN}{MARK_OPEN}a"), false), "<mark>a</mark>");
    }
}
