//! `firehose-sim demo` through the real binary against a server this test boots (with
//! the default per-user limits, as a demo server runs): it must fill the server with
//! bookmarks, likes and chat messages (checked over the HTTP API), and stop cleanly
//! with a final count on SIGINT.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{OwnServer, sim};

/// (bookmarks, bookmarks with a like, chat messages) the server holds now.
async fn what_the_server_has(http: &reqwest::Client, base: &str) -> (usize, usize, usize) {
    let get = |path: String| async move {
        let v: Value = http.get(format!("{base}{path}")).send().await.unwrap().json().await.unwrap();
        v["data"].as_array().cloned().unwrap_or_default()
    };
    let bookmarks = get("/api/bookmarks?limit=100".into()).await;
    let mut liked = 0;
    for b in &bookmarks {
        let likes = http.get(format!("{base}/api/bookmarks/{}/likes", b["id"])).send().await.unwrap();
        let likes: Value = likes.json().await.unwrap();
        liked += usize::from(likes["data"]["count"].as_u64().unwrap_or(0) > 0);
    }
    let mut messages = 0;
    for room in get("/api/rooms".into()).await {
        messages += get(format!("/api/rooms/{}/messages", room["slug"].as_str().unwrap())).await.len();
    }
    (bookmarks.len(), liked, messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_a_running_server_and_stops_cleanly_on_sigint() {
    // The app's default config (per-user limits on), as a demo server runs.
    let server = OwnServer::start(false).await;
    let base = server.base.clone();
    let mut child = sim()
        .args(["demo", "--target", &base, "--speed", "20", "--seed", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = (0, 0, 0);
    while Instant::now() < deadline {
        seen = what_the_server_has(&http, &base).await;
        if seen.0 >= 3 && seen.1 >= 1 && seen.2 >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(seen.0 >= 3 && seen.1 >= 1 && seen.2 >= 2, "bookmarks, liked bookmarks, messages: {seen:?}");

    let interrupted = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let stopped_by = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < stopped_by, "the demo did not stop within 10 s of SIGINT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let lines = lines.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}\n{}", lines.join("\n"));
    let last = lines.last().unwrap();
    assert!(last.starts_with("demo stopped after "), "{last}");
    assert!(lines.iter().any(|l| l.contains(" bookmarked #")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains(" liked #")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains(" is typing in #")), "{lines:#?}");
    // The final count agrees with what the server stored (each bookmark printed was created).
    let printed: usize = last.split(": ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert_eq!(printed, lines.iter().filter(|l| l.contains(" bookmarked #")).count());
    assert!(what_the_server_has(&http, &base).await.0 >= printed.min(100));

    server.stop().await;
}

#[test]
fn the_demo_exits_4_on_an_unreachable_target_and_2_on_bad_flags() {
    let out = sim().args(["demo", "--target", "http://127.0.0.1:9"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("cannot reach http://127.0.0.1:9"), "{stderr}");

    let out = sim().args(["demo", "--speed", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--speed must be a positive number"));
    let out = sim().args(["demo", "--scenario", "no-such-scenario"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
