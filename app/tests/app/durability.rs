//! A bookmark acknowledged with 201 survives the process being killed: the real
//! `firehose` binary is SIGKILLed (no graceful shutdown, no WAL checkpoint) and a new
//! process on the same data dir serves every acknowledged bookmark, from its cache too.
//! The partial file of an upload cut off by a SIGKILL is swept by the next start. And
//! the budget flags reach the server through the command line and the environment.
//! On PostgreSQL (`FIREHOSE_TEST_POSTGRES`) the processes share a database of the
//! test's own instead of the data dir's SQLite file.

use std::path::Path;
use std::process::Stdio;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use crate::helpers::{TestDatabase, TestUser, WAIT, http_client};

/// What a process keeps between runs: its data dir and, on PostgreSQL, its database.
struct Storage {
    dir: tempfile::TempDir,
    database: Option<TestDatabase>,
}

impl Storage {
    async fn new() -> Storage {
        Storage { dir: tempfile::tempdir().unwrap(), database: TestDatabase::for_suite().await }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A `firehose serve` child process.
struct Process {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Process {
    /// Starts the binary on an ephemeral port and waits for its "listening" line.
    async fn start(storage: &Storage) -> Process {
        Self::start_with(storage, &[], &[]).await
    }

    /// `start` with more flags and environment variables.
    async fn start_with(storage: &Storage, args: &[&str], env: &[(&str, &str)]) -> Process {
        let database: &[&str] = match &storage.database {
            Some(db) => &["--database-url", &db.url],
            None => &[],
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_firehose"))
            .args(["serve", "--bind", "127.0.0.1:0", "--log", "warn", "--data-dir"])
            .arg(storage.path())
            .args(database)
            // Like every test server: no per-user limits on the bursts of creates.
            .args(["--rate-bookmarks", "off"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn firehose");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(WAIT, lines.next_line())
            .await
            .expect("firehose did not report listening within 5 s")
            .expect("read stdout")
            .expect("firehose exited before listening");
        let base = line.strip_prefix("firehose listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}"));
        assert!(base.starts_with("http://127.0.0.1:"), "{line}");
        Process { child, base: base.to_owned(), http: http_client() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn create_user(&self, username: &str) -> TestUser {
        let resp = self.sign_up(username).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        TestUser {
            id: body["data"]["id"].as_i64().unwrap(),
            username: username.to_owned(),
            token: body["data"]["token"].as_str().unwrap().to_owned(),
        }
    }

    async fn sign_up(&self, username: &str) -> reqwest::Response {
        self.http.post(self.url("/api/users")).json(&json!({"username": username})).send().await.unwrap()
    }

    /// POSTs a bookmark; returns its `data` once acknowledged with 201.
    async fn create_bookmark(&self, user: &TestUser, i: usize) -> Value {
        let body = json!({"bookmark": {"title": format!("durable {i}"), "url": format!("https://example.com/{i}"),
                                       "tags": ["durable"]}});
        let resp =
            self.http.post(self.url("/api/bookmarks")).bearer_auth(&user.token).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().await.unwrap()["data"].clone()
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    /// SIGKILL: no shutdown path runs at all.
    async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL firehose");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_bookmarks_survive_sigkill_and_are_cached_at_boot() {
    let dir = Storage::new().await;
    let first = Process::start(&dir).await;
    let alice = first.create_user("alice").await;

    // Concurrent writers, as under load: every 201 must be durable.
    let mut acknowledged = Vec::new();
    for batch in 0..4 {
        let created = join_all((0..10).map(|i| first.create_bookmark(&alice, batch * 10 + i))).await;
        acknowledged.extend(created);
    }
    first.kill().await;

    let second = Process::start(&dir).await;
    for data in &acknowledged {
        let (status, body) = second.get_json(&format!("/api/bookmarks/{}", data["id"])).await;
        assert_eq!(status, 200, "bookmark {} lost", data["id"]);
        assert_eq!(&body["data"], data);
    }
    // The feed (served from the cache loaded at boot) holds them all, newest first.
    let (status, body) = second.get_json("/api/bookmarks?limit=100").await;
    assert_eq!(status, 200);
    let mut expected: Vec<i64> = acknowledged.iter().map(|b| b["id"].as_i64().unwrap()).collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    let listed: Vec<i64> = body["data"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, expected);
    let (status, _) = second.get_json("/api/bookmarks/random").await;
    assert_eq!(status, 200);
    let (_, body) = second.get_json("/api/bookmarks?tag=durable&limit=100").await;
    assert_eq!(body["data"].as_array().unwrap().len(), acknowledged.len());

    // The account survived too, and ids keep increasing.
    let next = second.create_bookmark(&alice, 99).await;
    assert!(next["id"].as_i64().unwrap() > expected[0]);
    second.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_and_keeps_the_data() {
    let dir = Storage::new().await;
    let mut first = Process::start(&dir).await;
    let alice = first.create_user("alice").await;
    let data = first.create_bookmark(&alice, 1).await;
    let pid = first.child.id().expect("pid");
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill -TERM");
    assert!(status.success());
    let exit = timeout(WAIT, first.child.wait()).await.expect("exits within 5 s after SIGTERM").unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");

    let second = Process::start(&dir).await;
    let (status, body) = second.get_json(&format!("/api/bookmarks/{}", data["id"])).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], data);
    second.kill().await;
}

/// Files directly in `dir` (none when it does not exist).
fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.map(|e| e.unwrap().path()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_upload_leaves_a_partial_file_that_the_next_start_sweeps() {
    use tokio::io::AsyncWriteExt;

    let dir = Storage::new().await;
    let partial_dir = dir.path().join("uploads-partial");
    let first = Process::start(&dir).await;
    let alice = first.create_user("alice").await;
    let kept = {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(b"kept across restarts\n".to_vec()).file_name("a.txt"));
        let resp = first.http.post(first.url("/api/uploads")).bearer_auth(&alice.token).multipart(form).send().await;
        let body: Value = resp.unwrap().json().await.unwrap();
        body["data"]["url"].as_str().expect("upload url").to_owned()
    };

    // A multipart upload that announces 1 MiB and sends the first 64 KiB, then stalls.
    let boundary = "sweepboundary";
    let head = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n\r\n");
    let addr = first.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /api/uploads HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{head}",
        alice.token,
        1024 * 1024
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(&b"x".repeat(64 * 1024)).await.unwrap();
    stream.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while files_in(&partial_dir).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no partial file appeared");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.kill().await;
    drop(stream);
    assert_eq!(files_in(&partial_dir).len(), 1, "SIGKILL leaves the partial file behind");

    let second = Process::start(&dir).await;
    assert_eq!(files_in(&partial_dir), Vec::<std::path::PathBuf>::new(), "swept at start");
    let (status, _) = second.get_json(&kept).await;
    // A stored upload is served as the file itself (not JSON): only the status counts.
    assert_eq!(status, 200, "the recorded upload stays");
    assert_eq!(files_in(&dir.path().join("uploads")).len(), 1);
    second.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_flags_and_their_environment_variables_reach_the_server() {
    let dir = Storage::new().await;
    let by_flag = Process::start_with(&dir, &["--rate-signups", "2/1m"], &[]).await;
    assert_eq!(by_flag.sign_up("user_a1").await.status(), 201);
    assert_eq!(by_flag.sign_up("user_a2").await.status(), 201);
    let refused = by_flag.sign_up("user_a3").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    by_flag.kill().await;

    let dir = Storage::new().await;
    let by_env = Process::start_with(&dir, &[], &[("FIREHOSE_RATE_SIGNUPS", "1/1m")]).await;
    assert_eq!(by_env.sign_up("user_b1").await.status(), 201);
    assert_eq!(by_env.sign_up("user_b2").await.status(), 429);
    by_env.kill().await;

    let dir = Storage::new().await;
    let off = Process::start_with(&dir, &["--rate-signups", "off"], &[("FIREHOSE_RATE_SIGNUPS", "1/1m")]).await;
    for i in 0..25 {
        assert_eq!(off.sign_up(&format!("user_c{i}")).await.status(), 201, "the flag wins over the environment");
    }
    off.kill().await;
}
