//! Reading bookmarks: the firehose (`/`), a tag's feed (`/tags/<tag>`), discover (a
//! random bookmark) and a bookmark's own page; and the like button's form, for
//! browsers without the script (with it, likes go through the JSON API).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

use super::render::{Layout, PageForm, WebError, local_path, see_other};
use super::viewer::Ctx;
use super::views::{BookmarkView, bookmark_views};
use crate::bookmarks::{Bookmark, FIREHOSE_TOPIC, TAG_TOPIC_PREFIX, normalize_tag, service};
use crate::http::{ApiError, params};
use crate::likes::{self, View};
use crate::ratelimit::Action;
use crate::state::AppState;

/// Bookmarks a feed page shows (the script keeps at most twice as many as they stream in).
const PAGE: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(firehose))
        .route("/tags/{tag}", get(tag_feed))
        .route("/discover", get(discover))
        .route("/bookmarks/{id}", get(bookmark_page))
        .route("/bookmarks/{id}/like", post(like_form))
}

#[derive(Template)]
#[template(path = "feed.html")]
struct FeedPage {
    layout: Layout,
    heading: String,
    /// The stream topic the script joins.
    topic: String,
    tag: Option<String>,
    items: Vec<BookmarkView>,
    blank: BookmarkView,
    /// `?before=` of the next (older) page, if there is one.
    older: Option<i64>,
    /// This is an older page (not the live head of the feed).
    paged: bool,
}

async fn firehose(ctx: Ctx, Query(q): Query<HashMap<String, String>>) -> Result<Response, WebError> {
    feed(ctx, None, &q).await
}

async fn tag_feed(
    ctx: Ctx,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let tag = normalize_tag(&raw).ok_or(ApiError::NotFound("no such tag"))?;
    feed(ctx, Some(tag), &q).await
}

async fn feed(ctx: Ctx, tag: Option<String>, q: &HashMap<String, String>) -> Result<Response, WebError> {
    let before = match q.get("before").filter(|b| !b.is_empty()) {
        Some(b) => Some(params::path_id(b, "before")?),
        None => None,
    };
    let page = recent(&ctx.state, tag.as_deref(), before, PAGE).await?;
    let older = page.last().filter(|_| page.len() == PAGE).map(|b| b.id);
    let items = bookmark_views(&ctx.state, &page, ctx.user()).await?;
    let (heading, topic, title) = match &tag {
        Some(t) => (format!("#{t}"), format!("{TAG_TOPIC_PREFIX}{t}"), format!("#{t} · firehose")),
        None => ("The firehose".to_owned(), FIREHOSE_TOPIC.to_owned(), "firehose".to_owned()),
    };
    let layout = ctx.layout(title, "feed").await;
    let template =
        FeedPage { layout, heading, topic, tag, items, blank: BookmarkView::blank(), older, paged: before.is_some() };
    Ok(ctx.render(StatusCode::OK, &template))
}

/// Newest public bookmarks (with `tag`) older than `before`: from the cache, or the
/// store when the page reaches past what the cache holds.
async fn recent(
    state: &AppState,
    tag: Option<&str>,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Arc<Bookmark>>, WebError> {
    Ok(match state.cache.page(tag, before, limit) {
        Some(page) => page,
        None => state.store.recent_public(tag, before, limit).await?.into_iter().map(Arc::new).collect(),
    })
}

#[derive(Template)]
#[template(path = "discover.html")]
struct DiscoverPage {
    layout: Layout,
    item: Option<BookmarkView>,
    blank: BookmarkView,
}

async fn discover(ctx: Ctx) -> Result<Response, WebError> {
    let item = match ctx.state.cache.random() {
        Some(b) => bookmark_views(&ctx.state, &[b], ctx.user()).await?.pop(),
        None => None,
    };
    let layout = ctx.layout("Discover · firehose", "discover").await;
    Ok(ctx.render(StatusCode::OK, &DiscoverPage { layout, item, blank: BookmarkView::blank() }))
}

#[derive(Template)]
#[template(path = "bookmark.html")]
struct BookmarkPage {
    layout: Layout,
    item: BookmarkView,
}

async fn bookmark_page(ctx: Ctx, Path(raw): Path<String>) -> Result<Response, WebError> {
    let id = params::path_id(&raw, "bookmark").map_err(|_| ApiError::NotFound("no such bookmark"))?;
    let bookmark = service::visible(&ctx.state, id, ctx.user()).await?;
    let item = bookmark_views(&ctx.state, &[bookmark], ctx.user())
        .await?
        .pop()
        .ok_or(ApiError::NotFound("no such bookmark"))?;
    let layout = ctx.layout(format!("{} · firehose", item.title), "bookmark").await;
    Ok(ctx.render(StatusCode::OK, &BookmarkPage { layout, item }))
}

#[derive(serde::Deserialize)]
struct LikeForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    /// The state asked for: `true` to like, `false` to unlike.
    liked: Option<String>,
    back: Option<String>,
}

/// The like button without the script: like or unlike, then back to the page.
async fn like_form(
    ctx: Ctx,
    Path(raw): Path<String>,
    PageForm(form): PageForm<LikeForm>,
) -> Result<Response, WebError> {
    let back = local_path(form.back.as_deref());
    let user = ctx.require_user(&back)?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    let id = params::path_id(&raw, "bookmark")?;
    let liked = form.liked.as_deref() != Some("false");
    // The same checks and path as `POST /api/bookmarks/<id>/like`.
    ctx.state.limits.check(Action::Like, user.id).map_err(ApiError::RateLimited)?;
    match likes::view(&ctx.state, id, Some(&user)).await? {
        View::Visible(_) => {}
        View::Missing | View::Hidden => return Err(ApiError::NotFound("no such bookmark").into()),
    }
    likes::set_like(&ctx.state, &user, id, liked).await?.ok_or(ApiError::NotFound("no such bookmark"))?;
    Ok(see_other(&back))
}
