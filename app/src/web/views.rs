//! Domain records shaped for the templates: only plain text and numbers, which the
//! templates escape. Nothing here is HTML.

use std::sync::Arc;

use crate::accounts::User;
use crate::bookmarks::Bookmark;
use crate::chat::{Message, Role, Room};
use crate::likes::LikeSummary;
use crate::state::AppState;
use crate::store::StoreError;

/// A bookmark in a list or on its page.
pub struct BookmarkView {
    pub id: i64,
    pub title: String,
    pub url: String,
    pub domain: String,
    pub description: String,
    pub tags: Vec<String>,
    pub username: String,
    pub inserted_at: String,
    pub time_label: String,
    pub likes: i64,
    pub liked: bool,
    /// The viewer owns it (may delete it).
    pub mine: bool,
    pub public: bool,
}

impl BookmarkView {
    pub fn new(b: &Bookmark, likes: LikeSummary, viewer: Option<&User>) -> Self {
        BookmarkView {
            id: b.id,
            title: b.title.clone(),
            url: b.url.clone(),
            domain: domain_of(&b.url),
            description: b.description.clone(),
            tags: b.tags.clone(),
            username: b.user.username.clone(),
            inserted_at: b.inserted_at.clone(),
            time_label: time_label(&b.inserted_at),
            likes: likes.count,
            liked: likes.liked,
            mine: viewer.is_some_and(|v| v.id == b.user.id),
            public: b.public,
        }
    }

    /// The empty item the script clones for bookmarks that arrive live.
    pub fn blank() -> Self {
        BookmarkView {
            id: 0,
            title: String::new(),
            url: String::new(),
            domain: String::new(),
            description: String::new(),
            tags: Vec::new(),
            username: String::new(),
            inserted_at: String::new(),
            time_label: String::new(),
            likes: 0,
            liked: false,
            mine: false,
            public: true,
        }
    }
}

/// Views of `bookmarks` with their like counts (one query) as `viewer` sees them.
pub async fn bookmark_views(
    state: &AppState,
    bookmarks: &[Arc<Bookmark>],
    viewer: Option<&User>,
) -> Result<Vec<BookmarkView>, StoreError> {
    let ids: Vec<i64> = bookmarks.iter().map(|b| b.id).collect();
    let likes = state.store.like_summaries(&ids, viewer.map(|v| v.id)).await?;
    Ok(bookmarks
        .iter()
        .map(|b| {
            let summary = likes.get(&b.id).copied().unwrap_or(LikeSummary { count: 0, liked: false });
            BookmarkView::new(b, summary, viewer)
        })
        .collect())
}

/// The host of a URL, without `www.`.
pub fn domain_of(url: &str) -> String {
    let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    host.strip_prefix("www.").map(str::to_owned).unwrap_or(host)
}

/// `2026-12-02 10:24 UTC` from a stored RFC 3339 time (the script shows local times).
pub fn time_label(stored: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(stored) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => stored.to_owned(),
    }
}

/// A file attached to a message.
pub struct AttachmentView {
    pub url: String,
    pub name: String,
    pub image: bool,
    pub size_label: String,
}

/// A chat message.
pub struct MessageView {
    pub id: i64,
    pub body: String,
    pub user_id: i64,
    pub username: String,
    pub initial: String,
    pub hue: u8,
    pub inserted_at: String,
    pub time_label: String,
    pub attachment: Option<AttachmentView>,
    pub mine: bool,
    pub can_delete: bool,
    /// The message a search result pointed at.
    pub target: bool,
}

impl MessageView {
    pub fn new(m: &Message, viewer: Option<&User>, admin: bool, target: Option<i64>) -> Self {
        let mine = viewer.is_some_and(|v| v.id == m.user.id);
        MessageView {
            id: m.id,
            body: m.body.clone(),
            user_id: m.user.id,
            username: m.user.username.clone(),
            initial: initial(&m.user.username),
            hue: hue(&m.user.username),
            inserted_at: m.inserted_at.clone(),
            time_label: time_label(&m.inserted_at),
            attachment: m.attachment.as_ref().map(|a| AttachmentView {
                url: a.url(),
                name: if a.original_name.is_empty() { "attachment".to_owned() } else { a.original_name.clone() },
                image: a.kind.content_type().starts_with("image/"),
                size_label: size_label(a.size),
            }),
            mine,
            can_delete: mine || (admin && viewer.is_some()),
            target: target == Some(m.id),
        }
    }

    pub fn blank() -> Self {
        MessageView {
            id: 0,
            body: String::new(),
            user_id: 0,
            username: String::new(),
            initial: String::new(),
            hue: 0,
            inserted_at: String::new(),
            time_label: String::new(),
            attachment: None,
            mine: false,
            can_delete: false,
            target: false,
        }
    }
}

/// The letter on a user's round badge.
pub fn initial(username: &str) -> String {
    username.chars().next().map(|c| c.to_uppercase().collect()).unwrap_or_default()
}

/// One of 12 badge colours, stable per username (the script computes the same).
pub fn hue(username: &str) -> u8 {
    let sum = username.bytes().fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(u32::from(b)));
    (sum % 12) as u8
}

pub fn size_label(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.0} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// A room in the list.
pub struct RoomView {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub private: bool,
    pub members: i64,
    pub role: Option<&'static str>,
}

impl RoomView {
    pub fn new(room: &Room, role: Option<Role>, members: i64) -> Self {
        RoomView {
            slug: room.slug.clone(),
            name: room.name.clone(),
            description: room.description.clone(),
            private: room.private,
            members,
            role: role.map(Role::as_str),
        }
    }

    pub fn blank() -> Self {
        RoomView {
            slug: String::new(),
            name: String::new(),
            description: String::new(),
            private: false,
            members: 0,
            role: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(domain_of("https://www.example.com/a"), "example.com");
        assert_eq!(domain_of("not a url"), "");
        assert_eq!(time_label("2026-12-02T10:24:05.123456Z"), "2026-12-02 10:24 UTC");
        assert_eq!(size_label(10), "10 B");
        assert_eq!(size_label(2048), "2 KiB");
        assert_eq!(size_label(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(initial("ünï"), "Ü");
        // app.js computes the same: "alice" is 0 there too, "bob" 1.
        assert_eq!(hue("alice"), 0);
        assert_eq!(hue("bob"), 1);
    }
}
