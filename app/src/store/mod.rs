//! Persistence behind one type, `Store`: SQLite (the embedded default) or PostgreSQL
//! (`--database-url postgres://…`), through sqlx's `Any` driver with embedded
//! migrations per backend (`migrations/sqlite`, `migrations/postgres`). Callers never
//! see SQL or which database is underneath.
//!
//! Both backends run the same statements (`$1`-style parameters, standard SQL); where
//! they differ — message search (`search.rs`) — the store asks its [`Backend`].
//!
//! SQLite allows one writer at a time, so writes go through a single-connection pool
//! (no `SQLITE_BUSY` storms between our own connections) while reads use a small pool
//! of their own; WAL lets the readers run beside the writer. PostgreSQL gets a few
//! connections for each. The hot writes (bookmarks, likes, chat messages) go through
//! the `writer` task, which commits them in groups.

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

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor};

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
    /// The database could not be reached for the write (down, restarting).
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// How long a request waits for a PostgreSQL connection before it is answered 503.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which database is underneath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names (`sqlite:…`, `postgres://…`, `postgresql://…`).
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            _ => Err(StoreError::BadUrl(format!("{}: expected sqlite:… or postgres://…", redact(url)))),
        }
    }
}

impl StoreError {
    /// The database could not be reached (down, restarting, every connection busy):
    /// the request may succeed if tried again shortly.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Overloaded | Self::Unavailable(_) => true,
            Self::Database(err) => matches!(
                err,
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
            ),
            _ => false,
        }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens the database at `url` (a SQLite file is created if needed) and runs
    /// migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let (write, read) = match backend {
            Backend::Sqlite => {
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    // A local file: no connection to test, and the writer acquires once
                    // per batch.
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| Box::pin(sqlite_pragmas(conn, true)))
                    .connect(&with_param(url, "mode=rwc"))
                    .await?;
                sqlx::migrate!("./migrations/sqlite").run(&write).await?;
                let read = AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| Box::pin(sqlite_pragmas(conn, false)))
                    .connect(&with_param(url, "mode=ro"))
                    .await?;
                (write, read)
            }
            Backend::Postgres => {
                // Short acquire timeouts: while the database is down, requests are
                // answered 503 within seconds (`StoreError::is_unavailable`) instead of
                // waiting.
                let write =
                    AnyPoolOptions::new().max_connections(4).acquire_timeout(PG_ACQUIRE_TIMEOUT).connect(url).await?;
                sqlx::migrate!("./migrations/postgres").run(&write).await?;
                let read =
                    AnyPoolOptions::new().max_connections(8).acquire_timeout(PG_ACQUIRE_TIMEOUT).connect(url).await?;
                (write, read)
            }
        };
        Ok(Self { write, read, backend })
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// SQLite's settings per connection: WAL with `synchronous = NORMAL` (a commit survives a
/// crash of this process, SIGKILL included; only an OS crash or power loss may lose the
/// last commits), foreign keys enforced, and a wait instead of an immediate
/// `SQLITE_BUSY` when another connection holds the file.
async fn sqlite_pragmas(conn: &mut AnyConnection, writer: bool) -> Result<(), sqlx::Error> {
    if writer {
        conn.execute("PRAGMA journal_mode = WAL").await?;
    }
    conn.execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000").await?;
    Ok(())
}

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_backend_and_anything_else_is_refused_without_its_password() {
        assert_eq!(Backend::of_url("sqlite:///tmp/x/firehose.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of_url("postgres://u@127.0.0.1/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::of_url("postgresql://u@127.0.0.1:5433/db").unwrap(), Backend::Postgres);
        for bad in ["mysql://root:hunter2@db/x", "firehose.db", ""] {
            let err = Backend::of_url(bad).unwrap_err().to_string();
            assert!(err.contains("expected sqlite:… or postgres://…"), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert_eq!(with_param("sqlite:///a.db", "mode=ro"), "sqlite:///a.db?mode=ro");
        assert_eq!(with_param("sqlite:///a.db?cache=shared", "mode=ro"), "sqlite:///a.db?cache=shared&mode=ro");
    }

    #[test]
    fn only_an_unreachable_database_or_a_full_queue_is_worth_a_retry() {
        assert!(StoreError::Overloaded.is_unavailable());
        assert!(StoreError::Unavailable("down".into()).is_unavailable());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::Conflict("username").is_unavailable());
        assert!(!StoreError::Commit("constraint".into()).is_unavailable());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_unavailable());
    }
}
