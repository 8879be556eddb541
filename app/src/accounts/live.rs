//! Open sockets by the credential that authenticated them, so that a socket follows
//! its credential: revoking an API token, ending a session (logout) or changing the
//! password (which ends every session) closes the sockets that connected with it at
//! once, as Phoenix does by broadcasting `"disconnect"` to a socket's `id`. They close
//! with 1008, not 1000, so phoenix.js reconnects, and the reconnect is refused (403)
//! because the credential is gone.
//!
//! Only sockets with a user register, for as long as they are open (`Registration`
//! unregisters on drop); anonymous sockets never touch this. A registration's
//! `revoked` token is the parent of the socket's close signal, so the socket task
//! watches no extra branch for it.
//!
//! A connect in flight races a revocation: the revocation deletes the credential and
//! then cancels what is registered, the connect resolves the token and then registers.
//! A revocation between those two steps would miss the socket; so every revocation
//! bumps `revocations` (under the lock), and a connect that sees it moved since before
//! it resolved the token looks the token up once more (see `channels/upgrade.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::TokenKind;

/// What a socket authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// An API token, by id.
    ApiToken(i64),
    /// A session token, by session id.
    Session(i64),
}

impl From<&TokenKind> for Credential {
    fn from(kind: &TokenKind) -> Self {
        match kind {
            TokenKind::Api { id, .. } => Credential::ApiToken(*id),
            TokenKind::Session { id } => Credential::Session(*id),
        }
    }
}

struct Entry {
    id: u64,
    credential: Credential,
    revoked: CancellationToken,
}

/// The registry; one per server, in `AppState`.
#[derive(Default)]
pub struct LiveSockets {
    /// By user: each user has a handful of sockets at most, and a password change
    /// looks at all of one user's.
    by_user: Mutex<HashMap<i64, Vec<Entry>>>,
    next_id: AtomicU64,
    revocations: AtomicU64,
}

impl LiveSockets {
    /// How many revocations have happened; read before resolving a token, compared
    /// after registering (`Registration::raced`).
    pub fn revocations(&self) -> u64 {
        self.revocations.load(SeqCst)
    }

    /// Registers an open socket of `user_id` that authenticated with `credential`.
    pub fn register(self: &Arc<Self>, user_id: i64, credential: Credential) -> Registration {
        let id = self.next_id.fetch_add(1, SeqCst);
        let revoked = CancellationToken::new();
        let entry = Entry { id, credential, revoked: revoked.clone() };
        self.by_user.lock().entry(user_id).or_default().push(entry);
        Registration { live: self.clone(), user_id, id, revoked }
    }

    /// Closes the sockets of `user_id` that authenticated with `credential` (a revoked
    /// API token, a logged-out session); how many. Called through `accounts::revoke`,
    /// which evicts the token cache first.
    pub(super) fn revoke(&self, user_id: i64, credential: Credential) -> usize {
        self.revoke_where(user_id, |c| c == credential)
    }

    /// Closes every socket of `user_id` that authenticated with a session token (the
    /// password changed, which ends all sessions); how many.
    pub(super) fn revoke_sessions(&self, user_id: i64) -> usize {
        self.revoke_where(user_id, |c| matches!(c, Credential::Session(_)))
    }

    fn revoke_where(&self, user_id: i64, revoked: impl Fn(Credential) -> bool) -> usize {
        let mut by_user = self.by_user.lock();
        self.revocations.fetch_add(1, SeqCst);
        let Some(entries) = by_user.get_mut(&user_id) else { return 0 };
        let before = entries.len();
        entries.retain(|e| {
            let keep = !revoked(e.credential);
            if !keep {
                e.revoked.cancel();
            }
            keep
        });
        let n = before - entries.len();
        if entries.is_empty() {
            by_user.remove(&user_id);
        }
        n
    }

    /// Registered sockets (all users).
    pub fn len(&self) -> usize {
        self.by_user.lock().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.lock().is_empty()
    }

    fn unregister(&self, user_id: i64, id: u64) {
        let mut by_user = self.by_user.lock();
        if let Some(entries) = by_user.get_mut(&user_id) {
            entries.retain(|e| e.id != id);
            if entries.is_empty() {
                by_user.remove(&user_id);
            }
        }
    }
}

/// One open socket's place in `LiveSockets`, removed when dropped.
pub struct Registration {
    live: Arc<LiveSockets>,
    user_id: i64,
    id: u64,
    revoked: CancellationToken,
}

impl Registration {
    /// Cancelled when the credential is revoked.
    pub fn revoked(&self) -> &CancellationToken {
        &self.revoked
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.is_cancelled()
    }

    /// Whether a revocation (of anything) happened since `revocations` was read: the
    /// credential must then be looked up again.
    pub fn raced(&self, revocations: u64) -> bool {
        self.live.revocations() != revocations
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.live.unregister(self.user_id, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_cancel_only_matching_sockets_and_drops_unregister() {
        let live = Arc::new(LiveSockets::default());
        let api1 = live.register(1, Credential::ApiToken(10));
        let api2 = live.register(1, Credential::ApiToken(11));
        let s1 = live.register(1, Credential::Session(5));
        let s2 = live.register(1, Credential::Session(6));
        let other = live.register(2, Credential::Session(7));
        assert_eq!(live.len(), 5);
        let before = live.revocations();

        assert_eq!(live.revoke(1, Credential::ApiToken(10)), 1);
        assert!(api1.is_revoked() && !api2.is_revoked());
        assert!(api2.raced(before));
        // Another user's credential with the same id is someone else's.
        assert_eq!(live.revoke(2, Credential::ApiToken(11)), 0);
        assert!(!api2.is_revoked());

        assert_eq!(live.revoke_sessions(1), 2);
        assert!(s1.is_revoked() && s2.is_revoked() && !api2.is_revoked() && !other.is_revoked());
        assert_eq!(live.len(), 2);

        drop(api1);
        drop(api2);
        drop(other);
        assert!(live.is_empty());
        drop((s1, s2));
        assert!(live.is_empty());
    }
}
