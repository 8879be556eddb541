//! `run --dashboard [ADDR]`: a page in the browser that follows the run as it goes
//! (the phase, the latest second's rates, latencies, open connections, errors by kind
//! and generator lag, the same over-time plots as `report.html`) and shows the verdict
//! when it ends. The page is rendered here; each change is pushed to the browser as a
//! Server-Sent Event (no polling), and a small script swaps it in.
//!
//! Events from [`live`] fold into the page's state where they are published; the
//! server and the rendering run on a thread and runtime of their own, so drawing the
//! plots never runs on the runtime that measures.

mod view;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use futures_util::Stream;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::report::html::{STYLE, esc};
use crate::report::live::{self, Subscription};
use view::View;

/// Where the dashboard listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5665";

/// How long the server stays up once the run ended, for open pages to get the verdict.
const LINGER: Duration = Duration::from_secs(2);

/// How long a change waits for the ones right behind it before it is rendered.
const COALESCE: Duration = Duration::from_millis(20);

const SCRIPT: &str = include_str!("dashboard.js");

const EXTRA_STYLE: &str = ".tiles{display:flex;flex-wrap:wrap;gap:.6em;margin:.5em 0}\
.tile{border:1px solid #ddd;border-radius:6px;padding:.4em .8em;min-width:8em}\
.tile b{display:block;font-size:1.4em}.tile span{color:#666;font-size:.85em}\
#status{color:#666}.phase b{text-transform:capitalize}\
table{display:block;overflow-x:auto;max-width:100%}";

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot serve the dashboard on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the dashboard: {0}")]
    Start(std::io::Error),
}

/// One state of the page's live part.
#[derive(Debug, Clone)]
struct Frame {
    html: Arc<str>,
    /// The run was judged: the last frame.
    ended: bool,
}

struct Shared {
    plan: String,
    view: Mutex<View>,
    frames: watch::Sender<Frame>,
}

impl Shared {
    /// The page's live part as it is now.
    fn current(&self) -> Frame {
        let view = self.view.lock();
        frame(&view)
    }
}

fn frame(view: &View) -> Frame {
    // A carriage return cannot travel in an event's data.
    Frame { html: view.fragment().replace('\r', "").into(), ended: view.ended() }
}

/// The running dashboard; [`Dashboard::finish`] lets open pages see the end.
pub struct Dashboard {
    url: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
    _subscription: Subscription,
}

impl Dashboard {
    /// Serves the dashboard of the runs of this process on `addr`; `plan` is the plan
    /// as shown on the terminal.
    pub fn start(addr: SocketAddr, plan: String) -> Result<Self, DashboardError> {
        let listener = std::net::TcpListener::bind(addr).map_err(|source| DashboardError::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(DashboardError::Start)?;
        let local = listener.local_addr().map_err(DashboardError::Start)?;
        let view = View::new();
        let (frames, _) = watch::channel(frame(&view));
        let shared = Arc::new(Shared { plan, view: Mutex::new(view), frames });
        // Events fold in at once (cheap); rendering waits for the dashboard's thread.
        let changed = Arc::new(Notify::new());
        let (folding, notify) = (Arc::clone(&shared), Arc::clone(&changed));
        let subscription = live::subscribe(move |event| {
            folding.view.lock().apply(event);
            notify.notify_one();
        });
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(DashboardError::Start)?;
        let stop = CancellationToken::new();
        let (state, token) = (Arc::clone(&shared), stop.clone());
        let thread = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || runtime.block_on(serve(listener, state, changed, token)))
            .map_err(DashboardError::Start)?;
        Ok(Self { url: format!("http://{local}/"), shared, stop, thread: Some(thread), _subscription: subscription })
    }

    /// The page's address (with the port chosen when `addr` asked for port 0).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Ends the page: the last frame (the verdict, or how the run stopped) goes to every
    /// open page, then the server stops once they have it or after a short wait.
    pub fn finish(mut self) {
        let deadline = Instant::now() + LINGER;
        {
            let view = self.shared.view.lock();
            let mut last = frame(&view);
            last.ended = true;
            self.shared.frames.send_replace(last);
        }
        while self.shared.frames.receiver_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, changed: Arc<Notify>, stop: CancellationToken) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("dashboard: {e}");
            return;
        }
    };
    let rendering = Arc::clone(&shared);
    tokio::spawn(async move {
        loop {
            changed.notified().await;
            // A burst (a phase and a row) becomes one frame.
            tokio::time::sleep(COALESCE).await;
            if rendering.frames.receiver_count() > 0 && !rendering.frames.borrow().ended {
                let next = rendering.current();
                rendering.frames.send_replace(next);
            }
        }
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/dashboard.js", get(script))
        .route("/events", get(stream))
        .with_state(shared);
    let graceful = stop.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move { graceful.cancelled().await });
    // Graceful shutdown waits for open connections; a page that kept one open past the
    // last frame does not hold the process.
    tokio::select! {
        result = server => if let Err(e) = result { tracing::warn!("dashboard: {e}") },
        () = async { stop.cancelled().await; tokio::time::sleep(LINGER).await } => {}
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'";

async fn page(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let live = shared.current();
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>firehose-sim live</title><style>{STYLE}{EXTRA_STYLE}</style>\
         <script src=\"dashboard.js\" defer></script></head><body>\n\
         <h1>firehose-sim live</h1><p id=\"status\">{}</p>\n\
         <details><summary>Plan</summary><pre>{}</pre></details>\n<div id=\"live\">{}</div>\n</body></html>\n",
        if live.ended { "run ended" } else { "connecting…" },
        esc(&shared.plan),
        live.html
    );
    ([(header::CONTENT_SECURITY_POLICY, CSP), (header::CACHE_CONTROL, "no-store")], Html(body))
}

async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], SCRIPT)
}

/// The page's live part, pushed: the current state at once, then every change; the
/// stream ends after the last frame (`end`).
async fn stream(State(shared): State<Arc<Shared>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = shared.frames.subscribe();
    let first = shared.current();
    let frames = futures_util::stream::unfold(Some((rx, Some(first))), |state| async move {
        let (mut rx, first) = state?;
        let frame = match first {
            Some(frame) if !rx.borrow().ended => frame,
            _ => {
                if !rx.borrow().ended {
                    rx.changed().await.ok()?;
                }
                rx.borrow_and_update().clone()
            }
        };
        let event = Event::default().event(if frame.ended { "end" } else { "frame" }).data(&*frame.html);
        let next = (!frame.ended).then_some((rx, None));
        Some((Ok(event), next))
    });
    Sse::new(frames).keep_alive(KeepAlive::default())
}
