//! Signing up, logging in and out, and the profile (display name, avatar). The forms
//! go through the same functions as the JSON API (`crate::accounts`): the same
//! validation, per-IP budget, password hashing and session cookie.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::render::{Layout, PageForm, WebError, local_path, see_other};
use super::viewer::Ctx;
use crate::accounts::{self, ClientIp, clear_session_cookie};
use crate::http::{ApiError, FieldErrors};
use crate::state::AppState;
use crate::store::AvatarRefusal;
use crate::validation::Invalid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(signup_form).post(signup))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/profile", get(profile).post(update_profile))
        .route("/profile/avatar", post(upload_avatar))
        .route("/profile/avatar/remove", post(remove_avatar))
}

#[derive(Default, Deserialize)]
struct AccountForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    username: String,
    next: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    /// `signup` or `login`.
    mode: &'static str,
    email: String,
    display_name: String,
    username: String,
    next: String,
    /// A message about the whole form (wrong password, too many attempts).
    notice: String,
    errors: BTreeMap<String, Vec<String>>,
}

impl AccountPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).map(|m| m.join("; ")).unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn account_page(
    ctx: &Ctx,
    mode: &'static str,
    form: &AccountForm,
    notice: String,
    errors: &FieldErrors,
) -> AccountPage {
    let title = if mode == "signup" { "Sign up · firehose" } else { "Log in · firehose" };
    AccountPage {
        layout: ctx.layout(title, "account").await,
        mode,
        email: form.email.clone(),
        display_name: form.display_name.clone(),
        username: form.username.clone(),
        next: local_path(form.next.as_deref()),
        notice,
        errors: serde_json::to_value(errors).ok().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
    }
}

async fn signup_form(ctx: Ctx, Query(q): Query<NextQuery>) -> Result<Response, WebError> {
    if ctx.user().is_some() {
        return Ok(see_other(&local_path(q.next.as_deref())));
    }
    let form = AccountForm { next: q.next, ..AccountForm::default() };
    let page = account_page(&ctx, "signup", &form, String::new(), &FieldErrors::default()).await;
    Ok(ctx.render(StatusCode::OK, &page))
}

async fn login_form(ctx: Ctx, Query(q): Query<NextQuery>) -> Result<Response, WebError> {
    if ctx.user().is_some() {
        return Ok(see_other(&local_path(q.next.as_deref())));
    }
    let form = AccountForm { next: q.next, ..AccountForm::default() };
    let page = account_page(&ctx, "login", &form, String::new(), &FieldErrors::default()).await;
    Ok(ctx.render(StatusCode::OK, &page))
}

async fn signup(
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(form): PageForm<AccountForm>,
) -> Result<Response, WebError> {
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    let mut body = json!({"email": form.email, "password": form.password, "display_name": form.display_name});
    if !form.username.trim().is_empty() {
        body["username"] = json!(form.username.trim());
    }
    let started = accounts::register_account(&ctx.state, ip, &headers, &body).await;
    finish(ctx, "signup", form, started.map(|(_, token)| token)).await
}

async fn login(
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(form): PageForm<AccountForm>,
) -> Result<Response, WebError> {
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    let body = json!({"email": form.email, "password": form.password});
    let started = accounts::sign_in(&ctx.state, ip, &headers, &body).await;
    finish(ctx, "login", form, started.map(|(_, token)| token)).await
}

/// Signed in: the cookie, then where the user was going. Refused: the form again, with
/// what was wrong (never the password).
async fn finish(
    ctx: Ctx,
    mode: &'static str,
    form: AccountForm,
    started: Result<accounts::ApiToken, ApiError>,
) -> Result<Response, WebError> {
    let (status, notice, errors) = match started {
        Ok(token) => {
            let mut response = see_other(&local_path(form.next.as_deref()));
            accounts::set_session(&ctx.state, response.headers_mut(), &token);
            return Ok(response);
        }
        Err(err @ (ApiError::Validation(_) | ApiError::Conflict(_))) => {
            (err.status(), String::new(), err.fields().unwrap_or_default())
        }
        Err(err @ (ApiError::Unauthorized(_) | ApiError::RateLimited(_) | ApiError::Forbidden(_))) => {
            let notice = match &err {
                ApiError::RateLimited(_) => {
                    "Too many attempts from your address; wait a minute and try again.".to_owned()
                }
                other => capitalized(&other.to_string()),
            };
            (err.status(), notice, FieldErrors::default())
        }
        Err(other) => return Err(other.into()),
    };
    let page = account_page(&ctx, mode, &form, notice, &errors).await;
    Ok(ctx.render(status, &page))
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn logout(ctx: Ctx, PageForm(form): PageForm<CsrfForm>) -> Result<Response, WebError> {
    if let Some(token) = ctx.viewer.session_token() {
        ctx.viewer.check_csrf(form.csrf.as_deref())?;
        accounts::end_session(&ctx.state, token).await?;
    }
    let mut response = see_other("/");
    clear_session_cookie(response.headers_mut(), ctx.state.config.accounts.secure_cookie);
    Ok(response)
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    layout: Layout,
    username: String,
    email: String,
    display_name: String,
    avatar_url: Option<String>,
    notice: String,
    error: String,
    max_upload: String,
}

async fn profile_page(
    ctx: &Ctx,
    display_name: Option<String>,
    notice: &str,
    error: &str,
) -> Result<ProfilePage, WebError> {
    let user = ctx.require_user("/profile")?;
    let account = ctx.state.store.account(user.id).await?.ok_or(WebError::SignIn("/profile".into()))?;
    Ok(ProfilePage {
        layout: ctx.layout("Profile · firehose", "profile").await,
        username: account.user.username.clone(),
        email: account.email.clone().unwrap_or_default(),
        display_name: display_name.unwrap_or_else(|| account.display_name.clone().unwrap_or_default()),
        avatar_url: account.avatar_path.as_ref().map(|k| format!("/uploads/{k}")),
        notice: notice.to_owned(),
        error: error.to_owned(),
        max_upload: super::views::size_label(ctx.state.config.max_upload_bytes as i64),
    })
}

#[derive(Deserialize)]
struct QueryNotice {
    saved: Option<String>,
}

async fn profile(ctx: Ctx, Query(q): Query<QueryNotice>) -> Result<Response, WebError> {
    let notice = match q.saved.as_deref() {
        Some("name") => "Display name saved.",
        Some("avatar") => "Avatar saved.",
        Some("avatar-removed") => "Avatar removed.",
        _ => "",
    };
    let page = profile_page(&ctx, None, notice, "").await?;
    Ok(ctx.render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct ProfileForm {
    #[serde(default)]
    display_name: String,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn update_profile(ctx: Ctx, PageForm(form): PageForm<ProfileForm>) -> Result<Response, WebError> {
    let user = ctx.require_user("/profile")?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    match accounts::validate::profile(&json!({"display_name": form.display_name})) {
        Ok(display_name) => {
            ctx.state.store.set_display_name(user.id, &display_name).await?;
            Ok(see_other("/profile?saved=name"))
        }
        Err(Invalid::Fields(errors)) => {
            let message = errors.get("display_name").first().map_or("is not valid", String::as_str);
            let page = profile_page(&ctx, Some(form.display_name), "", &format!("Display name {message}.")).await?;
            Ok(ctx.render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(other) => Err(ApiError::from(other).into()),
    }
}

/// The avatar form without the script: a multipart form whose first field is `_csrf`,
/// then `file`. Stored as an upload like any other, then made the avatar.
async fn upload_avatar(
    ctx: Ctx,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, WebError> {
    let user = ctx.require_user("/profile")?.clone();
    crate::uploads::refuse_declared_oversize(&ctx.state, &headers)?;
    let mut multipart =
        multipart.map_err(|e| ApiError::BadRequest(format!("expected a multipart form: {}", e.body_text())))?;
    // The CSRF field comes first, so nothing is stored for a forged form.
    let first = multipart.next_field().await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let csrf = match first {
        Some(field) if field.name() == Some("_csrf") => field.text().await.ok(),
        _ => None,
    };
    ctx.viewer.check_csrf(csrf.as_deref())?;
    let outcome = match crate::uploads::accept(&ctx.state, user.id, &mut multipart).await {
        Ok(upload) => match ctx.state.store.set_avatar(user.id, Some(upload.id)).await? {
            Ok(()) => return Ok(see_other("/profile?saved=avatar")),
            Err(AvatarRefusal::NotAnImage) => "Avatar must be an image (jpg, png, gif or webp).".to_owned(),
            Err(AvatarRefusal::NotYours) => "That upload is not yours.".to_owned(),
        },
        Err(ApiError::UnsupportedMediaType(_)) => "Avatar must be an image (jpg, png, gif or webp).".to_owned(),
        Err(ApiError::PayloadTooLarge(max)) => {
            format!("That file is too big (at most {}).", super::views::size_label(max as i64))
        }
        Err(ApiError::Validation(_)) => "Choose an image file first.".to_owned(),
        Err(ApiError::QuotaExceeded { quota, .. }) => format!(
            "Your uploads fill your quota of {}; delete some to make room.",
            super::views::size_label(i64::try_from(quota).unwrap_or(i64::MAX))
        ),
        Err(ApiError::RateLimited(wait)) => {
            format!("Too many uploads for now; try again in {} s.", wait.as_secs().max(1))
        }
        Err(other) => return Err(other.into()),
    };
    let page = profile_page(&ctx, None, "", &outcome).await?;
    Ok(ctx.render(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn remove_avatar(ctx: Ctx, PageForm(form): PageForm<CsrfForm>) -> Result<Response, WebError> {
    let user = ctx.require_user("/profile")?.clone();
    ctx.viewer.check_csrf(form.csrf.as_deref())?;
    // Clearing cannot be refused.
    let _ = ctx.state.store.set_avatar(user.id, None).await?;
    Ok(see_other("/profile?saved=avatar-removed"))
}
