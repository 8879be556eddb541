//! Who is calling: registration and login with argon2id passwords, browser sessions
//! (HttpOnly cookie + CSRF token), named and revocable API tokens, profiles, and the
//! extractors that turn a request into a `User`. The rest of the app only ever sees a
//! `User { id, username }`.
//!
//! Two kinds of secret identify a user, both 256 random bits stored only as a SHA-256:
//! API tokens (for the JSON API and socket connect params; created by `POST /api/users`
//! or `POST /api/tokens`, revoked by deleting them) and session tokens (the
//! `firehose_session` cookie; made at login and registration, ended by logout, expiry
//! or a password change). `authenticate` accepts either, so a page can also connect its
//! socket with the token of its session.
//!
//! A socket follows its credential: sockets that connected with a token are
//! registered by it (`live.rs`) and closed when it is revoked, the session logs out
//! or the password changes. In a cluster the revocation reaches every node (a pub/sub
//! signal, [`hear_revocations`]): each forgets the token and closes its own sockets.
//!
//! No user enumeration: a failed login answers "invalid email or password" whether the
//! email is unknown or the password wrong, and an unknown email is verified against a
//! dummy hash so the two take the same time. Registration does say that an email is
//! taken (a 409 naming `email`, nothing more): without sending mail there is no way to
//! register without telling, and the per-IP limits keep that from becoming a bulk
//! lookup.

mod api;
mod avatar_api;
mod extract;
mod live;
mod model;
mod password;
mod session_api;
mod token_api;
mod token_cache;
mod tokens;
pub mod validate;

pub use api::router;
pub use extract::{
    Authenticated, CSRF_HEADER, ClientIp, CurrentUser, MaybeUser, SESSION_COOKIE, Via, check_csrf,
    clear_session_cookie, cookie, session_cookie,
};
pub use live::{Credential, LiveSockets, Registration};
pub use model::{Account, ApiTokenInfo, NewAccount, NewSession, ResolvedToken, TokenKind, TokenOwner, UsernameChoice};
use session_api::spend_signup;
pub use session_api::{end_session, register_account, set_session, sign_in};
pub use token_cache::{DEFAULT_TTL as TOKEN_CACHE_TTL, TokenCache};
pub use tokens::{ApiToken, TokenHash, csrf_matches, csrf_token};

use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::http::ApiError;
use crate::state::AppState;
use std::sync::Arc;

/// A signed-in user as the rest of the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
}

/// Resolves a presented token (an API token or an unexpired session token) to its
/// user; `None` for an unknown, revoked or expired token.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<User>, ApiError> {
    Ok(resolve(state, token).await?.map(|owner| owner.user))
}

/// How often `last_used_at` of an API token is written at most: a bearer request is
/// then a read, and the single writer is not taxed on the hot path.
const LAST_USED_GRANULARITY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Resolves a token to its owner and kind, recording API token use: from the token
/// cache when it was resolved within its TTL, else from the database (and cached).
pub(crate) async fn resolve(state: &AppState, token: &str) -> Result<Option<TokenOwner>, ApiError> {
    if token.is_empty() || token.len() > 512 {
        return Ok(None);
    }
    let hash = TokenHash::of(token);
    let now = Utc::now();
    let owner = match state.tokens.get(&hash, Instant::now()) {
        Ok(owner) => owner,
        Err(miss) => {
            let Some(found) = state.store.resolve_token(&hash, &timestamp(now)).await? else {
                return Ok(None);
            };
            let expires_in = found.expires_at.as_deref().map(|at| {
                DateTime::parse_from_rfc3339(at)
                    .ok()
                    .and_then(|at| (at.with_timezone(&Utc) - now).to_std().ok())
                    .unwrap_or_default()
            });
            state.tokens.store(hash.clone(), found.owner.clone(), expires_in, miss, Instant::now());
            found.owner
        }
    };
    if let TokenKind::Api { id, last_used_at } = &owner.kind {
        let since = timestamp(now - LAST_USED_GRANULARITY);
        if last_used_at.as_deref().is_none_or(|last| last < since.as_str()) {
            let now_str = timestamp(now);
            // Failing to record a use must not fail the request it was for.
            match state.store.touch_api_token(*id, &now_str, &since).await {
                Ok(()) => state.tokens.used(&hash, &now_str),
                Err(err) => tracing::warn!(%err, "could not record API token use"),
            }
        }
    }
    Ok(Some(owner))
}

/// Revokes `credential` of `user_id` everywhere, after the database forgot it: on this
/// node the token cache first (so no request accepts it any more), then the sockets that
/// connected with it are closed; the other nodes of a cluster are told to do the same.
/// Every revocation goes through here or `revoke_sessions`.
pub fn revoke(state: &AppState, user_id: i64, credential: Credential) {
    let revocation = Revocation::One { user_id, credential };
    revocation.apply(&state.tokens, &state.live_sockets);
    state.pubsub.signal_others(REVOCATIONS_TOPIC, REVOKED, &revocation);
}

/// Revokes every session of `user_id` (a password change), as `revoke` does.
pub fn revoke_sessions(state: &AppState, user_id: i64) {
    let revocation = Revocation::Sessions { user_id };
    revocation.apply(&state.tokens, &state.live_sockets);
    state.pubsub.signal_others(REVOCATIONS_TOPIC, REVOKED, &revocation);
}

/// The signal topic (never a channel's) on which nodes tell each other of revocations.
const REVOCATIONS_TOPIC: &str = "accounts";
const REVOKED: &str = "revoked";

/// A revocation as it crosses between nodes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Revocation {
    One { user_id: i64, credential: Credential },
    Sessions { user_id: i64 },
}

impl Revocation {
    /// Forgets the token(s) on this node and closes the sockets that used them.
    fn apply(&self, tokens: &TokenCache, live: &LiveSockets) {
        match *self {
            Revocation::One { user_id, credential } => {
                tokens.forget(user_id, |kind| Credential::from(kind) == credential);
                live.revoke(user_id, credential);
            }
            Revocation::Sessions { user_id } => {
                tokens.forget(user_id, |kind| matches!(kind, TokenKind::Session { .. }));
                live.revoke_sessions(user_id);
            }
        }
    }
}

/// Applies the revocations the other nodes of a cluster make here too.
pub fn hear_revocations(pubsub: &crate::pubsub::PubSub, tokens: Arc<TokenCache>, live: Arc<LiveSockets>) {
    pubsub.on_signal(
        REVOCATIONS_TOPIC,
        Arc::new(move |event, payload| match (event, serde_json::from_str::<Revocation>(payload.get())) {
            (REVOKED, Ok(revocation)) => revocation.apply(&tokens, &live),
            _ => tracing::warn!(event, "ignoring an accounts signal"),
        }),
    );
}

/// A time as stored: RFC 3339, UTC, microseconds (fixed width, so text order is time
/// order).
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
