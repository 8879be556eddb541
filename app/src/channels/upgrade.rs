//! The HTTP side of a socket: version negotiation, connect authentication (query
//! `token`, phoenix.js's `base64url.bearer.phx.` subprotocol, or — for the app's own
//! pages — the session cookie of a same-origin upgrade), load refusal (503 past the
//! cap of `crate::connections::SocketSlots`), and the
//! WebSocket buffer sizes, all decided before the upgrade.

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::session::SignedIn;
use super::socket;
use crate::accounts::{Credential, resolve, session_cookie};
use crate::http::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::wire::Vsn;

const BEARER_PREFIX: &str = "base64url.bearer.phx.";

pub async fn upgrade(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match prepare(&state, &params, &headers, ws).await {
        Ok(response) => response,
        Err(err) => {
            Metrics::add(&state.metrics.sockets_refused, 1);
            err.into_response()
        }
    }
}

async fn prepare(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::BadRequest(format!("WebSocket upgrade required: {e}")))?;
    let vsn = Vsn::from_param(params.get("vsn").map(String::as_str))
        .ok_or_else(|| ApiError::BadRequest("unsupported vsn; use 2.0.0 or 1.0.0".into()))?;
    let cfg = &state.config.socket;
    // Taken before anything else is spent on the connect; given back if it fails.
    let slot = state.socket_slots.try_take().ok_or(ApiError::Unavailable("too many connections; try again later"))?;
    let token = params.get("token").cloned().or_else(|| subprotocol_token(headers));
    let user = match token {
        Some(token) => Some(Box::new(sign_in(state, &token).await?)),
        // A stale cookie reads as anonymous, as it does for pages.
        None => match page_session(headers) {
            Some(token) => sign_in(state, &token).await.ok().map(Box::new),
            None => None,
        },
    };
    let state = state.clone();
    let tracker = state.sockets.clone();
    let response = ws
        .protocols(["phoenix"])
        .read_buffer_size(cfg.read_buffer_bytes)
        .write_buffer_size(cfg.write_buffer_bytes)
        .max_write_buffer_size(cfg.write_buffer_bytes.max(64 * 1024) * 4)
        .max_message_size(cfg.max_message_bytes)
        .max_frame_size(cfg.max_message_bytes)
        .on_upgrade(move |ws| tracker.track_future(socket::run(ws, state, vsn, user, slot)));
    Ok(response)
}

/// Resolves the connect token and registers the socket-to-be under it, so that
/// revoking the token (or ending its session) closes the socket. Refused (403) when the
/// token is unknown, or was revoked while this connect was under way.
async fn sign_in(state: &AppState, token: &str) -> Result<SignedIn, ApiError> {
    const REFUSED: ApiError = ApiError::Forbidden("invalid token");
    let live = &state.live_sockets;
    let seen = live.revocations();
    let owner = resolve(state, token).await?.ok_or(REFUSED)?;
    let credential = Credential::from(&owner.kind);
    let registration = live.register(owner.user.id, credential);
    // A revocation between the lookup and the registration would have missed this
    // socket: look again (rare — only when some revocation happened meanwhile).
    if registration.raced(seen) {
        let again = resolve(state, token).await?;
        if again.is_none_or(|o| o.user.id != owner.user.id || Credential::from(&o.kind) != credential) {
            return Err(REFUSED);
        }
    }
    Ok(SignedIn { user: owner.user, registration })
}

/// The session cookie of an upgrade made by one of our own pages. The page's script
/// cannot read the (HttpOnly) cookie, but the browser sends it with the upgrade. Only a
/// same-origin upgrade may use it — a browser always sends `Origin` with a WebSocket
/// upgrade, so another site's page cannot open a socket as the user (cross-site
/// WebSocket hijacking); `SameSite=Lax` keeps the cookie off such upgrades as well.
fn page_session(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(ORIGIN)?.to_str().ok()?;
    let host = headers.get(HOST)?.to_str().ok()?;
    let origin_host = origin.split_once("://").map(|(_, rest)| rest)?;
    if !origin_host.eq_ignore_ascii_case(host) {
        return None;
    }
    session_cookie(headers)
}

/// phoenix.js ≥ 1.8 sends `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.<token>`.
fn subprotocol_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(BEARER_PREFIX))
        .map(|encoded| decode_lenient(encoded).unwrap_or_else(|| encoded.to_owned()))
}

/// Decodes base64 in either alphabet, with or without padding. A token that does not
/// decode is passed on as given, to fail authentication like any wrong token.
fn decode_lenient(encoded: &str) -> Option<String> {
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD_NO_PAD, STANDARD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocol_tokens_decode_in_both_alphabets() {
        let mut h = HeaderMap::new();
        // "a?b>c" encodes with '/' and '+' in the standard alphabet.
        h.insert(SEC_WEBSOCKET_PROTOCOL, "phoenix, base64url.bearer.phx.YT9iPmM".parse().unwrap());
        assert_eq!(subprotocol_token(&h).as_deref(), Some("a?b>c"));
        h.insert(SEC_WEBSOCKET_PROTOCOL, "phoenix, base64url.bearer.phx.YT9iPmM=".parse().unwrap());
        assert_eq!(subprotocol_token(&h).as_deref(), Some("a?b>c"));
        h.insert(SEC_WEBSOCKET_PROTOCOL, "phoenix".parse().unwrap());
        assert_eq!(subprotocol_token(&h), None);
    }

    #[test]
    fn the_session_cookie_counts_only_for_same_origin_upgrades() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "firehose_session=abc".parse().unwrap());
        h.insert(HOST, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(page_session(&h), None, "no Origin: not a page");
        h.insert(ORIGIN, "http://127.0.0.1:4000".parse().unwrap());
        assert_eq!(page_session(&h).as_deref(), Some("abc"));
        h.insert(ORIGIN, "http://evil.test".parse().unwrap());
        assert_eq!(page_session(&h), None);
    }
}
