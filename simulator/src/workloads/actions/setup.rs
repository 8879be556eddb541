//! Setup for the actions, before listeners connect and not measured: the actor users,
//! the user listeners' users and the presence users, the public rooms (created by the
//! first actor), every user listener made a member of every room (mentions notify
//! members only), the bookmarks to like (public, Zipf rank = index) and those to delete
//! (one per scheduled delete, owned by the actors in turn). Names carry this process's
//! own id (`Cx::own_id`), so agents and repeated runs never clash.

use futures_util::{StreamExt, stream};

use crate::http::setup::{Account, CONCURRENCY};
use crate::http::{Client, Draft};
use crate::plan::actions::ActionsPlan;

/// What setup made.
#[derive(Debug, Default)]
pub struct Made {
    pub actors: Vec<Account>,
    /// User listeners' accounts (their usernames are the mention text).
    pub mentionable: Vec<Account>,
    /// Accounts of the presence joins.
    pub presence: Vec<Account>,
    /// Room slugs, hottest first.
    pub rooms: Vec<String>,
    /// Bookmark ids to like, hottest first.
    pub like_targets: Vec<i64>,
    /// Bookmark ids to delete, with their owner's actor index.
    pub delete_targets: Vec<(i64, u32)>,
}

/// Makes everything `plan` needs for `deletes` scheduled deletions and `presence`
/// presence users.
pub async fn make(
    api: &Client,
    plan: &ActionsPlan,
    own: &str,
    drafts: &[Draft],
    deletes: u64,
    presence: u32,
) -> Result<Made, String> {
    let needs_actor = plan.rooms > 0 || plan.like_targets > 0 || deletes > 0;
    let actor_count = plan.actor_users.max(u32::from(needs_actor));
    let names = |prefix: &str, n: u32| -> Vec<String> { (0..n).map(|k| format!("{prefix}{own}_{k}")).collect() };
    let actors = api.create_accounts(&names("a", actor_count), own).await?;
    let mentionable = api.create_accounts(&names("u", plan.user_listeners), own).await?;
    let presence = api.create_accounts(&names("p", presence), own).await?;
    let rooms: Vec<String> = (0..plan.rooms).map(|r| format!("sim-{own}-r{r}")).collect();
    if let Some(creator) = actors.first() {
        for slug in &rooms {
            api.create_room(&creator.token, &format!("sim {slug}"), slug, false).await?;
        }
    }
    let joins: Vec<_> = mentionable
        .iter()
        .flat_map(|a| rooms.iter().map(move |s| (a.token.as_str(), s.as_str())))
        .map(|(token, slug)| api.join_room(token, slug))
        .collect();
    let joined: Vec<Result<(), String>> = stream::iter(joins).buffer_unordered(CONCURRENCY).collect().await;
    joined.into_iter().collect::<Result<(), String>>()?;

    let bookmarks = |count: usize, what: &'static str| {
        let work: Vec<_> = (0..count)
            .map(|k| {
                let owner = k % actors.len().max(1);
                let draft = drafts.get(k % drafts.len().max(1));
                let token = actors.get(owner).map(|a| a.token.clone());
                async move {
                    let draft = draft.ok_or("the corpus has no links")?;
                    let token = token.ok_or("no actor user")?;
                    // A fragment no run reads as its own event: `#sim-<own>-t<k>`.
                    let url = format!("{}#sim-{own}-{what}{k}", draft.url.split('#').next().unwrap_or(&draft.url));
                    let id = api.create_plain_bookmark(&token, draft, &url, true).await?;
                    Ok::<(i64, u32), String>((id, owner as u32))
                }
            })
            .collect();
        stream::iter(work).buffered(CONCURRENCY).collect::<Vec<_>>()
    };
    let like_targets = bookmarks(plan.like_targets as usize, "t")
        .await
        .into_iter()
        .map(|r| r.map(|(id, _)| id))
        .collect::<Result<_, _>>()?;
    let delete_targets = bookmarks(deletes as usize, "d").await.into_iter().collect::<Result<_, _>>()?;
    Ok(Made { actors, mentionable, presence, rooms, like_targets, delete_targets })
}
