//! Persistence behind one type, `Store`: SQLite through sqlx with embedded migrations.
//! Callers never see SQL or which database is underneath.
//!
//! SQLite allows one writer at a time, so writes go through a single-connection pool
//! (no `SQLITE_BUSY` storms between our own connections) while reads use a small pool
//! of their own; WAL lets the readers run beside the writer. The hot writes (bookmarks,
//! likes, chat messages) go through the `writer` task, which commits them in groups.

mod avatars;
mod bookmarks;
mod chat;
mod likes;
mod pages;
mod search;
mod sessions;
mod tokens;
mod uploads;
mod users;
mod writer;

pub use avatars::AvatarRefusal;
pub use likes::{BookmarkLikes, LikeWrite};
pub use writer::{
    Change, Committed, DEFAULT_QUEUE as DEFAULT_WRITE_QUEUE, MAX_BATCH, MAX_WAIT, Pending, Publish, WriteStats, Writer,
    publish_queue,
};

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Failures of the store. Constraint violations are told apart so the HTTP layer can
/// answer 409/422 instead of 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database url: {0}")]
    BadUrl(String),
    /// The write queue is full (or the writer is stopping): try again shortly.
    #[error("too many writes queued")]
    Overloaded,
    /// The transaction holding the write could not be committed.
    #[error("commit failed: {0}")]
    Commit(String),
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    write: SqlitePool,
    read: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and runs migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("{url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a commit survives a crash of this process (SIGKILL),
            // and only an OS crash or power loss may lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // A local file: no connection to test, and the writer acquires once per batch.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { write, read })
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Maps a unique-constraint violation to `Conflict(what)`.
fn conflict_as(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(err),
    }
}

/// Current time as stored: RFC 3339, UTC, microseconds.
pub(crate) fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
