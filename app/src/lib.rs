//! firehose-app: a real-time social app whose WebSocket speaks the Phoenix Channels
//! protocol. The library exposes the server (`server::start`) so tests and the
//! simulator can boot it in-process on any listener.

pub mod accounts;
pub mod bookmarks;
pub mod broker;
pub mod channels;
pub mod chat;
pub mod config;
pub mod connections;
pub mod http;
pub mod likes;
pub mod metrics;
pub mod presence;
pub mod publisher;
pub mod pubsub;
pub mod ratelimit;
pub mod readers;
pub mod resources;
pub mod search;
pub mod server;
pub mod state;
pub mod store;
pub mod uploads;
pub mod validation;
pub mod web;
pub mod wire;

/// What the fuzz targets (`app/fuzz`) drive, in one place: the edge parsers and
/// validators as the handlers call them. Not part of the app's API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::accounts::validate as accounts;
    pub use crate::bookmarks::NewBookmark;
    pub use crate::chat::send::{Outgoing, SendError};
    pub use crate::chat::{Invitee, NewRoom, RoomPatch};
    pub use crate::http::{ApiError, parse_object};
    pub use crate::presence::client_model as presence_model;
    pub use crate::search::{fts_query, render_marked};
    pub use crate::uploads::{Kind, MAX_NAME_BYTES, Sniffer, sanitize_filename};
}
