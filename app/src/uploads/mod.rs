//! Uploads: files that users attach to messages and use as avatars. Accepted by what
//! their bytes are (never by filename or client `Content-Type`), at most
//! `Config::max_upload_bytes`, stored under the data dir with generated names, and
//! served back with headers that keep them inert.
//!
//! - `sniff`: the allow-list of kinds and how bytes are recognised.
//! - `name`: the client's filename, made safe to keep as metadata.
//! - `model`: the `Upload` row, its unguessable `UploadKey`, its JSON.
//! - `storage`: where files live on disk; partial files until accepted.
//! - `receive`: streaming the multipart form into a partial file.
//! - `budget`: how many files and bytes a user may upload per hour, and store in all.
//! - `sweep`: at start, removing files no row points at (left by a crash).
//! - `api`: the routes; `serve`: `GET /uploads/{key}`.

mod api;
mod budget;
mod model;
mod name;
mod receive;
mod serve;
mod sniff;
mod storage;
mod sweep;

pub use api::{accept, refuse_declared_oversize, router};
pub use model::{NewUpload, Upload, UploadKey};
pub use name::{MAX_NAME_BYTES, sanitize as sanitize_filename};
pub use sniff::{Kind, Sniffer};
pub use storage::UploadDir;
pub use sweep::{SHARED_GRACE, Swept, sweep_orphans};
