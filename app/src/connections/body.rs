//! Request bodies that trickle: after the request head, a body has
//! `ConnectionsConfig::header_timeout` of grace, then must keep up an average of
//! `body_min_rate` bytes per second (so N bytes may take grace + N / rate). A body that
//! falls behind while the handler waits for it fails with [`BodyTooSlow`], and the
//! request is answered 408 with `Connection: close`, whatever the handler made of the
//! failed read, so a slow sender cannot hold a connection (or an upload) open for long.
//!
//! Only the waiting counts: bytes that already arrived are handed over however late
//! the handler asks for them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep, sleep_until};

use crate::http::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;

/// The error a paced body fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
pub struct BodyTooSlow;

/// Middleware: paces every request that has a body (see the module docs).
pub async fn pace_bodies(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let cfg = state.config.connections;
    if cfg.body_min_rate == 0 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let tripped = Arc::new(AtomicBool::new(false));
    let pace = Pace { grace: cfg.header_timeout, min_rate: f64::from(cfg.body_min_rate) };
    let req = req.map(|body| Body::new(Paced::new(body, pace, tripped.clone())));
    let response = next.run(req).await;
    if !tripped.load(Ordering::Acquire) {
        return response;
    }
    Metrics::add(&state.metrics.slow_bodies, 1);
    let mut response = ApiError::RequestTimeout.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[derive(Debug, Clone, Copy)]
struct Pace {
    grace: Duration,
    /// Bytes per second.
    min_rate: f64,
}

/// A body that fails once it falls behind its pace.
struct Paced {
    inner: Body,
    pace: Pace,
    started: Instant,
    received: u64,
    /// Armed only while waiting for the client.
    timer: Option<Pin<Box<Sleep>>>,
    tripped: Arc<AtomicBool>,
}

impl Paced {
    fn new(inner: Body, pace: Pace, tripped: Arc<AtomicBool>) -> Self {
        Self { inner, pace, started: Instant::now(), received: 0, timer: None, tripped }
    }

    /// When the bytes received so far stop being enough.
    fn deadline(&self) -> Instant {
        let allowed = Duration::try_from_secs_f64(self.received as f64 / self.pace.min_rate).unwrap_or(Duration::MAX);
        self.started.checked_add(self.pace.grace.saturating_add(allowed)).unwrap_or_else(far_future)
    }

    fn trip(&self) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        self.tripped.store(true, Ordering::Release);
        Poll::Ready(Some(Err(BodyTooSlow.into())))
    }
}

/// About 30 years away, as tokio does for "never".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

impl HttpBody for Paced {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.tripped.load(Ordering::Relaxed) {
            return this.trip();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline();
                let timer = this.timer.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                ready!(timer.as_mut().poll(cx));
                this.trip()
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_fails_after_the_grace_and_its_allowance() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let body = Body::from_stream(tokio_stream_from(rx));
        let tripped = Arc::new(AtomicBool::new(false));
        let pace = Pace { grace: Duration::from_secs(10), min_rate: 100.0 };
        let mut paced = Paced::new(body, pace, tripped.clone());
        let start = Instant::now();
        tx.send(Ok(Bytes::from(vec![b'x'; 200]))).await.unwrap();
        let frame = std::future::poll_fn(|cx| Pin::new(&mut paced).poll_frame(cx)).await;
        assert_eq!(frame.unwrap().unwrap().into_data().unwrap().len(), 200);
        // 200 bytes at 100 B/s buy 2 s on top of the 10 s grace; then nothing comes.
        let failed = std::future::poll_fn(|cx| Pin::new(&mut paced).poll_frame(cx)).await;
        assert!(failed.unwrap().unwrap_err().is::<BodyTooSlow>());
        assert_eq!(start.elapsed(), Duration::from_secs(12));
        assert!(tripped.load(Ordering::Acquire));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_already_there_are_handed_over_however_late() {
        let body = Body::from(vec![b'y'; 10]);
        let tripped = Arc::new(AtomicBool::new(false));
        let pace = Pace { grace: Duration::from_secs(1), min_rate: 1.0 };
        let paced = Paced::new(body, pace, tripped.clone());
        tokio::time::sleep(Duration::from_secs(60)).await;
        let bytes = axum::body::to_bytes(Body::new(paced), 100).await.expect("whole body");
        assert_eq!(bytes.len(), 10);
        assert!(!tripped.load(Ordering::Acquire));
    }

    /// A stream over an mpsc receiver (no tokio-stream dependency for one test).
    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
