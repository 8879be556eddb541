//! Recently resolved tokens, so that an authenticated request is usually answered
//! without a database read: every API call and socket connect presents a token, and
//! looking it up was a quarter of a bookmark write's server time.
//!
//! An entry lives at most `ttl` (and never past a session's expiry). Revoking a
//! credential evicts it here before anything else learns of the revocation
//! (`super::revoke`), so on one node a revoked token is refused at once. The race
//! between a lookup that read the token just before it was deleted and the eviction is
//! closed by a generation counter: a revocation bumps it under the lock, and a lookup
//! stores its answer only if the counter has not moved since before it read the
//! database. Across nodes (a shared database) another node's revocation reaches this
//! cache only through the TTL, which is why it is short.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{TokenHash, TokenKind, TokenOwner};

/// How long a resolved token is trusted without asking the database again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);
/// Entries kept at most; when full, the cache starts over (a memory bound, not an LRU:
/// a flood of distinct tokens must not grow it).
const CAPACITY: usize = 50_000;

struct Cached {
    owner: TokenOwner,
    until: Instant,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: HashMap<TokenHash, Cached>,
}

/// The cache; one per server, in `AppState`.
pub struct TokenCache {
    inner: Mutex<Inner>,
    ttl: Duration,
    capacity: usize,
}

/// A lookup that missed: the generation to hand back to `store`.
#[derive(Debug, Clone, Copy)]
pub struct Miss(u64);

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, CAPACITY)
    }

    fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        Self { inner: Mutex::default(), ttl, capacity: capacity.max(1) }
    }

    /// The owner of `hash` if it was resolved within the TTL and not revoked since.
    pub fn get(&self, hash: &TokenHash, now: Instant) -> Result<TokenOwner, Miss> {
        let inner = self.inner.lock();
        match inner.entries.get(hash) {
            Some(hit) if hit.until > now => Ok(hit.owner.clone()),
            _ => Err(Miss(inner.generation)),
        }
    }

    /// Keeps what the database said about `hash`, unless a revocation happened since
    /// the miss (the answer may then be stale). `expires_in`: how long the token itself
    /// stays valid (a session's expiry), if that is sooner than the TTL.
    pub fn store(&self, hash: TokenHash, owner: TokenOwner, expires_in: Option<Duration>, miss: Miss, now: Instant) {
        let life = expires_in.map_or(self.ttl, |left| left.min(self.ttl));
        if life.is_zero() {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.generation != miss.0 {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&hash) {
            inner.entries.retain(|_, c| c.until > now);
            if inner.entries.len() >= self.capacity {
                inner.entries.clear();
            }
        }
        inner.entries.insert(hash, Cached { owner, until: now + life });
    }

    /// Records that an API token's use was written at `at`, so cached hits do not write
    /// it again within the granularity.
    pub fn used(&self, hash: &TokenHash, at: &str) {
        if let Some(hit) = self.inner.lock().entries.get_mut(hash)
            && let TokenKind::Api { last_used_at, .. } = &mut hit.owner.kind
        {
            *last_used_at = Some(at.to_owned());
        }
    }

    /// Forgets every token of `user_id` whose kind `revoked` picks (a revoked API token,
    /// an ended session, all sessions); a lookup already under way will not store.
    pub fn forget(&self, user_id: i64, revoked: impl Fn(&TokenKind) -> bool) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.entries.retain(|_, c| c.owner.user.id != user_id || !revoked(&c.owner.kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::User;

    fn len(cache: &TokenCache) -> usize {
        cache.inner.lock().entries.len()
    }

    fn owner(user: i64, kind: TokenKind) -> TokenOwner {
        TokenOwner { user: User { id: user, username: format!("u{user}") }, kind }
    }

    #[test]
    fn a_hit_lasts_the_ttl_and_never_past_the_tokens_expiry() {
        let cache = TokenCache::with_capacity(Duration::from_secs(2), 10);
        let t0 = Instant::now();
        let a = TokenHash::of("a");
        let miss = cache.get(&a, t0).unwrap_err();
        cache.store(a.clone(), owner(1, TokenKind::Session { id: 5 }), None, miss, t0);
        assert_eq!(cache.get(&a, t0 + Duration::from_millis(1999)).unwrap().user.id, 1);
        assert!(cache.get(&a, t0 + Duration::from_secs(2)).is_err());

        let b = TokenHash::of("b");
        let miss = cache.get(&b, t0).unwrap_err();
        cache.store(b.clone(), owner(1, TokenKind::Session { id: 6 }), Some(Duration::from_millis(300)), miss, t0);
        assert!(cache.get(&b, t0 + Duration::from_millis(299)).is_ok());
        assert!(cache.get(&b, t0 + Duration::from_millis(300)).is_err(), "a session is never trusted past its expiry");

        let c = TokenHash::of("c");
        let miss = cache.get(&c, t0).unwrap_err();
        cache.store(c.clone(), owner(1, TokenKind::Session { id: 7 }), Some(Duration::ZERO), miss, t0);
        assert!(cache.get(&c, t0).is_err());
    }

    #[test]
    fn a_revocation_evicts_only_what_it_names_and_beats_a_lookup_under_way() {
        let cache = TokenCache::new(DEFAULT_TTL);
        let now = Instant::now();
        let api = TokenHash::of("api");
        let session = TokenHash::of("session");
        let other = TokenHash::of("other user's");
        for (hash, o) in [
            (&api, owner(1, TokenKind::Api { id: 10, last_used_at: None })),
            (&session, owner(1, TokenKind::Session { id: 20 })),
            (&other, owner(2, TokenKind::Session { id: 20 })),
        ] {
            let miss = cache.get(hash, now).unwrap_err();
            cache.store(hash.clone(), o, None, miss, now);
        }
        assert_eq!(len(&cache), 3);

        // A lookup of the session starts (it read the database before the revocation).
        let late = cache.get(&TokenHash::of("late"), now).unwrap_err();
        cache.forget(1, |k| matches!(k, TokenKind::Session { id: 20 }));
        assert!(cache.get(&session, now).is_err());
        assert!(cache.get(&api, now).is_ok() && cache.get(&other, now).is_ok());
        // Its answer may predate the revocation: not kept.
        cache.store(TokenHash::of("late"), owner(1, TokenKind::Session { id: 21 }), None, late, now);
        assert!(cache.get(&TokenHash::of("late"), now).is_err());

        cache.forget(1, |k| matches!(k, TokenKind::Api { id: 10, .. }));
        assert!(cache.get(&api, now).is_err());
        assert_eq!(len(&cache), 1);
    }

    #[test]
    fn a_use_is_remembered_and_the_capacity_bounds_the_map() {
        let cache = TokenCache::with_capacity(Duration::from_secs(60), 3);
        let now = Instant::now();
        let api = TokenHash::of("api");
        let miss = cache.get(&api, now).unwrap_err();
        cache.store(api.clone(), owner(1, TokenKind::Api { id: 10, last_used_at: None }), None, miss, now);
        cache.used(&api, "2026-12-03T10:00:00.000000Z");
        assert_eq!(
            cache.get(&api, now).unwrap().kind,
            TokenKind::Api { id: 10, last_used_at: Some("2026-12-03T10:00:00.000000Z".into()) }
        );
        for i in 0..10 {
            let h = TokenHash::of(&format!("t{i}"));
            let miss = cache.get(&h, now).unwrap_err();
            cache.store(h, owner(3, TokenKind::Session { id: i }), None, miss, now);
            assert!(len(&cache) <= 3);
        }
    }
}
