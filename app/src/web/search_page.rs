//! Message search (`/search?q=&room=`): results rendered here for readers without the
//! script; with it, results follow the typing (debounced) through `GET /api/search`.
//! Matches are shown as `<mark>` around text the template escapes: the match markers
//! FTS5 puts in are split out here, so no stored text is ever passed as HTML.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::render::{Layout, WebError};
use super::viewer::Ctx;
use super::views::time_label;
use crate::accounts::ClientIp;
use crate::http::ApiError;
use crate::search::{MARK_CLOSE, MARK_OPEN, Scope, Terms, check_anonymous};
use crate::state::AppState;

const LIMIT: u32 = 20;

pub fn router() -> Router<AppState> {
    Router::new().route("/search", get(search))
}

/// One search result.
struct Result_ {
    id: i64,
    room: String,
    username: String,
    time_label: String,
    inserted_at: String,
    /// The message as (text, is a match) pieces.
    pieces: Vec<(String, bool)>,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    layout: Layout,
    q: String,
    room: String,
    rooms: Vec<(String, String)>,
    results: Vec<Result_>,
    searched: bool,
    notice: String,
}

async fn search(
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let q = params.get("q").map(|q| q.trim().to_owned()).unwrap_or_default();
    let room = params.get("room").map(|r| r.trim().to_owned()).unwrap_or_default();
    let user_id = ctx.user().map(|u| u.id);
    let rooms = ctx.state.store.visible_rooms(ctx.user()).await?.into_iter().map(|(r, _)| (r.slug, r.name)).collect();
    let mut results = Vec::new();
    let mut notice = String::new();
    let mut status = StatusCode::OK;
    let over_budget = if q.is_empty() { None } else { check_anonymous(&ctx.state, ctx.user(), ip).err() };
    if let Some(wait) = over_budget {
        notice = format!(
            "Too many searches from your address; try again in {} s (or sign in).",
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        );
        status = StatusCode::TOO_MANY_REQUESTS;
    } else if !q.is_empty() {
        let scope = if room.is_empty() {
            Some(Scope::Readable { member: user_id })
        } else {
            match ctx.state.store.room_access(&room, user_id).await? {
                Some(a) if !a.private || a.member => Some(Scope::Room(a.id)),
                _ => {
                    notice = "No such room.".to_owned();
                    status = StatusCode::NOT_FOUND;
                    None
                }
            }
        };
        match (Terms::parse(&q), scope) {
            (Ok(Some(terms)), Some(scope)) => {
                let hits = ctx.state.store.search_messages(&terms, &scope, LIMIT).await?;
                results = hits
                    .into_iter()
                    .map(|h| Result_ {
                        id: h.id,
                        room: h.room_slug,
                        username: h.username,
                        time_label: time_label(&h.inserted_at),
                        inserted_at: h.inserted_at,
                        pieces: pieces(&h.highlight, h.tainted),
                    })
                    .collect();
            }
            (Ok(_), _) => {}
            (Err(err), _) => {
                notice = ApiError::from(err).to_string();
                status = StatusCode::BAD_REQUEST;
            }
        }
    }
    let layout = ctx.layout("Search · firehose", "search").await;
    let page = SearchPage { layout, searched: !q.is_empty(), q, room, rooms, results, notice };
    Ok(ctx.render(status, &page))
}

/// Splits FTS5 output into (text, matched) pieces. A tainted text (the stored message
/// itself contained a marker character) gets no marks at all.
fn pieces(marked: &str, tainted: bool) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut current = String::new();
    let mut matched = false;
    for c in marked.chars() {
        match c {
            MARK_OPEN | MARK_CLOSE if tainted => {}
            MARK_OPEN | MARK_CLOSE => {
                let now = c == MARK_OPEN;
                if now != matched && !current.is_empty() {
                    out.push((std::mem::take(&mut current), matched));
                }
                matched = now;
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push((current, matched));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_split_into_pieces() {
        let text = format!("a <b>{MARK_OPEN}cat{MARK_CLOSE}</b> sat");
        assert_eq!(
            pieces(&text, false),
            vec![("a <b>".to_owned(), false), ("cat".to_owned(), true), ("</b> sat".to_owned(), false)]
        );
        assert_eq!(pieces(&text, true), vec![("a <b>cat</b> sat".to_owned(), false)]);
    }
}
