//! The write path of bookmarks, likes and chat messages: one task (`Writer`) takes
//! whatever writes are queued and commits them in one transaction (group commit), then
//! hands the committed changes, in commit order, to the publisher.
//!
//! - **Durable answers**: a caller is answered only after the transaction holding its
//!   write committed (and, when the write announces something, after the publisher
//!   announced it), so an acknowledged write survives a crash of the process and is
//!   already in its topics' history.
//! - **Batches** are bounded: at most `MAX_BATCH` writes, gathered for at most
//!   `MAX_WAIT`. A lone write is committed at once (no added latency when idle); only
//!   while more keep arriving does the writer yield to let them queue.
//! - **Isolation**: a batch first runs as one plain transaction. If any write in it
//!   fails, the transaction is rolled back and the batch runs again with a savepoint
//!   around each write, so a failing write fails only its own caller.
//! - **Overload**: the queue is bounded (`Config::write_queue`); a write that finds it
//!   full is refused at once (`StoreError::Overloaded`, a 503 with `Retry-After`)
//!   instead of waiting behind thousands of others.
//!
//! The writer borrows the single connection of the write pool for each batch, so the
//! rarer writes that do not come through here (accounts, rooms, uploads) still
//! interleave with the batches and never contend with them inside SQLite.
//!
//! Each kind of write is a `WriteOp` defined next to its SQL (`bookmarks.rs`,
//! `likes.rs`, `chat.rs`), with the `Writer` method that queues it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, Connection};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Store, StoreError, bookmarks};
use crate::accounts::User;
use crate::bookmarks::{Bookmark, NewBookmark};

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 256;
/// Longest a batch keeps gathering writes that are still arriving.
pub const MAX_WAIT: Duration = Duration::from_millis(2);
/// Default bound of the write queue (`--write-queue`).
pub const DEFAULT_QUEUE: usize = 4096;
/// Committed batches waiting for the publisher; when it falls behind, the writer waits,
/// the write queue fills and new writes are refused.
const PUBLISH_QUEUE: usize = 64;

/// A committed change others must hear about.
#[derive(Debug, Clone)]
pub enum Change {
    BookmarkCreated(Arc<Bookmark>),
    BookmarkDeleted(Arc<Bookmark>),
    /// A like or unlike changed a bookmark's count.
    LikeCount {
        bookmark_id: i64,
        count: i64,
    },
}

/// A committed change on its way to the publisher, holding its caller's answer until
/// the change has been announced.
pub struct Committed {
    change: Change,
    answer: Box<dyn FnOnce() + Send>,
}

impl Committed {
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// Answers the caller (once the change is announced).
    pub fn answer(self) {
        (self.answer)();
    }
}

/// Where the writer sends each committed batch's changes, in commit order.
pub type Publish = mpsc::Sender<Vec<Committed>>;

/// A queue for the publisher, bounded like the write queue.
pub fn publish_queue() -> (Publish, mpsc::Receiver<Vec<Committed>>) {
    mpsc::channel(PUBLISH_QUEUE)
}

/// One kind of write: its statements, and what to announce once it is committed.
pub(super) trait WriteOp: Send + 'static {
    type Output: Send + 'static;

    /// Runs the write's statements on `conn`, inside the batch's transaction.
    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<Self::Output, StoreError>>;

    /// The change to announce after the commit, if any.
    fn change(&self, _output: &Self::Output) -> Option<Change> {
        None
    }

    /// A bookmark insert, which the writer may run together with its neighbours in
    /// the batch (`bookmarks::insert_bookmarks`) instead of through `apply`.
    fn as_bookmark(&self) -> Option<(&User, &NewBookmark)> {
        None
    }

    /// This write's output when it ran as part of such a bulk insert.
    fn bulk_output(&self, _bookmark: Arc<Bookmark>) -> Option<Self::Output> {
        None
    }
}

/// Why a batch's transaction did not commit, for each of its callers.
struct BatchFailed {
    why: String,
    /// The database could not be reached: the callers may try again (503), it is not
    /// a fault of theirs or ours.
    unavailable: bool,
}

impl BatchFailed {
    fn error(&self) -> StoreError {
        if self.unavailable { StoreError::Unavailable(self.why.clone()) } else { StoreError::Commit(self.why.clone()) }
    }
}

/// A queued write with its caller's answer, whatever its kind.
trait Job: Send {
    /// Runs the write and keeps its outcome; whether it succeeded.
    fn apply<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool>;

    /// After the batch: answers the caller now, or returns the change to announce first.
    fn finish(self: Box<Self>, commit: Result<(), &BatchFailed>) -> Option<Committed>;

    /// See [`WriteOp::as_bookmark`].
    fn bookmark(&self) -> Option<(&User, &NewBookmark)>;

    /// Keeps the outcome of this write run in a bulk insert.
    fn applied_in_bulk(&mut self, bookmark: Arc<Bookmark>);
}

struct Queued<W: WriteOp> {
    op: W,
    reply: oneshot::Sender<Result<W::Output, StoreError>>,
    outcome: Option<Result<W::Output, StoreError>>,
}

impl<W: WriteOp> Job for Queued<W> {
    fn apply<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let outcome = self.op.apply(conn).await;
            let ok = outcome.is_ok();
            self.outcome = Some(outcome);
            ok
        })
    }

    fn bookmark(&self) -> Option<(&User, &NewBookmark)> {
        self.op.as_bookmark()
    }

    fn applied_in_bulk(&mut self, bookmark: Arc<Bookmark>) {
        self.outcome = Some(
            self.op
                .bulk_output(bookmark)
                .ok_or_else(|| StoreError::Commit("this write cannot run in a bulk insert".to_owned())),
        );
    }

    fn finish(self: Box<Self>, commit: Result<(), &BatchFailed>) -> Option<Committed> {
        let Queued { op, reply, outcome } = *self;
        let outcome = match (commit, outcome) {
            (Err(failed), _) => Err(failed.error()),
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::Commit("the write was not run".to_owned())),
        };
        // A caller that went away (a dropped request) is not there to answer: its write
        // is committed and announced all the same.
        match outcome {
            Ok(output) => match op.change(&output) {
                Some(change) => Some(Committed {
                    change,
                    answer: Box::new(move || {
                        let _ = reply.send(Ok(output));
                    }),
                }),
                None => {
                    let _ = reply.send(Ok(output));
                    None
                }
            },
            Err(err) => {
                let _ = reply.send(Err(err));
                None
            }
        }
    }
}

/// Counters of the write path, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Writes refused because the queue was full.
    pub rejected: AtomicU64,
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Writes committed (the mean batch size is `committed / batches`).
    pub committed: AtomicU64,
    /// Runs of consecutive bookmark inserts tried as one bulk insert.
    pub bulk_runs: AtomicU64,
}

struct Shared {
    stats: WriteStats,
    stop: CancellationToken,
    task: TaskTracker,
}

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the writer on `store`'s write pool with a queue of `capacity` writes;
    /// committed changes go to `publish`.
    pub fn spawn(store: Store, capacity: usize, publish: Publish) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared =
            Arc::new(Shared { stats: WriteStats::default(), stop: CancellationToken::new(), task: TaskTracker::new() });
        shared.task.spawn(run(store, rx, publish, shared.clone()));
        shared.task.close();
        Self { tx, shared }
    }

    /// Writes queued and not yet taken into a batch.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The queue's bound.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    pub fn stats(&self) -> &WriteStats {
        &self.shared.stats
    }

    /// Refuses new writes, commits the queued ones and waits for the task to end.
    pub async fn stop(&self) {
        self.shared.stop.cancel();
        self.shared.task.wait().await;
    }

    /// Queues `op`; its result once committed (and announced).
    pub(super) async fn write<W: WriteOp>(&self, op: W) -> Result<W::Output, StoreError> {
        self.submit(op)?.await
    }

    /// Queues `op` now (or refuses it at once when the queue is full); the returned
    /// future gives its result once committed (and announced). Writes submitted one
    /// after the other commit in that order.
    pub(super) fn submit<W: WriteOp>(&self, op: W) -> Result<Pending<W::Output>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Queued { op, reply, outcome: None });
        match self.tx.try_send(job) {
            Ok(()) => Ok(Pending(answer)),
            Err(TrySendError::Full(_)) => {
                self.shared.stats.rejected.fetch_add(1, Relaxed);
                Err(StoreError::Overloaded)
            }
            // Stopping: the server is shutting down.
            Err(TrySendError::Closed(_)) => Err(StoreError::Overloaded),
        }
    }
}

/// A queued write's result, once its transaction committed.
pub struct Pending<T>(oneshot::Receiver<Result<T, StoreError>>);

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The writer answers every job it takes; only a panic there drops the sender.
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or_else(|_| Err(StoreError::Commit("the writer stopped".to_owned()))))
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Box<dyn Job>>, publish: Publish, shared: Arc<Shared>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            () = shared.stop.cancelled(), if !stopping => {
                // What is queued still gets committed; nothing new gets in.
                stopping = true;
                rx.close();
                continue;
            }
        };
        let Some(first) = first else { break };
        batch.push(first);
        gather(&mut rx, &mut batch).await;
        let size = batch.len();
        let committed = commit(&store, &shared.stats, &mut batch).await;
        let failed = match &committed {
            Ok(applied) => {
                shared.stats.batches.fetch_add(1, Relaxed);
                shared.stats.committed.fetch_add(*applied as u64, Relaxed);
                None
            }
            Err(err) => {
                tracing::error!(%err, writes = size, "write batch failed");
                Some(BatchFailed { why: err.to_string(), unavailable: err.is_unavailable() })
            }
        };
        let commit_result = failed.as_ref().map_or(Ok(()), Err);
        let changes: Vec<Committed> = batch.drain(..).filter_map(|job| job.finish(commit_result)).collect();
        if !changes.is_empty()
            && let Err(mpsc::error::SendError(changes)) = publish.send(changes).await
        {
            // No publisher (shutting down): the callers are answered all the same.
            changes.into_iter().for_each(Committed::answer);
        }
    }
}

/// Adds to `batch` what is queued, up to `MAX_BATCH`. While writes keep arriving, yields
/// so the tasks about to queue one can, for at most `MAX_WAIT`; a lone write goes at once.
async fn gather(rx: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    let deadline = Instant::now() + MAX_WAIT;
    loop {
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let arrived = batch.len() > before;
        if !arrived || batch.len() >= MAX_BATCH || Instant::now() >= deadline {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Commits `batch` in one transaction; the number of writes that succeeded.
async fn commit(store: &Store, stats: &WriteStats, batch: &mut [Box<dyn Job>]) -> Result<usize, StoreError> {
    match run_batch(store, stats, batch, false).await {
        Ok(Some(applied)) => Ok(applied),
        // The database is out of reach: going again would only wait as long once more.
        Err(err) if err.is_unavailable() => Err(err),
        // A write failed (or the transaction did): isolate each write and go again.
        Ok(None) | Err(_) => Ok(run_batch(store, stats, batch, true).await?.unwrap_or(0)),
    }
}

/// Runs every write of `batch` in one transaction. Without savepoints the first failing
/// write rolls everything back (`None`); with them, a failing write undoes only itself
/// and the rest commit. `Some(n)`: committed, with `n` writes that succeeded.
///
/// Without savepoints, consecutive bookmark inserts run as one bulk insert (a few
/// multi-row statements for the run, `bookmarks::insert_bookmarks`); if it fails, the batch goes again with savepoints, one
/// write at a time, so a bad bookmark fails only its own caller.
async fn run_batch(
    store: &Store,
    stats: &WriteStats,
    batch: &mut [Box<dyn Job>],
    savepoints: bool,
) -> Result<Option<usize>, StoreError> {
    let mut tx = store.write.begin().await?;
    let mut applied = 0;
    let mut next = 0;
    while next < batch.len() {
        let run = if savepoints { 0 } else { batch[next..].iter().take_while(|job| job.bookmark().is_some()).count() };
        if run >= 2 {
            let jobs = &mut batch[next..next + run];
            let items: Vec<(&User, &NewBookmark)> = jobs.iter().filter_map(|job| job.bookmark()).collect();
            stats.bulk_runs.fetch_add(1, Relaxed);
            let Ok(created) = bookmarks::insert_bookmarks(&mut tx, &items).await else {
                tx.rollback().await?;
                return Ok(None);
            };
            for (job, bookmark) in jobs.iter_mut().zip(created) {
                job.applied_in_bulk(bookmark);
            }
            applied += run;
            next += run;
            continue;
        }
        let job = &mut batch[next];
        next += 1;
        if savepoints {
            let mut savepoint = Connection::begin(&mut *tx).await?;
            if job.apply(&mut savepoint).await {
                savepoint.commit().await?;
                applied += 1;
            } else {
                savepoint.rollback().await?;
            }
        } else if job.apply(&mut tx).await {
            applied += 1;
        } else {
            tx.rollback().await?;
            return Ok(None);
        }
    }
    tx.commit().await?;
    Ok(Some(applied))
}
