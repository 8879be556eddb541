//! Setup before measuring: one account per corpus user (`POST /api/users`), then a
//! number of corpus bookmarks so feeds are not empty. Nothing here is measured; a
//! target that refuses it fails the run as a setup failure.

use futures_util::{StreamExt, stream};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::http::{Api, Draft};

/// Setup requests in flight at once.
const CONCURRENCY: usize = 16;

/// API tokens, indexed like the corpus users.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub tokens: Vec<String>,
}

/// Creates every user. A taken name (409, e.g. a second run against the same server)
/// is retried once with the run id appended, within the 32-character limit.
/// A profile without per-user accounts (a static token, or no auth) creates nobody:
/// every user shares its token.
pub async fn create_users(api: &Api, usernames: &[String], run_id: &str) -> Result<Accounts, String> {
    if let Some(token) = api.shared_token() {
        return Ok(Accounts { tokens: vec![token; usernames.len()] });
    }
    let results: Vec<Result<String, String>> = stream::iter(usernames.iter().map(|name| async move {
        match api.create_user(name).await? {
            Ok(token) => Ok(token),
            Err(409) => {
                let base: String = name.chars().take(32 - run_id.len() - 1).collect();
                let retry = format!("{base}_{run_id}");
                match api.create_user(&retry).await? {
                    Ok(token) => Ok(token),
                    Err(status) => Err(format!("POST /api/users {retry:?} answered {status}")),
                }
            }
            Err(status) => Err(format!("POST /api/users {name:?} answered {status}")),
        }
    }))
    .buffered(CONCURRENCY)
    .collect()
    .await;
    let tokens = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Accounts { tokens })
}

/// Creates `count` bookmarks from `drafts` (a seeded pick, as the corpus marks them
/// public or private, URLs untouched so listeners can tell them from measured ones).
/// Returns how many were created.
pub async fn seed_bookmarks(
    api: &Api,
    accounts: &Accounts,
    drafts: &[Draft],
    count: u32,
    seed: u64,
) -> Result<u32, String> {
    if count == 0 || drafts.is_empty() {
        return Ok(0);
    }
    let mut order: Vec<usize> = (0..drafts.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed.rotate_left(17)));
    let picks = (0..count as usize).map(|k| &drafts[order[k % order.len()]]);
    let statuses: Vec<Result<u16, String>> = stream::iter(picks.map(|draft| async move {
        let token =
            accounts.tokens.get(draft.user).ok_or_else(|| format!("draft names unknown user {}", draft.user))?;
        match api.create_bookmark(token, draft, &draft.url, draft.public).await {
            Ok((status, _)) => Ok(status),
            Err(t) => Err(format!("seeding a bookmark failed: {}", t.kind())),
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    let mut created = 0;
    let mut refused = std::collections::BTreeMap::<u16, u32>::new();
    for status in statuses {
        match status? {
            201 => created += 1,
            other => *refused.entry(other).or_default() += 1,
        }
    }
    if created == 0 {
        return Err(format!("no seed bookmark was created (statuses: {refused:?})"));
    }
    Ok(created)
}
