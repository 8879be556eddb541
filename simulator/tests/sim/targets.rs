//! Several targets (`--target` repeated): the same real server given twice, so that
//! the spreading of listeners, actor sockets and actions over target entries can be
//! checked with every event accounted exactly; a target that goes away (a TCP relay in
//! front of the server, closed mid-run) whose listeners move to the other target and
//! rejoin with `since`, losing nothing, and whose room, likes, user and page listeners
//! move too and take what their rejoin offers; and `--agents 2` over two targets, each agent
//! starting on a different one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{
    OwnServer, SMALL, assert_exact_delivery, json_of, n, only_subdir, output_of, plan, report_json, run_judged, sim,
};

/// `targets.<i>.sockets_connected` of report `r`, in target order.
fn sockets_per_target(r: &Value) -> Vec<u64> {
    let targets = r["targets"].as_object().unwrap_or_else(|| panic!("no targets: {}", r["targets"]));
    (0..targets.len()).map(|t| n(&targets[&t.to_string()]["sockets_connected"])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_given_twice_gets_half_the_listeners_at_each_entry_and_loses_nothing() {
    let server = OwnServer::start(true).await;
    let r = json_of(&run_judged(plan(&["--target", &server.base, "--target", &server.base])).await);
    // Every event at every listener exactly once, whichever entry it joined through.
    assert_exact_delivery(&r);
    // 30 listeners round-robin over two entries.
    assert_eq!(sockets_per_target(&r), [15, 15], "{}", r["targets"]);
    for t in ["0", "1"] {
        let entry = &r["targets"][t];
        assert_eq!((entry["kind"].as_str(), entry["url"].as_str()), (Some("external"), Some(server.base.as_str())));
        assert_eq!(n(&entry["failovers"]), 0, "{entry}");
        // One node behind both entries: its memory per socket over all 30 of them.
        assert_eq!(n(&entry["server"]["sockets"]), 30, "{entry}");
        assert!(entry["server"]["rss_per_socket_bytes"].is_number(), "{entry}");
    }
    assert_eq!(r["targets"]["0"]["server"], r["targets"]["1"]["server"], "one node, read once per reading");
    // Summed over distinct nodes: the one server once.
    assert_eq!(r["server"]["rss_after_bytes"], r["targets"]["0"]["server"]["rss_after_bytes"]);
    assert_eq!(r["server"]["rss_before_bytes"], r["targets"]["0"]["server"]["rss_before_bytes"]);
    assert_eq!(r["target"]["url"], server.base.as_str(), "the first target, as one-target reports have it");
    let urls = &r["plan"]["target"]["spec"]["urls"];
    assert_eq!(urls.as_array().map(Vec::len), Some(2), "the plan lists every target: {urls}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_and_every_listener_group_spread_over_two_entries_lose_nothing() {
    let server = OwnServer::start(true).await;
    let twice = ["--target", &server.base, "--target", &server.base];
    let actions = ["--like-rate", "10", "--message-rate", "10", "--typing-rate", "4", "--rooms", "2"];
    let listeners = ["--room-listeners", "4", "--likes-listeners", "3", "--user-listeners", "2"];
    let pages = ["--page-listeners", "2", "--page-reader-rate", "2", "--page-dwell", "300ms"];
    let p = super::actions::plan(&[&twice[..], &actions, &listeners, &pages].concat());
    let r = json_of(&run_judged(p).await);
    super::assert_passed(&r);
    for group in ["firehose", "room", "likes", "user", "page"] {
        let g = &r["groups"][group];
        assert!(n(&g["listeners"]) > 0, "{group}: {g}");
        assert_eq!((n(&g["lost"]), n(&g["received"])), (0, n(&g["expected"])), "{group}: {g}");
    }
    for kind in ["create_bookmark", "like", "chat_message", "typing", "page_readers"] {
        let a = &r["actions"][kind];
        assert!(n(&a["ok"]) > 0 && n(&a["error_count"]) == 0, "{kind}: {a}");
    }
    // Listeners, actor sockets and readers, each group round-robin from entry 0.
    let per_target = sockets_per_target(&r);
    assert!(per_target.iter().all(|&s| s >= 5), "{per_target:?}");
    server.stop().await;
}

/// A TCP relay to `upstream` that can be closed: every relayed connection ends and the
/// port refuses from then on, as a node that died. Before that it may go dark: what
/// the server sends is dropped, as a node that stopped answering before it died.
struct Relay {
    addr: SocketAddr,
    tasks: JoinSet<()>,
    dark: Arc<AtomicBool>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        let pairs = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let relayed = Arc::clone(&pairs);
        let dark = Arc::new(AtomicBool::new(false));
        let darkened = Arc::clone(&dark);
        tasks.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let dark = Arc::clone(&darkened);
                relayed.lock().await.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let ((mut from_client, mut to_client), (mut from_server, mut to_server)) =
                        (client.into_split(), server.into_split());
                    let up = tokio::io::copy(&mut from_client, &mut to_server);
                    let down = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let k = match from_server.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(k) => k,
                            };
                            if !dark.load(Ordering::Relaxed) && to_client.write_all(&buf[..k]).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        () = down => {}
                    }
                });
            }
        });
        // Aborting this task drops every relayed pair.
        tasks.spawn(async move {
            let _held = pairs;
            std::future::pending::<()>().await;
        });
        Relay { addr, tasks, dark }
    }

    /// From now on, what the server sends through the relay is dropped.
    fn go_dark(&self) {
        self.dark.store(true, Ordering::Relaxed);
    }

    /// Ends every relayed connection and stops listening.
    async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

/// Resolves `then` after the server has taken `joins` channel joins (at most 60 s on).
async fn once_joined(server: &OwnServer, joins: u64, then: Duration) {
    let taken = &server.server.state().metrics.joins;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while taken.load(Ordering::Relaxed) < joins && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(then).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_of_a_target_that_goes_away_move_to_the_next_and_recover_what_they_missed() {
    let server = OwnServer::start(true).await;
    let upstream: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let relay = Relay::start(upstream).await;
    let relayed = format!("http://{}", relay.addr);
    // Entry 0 is the relay, entry 1 the server itself: half the listeners join through
    // the relay. Requests through the relay fail once it is gone (errors allowed here).
    let p = plan(&["--target", &relayed, "--target", &server.base, "--threshold", "errors.rate < 100%"]);
    let close_midway = async {
        once_joined(&server, 30, Duration::from_millis(1000)).await;
        relay.close().await;
    };
    let (report, ()) = tokio::join!(run_judged(p), close_midway);
    let r = json_of(&report);
    let l = &r["listeners"];
    assert_eq!(n(&l["joined"]), 30, "{l}");
    assert_eq!(n(&l["closed_during_run"]), 0, "every closed listener reconnected: {l}");
    assert_eq!(n(&l["recovered"]), 15, "the relay's half: {l}");
    let relay_entry = &r["targets"]["0"];
    assert!(n(&relay_entry["failovers"]) >= 15, "each refused at the relay at least once: {relay_entry}");
    assert_eq!(sockets_per_target(&r), [15, 15 + 15], "{}", r["targets"]);
    // Rejoined with `since`: nothing owed was lost, in order, without gaps.
    for group in ["firehose", "tag"] {
        let g = &r["groups"][group];
        for zero in ["lost", "listeners_with_loss", "duplicates", "reordered", "gaps"] {
            assert_eq!(n(&g[zero]), 0, "{group}.{zero}: {g}");
        }
        assert_eq!(n(&g["received"]), n(&g["expected"]), "{group}: {g}");
    }
    assert!(r["verdict"].get("partial").is_none(), "{}", r["verdict"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_likes_user_and_page_listeners_of_a_target_that_goes_away_move_and_carry_on() {
    let server = OwnServer::start(true).await;
    let upstream: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let relay = Relay::start(upstream).await;
    let relayed = format!("http://{}", relay.addr);
    // Entry 0 is the relay: listeners 0, 2, … of each workload join through it (3
    // firehose, 4 room + 3 likes + 2 user, 2 page: 2 + 5 + 1 of them), and so do half
    // the actor sockets and page readers. Errors allowed: requests, pushes and readers
    // through the relay fail once it is gone.
    let entries = ["--target", &relayed, "--target", &server.base, "--threshold", "errors.rate < 100%"];
    let actions = ["--like-rate", "10", "--message-rate", "10", "--rooms", "2", "--mention-fraction", "0.5"];
    let listeners = ["--room-listeners", "4", "--likes-listeners", "3", "--user-listeners", "2"];
    // Readers stay longer than the app holds a page's diffs: one that joined and left
    // within one held diff is merged away, and a listener that rejoined meanwhile
    // (whose `presence_state` lists it) would never hear it go.
    let pages = ["--page-listeners", "2", "--page-reader-rate", "4", "--page-dwell", "2s"];
    let p = super::actions::plan(&[&entries[..], &actions, &listeners, &pages].concat());
    let close_midway = async {
        once_joined(&server, 14, Duration::from_millis(1500)).await;
        // Dark for a while first: the listeners there miss what is broadcast meanwhile.
        relay.go_dark();
        tokio::time::sleep(Duration::from_millis(600)).await;
        relay.close().await;
    };
    let (report, ()) = tokio::join!(run_judged(p), close_midway);
    let r = json_of(&report);
    let l = &r["listeners"];
    assert_eq!(n(&l["recovered"]), 2 + 5 + 1, "every listener at the relay moved and rejoined: {l}");
    // Only actor sockets end with the relay (they do not move).
    assert!(n(&l["closed_during_run"]) <= n(&l["joined"]) - 16, "{l}");
    // `user:<id>` replays after `since`; a room's join reply has every message posted
    // while away (one node behind both entries): nothing owed is lost.
    for group in ["user", "room"] {
        let g = &r["groups"][group];
        assert!(n(&g["expected"]) > 0, "{group}: {g}");
        assert_eq!((n(&g["lost"]), n(&g["received"])), (0, n(&g["expected"])), "{group}: {g}");
        assert_eq!(n(&g["duplicates"]), 0, "{group}: a message in the reply it already had is no duplicate: {g}");
    }
    // Likes and page listeners carry on; a `like_count` or a reader's join or leave
    // broadcast while one was away is lost, and counted so.
    for group in ["likes", "page"] {
        let g = &r["groups"][group];
        assert!(n(&g["received"]) > 0, "{group}: {g}");
        assert_eq!(n(&g["received"]) + n(&g["lost"]), n(&g["expected"]), "{group}: {g}");
    }
    let detail = &r["actions"]["page_readers"]["detail"];
    assert_eq!(super::n_or_0(detail, "listeners_count_wrong"), 0, "the moved page listener's presence: {detail}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_each_spread_their_listeners_over_every_target_from_their_own_offset() {
    let server = OwnServer::start(true).await;
    let out = tempfile::tempdir().unwrap();
    let mut cmd = sim();
    cmd.arg("run")
        .args(SMALL)
        .args(["--target", &server.base, "--target", &server.base, "--agents", "2", "--quiet", "--out"])
        .arg(out.path());
    let output = output_of(cmd).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{}", String::from_utf8_lossy(&output.stdout));
    let dir = only_subdir(out.path());
    let merged = report_json(&dir);
    super::assert_passed(&merged);
    let parts: Vec<Value> = (0..2).map(|i| report_json(&dir.join(format!("agents/agent-{i}")))).collect();
    // 20 + 10 listeners split 10 + 5 per agent: 15 each, over both entries; agent 1
    // starts on entry 1, so its odd listener lands there.
    assert_eq!(sockets_per_target(&parts[0]), [8, 7]);
    assert_eq!(sockets_per_target(&parts[1]), [7, 8]);
    assert_eq!(sockets_per_target(&merged), [15, 15], "the agents' sockets add up per entry");
    for part in &parts {
        assert_eq!(
            part["plan"]["target"]["spec"]["urls"].as_array().map(Vec::len),
            Some(2),
            "every agent has every target"
        );
    }
    assert!(merged["targets"]["0"]["server"]["rss_per_socket_bytes"].is_number(), "{}", merged["targets"]);
    server.stop().await;
}
