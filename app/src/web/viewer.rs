//! Who is looking at a page, from the session cookie, and `Ctx`, what every page
//! handler starts from: the app state, the viewer and the request path.

use axum::extract::FromRequestParts;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use super::render::WebError;
use crate::accounts::{Account, ApiToken, TokenKind, User, csrf_matches, csrf_token, resolve, session_cookie};
use crate::state::AppState;

/// The pre-session cookie: a random value whose CSRF token protects the forms of a
/// viewer who is not signed in yet (sign up, log in).
pub const PRESESSION_COOKIE: &str = "firehose_csrf";

pub struct Viewer {
    /// The signed-in account (profile included), if any.
    pub account: Option<Account>,
    /// The raw session token of a signed-in viewer.
    session: Option<String>,
    /// The pre-session value of a viewer who is not signed in.
    presession: Option<String>,
    /// The pre-session value was made for this request: the response must set it.
    new_presession: bool,
}

impl Viewer {
    pub fn user(&self) -> Option<&User> {
        self.account.as_ref().map(|a| &a.user)
    }

    pub fn session_token(&self) -> Option<&str> {
        self.session.as_deref()
    }

    fn secret(&self) -> &str {
        self.session.as_deref().or(self.presession.as_deref()).unwrap_or_default()
    }

    /// The token forms carry in `_csrf` (and scripts in `X-CSRF-Token`).
    pub fn csrf(&self) -> String {
        csrf_token(self.secret())
    }

    /// A form's `_csrf` must be this viewer's token.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), WebError> {
        match presented {
            Some(p) if !self.secret().is_empty() && csrf_matches(self.secret(), p.trim()) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }

    /// `Set-Cookie` for a pre-session value made for this request.
    pub fn set_cookies(&self, headers: &mut HeaderMap) {
        if let (true, Some(value)) = (self.new_presession, &self.presession) {
            let cookie = format!("{PRESESSION_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, v);
            }
        }
    }

    async fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, WebError> {
        if let Some(token) = session_cookie(headers)
            && let Some(owner) = resolve(state, &token).await?
            && matches!(owner.kind, TokenKind::Session { .. })
            && let Some(account) = state.store.account(owner.user.id).await?
        {
            return Ok(Viewer {
                account: Some(account),
                session: Some(token),
                presession: None,
                new_presession: false,
            });
        }
        // Not signed in (or a stale cookie): the pre-session value protects the forms.
        let (presession, new_presession) = match presession_cookie(headers) {
            Some(v) => (v, false),
            None => (ApiToken::generate().as_str().to_owned(), true),
        };
        Ok(Viewer { account: None, session: None, presession: Some(presession), new_presession })
    }
}

fn presession_cookie(headers: &HeaderMap) -> Option<String> {
    crate::accounts::cookie(headers, PRESESSION_COOKIE).map(str::to_owned).filter(|v| {
        (20..=100).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// What a page handler works with.
pub struct Ctx {
    pub state: AppState,
    pub viewer: Viewer,
    /// The request's path (no query), e.g. `/tags/rust`.
    pub path: String,
    /// The request's `Host`, for absolute links (the bookmarklet).
    pub host: Option<String>,
}

impl Ctx {
    pub fn user(&self) -> Option<&User> {
        self.viewer.user()
    }

    /// The signed-in user, or a redirect to the login page that comes back here.
    pub fn require_user(&self, back: &str) -> Result<&User, WebError> {
        self.viewer.user().ok_or_else(|| WebError::SignIn(back.to_owned()))
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let viewer = Viewer::from_headers(state, &parts.headers).await?;
        let host = parts.headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
        Ok(Ctx { state: state.clone(), viewer, path: parts.uri.path().to_owned(), host })
    }
}
