//! `/api/accounts/*`: register, login, logout, password change, and the signed-in
//! user's own profile. Each answer that signs someone in sets the session cookie and
//! returns the session's CSRF token, which cookie-authenticated writes must echo in
//! `X-CSRF-Token`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{TimeDelta, Utc};
use serde_json::json;

use super::extract::{clear_session_cookie, reject_cross_site, set_session_cookie};
use super::{
    Account, ApiToken, Authenticated, ClientIp, Credential, NewAccount, NewSession, TokenHash, TokenKind, TokenOwner,
    UsernameChoice, Via, check_csrf, csrf_token, password, resolve, session_cookie, timestamp, validate,
};
use crate::http::{ApiError, JsonBody};
use crate::ratelimit::ip_key;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/accounts/register", post(register))
        .route("/api/accounts/login", post(login))
        .route("/api/accounts/logout", post(logout))
        .route("/api/accounts/password", put(change_password))
        .route("/api/accounts/me", get(me).patch(update_profile))
}

/// The one answer to every failed login, whatever failed.
const INVALID_LOGIN: ApiError = ApiError::Unauthorized("invalid email or password");

async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (account, token) = register_account(&state, ip, &headers, &body).await?;
    Ok(account_response(StatusCode::CREATED, &state, &account, SessionOut::New(token.as_str())))
}

/// Registers an account from `{email, password, display_name, username?}` and starts
/// its session (the JSON API and the sign-up page): the account and the session token
/// for the cookie (`set_session`).
pub async fn register_account(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: &serde_json::Value,
) -> Result<(Account, ApiToken), ApiError> {
    reject_cross_site(headers)?;
    limit(state, ip)?;
    let reg = validate::registration(body)?;
    spend_signup(state, ip)?;
    let username = match reg.username {
        Some(name) => UsernameChoice::Exact(name),
        None => UsernameChoice::Derived(validate::username_from_email(&reg.email)),
    };
    let password_hash = password::hash(reg.password).await?;
    let (token, session) = new_session(state, headers);
    let new = NewAccount { email: reg.email, password_hash, display_name: reg.display_name, username };
    // A taken email or username is a 409 naming the field (`ApiError::Conflict`).
    let account = state.store.register(&new, &session).await?;
    Ok((account, token))
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (account, token) = sign_in(&state, ip, &headers, &body).await?;
    Ok(account_response(StatusCode::OK, &state, &account, SessionOut::New(token.as_str())))
}

/// Checks `{email, password}` and starts a session (the JSON API and the login page):
/// the account and the session token for the cookie (`set_session`).
pub async fn sign_in(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: &serde_json::Value,
) -> Result<(Account, ApiToken), ApiError> {
    reject_cross_site(headers)?;
    limit(state, ip)?;
    let (email, password) = validate::login(body)?;
    let (account, stored_hash) = match state.store.account_by_email(&email).await? {
        Some((account, hash)) => (Some(account), hash),
        None => (None, None),
    };
    // Always one argon2 verification: against the real hash, or a dummy one.
    let matches = password::verify(password, stored_hash).await?;
    let account = account.filter(|_| matches).ok_or(INVALID_LOGIN)?;
    let (token, session) = new_session(state, headers);
    state.store.create_session(account.user.id, &session).await?;
    Ok((account, token))
}

/// `Set-Cookie` for a session just started by `sign_in` or `register_account`.
pub fn set_session(state: &AppState, headers: &mut HeaderMap, token: &ApiToken) {
    let accounts = &state.config.accounts;
    set_session_cookie(headers, token.as_str(), accounts.session_ttl.as_secs(), accounts.secure_cookie);
}

/// Ends the session of `token` (if it is a live one) and closes the sockets that
/// connected with it. The caller has checked the CSRF token.
pub async fn end_session(state: &AppState, token: &str) -> Result<(), ApiError> {
    if let Some(TokenOwner { kind: TokenKind::Session { id }, user }) = resolve(state, token).await? {
        state.store.delete_session(&TokenHash::of(token)).await?;
        super::revoke(state, user.id, Credential::Session(id));
    }
    Ok(())
}

/// Ends the cookie's session (closing the sockets that connected with it) and clears
/// the cookie. Idempotent: without a live session it only clears the cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    reject_cross_site(&headers)?;
    if let Some(token) = session_cookie(&headers)
        && let Some(TokenOwner { kind: TokenKind::Session { .. }, .. }) = resolve(&state, &token).await?
    {
        // A live session is only ended on a request that carries its CSRF token, so
        // another site cannot sign the user out.
        check_csrf(&headers, &token)?;
        end_session(&state, &token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_session_cookie(response.headers_mut(), state.config.accounts.secure_cookie);
    Ok(response)
}

/// Changes the password and ends every session of the user, closing the sockets that
/// connected with one. A cookie caller gets a fresh session (new cookie, new CSRF
/// token); a bearer caller keeps using its token. API tokens (and their sockets) are
/// left alone: they are managed, and revoked, on their own.
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: Authenticated,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    limit(&state, ip)?;
    let (current, new) = validate::password_change(&body)?;
    let stored_hash = state.store.password_hash(auth.user.id).await?;
    if !password::verify(current, stored_hash).await? {
        return Err(ApiError::field("current_password", "is not valid"));
    }
    let new_hash = password::hash(new).await?;
    let replacement = match auth.via {
        Via::Session { .. } => Some(new_session(&state, &headers)),
        Via::Bearer => None,
    };
    state.store.change_password(auth.user.id, &new_hash, replacement.as_ref().map(|(_, s)| s)).await?;
    super::revoke_sessions(&state, auth.user.id);
    let account = own_account(&state, auth.user.id).await?;
    let out = match &replacement {
        Some((token, _)) => SessionOut::New(token.as_str()),
        None => SessionOut::None,
    };
    Ok(account_response(StatusCode::OK, &state, &account, out))
}

async fn me(State(state): State<AppState>, auth: Authenticated) -> Result<Response, ApiError> {
    let account = own_account(&state, auth.user.id).await?;
    Ok(account_response(StatusCode::OK, &state, &account, SessionOut::from(&auth.via)))
}

async fn update_profile(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let display_name = validate::profile(&body)?;
    let account = state
        .store
        .set_display_name(auth.user.id, &display_name)
        .await?
        .ok_or(ApiError::Unauthorized("account no longer exists"))?;
    Ok(account_response(StatusCode::OK, &state, &account, SessionOut::from(&auth.via)))
}

fn limit(state: &AppState, ip: std::net::IpAddr) -> Result<(), ApiError> {
    state.auth_limiter.check(ip_key(ip)).map_err(ApiError::RateLimited)
}

/// Takes one account creation from `ip`'s sign-up budget (`--rate-signups`): 429 with
/// `Retry-After` when it is spent. Asked once the request is valid, just before the
/// account is written, so a form sent back for a typo costs nothing.
pub(super) fn spend_signup(state: &AppState, ip: std::net::IpAddr) -> Result<(), ApiError> {
    state.signups.check(ip).map_err(ApiError::RateLimited)
}

async fn own_account(state: &AppState, user_id: i64) -> Result<Account, ApiError> {
    state.store.account(user_id).await?.ok_or(ApiError::Unauthorized("account no longer exists"))
}

/// A new session token and the record to store for it.
fn new_session(state: &AppState, headers: &HeaderMap) -> (ApiToken, NewSession) {
    let token = ApiToken::generate();
    let ttl = TimeDelta::from_std(state.config.accounts.session_ttl).unwrap_or(TimeDelta::days(60));
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect::<String>())
        .filter(|ua| !ua.is_empty());
    let session = NewSession { token: token.hash(), expires_at: timestamp(Utc::now() + ttl), user_agent };
    (token, session)
}

/// Which session the response speaks for.
enum SessionOut<'a> {
    /// Just started: set the cookie and return its CSRF token.
    New(&'a str),
    /// The cookie's session: return its CSRF token.
    Existing(&'a str),
    /// A bearer caller: no cookie, no CSRF token.
    None,
}

impl<'a> From<&'a Via> for SessionOut<'a> {
    fn from(via: &'a Via) -> Self {
        match via {
            Via::Session { token } => SessionOut::Existing(token),
            Via::Bearer => SessionOut::None,
        }
    }
}

/// `{"data": {"user": …, "csrf_token": …}}`, with the cookie for a new session.
fn account_response(status: StatusCode, state: &AppState, account: &Account, session: SessionOut<'_>) -> Response {
    let csrf = match session {
        SessionOut::New(token) | SessionOut::Existing(token) => Some(csrf_token(token)),
        SessionOut::None => None,
    };
    let body = json!({"data": {"user": account.to_json(), "csrf_token": csrf}});
    let mut response = (status, Json(body)).into_response();
    if let SessionOut::New(token) = session {
        let accounts = &state.config.accounts;
        set_session_cookie(response.headers_mut(), token, accounts.session_ttl.as_secs(), accounts.secure_cookie);
    }
    response
}
