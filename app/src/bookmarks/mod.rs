//! Bookmarks: the domain type, validation at the edge, the in-memory cache of recent
//! public bookmarks, publishing to the firehose and tag topics, creating and deleting
//! (`service`, shared by the JSON API and the pages), and the JSON API.

mod api;
mod cache;
mod model;
mod publish;
pub mod service;
mod validate;

pub use api::router;
pub use cache::{RecentCache, share_created, share_deleted};
pub use model::Bookmark;
pub use publish::{FIREHOSE_TOPIC, TAG_TOPIC_PREFIX, publish_created, publish_deleted};
pub use validate::{NewBookmark, normalize_tag};
