//! The web app people use: server-rendered pages for the firehose, tag feeds, discover,
//! bookmarks, likes, rooms, search and the profile, made live by one small script of
//! our own (`app/static/app.js`) speaking Phoenix Channels over `/socket/websocket`.
//!
//! - `assets.rs`: the script, stylesheet and icon, embedded at build time and served
//!   under content-hashed names;
//! - `security.rs`: headers every page gets (a Content-Security-Policy without inline
//!   scripts, no framing, no sniffing) and the CSRF rule for forms;
//! - `viewer.rs`: who is looking (the session cookie), and the page context `Ctx`;
//! - `render.rs`: the shared page frame (`Layout`), rendering, redirects, error pages;
//! - `views.rs`: domain records shaped for templates (nothing user-written is ever
//!   marked safe: templates escape it, the script writes it as text);
//! - `feeds.rs`: `/`, `/tags/<tag>`, `/discover`, `/bookmarks/<id>` and likes by form;
//! - `bookmark_form.rs`: the new-bookmark form, its live validation, the bookmarklet;
//! - `account_pages.rs`: sign up, log in, log out, profile and avatar;
//! - `room_pages.rs`: the room list, room creation, a room, its forms;
//! - `search_page.rs`: message search.
//!
//! Templates live in `app/templates/` (askama: compile-checked, HTML-escaped by
//! default). Every form works without the script; the script takes over where it can.

mod account_pages;
mod assets;
mod bookmark_form;
mod feeds;
mod render;
mod room_pages;
mod search_page;
mod security;
mod viewer;
mod views;

pub use render::not_found_page;
pub use security::CONTENT_SECURITY_POLICY;

use axum::Router;
use axum::middleware;

use crate::state::AppState;

/// Every page route and the assets, with the page security headers.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(feeds::router())
        .merge(bookmark_form::router())
        .merge(account_pages::router())
        .merge(room_pages::router())
        .merge(search_page::router())
        .merge(assets::router())
        .layer(middleware::from_fn(security::headers))
}
