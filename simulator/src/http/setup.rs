//! Setup calls, before anything is measured: accounts, rooms and memberships, bookmarks.
//! Many at once (bounded), each retried after its `Retry-After` when the target answers
//! 429 — except account creation, where a 429 is the server's per-address sign-up budget
//! and stops the setup with a message saying so — and any other refusal a message that
//! names the request, the status and what to do. Nothing here is timed.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{Answer, Client, Draft, Transport};

/// Setup requests in flight at once.
pub const CONCURRENCY: usize = 16;
/// Tries of one setup request that keeps being answered 429.
const RATE_LIMITED_TRIES: u32 = 8;

/// A signed-in account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user id (0 when the profile's response does not carry one).
    pub id: i64,
    pub username: String,
    pub token: String,
}

/// Sends what `request` makes until it is answered with something other than 429
/// (waiting each 429's `Retry-After`, 1–10 s); `what` names it in errors.
async fn patiently<F, Fut>(what: &str, mut request: F) -> Result<Answer, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Answer, Transport>>,
{
    for _ in 0..RATE_LIMITED_TRIES {
        let answer = request().await.map_err(|e| format!("{what}: {e}"))?;
        if answer.status != 429 {
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_secs(answer.retry_after.unwrap_or(1).clamp(1, 10))).await;
    }
    Err(format!(
        "{what}: still rate limited (429) after {RATE_LIMITED_TRIES} tries; for load tests start the server with its \
         limits off (e.g. `firehose serve --rate-signups off --rate-bookmarks off …`)"
    ))
}

/// What a 429 to an account creation means, and what to do about it.
fn signups_refused(name: &str, retry_after: Option<u64>) -> String {
    let wait = retry_after.map_or_else(String::new, |s| format!(", Retry-After {s} s"));
    format!(
        "creating user {name:?} was refused with 429{wait}: the server's sign-up budget (accounts per client \
         address) was hit. A run creates many accounts from one address: start the server with `--rate-signups \
         off` (env FIREHOSE_RATE_SIGNUPS=off) for load tests"
    )
}

fn refused(what: &str, answer: &Answer) -> String {
    let text: String = String::from_utf8_lossy(&answer.body).chars().take(200).collect();
    format!("{what} answered {}: {text}", answer.status)
}

impl Client {
    /// Creates one account per name, through the profile's user creation. A taken name
    /// (409, e.g. a second run against the same server) is retried once with `suffix`
    /// appended, within the 32-character limit. A profile without per-user accounts (a
    /// static token, or no auth) creates nobody: every account shares its token.
    pub async fn create_accounts(&self, usernames: &[String], suffix: &str) -> Result<Vec<Account>, String> {
        if let Some(token) = self.shared_token() {
            return Ok(usernames
                .iter()
                .map(|u| Account { id: 0, username: u.clone(), token: token.clone() })
                .collect());
        }
        // Collected first: futures built inside the stream's closure would tie its
        // argument's lifetime too tightly for a boxed, `Send` caller.
        let work: Vec<_> = usernames.iter().cloned().map(|name| self.named_account(name, suffix)).collect();
        let results: Vec<Result<Account, String>> = stream::iter(work).buffered(CONCURRENCY).collect().await;
        results.into_iter().collect()
    }

    /// Account `name`, or `name_<suffix>` when the name is taken.
    async fn named_account(&self, name: String, suffix: &str) -> Result<Account, String> {
        {
            let name = &name;
            match self.account(name).await? {
                Ok(account) => Ok(account),
                Err(409) => {
                    let base: String = name.chars().take(32usize.saturating_sub(suffix.len() + 1)).collect();
                    let retry = format!("{base}_{suffix}");
                    self.account(&retry).await?.map_err(|status| format!("creating user {retry:?} answered {status}"))
                }
                Err(status) => Err(format!("creating user {name:?} answered {status}")),
            }
        }
    }

    /// One account: `Ok(Ok(account))`, or `Ok(Err(status))` when refused. A 429 stops
    /// the setup at once: it is the server's per-address sign-up budget, which a run
    /// creating its accounts from one address cannot wait out (`signups_refused`).
    async fn account(&self, name: &str) -> Result<Result<Account, u16>, String> {
        let (answer, token) = self.create_user(name).await?;
        if answer.status == 429 {
            return Err(signups_refused(name, answer.retry_after));
        }
        let Some(token) = token else { return Ok(Err(answer.status)) };
        #[derive(Deserialize)]
        struct User {
            #[serde(default)]
            id: i64,
        }
        let id = answer.data::<User>().map_or(0, |u| u.id);
        Ok(Ok(Account { id, username: name.to_owned(), token }))
    }

    /// Creates a public (or private) room `slug` as `token`.
    pub async fn create_room(&self, token: &str, name: &str, slug: &str, private: bool) -> Result<(), String> {
        let body = json!({ "room": { "name": name, "slug": slug, "description": "firehose-sim", "private": private } });
        let what = format!("POST /api/rooms {slug:?}");
        let answer = patiently(&what, || self.send(Method::POST, "/api/rooms", Some(token), Some(&body))).await?;
        if answer.status == 201 { Ok(()) } else { Err(refused(&what, &answer)) }
    }

    /// Makes `token`'s user a member of room `slug`.
    pub async fn join_room(&self, token: &str, slug: &str) -> Result<(), String> {
        let what = format!("POST /api/rooms/{slug}/join");
        let path = format!("/api/rooms/{slug}/join");
        let answer = patiently(&what, || self.send(Method::POST, &path, Some(token), None::<&()>)).await?;
        if (200..300).contains(&answer.status) { Ok(()) } else { Err(refused(&what, &answer)) }
    }

    /// Creates a bookmark from `draft` as `token` (`public` as given) through the
    /// firehose API directly; its id.
    pub async fn create_plain_bookmark(
        &self,
        token: &str,
        draft: &Draft,
        url: &str,
        public: bool,
    ) -> Result<i64, String> {
        let body = json!({ "bookmark": {
            "title": draft.title, "url": url, "description": draft.description, "tags": draft.tags, "public": public,
        }});
        let what = "POST /api/bookmarks".to_owned();
        let answer = patiently(&what, || self.send(Method::POST, "/api/bookmarks", Some(token), Some(&body))).await?;
        #[derive(Deserialize)]
        struct Made {
            id: i64,
        }
        match (answer.status, answer.data::<Made>()) {
            (201, Some(made)) => Ok(made.id),
            _ => Err(refused(&what, &answer)),
        }
    }

    /// Creates `drafts` through the profile's create request (URLs as in the drafts, so
    /// listeners can tell them from measured ones), each signed by `tokens[draft.user]`;
    /// how many were created. None created is an error.
    pub async fn seed_bookmarks<'a>(
        &self,
        drafts: impl Iterator<Item = &'a Draft>,
        tokens: &[String],
    ) -> Result<u32, String> {
        let work: Vec<_> = drafts
            .map(|draft| async move {
                let token = tokens.get(draft.user).ok_or_else(|| format!("draft names unknown user {}", draft.user))?;
                for _ in 0..RATE_LIMITED_TRIES {
                    match self.create_bookmark(token, draft, &draft.url, draft.public).await {
                        Ok((429, _)) => tokio::time::sleep(Duration::from_secs(1)).await,
                        Ok((status, _)) => return Ok(status),
                        Err(t) => return Err(format!("seeding a bookmark failed: {}", t.kind())),
                    }
                }
                Ok(429)
            })
            .collect();
        let statuses: Vec<Result<u16, String>> = stream::iter(work).buffer_unordered(CONCURRENCY).collect().await;
        let (mut created, mut refused) = (0u32, std::collections::BTreeMap::<u16, u32>::new());
        let mut any = false;
        for status in statuses {
            any = true;
            match status? {
                201 => created += 1,
                other => *refused.entry(other).or_default() += 1,
            }
        }
        if any && created == 0 {
            return Err(format!("no seed bookmark was created (statuses: {refused:?})"));
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use firehose_app::config::Config;
    use firehose_app::ratelimit::{Rate, RateLimits};

    use super::*;
    use crate::plan::profile::Profile;

    /// A firehose server on 127.0.0.1:0 allowing `signups` accounts per minute per address.
    async fn server(signups: Option<Rate>) -> (firehose_app::server::Running, tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(dir.path());
        config.limits = RateLimits { signups, ..RateLimits::off() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = firehose_app::server::start(listener, config, std::future::pending()).await.unwrap();
        let base = format!("http://{}", running.addr);
        (running, dir, base)
    }

    #[tokio::test]
    async fn a_spent_sign_up_budget_stops_the_setup_at_once_and_says_which_flag_to_use() {
        let (_running, _dir, base) = server(Some(Rate::new(3, Duration::from_secs(60)))).await;
        let client = Client::new(&base, 4, None, Profile::firehose()).unwrap();
        let names: Vec<String> = (0..6).map(|i| format!("seed{i}")).collect();
        let started = std::time::Instant::now();
        let err = client.create_accounts(&names, "x").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "no waiting out the budget: {:?}", started.elapsed());
        assert!(err.contains("sign-up budget") && err.contains("--rate-signups off"), "{err}");
        assert!(err.contains("429"), "{err}");
    }

    #[tokio::test]
    async fn without_a_sign_up_budget_many_accounts_are_created() {
        let (_running, _dir, base) = server(None).await;
        let client = Client::new(&base, 4, None, Profile::firehose()).unwrap();
        let names: Vec<String> = (0..40).map(|i| format!("seed{i}")).collect();
        let accounts = client.create_accounts(&names, "x").await.unwrap();
        assert_eq!(accounts.len(), 40);
    }
}
