//! firehose-app: a real-time social app whose WebSocket speaks the Phoenix Channels
//! protocol. The library exposes the server (`server::start`) so tests and the
//! simulator can boot it in-process on any listener.

pub mod accounts;
pub mod bookmarks;
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
pub mod search;
pub mod server;
pub mod state;
pub mod store;
pub mod uploads;
pub mod validation;
pub mod web;
pub mod wire;
