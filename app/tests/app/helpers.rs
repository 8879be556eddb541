//! Test harness: the real server started in-process on an ephemeral port with a fresh
//! data dir (`spawn_app`), an HTTP client for the JSON API, and a raw WebSocket client
//! that speaks frames by hand so every byte the server sends can be asserted.
//!
//! The database is SQLite in the data dir, or, when `FIREHOSE_TEST_POSTGRES` holds a
//! PostgreSQL URL (`postgres://postgres@127.0.0.1:5432/test`), a database of its own
//! per test on that server, created before the server starts and dropped when the
//! test's app is dropped (`TestDatabase`). `scripts/test` runs this suite both ways.

use std::net::SocketAddr;
use std::time::Duration;

use firehose_app::config::Config;
use firehose_app::ratelimit::RateLimits;
use firehose_app::server::{self, Running};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// The Phoenix 1.7.24 capture the server must reproduce.
pub const CAPTURE: &str = include_str!("../data/phoenix-1.7.24-frames.txt");

/// Returns `line` after checking it appears verbatim in the capture, so expected bytes
/// in the tests are provably Phoenix's own.
pub fn captured(line: &str) -> &str {
    assert!(CAPTURE.lines().any(|l| l.ends_with(line)), "not in the capture: {line}");
    line
}

/// A server started for one test.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub data_dir: TempDir,
    /// The test's own PostgreSQL database, when the suite runs on PostgreSQL.
    pub database: Option<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    running: Option<Running>,
}

/// The PostgreSQL server the suite runs on (`FIREHOSE_TEST_POSTGRES`), if any.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("FIREHOSE_TEST_POSTGRES").ok().filter(|url| !url.trim().is_empty())
}

/// A database made for one test on the suite's PostgreSQL server; dropped with it.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// A database of the test's own when the suite runs on PostgreSQL, else `None`
    /// (SQLite in the data dir).
    pub async fn for_suite() -> Option<TestDatabase> {
        match postgres_admin_url() {
            Some(admin) => Some(TestDatabase::create(&admin).await),
            None => None,
        }
    }

    /// The URL of `database`, or of the SQLite file the server keeps in `data_dir`.
    pub fn url_or_sqlite(database: Option<&TestDatabase>, data_dir: &std::path::Path) -> String {
        match database {
            Some(db) => db.url.clone(),
            None => Config::for_data_dir(data_dir).database_url(),
        }
    }

    /// Creates an empty database with a name no other test (or test process) uses.
    pub async fn create(admin_url: &str) -> TestDatabase {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("firehose_test_{}_{n}_{}", std::process::id(), nanos % 1_000_000_000);
        sqlx::any::install_default_drivers();
        let mut admin = AnyConnection::connect(admin_url).await.expect("connect to FIREHOSE_TEST_POSTGRES");
        if n == 0 {
            drop_orphans(&mut admin).await;
        }
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create a test database");
        let _ = admin.close().await;
        let mut url = url::Url::parse(admin_url).expect("FIREHOSE_TEST_POSTGRES is a URL");
        url.set_path(&name);
        TestDatabase { admin_url: admin_url.to_owned(), name, url: url.to_string() }
    }
}

/// Drops the test databases of test processes that are gone (killed before their
/// databases were dropped), so they do not pile up on the server.
async fn drop_orphans(admin: &mut AnyConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT CAST(datname AS TEXT) FROM pg_database WHERE datname LIKE 'firehose\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.strip_prefix("firehose_test_").and_then(|rest| rest.split('_').next());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut *admin).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs in async tests too: drop the database from a thread of its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = AnyConnection::connect(&admin_url).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// A user created through the API.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub username: String,
    pub token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server with a config adjusted by `configure`. Rate limits and budgets
/// start off (tests post in bursts no person would, and create many users from one
/// address); tests of the limits set them.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir"), configure).await
}

/// `spawn_app_with` on an existing data dir, with a database of its own when the suite
/// runs on PostgreSQL.
pub async fn spawn_app_in(data_dir: TempDir, configure: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::for_suite().await;
    spawn_app_on(data_dir, database, configure).await
}

/// Starts the server on `data_dir` and `database` (a restart sees what the last run
/// left in both).
pub async fn spawn_app_on(
    data_dir: TempDir,
    database: Option<TestDatabase>,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    sqlx::any::install_default_drivers();
    let mut config = Config::for_data_dir(data_dir.path());
    config.database_url = database.as_ref().map(|db| db.url.clone());
    config.limits = RateLimits::off();
    configure(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (tx, rx) = oneshot::channel::<()>();
    let running = server::start(listener, config, async move {
        let _ = rx.await;
    })
    .await
    .expect("server starts");
    TestApp { addr: running.addr, http: http_client(), data_dir, database, shutdown: Some(tx), running: Some(running) }
}

/// A reqwest client that never goes through a proxy from the environment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(WAIT).build().expect("http client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The database URL the server runs on.
    pub fn database_url(&self) -> String {
        TestDatabase::url_or_sqlite(self.database.as_ref(), self.data_dir.path())
    }

    /// A connection of the test's own to the server's database, SQLite or PostgreSQL
    /// (statements in the dialect both speak: `$1` parameters).
    pub async fn db(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.database_url()).await.expect("open the database")
    }

    /// The running server's shared state, for in-process inspection.
    pub fn state(&self) -> &firehose_app::state::AppState {
        self.running.as_ref().expect("server still running").state()
    }

    /// Resolves the server's shutdown future (graceful shutdown starts).
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts the server down gracefully, then starts a new one (test defaults) on the
    /// same data dir.
    pub async fn restarted(mut self) -> TestApp {
        self.trigger_shutdown();
        self.stopped().await;
        let database = self.database.take();
        spawn_app_on(self.data_dir, database, |_| {}).await
    }

    /// Waits until the server has finished shutting down.
    pub async fn stopped(&mut self) {
        let running = self.running.take().expect("server still running");
        timeout(Duration::from_secs(10), running.wait()).await.expect("server stops within 10 s");
    }

    /// Opens a V2 socket with extra query parameters (`""` for none).
    pub async fn ws(&self, query: &str) -> WsClient {
        WsClient::connect(self.addr, &format!("vsn=2.0.0{query}")).await.expect("WebSocket upgrade")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("GET")
    }

    pub async fn delete_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.delete(self.url(path)).bearer_auth(token).send().await.expect("DELETE")
    }

    /// POSTs a JSON body, with a bearer token when given.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("POST")
    }

    /// POSTs raw bytes as `application/json`.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let mut req =
            self.http.post(self.url(path)).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("POST")
    }

    pub async fn create_user(&self, username: &str) -> TestUser {
        let resp = self.post_json("/api/users", None, &json!({ "username": username })).await;
        assert_eq!(resp.status(), 201, "creating user {username}");
        let body: Value = resp.json().await.expect("user JSON");
        let data = &body["data"];
        TestUser {
            id: data["id"].as_i64().expect("user id"),
            username: data["username"].as_str().expect("username").to_owned(),
            token: data["token"].as_str().expect("token").to_owned(),
        }
    }

    /// POSTs `{"bookmark": fields}`; asserts 201 and returns `data`.
    pub async fn create_bookmark(&self, user: &TestUser, fields: Value) -> Value {
        let resp = self.post_json("/api/bookmarks", Some(&user.token), &json!({ "bookmark": fields })).await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("bookmark JSON");
        assert_eq!(status, 201, "create bookmark: {body}");
        body["data"].clone()
    }

    /// GET returning `(status, json body)`.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.get(path).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        let resp = self.get("/metrics").await;
        assert_eq!(resp.status(), 200);
        resp.text().await.expect("metrics text")
    }

    /// The value of one metric line, `name` including any `{labels}`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&self.metrics().await, name)
    }

    /// Rows in `bookmarks`, read straight from the database.
    pub async fn stored_bookmarks(&self) -> i64 {
        let mut conn = self.db().await;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM bookmarks").fetch_one(&mut conn).await.expect("count");
        n
    }
}

pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Asserts an error response: `status`, and the body `{"error": {"status", "message", …}}`.
/// Returns the `error` object.
pub async fn assert_error(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(got, status, "status; body {body}");
    let error = body.get("error").unwrap_or_else(|| panic!("no \"error\" in {body}")).clone();
    assert_eq!(error["status"], json!(status), "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {body}");
    error
}

/// The exact frame of an ok reply with an empty response.
pub fn ok_reply(jr: Option<&str>, msg_ref: &str, topic: &str) -> Value {
    json!([jr, msg_ref, topic, "phx_reply", {"response": {}, "status": "ok"}])
}

/// The exact frame of an error reply.
pub fn error_reply(jr: Option<&str>, msg_ref: &str, topic: &str, reason: &str) -> Value {
    json!([jr, msg_ref, topic, "phx_reply", {"response": {"reason": reason}, "status": "error"}])
}

/// A WebSocket client reading and writing raw frames.
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
    pub response: Response,
}

impl WsClient {
    pub fn request(addr: SocketAddr, query: &str) -> Request {
        let url = if query.is_empty() {
            format!("ws://{addr}/socket/websocket")
        } else {
            format!("ws://{addr}/socket/websocket?{query}")
        };
        url.into_client_request().expect("request")
    }

    pub async fn connect(addr: SocketAddr, query: &str) -> Result<WsClient, tungstenite::Error> {
        Self::connect_request(addr, Self::request(addr, query)).await
    }

    pub async fn connect_request(addr: SocketAddr, request: Request) -> Result<WsClient, tungstenite::Error> {
        let stream = TcpStream::connect(addr).await.expect("TCP connect");
        Self::handshake(stream, request).await
    }

    /// A client whose kernel receive buffer is as small as the OS allows, so that a
    /// client that stops reading backs the server up quickly.
    pub async fn connect_small_rcvbuf(addr: SocketAddr, query: &str) -> WsClient {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("TCP connect");
        Self::handshake(stream, Self::request(addr, query)).await.expect("WebSocket upgrade")
    }

    async fn handshake(stream: TcpStream, request: Request) -> Result<WsClient, tungstenite::Error> {
        Self::handshake_within(stream, request, WAIT).await
    }

    /// Connects and upgrades, allowing `within` for the upgrade (for a server that is
    /// not accepting at the moment, e.g. out of descriptors).
    pub async fn connect_within(addr: SocketAddr, query: &str, within: Duration) -> WsClient {
        let stream = TcpStream::connect(addr).await.expect("TCP connect");
        Self::handshake_within(stream, Self::request(addr, query), within).await.expect("WebSocket upgrade")
    }

    async fn handshake_within(
        stream: TcpStream,
        request: Request,
        within: Duration,
    ) -> Result<WsClient, tungstenite::Error> {
        let (ws, response) =
            timeout(within, tokio_tungstenite::client_async(request, stream)).await.expect("handshake timed out")?;
        Ok(WsClient { ws, response })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send text frame");
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("send binary frame");
    }

    /// Sends `[jr, ref, topic, event, payload]`.
    pub async fn push(&mut self, jr: Option<&str>, msg_ref: &str, topic: &str, event: &str, payload: Value) {
        self.send_json(&json!([jr, msg_ref, topic, event, payload])).await;
    }

    /// Joins `topic` with `join_ref == ref == jr` and asserts the exact ok reply.
    pub async fn join(&mut self, jr: &str, topic: &str) {
        self.push(Some(jr), jr, topic, "phx_join", json!({})).await;
        assert_eq!(self.expect_frame().await, ok_reply(Some(jr), jr, topic), "join {topic}");
    }

    /// The next data message (pings and pongs skipped), or `None` when the connection ended.
    async fn next_data(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        loop {
            let msg = timeout(WAIT, self.ws.next()).await.expect("nothing arrived within 5 s")?;
            match msg {
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                other => return Some(other),
            }
        }
    }

    /// The next text message, verbatim.
    pub async fn expect_text(&mut self) -> String {
        match self.next_data().await {
            Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text message parsed as JSON (V1 objects or V2 arrays).
    pub async fn expect_json(&mut self) -> Value {
        let text = self.expect_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// The next V2 frame: a JSON array of five elements.
    pub async fn expect_frame(&mut self) -> Value {
        let frame = self.expect_json().await;
        assert!(frame.as_array().is_some_and(|a| a.len() == 5), "not a V2 frame: {frame}");
        frame
    }

    /// The next message must be a close frame; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        match self.next_data().await {
            Some(Ok(Message::Close(Some(frame)))) => u16::from(frame.code),
            Some(Ok(Message::Close(None))) => u16::from(CloseCode::Status),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Reads (and discards) data until the connection ends; returns the close code if a
    /// close frame came, `None` if the connection was just dropped.
    pub async fn drain_until_end(&mut self, within: Duration) -> Option<u16> {
        let deadline = Instant::now() + within;
        loop {
            let msg =
                tokio::time::timeout_at(deadline, self.ws.next()).await.expect("the connection did not end in time");
            match msg {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => {
                    return Some(frame.map_or(u16::from(CloseCode::Status), |f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Closes with 1000 and waits for the server's side of the closing handshake.
    pub async fn close(mut self) {
        self.ws.send(Message::Close(None)).await.expect("send close");
        self.drain_until_end(WAIT).await;
    }

    /// Asserts that nothing arrives for `ms` milliseconds.
    pub async fn expect_silence(&mut self, ms: u64) {
        if let Ok(msg) = timeout(Duration::from_millis(ms), self.ws.next()).await {
            panic!("expected silence, got {msg:?}");
        }
    }

    /// Sends a heartbeat with `msg_ref` and asserts its exact reply.
    pub async fn heartbeat(&mut self, msg_ref: &str) {
        self.push(None, msg_ref, "phoenix", "heartbeat", json!({})).await;
        assert_eq!(self.expect_frame().await, ok_reply(None, msg_ref, "phoenix"), "heartbeat reply");
    }
}

/// A `firehose serve` child process on an ephemeral port (its own memory and file
/// descriptors, unlike `spawn_app`). `FIREHOSE_BIN` names another binary to run instead
/// of this checkout's (e.g. an older build, to compare a measurement).
pub struct ServerProcess {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    _data_dir: TempDir,
}

impl ServerProcess {
    /// Starts `[wrapper…] firehose serve --bind 127.0.0.1:0 … <extra>` and waits for its
    /// listening line. `wrapper` runs the binary through another program (e.g.
    /// `prlimit --nofile=256:256`).
    pub async fn start(wrapper: &[&str], extra: &[&str]) -> ServerProcess {
        use std::process::Stdio;
        use tokio::io::AsyncBufReadExt;
        let data_dir = tempfile::tempdir().expect("temp dir");
        let bin = std::env::var("FIREHOSE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_firehose").to_owned());
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(args).arg(&bin);
                c
            }
            None => tokio::process::Command::new(&bin),
        };
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--log", "warn", "--rate-bookmarks", "off", "--data-dir"])
            .arg(data_dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {wrapper:?} {bin}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("firehose did not report listening within 30 s")
            .expect("read stdout")
            .expect("firehose exited before listening");
        let addr = line
            .strip_prefix("firehose listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        ServerProcess { child, addr, http: http_client(), _data_dir: data_dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The value of one metric line of `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let resp = self.http.get(self.url("/metrics")).send().await.expect("GET /metrics");
        assert_eq!(resp.status(), 200);
        metric_value(&resp.text().await.expect("metrics text"), name)
    }

    pub async fn create_user(&self, username: &str) -> TestUser {
        let resp =
            self.http.post(self.url("/api/users")).json(&json!({ "username": username })).send().await.expect("POST");
        assert_eq!(resp.status(), 201, "creating user {username}");
        let body: Value = resp.json().await.expect("user JSON");
        TestUser {
            id: body["data"]["id"].as_i64().expect("user id"),
            username: username.to_owned(),
            token: body["data"]["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
