//! Who is calling, from a request: a bearer token or the session cookie, with the CSRF
//! check for cookie-authenticated writes; the caller's IP; the session cookie itself.
//!
//! CSRF: a browser attaches the session cookie to requests that other sites trigger,
//! so a request authenticated by the cookie alone proves nothing about intent. Any
//! state-changing method (not GET/HEAD/OPTIONS) authenticated by the cookie must also
//! carry `X-CSRF-Token` equal to the session's CSRF token, which login, registration
//! and `GET /api/accounts/me` return and which another site can neither read nor
//! compute. A bearer token is never sent by the browser on its own, so bearer requests
//! need no CSRF token. `SameSite=Lax` on the cookie is a second, independent layer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};

use super::tokens::csrf_matches;
use super::{TokenKind, User, resolve};
use crate::http::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "firehose_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer` with an API token (or a session token used as one).
    Bearer,
    /// The session cookie; holds the raw session token (to derive its CSRF token).
    Session { token: String },
}

/// The signed-in caller, and how they signed in.
pub struct Authenticated {
    pub user: User,
    pub via: Via,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(header) = parts.headers.get(AUTHORIZATION) {
            let token = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
                .map(str::trim)
                .ok_or(ApiError::Unauthorized("malformed Authorization header; expected `Bearer <token>`"))?;
            let owner = resolve(state, token).await?.ok_or(ApiError::Unauthorized("invalid token"))?;
            return Ok(Authenticated { user: owner.user, via: Via::Bearer });
        }
        let Some(token) = session_cookie(&parts.headers) else {
            return Err(ApiError::Unauthorized("not signed in: send a bearer token or the session cookie"));
        };
        let user = match resolve(state, &token).await? {
            Some(owner) if matches!(owner.kind, TokenKind::Session { .. }) => owner.user,
            _ => return Err(ApiError::Unauthorized("session expired or invalid; sign in again")),
        };
        if !is_safe(&parts.method) {
            check_csrf(&parts.headers, &token)?;
        }
        Ok(Authenticated { user, via: Via::Session { token } })
    }
}

/// Extractor for routes that need a signed-in user (bearer token or session cookie).
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Authenticated::from_request_parts(parts, state).await.map(|a| CurrentUser(a.user))
    }
}

/// The caller when signed in, anonymous otherwise, for routes anyone may read. A bearer
/// token that is present but invalid is still an error, so a typo never silently
/// downgrades to anonymous; a stale session cookie just reads as anonymous.
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(AUTHORIZATION) {
            return Authenticated::from_request_parts(parts, state).await.map(|a| MaybeUser(Some(a.user)));
        }
        if session_cookie(&parts.headers).is_none() {
            return Ok(MaybeUser(None));
        }
        Ok(MaybeUser(Authenticated::from_request_parts(parts, state).await.ok().map(|a| a.user)))
    }
}

/// The peer address of the connection. Forwarding headers are not trusted: behind a
/// proxy every client would share the proxy's budget, which fails safe (too strict),
/// whereas trusting `X-Forwarded-For` would let anyone pick a fresh key per request.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Without connect info (a router served some other way) all callers share one key.
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
        Ok(ClientIp(ip))
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `X-CSRF-Token` must be the CSRF token of the session `token`.
pub fn check_csrf(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
    match presented {
        Some(p) if csrf_matches(token, p) => Ok(()),
        _ => Err(ApiError::Forbidden("missing or invalid X-CSRF-Token for a cookie-authenticated request")),
    }
}

/// Login, registration and logout have no session to tie a CSRF token to yet, and a
/// forged login (signing the victim into the attacker's account) is an attack too; so
/// they refuse requests that a browser marks as coming from another site. Non-browser
/// clients send neither header and pass.
pub fn reject_cross_site(headers: &HeaderMap) -> Result<(), ApiError> {
    const REFUSED: ApiError = ApiError::Forbidden("cross-site request refused");
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
        return Err(REFUSED);
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(REFUSED),
    }
}

/// The value of cookie `name` from the `Cookie` header(s), trimmed, if any.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
}

/// The session token from the `Cookie` header(s), if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE).map(|v| v.trim_matches('"').to_owned()).filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session. HttpOnly: page scripts never see it. SameSite=Lax:
/// not sent on cross-site subrequests or POSTs. Secure when served over HTTPS.
pub fn set_session_cookie(headers: &mut HeaderMap, token: &str, max_age_secs: u64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.append(SET_COOKIE, v);
    }
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(headers: &mut HeaderMap, secure: bool) {
    set_session_cookie(headers, "", 0, secure);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let h = headers(&[("cookie", "a=1; firehose_session=abc; b=2")]);
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "firehose_session=xyz")]);
        assert_eq!(session_cookie(&h).as_deref(), Some("xyz"));
        assert_eq!(session_cookie(&headers(&[("cookie", "firehose_session=")])), None);
        assert_eq!(session_cookie(&headers(&[("cookie", "xfirehose_session=1")])), None);
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(reject_cross_site(&headers(&[])).is_ok());
        assert!(reject_cross_site(&headers(&[("host", "a.test:4000"), ("origin", "http://a.test:4000")])).is_ok());
        assert!(reject_cross_site(&headers(&[("host", "a.test:4000"), ("origin", "https://evil.test")])).is_err());
        assert!(reject_cross_site(&headers(&[("host", "a.test"), ("origin", "null")])).is_err());
        assert!(reject_cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(reject_cross_site(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_when_asked() {
        let mut h = HeaderMap::new();
        set_session_cookie(&mut h, "tok", 60, true);
        clear_session_cookie(&mut h, false);
        let all: Vec<_> = h.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(all[0], "firehose_session=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=60; Secure");
        assert_eq!(all[1], "firehose_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    }
}
