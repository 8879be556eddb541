//! Adding a bookmark: the form (validated by the server as you type, through
//! `POST /bookmarks/validate`, with the same rules that store it), the bookmarklet that
//! opens the form prefilled from any page (`/bookmarks/new?url=&title=&description=&tags=&popup=1`),
//! and deleting one's own bookmark.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::render::{Layout, PageForm, WebError, see_other};
use super::viewer::Ctx;
use crate::bookmarks::{NewBookmark, service};
use crate::http::{ApiError, FieldErrors, JsonBody, params};
use crate::state::AppState;
use crate::validation::Invalid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bookmarks/new", get(new_form))
        .route("/bookmarks", post(create))
        .route("/bookmarks/validate", post(validate))
        .route("/bookmarks/{id}/delete", post(delete))
}

/// What the form shows: the values typed so far.
#[derive(Debug, Default, Deserialize)]
struct Fields {
    #[serde(default)]
    title: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: String,
    /// A checkbox: present ("on") when ticked. The form is rendered with it ticked.
    public: Option<String>,
    /// Opened by the bookmarklet: show "saved" instead of going to the bookmark.
    popup: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

impl Fields {
    /// The JSON API's body for these fields, so both take one validation path.
    fn to_body(&self) -> Value {
        json!({"bookmark": {
            "title": self.title,
            "url": self.url,
            "description": self.description,
            "tags": self.tags,
            "public": self.public.is_some(),
        }})
    }
}

#[derive(Template)]
#[template(path = "bookmark_new.html")]
struct NewPage {
    layout: Layout,
    title: String,
    url: String,
    description: String,
    tags: String,
    public: bool,
    popup: bool,
    errors: BTreeMap<String, Vec<String>>,
    bookmarklet: String,
}

impl NewPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).map(|m| m.join("; ")).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "saved.html")]
struct SavedPage {
    layout: Layout,
    id: i64,
    title: String,
}

async fn new_form(ctx: Ctx, axum::extract::RawQuery(query): axum::extract::RawQuery) -> Result<Response, WebError> {
    let back = match &query {
        Some(q) => format!("/bookmarks/new?{q}"),
        None => "/bookmarks/new".to_owned(),
    };
    ctx.require_user(&back)?;
    let fields: Fields = serde_urlencoded_lenient(query.as_deref().unwrap_or_default());
    let page = page(&ctx, &fields, true, BTreeMap::new()).await;
    Ok(ctx.render(StatusCode::OK, &page))
}

/// Query strings from bookmarklets are whatever the visited page had: take what parses.
fn serde_urlencoded_lenient(query: &str) -> Fields {
    let mut fields = Fields::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let v: String = v.chars().filter(|c| !c.is_control() || *c == '\n').take(10_000).collect();
        match k.as_ref() {
            "title" => fields.title = v,
            "url" => fields.url = v,
            "description" => fields.description = v,
            "tags" => fields.tags = v,
            "popup" => fields.popup = Some(v),
            _ => {}
        }
    }
    fields
}

async fn page(ctx: &Ctx, fields: &Fields, public: bool, errors: BTreeMap<String, Vec<String>>) -> NewPage {
    NewPage {
        layout: ctx.layout("New bookmark · firehose", "new-bookmark").await,
        title: fields.title.clone(),
        url: fields.url.clone(),
        description: fields.description.clone(),
        tags: fields.tags.clone(),
        public,
        popup: fields.popup.is_some(),
        errors,
        bookmarklet: bookmarklet(ctx),
    }
}

/// The bookmarklet's code for this server: it opens the form in a small window,
/// prefilled with the page's address, title and selected text.
fn bookmarklet(ctx: &Ctx) -> String {
    let host = ctx
        .host
        .as_deref()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b)))
        .unwrap_or("127.0.0.1:4000");
    let scheme = if ctx.state.config.accounts.secure_cookie { "https" } else { "http" };
    format!(
        "javascript:(function(){{var e=encodeURIComponent,s=String(window.getSelection?window.getSelection():'');\
         window.open('{scheme}://{host}/bookmarks/new?popup=1&url='+e(location.href)+'&title='+e(document.title)\
         +'&description='+e(s),'firehose','width=640,height=760');}})();"
    )
}

fn field_messages(errors: &FieldErrors) -> BTreeMap<String, Vec<String>> {
    serde_json::to_value(errors).ok().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
}

async fn create(ctx: Ctx, PageForm(fields): PageForm<Fields>) -> Result<Response, WebError> {
    ctx.require_user("/bookmarks/new")?;
    ctx.viewer.check_csrf(fields.csrf.as_deref())?;
    let user = ctx.require_user("/bookmarks/new")?.clone();
    let new = match NewBookmark::from_body(&fields.to_body()) {
        Ok(new) => new,
        Err(Invalid::Fields(errors)) => {
            let page = page(&ctx, &fields, fields.public.is_some(), field_messages(&errors)).await;
            return Ok(ctx.render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(other) => return Err(ApiError::from(other).into()),
    };
    let bookmark = service::create(&ctx.state, &user, &new).await?;
    if fields.popup.is_some() {
        let layout = ctx.layout("Saved · firehose", "saved").await;
        return Ok(
            ctx.render(StatusCode::CREATED, &SavedPage { layout, id: bookmark.id, title: bookmark.title.clone() })
        );
    }
    Ok(see_other(&format!("/bookmarks/{}", bookmark.id)))
}

/// `{"bookmark": {…}}` → `{"ok": true}` or `{"ok": false, "fields": {field: [messages]}}`:
/// the rules `POST /api/bookmarks` applies, nothing stored, nothing spent.
async fn validate(JsonBody(body): JsonBody) -> Response {
    match NewBookmark::from_body(&body) {
        Ok(_) => Json(json!({"ok": true, "fields": {}})).into_response(),
        Err(Invalid::Fields(errors)) => Json(json!({"ok": false, "fields": errors})).into_response(),
        Err(other) => ApiError::from(other).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn delete(ctx: Ctx, Path(raw): Path<String>, PageForm(form): PageForm<CsrfOnly>) -> Result<Response, WebError> {
    let user = ctx.require_user(&format!("/bookmarks/{raw}"))?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    let id = params::path_id(&raw, "bookmark")?;
    service::delete(&ctx.state, &user, id).await?;
    Ok(see_other("/"))
}
