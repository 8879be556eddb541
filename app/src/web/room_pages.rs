//! Chat rooms: the list (member counts kept live from `rooms:lobby` by the script),
//! creating a room, a room's page (latest messages, older on scroll up, presence,
//! typing, uploads — live through `room:<slug>`), and the forms that work without the
//! script: join, leave, send, delete. Sending goes through `chat::send`, the path of
//! the `new_msg` push.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::render::{Layout, PageForm, WebError, see_other};
use super::viewer::Ctx;
use super::views::{MessageView, RoomView};
use crate::chat::send::{self, SendError};
use crate::chat::{ChatError, NewRoom, PAGE, Role, membership};
use crate::http::{ApiError, params};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms", get(list).post(create))
        .route("/rooms/new", get(new_form))
        .route("/rooms/{slug}", get(room_page))
        .route("/rooms/{slug}/join", post(join))
        .route("/rooms/{slug}/leave", post(leave))
        .route("/rooms/{slug}/messages", post(send_form))
        .route("/rooms/{slug}/messages/{id}/delete", post(delete_form))
}

#[derive(Template)]
#[template(path = "rooms.html")]
struct RoomsPage {
    layout: Layout,
    rooms: Vec<RoomView>,
    blank: RoomView,
}

async fn list(ctx: Ctx) -> Result<Response, WebError> {
    let visible = ctx.state.store.visible_rooms(ctx.user()).await?;
    let counts = ctx.state.store.member_counts().await?;
    let rooms = visible
        .iter()
        .map(|(room, role)| RoomView::new(room, *role, counts.get(&room.id).copied().unwrap_or(0)))
        .collect();
    let layout = ctx.layout("Rooms · firehose", "rooms").await;
    Ok(ctx.render(StatusCode::OK, &RoomsPage { layout, rooms, blank: RoomView::blank() }))
}

#[derive(Template)]
#[template(path = "room_new.html")]
struct NewRoomPage {
    layout: Layout,
    name: String,
    slug: String,
    description: String,
    private: bool,
    errors: std::collections::BTreeMap<String, Vec<String>>,
}

impl NewRoomPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).map(|m| m.join("; ")).unwrap_or_default()
    }
}

#[derive(Default, Deserialize)]
struct RoomForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    description: String,
    private: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn new_form(ctx: Ctx) -> Result<Response, WebError> {
    ctx.require_user("/rooms/new")?;
    let layout = ctx.layout("New room · firehose", "new-room").await;
    let page = NewRoomPage {
        layout,
        name: String::new(),
        slug: String::new(),
        description: String::new(),
        private: false,
        errors: Default::default(),
    };
    Ok(ctx.render(StatusCode::OK, &page))
}

async fn create(ctx: Ctx, PageForm(form): PageForm<RoomForm>) -> Result<Response, WebError> {
    let user = ctx.require_user("/rooms/new")?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    let mut body = json!({"name": form.name, "description": form.description, "private": form.private.is_some()});
    if !form.slug.trim().is_empty() {
        body["slug"] = json!(form.slug.trim());
    }
    let created = match NewRoom::from_body(&body) {
        Ok(new) => membership::create(&ctx.state, &user, &new).await,
        Err(err) => Err(ApiError::from(err)),
    };
    // The status of the API's answer: 422 for a rule broken, 409 for a taken slug.
    let (status, errors) = match created {
        Ok(room) => return Ok(see_other(&format!("/rooms/{}", room.slug))),
        Err(err @ (ApiError::Validation(_) | ApiError::Conflict(_))) => {
            (err.status(), err.fields().unwrap_or_default())
        }
        Err(other) => return Err(other.into()),
    };
    let layout = ctx.layout("New room · firehose", "new-room").await;
    let page = NewRoomPage {
        layout,
        name: form.name,
        slug: form.slug,
        description: form.description,
        private: form.private.is_some(),
        errors: serde_json::to_value(&errors).ok().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
    };
    Ok(ctx.render(status, &page))
}

#[derive(Template)]
#[template(path = "room.html")]
struct RoomPage {
    layout: Layout,
    name: String,
    slug: String,
    description: String,
    private: bool,
    role: Option<&'static str>,
    messages: Vec<MessageView>,
    /// There are older messages than the first shown.
    older: bool,
    /// The page shows an older stretch (opened at a search result); newer messages
    /// exist beyond the last one shown.
    newer: bool,
    target: Option<i64>,
    members: Vec<(String, &'static str)>,
    blank: MessageView,
    draft: String,
    notice: String,
    max_upload: String,
}

async fn room_page(
    ctx: Ctx,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let target = q.get("at").and_then(|a| a.parse::<i64>().ok()).filter(|a| *a > 0);
    render_room(&ctx, &slug, target, String::new(), String::new(), StatusCode::OK).await
}

async fn render_room(
    ctx: &Ctx,
    slug: &str,
    target: Option<i64>,
    draft: String,
    notice: String,
    status: StatusCode,
) -> Result<Response, WebError> {
    // A private room must not leak to a stranger: 404 unless they may read it; an
    // anonymous reader of a private room is asked to sign in first.
    let (room, role) = match membership::readable(&ctx.state, slug, ctx.user()).await {
        Ok(found) => found,
        Err(ApiError::NotFound(_)) if ctx.user().is_none() => return Err(WebError::SignIn(format!("/rooms/{slug}"))),
        Err(err) => return Err(err.into()),
    };
    let store = &ctx.state.store;
    // Opened at a message: the stretch around it, if it is in this room.
    let mut around = None;
    if let Some(at) = target {
        let upto = store.messages_before(room.id, Some(at + 1), PAGE / 2).await?;
        if upto.last().is_some_and(|m| m.id == at) {
            let after = store.messages_after(room.id, at, PAGE / 2 + 1).await?;
            around = Some((upto, after));
        }
    }
    let (page, older, newer) = match around {
        Some((mut upto, mut after)) => {
            let newer = after.len() > PAGE / 2;
            after.truncate(PAGE / 2);
            let older = upto.len() == PAGE / 2;
            upto.extend(after);
            (upto, older, newer)
        }
        None => {
            let page = store.messages_before(room.id, None, PAGE).await?;
            let older = page.len() == PAGE;
            (page, older, false)
        }
    };
    let admin = role == Some(Role::Admin);
    let found_target = target.filter(|t| page.iter().any(|m| m.id == *t));
    let messages = page.iter().map(|m| MessageView::new(m, ctx.user(), admin, found_target)).collect();
    let members = store.room_members(room.id).await?.into_iter().map(|m| (m.user.username, m.role.as_str())).collect();
    let layout = ctx.layout(format!("{} · firehose", room.name), "room").await;
    let page = RoomPage {
        layout,
        name: room.name.clone(),
        slug: room.slug.clone(),
        description: room.description.clone(),
        private: room.private,
        role: role.map(Role::as_str),
        messages,
        older,
        newer,
        target: found_target,
        members,
        blank: MessageView::blank(),
        draft,
        notice,
        max_upload: super::views::size_label(ctx.state.config.max_upload_bytes as i64),
    };
    Ok(ctx.render(status, &page))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn join(ctx: Ctx, Path(slug): Path<String>, PageForm(form): PageForm<CsrfForm>) -> Result<Response, WebError> {
    let user = ctx.require_user(&format!("/rooms/{slug}"))?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    membership::join(&ctx.state, &slug, &user).await?;
    Ok(see_other(&format!("/rooms/{slug}")))
}

async fn leave(ctx: Ctx, Path(slug): Path<String>, PageForm(form): PageForm<CsrfForm>) -> Result<Response, WebError> {
    let user = ctx.require_user(&format!("/rooms/{slug}"))?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    membership::leave(&ctx.state, &slug, &user).await?;
    Ok(see_other("/rooms"))
}

#[derive(Deserialize)]
struct MessageForm {
    #[serde(default)]
    body: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn send_form(
    ctx: Ctx,
    Path(slug): Path<String>,
    PageForm(form): PageForm<MessageForm>,
) -> Result<Response, WebError> {
    let user = ctx.require_user(&format!("/rooms/{slug}"))?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    membership::readable(&ctx.state, &slug, Some(&user)).await?;
    let body = serde_json::Value::String(form.body.clone());
    let outgoing = send::Outgoing { body: Some(&body), attachment_id: None };
    let notice = match send::send(&ctx.state, &slug, &user, outgoing).await {
        Ok(id) => return Ok(see_other(&format!("/rooms/{slug}#m-{id}"))),
        Err(SendError::Invalid(msg)) => format!("Not sent: {msg}."),
        Err(SendError::RateLimited(wait)) => {
            format!("Not sent: too many messages; wait {} s and try again.", wait.as_secs().max(1))
        }
        Err(SendError::Room(ChatError::Unauthorized)) => return Err(ApiError::NotFound("no such room").into()),
        Err(other) => format!("Not sent: {other}."),
    };
    render_room(&ctx, &slug, None, form.body, notice, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn delete_form(
    ctx: Ctx,
    Path((slug, raw)): Path<(String, String)>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, WebError> {
    let user = ctx.require_user(&format!("/rooms/{slug}"))?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    membership::readable(&ctx.state, &slug, Some(&user)).await?;
    let id = params::path_id(&raw, "message")?;
    match ctx.state.rooms.delete_message(&slug, user, id).await {
        Ok(()) => Ok(see_other(&format!("/rooms/{slug}"))),
        Err(ChatError::MessageNotFound) => Err(ApiError::NotFound("no such message").into()),
        Err(ChatError::Forbidden) => {
            Err(ApiError::Forbidden("only its author or a room admin may delete a message").into())
        }
        Err(ChatError::Unauthorized) => Err(ApiError::NotFound("no such room").into()),
        Err(other) => Err(ApiError::Unavailable(if other == ChatError::Busy {
            "room busy; try again"
        } else {
            "room unavailable; try again"
        })
        .into()),
    }
}
