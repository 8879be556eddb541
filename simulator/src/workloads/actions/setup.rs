//! Setup for the actions, before listeners connect and not measured: the actor users
//! and the user listeners' users (`POST /api/users`, reusing `rooms::setup`), the public
//! rooms (created by the first actor), every user listener made a member of every room
//! (mentions notify members only), the bookmarks to like (public, Zipf rank = index) and
//! those to delete (one per scheduled delete, owned by the actors in turn). A server
//! with per-user limits may answer 429 here; setup waits its `Retry-After` and retries.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde_json::json;

use crate::http::Draft;
use crate::plan::actions::ActionsPlan;
use crate::workloads::rooms::setup::{Account, client, create_rooms, create_users};

const CONCURRENCY: usize = 16;
/// 429s retried per setup request before giving up.
const RETRIES: u32 = 30;

/// What setup made.
#[derive(Debug, Default)]
pub struct Made {
    pub actors: Vec<Account>,
    /// User listeners: account and username (the mention text).
    pub mentionable: Vec<(Account, String)>,
    /// `room:<slug>` per room, hottest first.
    pub room_topics: Vec<String>,
    /// Bookmark ids to like, hottest first.
    pub like_targets: Vec<i64>,
    /// Bookmark ids to delete, with their owner's actor index.
    pub delete_targets: Vec<(i64, u32)>,
}

/// Makes everything `plan` needs for `deletes` scheduled deletions.
pub async fn make(
    base: &str,
    plan: &ActionsPlan,
    run_id: &str,
    drafts: &[Draft],
    deletes: u64,
) -> Result<Made, String> {
    let http = client()?;
    let needs_actor = plan.rooms > 0 || plan.like_targets > 0 || deletes > 0;
    let actor_count = plan.actor_users.max(u32::from(needs_actor));
    let names: Vec<String> = (0..actor_count).map(|k| format!("a{run_id}_{k}")).collect();
    let actors = create_users(&http, base, &names).await?;
    let mention_names: Vec<String> = (0..plan.user_listeners).map(|k| format!("u{run_id}_{k}")).collect();
    let mentionable: Vec<(Account, String)> =
        create_users(&http, base, &mention_names).await?.into_iter().zip(mention_names).collect();

    let slugs: Vec<String> = (0..plan.rooms).map(|r| format!("sim-{run_id}-r{r}")).collect();
    if let Some(creator) = actors.first() {
        let rooms: Vec<(String, String, String)> =
            slugs.iter().map(|s| (format!("sim {s}"), s.clone(), creator.token.clone())).collect();
        create_rooms(&http, base, &rooms).await?;
    }
    let joins: Vec<(&str, &str)> =
        mentionable.iter().flat_map(|(a, _)| slugs.iter().map(move |s| (a.token.as_str(), s.as_str()))).collect();
    let results: Vec<Result<(), String>> = stream::iter(joins.into_iter().map(|(token, slug)| {
        let http = &http;
        async move {
            let url = format!("{base}/api/rooms/{slug}/join");
            post(http, &url, token, &json!({})).await.map(|_| ())
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    results.into_iter().collect::<Result<(), String>>()?;

    let make_bookmarks = |count: usize, what: &'static str| {
        let http = &http;
        let actors = &actors;
        stream::iter((0..count).map(move |k| async move {
            let owner = k % actors.len().max(1);
            let draft = drafts.get(k % drafts.len().max(1)).ok_or("the corpus has no links")?;
            let token = &actors.get(owner).ok_or("no actor user")?.token;
            let url = format!("{}#sim-{run_id}-{what}{k}", draft.url.split('#').next().unwrap_or(&draft.url));
            let body = json!({ "bookmark": { "title": draft.title, "url": url, "description": draft.description,
                                              "public": true, "tags": draft.tags } });
            let data = post(http, &format!("{base}/api/bookmarks"), token, &body).await?;
            let id = data.get("id").and_then(|v| v.as_i64()).ok_or("POST /api/bookmarks: no id in the answer")?;
            Ok::<(i64, u32), String>((id, owner as u32))
        }))
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
    };
    let like_targets = make_bookmarks(plan.like_targets as usize, "t")
        .await
        .into_iter()
        .map(|r| r.map(|(id, _)| id))
        .collect::<Result<_, _>>()?;
    let delete_targets = make_bookmarks(deletes as usize, "d").await.into_iter().collect::<Result<_, _>>()?;
    Ok(Made {
        actors,
        mentionable,
        room_topics: slugs.iter().map(|s| format!("room:{s}")).collect(),
        like_targets,
        delete_targets,
    })
}

/// POSTs `body` as `token`; the answer's `data`. A 429 waits its `Retry-After`.
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        data: serde_json::Value,
    }
    for _ in 0..RETRIES {
        let resp = http.post(url).bearer_auth(token).json(body).send().await.map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        if status == 429 {
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.clamp(1, 10))).await;
            continue;
        }
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            return Err(format!("POST {url} answered {status}: {text}"));
        }
        let answer: Answer = resp.json().await.map_err(|e| format!("POST {url} response: {e}"))?;
        return Ok(answer.data);
    }
    Err(format!("POST {url}: still rate limited after {RETRIES} tries"))
}
