//! The Phoenix socket: the HTTP upgrade at `/socket/websocket`, one task per connection
//! speaking Phoenix Channels V1/V2, and the topics a socket may join.

mod channel;
mod debug;
mod likes;
mod lobby;
mod page;
mod room;
mod session;
mod socket;
mod streams;
mod topics;
mod upgrade;
mod user;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/socket/websocket", get(upgrade::upgrade))
}
