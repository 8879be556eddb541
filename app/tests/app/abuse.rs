//! Overload and abuse, answered rather than suffered: connections that never finish a
//! request head or trickle a body are closed; WebSockets past `--max-connections` get
//! 503 while plain HTTP is still served; running out of file descriptors never stops
//! the accept loop; anonymous sockets and anonymous searches have budgets.

use std::time::Duration;

use firehose_app::ratelimit::Rate;
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite;

use crate::helpers::*;

// ---- request heads and bodies that never finish ---------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abuse {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request head one byte at a time, never finishing it.
    DripHead,
    /// Sends a whole head, then the body one byte at a time.
    SlowBody,
}

/// How one abusive connection ended: after how long, and what the server sent.
struct Ended {
    abuse: Abuse,
    after: Duration,
    answer: String,
}

/// Runs one abusive client until the server closes its connection (at most 20 s).
async fn abuse(addr: std::net::SocketAddr, abuse: Abuse, token: String) -> Ended {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let (head, mut drip): (Vec<u8>, Box<dyn Iterator<Item = u8> + Send>) = match abuse {
        Abuse::Silent => (Vec::new(), Box::new(std::iter::empty())),
        Abuse::DripHead => (
            Vec::new(),
            Box::new(
                b"GET /api/bookmarks HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().copied().chain(std::iter::repeat(b'a')),
            ),
        ),
        Abuse::SlowBody => (
            format!(
                "POST /api/bookmarks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            .into_bytes(),
            Box::new(b"{\"bookmark\":".iter().copied().chain(std::iter::repeat(b' '))),
        ),
    };
    stream.write_all(&head).await.expect("write head");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let outcome = timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = tick.tick(), if abuse != Abuse::Silent => {
                    let byte = drip.next().expect("endless");
                    if stream.write_all(&[byte]).await.is_err() {
                        // Closed under us: collect whatever answer is left.
                        while let Ok(Ok(n)) = timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                            if n == 0 {
                                break;
                            }
                            answer.extend_from_slice(&buf[..n]);
                        }
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "{abuse:?} connection still open after 20 s");
    Ended { abuse, after: started.elapsed(), answer: String::from_utf8_lossy(&answer).into_owned() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_drip_fed_connections_are_closed_within_15_s_while_the_server_keeps_answering() {
    // The defaults: 10 s for a request head, bodies at 1 KiB/s after 10 s of grace.
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut clients = JoinSet::new();
    for i in 0..40 {
        let kind = [Abuse::Silent, Abuse::DripHead, Abuse::SlowBody][i % 3];
        clients.spawn(abuse(app.addr, kind, alice.token.clone()));
    }
    let mut ended = Vec::new();
    let mut answered = 0;
    loop {
        tokio::select! {
            done = clients.join_next() => match done {
                Some(done) => ended.push(done.expect("client task")),
                None => break,
            },
            () = sleep(Duration::from_millis(250)) => {
                let resp = app.get("/api/bookmarks").await;
                assert_eq!(resp.status(), 200, "the server keeps answering");
                answered += 1;
            }
        }
    }
    assert_eq!(ended.len(), 40);
    for end in &ended {
        assert!(end.after < Duration::from_secs(15), "{:?} closed only after {:?}", end.abuse, end.after);
        // Not before the deadline either: these are timeouts, not refusals.
        assert!(end.after >= Duration::from_secs(9), "{:?} closed already after {:?}", end.abuse, end.after);
        match end.abuse {
            Abuse::SlowBody => assert!(end.answer.starts_with("HTTP/1.1 408"), "slow body answered {:?}", end.answer),
            Abuse::Silent | Abuse::DripHead => assert!(end.answer.is_empty(), "{:?} got {:?}", end.abuse, end.answer),
        }
    }
    assert!(answered >= 20, "only {answered} normal requests were answered meanwhile");
    let slow_bodies = ended.iter().filter(|e| e.abuse == Abuse::SlowBody).count() as f64;
    assert_eq!(app.metric("firehose_slow_bodies_total").await, Some(slow_bodies));
    let heads = app.metric("firehose_header_timeouts_total").await.expect("header timeouts counted");
    assert!(heads >= 40.0 - slow_bodies, "{heads} header timeouts counted");
    // Nothing was stored from the trickled bodies.
    assert_eq!(app.stored_bookmarks().await, 0);
}

// ---- the WebSocket cap --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_past_max_connections_get_503_and_plain_http_is_still_served() {
    let app = spawn_app_with(|c| c.connections.max_connections = Some(100)).await;
    let attempts = join_all((0..140).map(|_| WsClient::connect(app.addr, "vsn=2.0.0"))).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt {
            Ok(ws) => open.push(ws),
            Err(tungstenite::Error::Http(resp)) if resp.status() == 503 => refused += 1,
            Err(err) => panic!("unexpected upgrade failure: {err:?}"),
        }
    }
    assert_eq!((open.len(), refused), (100, 40), "100 × 101 and 40 × 503");
    for ws in &open {
        assert_eq!(ws.response.status(), 101);
    }
    // The refusal is a JSON error with Retry-After.
    let resp = app
        .http
        .get(app.url("/socket/websocket?vsn=2.0.0"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_error(resp, 503).await;
    // Plain HTTP is still served, and the open sockets still work.
    assert_eq!(app.get("/api/bookmarks").await.status(), 200);
    open[0].heartbeat("1").await;
    assert_eq!(app.metric("firehose_open_sockets").await, Some(100.0));
    assert_eq!(app.metric("firehose_max_connections").await, Some(100.0));
    // A closed socket gives its slot back.
    open.pop().expect("a socket").close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match WsClient::connect(app.addr, "vsn=2.0.0").await {
            Ok(mut ws) => break ws.heartbeat("1").await,
            Err(tungstenite::Error::Http(resp)) if resp.status() == 503 && Instant::now() < deadline => {
                sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("unexpected refusal: {err:?}"),
        }
    }
}

/// A second client process: opens `N` connections to `HOST:PORT`, sends a WebSocket
/// upgrade on each, says so, and holds them until its stdin closes.
const HOLDER: &str = r#"
import socket, sys
addr, n = sys.argv[1], int(sys.argv[2])
host, port = addr.rsplit(":", 1)
req = ("GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       "Sec-WebSocket-Version: 13\r\n\r\n" % addr).encode()
held = []
for _ in range(n):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(req)
    held.append(s)
print("holding", len(held), flush=True)
sys.stdin.read()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_never_stops_the_accept_loop() {
    // 256 descriptors, and a cap above them, so the descriptors run out first.
    let mut server = ServerProcess::start(&["prlimit", "--nofile=256:256"], &["--max-connections", "1000"]).await;
    let addr = server.addr;
    // This process takes 150 sockets…
    let mine = join_all((0..150).map(|_| WsClient::connect_within(addr, "vsn=2.0.0", Duration::from_secs(30)))).await;
    // …and a second process 150 more: past what the server can hold.
    let mut holder = tokio::process::Command::new("python3")
        .args(["-c", HOLDER, &addr.to_string(), "150"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the second client");
    let mut said = String::new();
    let stdout = holder.stdout.as_mut().expect("stdout");
    let mut byte = [0u8; 1];
    while !said.ends_with('\n') {
        let n = timeout(Duration::from_secs(30), stdout.read(&mut byte)).await.expect("holder connects").expect("read");
        assert_eq!(n, 1, "the holder exited: {said:?}");
        said.push(byte[0] as char);
    }
    assert_eq!(said.trim(), "holding 150");
    // More from here while nothing can be accepted: they wait in the backlog.
    let late: Vec<_> =
        (0..20).map(|_| tokio::spawn(WsClient::connect_within(addr, "vsn=2.0.0", Duration::from_secs(60)))).collect();
    sleep(Duration::from_secs(2)).await;
    assert!(server.alive(), "the server survived running out of descriptors");
    // The second process goes away: its descriptors are freed, and the waiting
    // connections are accepted.
    drop(holder.stdin.take());
    holder.wait().await.expect("holder exits");
    let mut late_sockets = Vec::new();
    for handle in late {
        late_sockets.push(handle.await.expect("late upgrade task"));
    }
    let mut mine = mine;
    mine[0].heartbeat("1").await;
    late_sockets[19].heartbeat("1").await;
    let errors = server.metric("firehose_accept_errors_total").await.expect("accept errors counted");
    assert!(errors >= 1.0, "{errors} accept errors counted");
    // The holder's upgraded sockets close; ours stay.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let open = server.metric("firehose_open_sockets").await.expect("open sockets");
        if open == 170.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} sockets open, expected 170");
        sleep(Duration::from_millis(100)).await;
    }
    assert!(server.alive());
}

// ---- anonymous clients --------------------------------------------------------------------

/// The reply to `msg_ref`, skipping pushes and broadcasts in between.
async fn reply_to(ws: &mut WsClient, msg_ref: &str) -> Value {
    loop {
        let frame = ws.expect_frame().await;
        if frame[3] == "phx_reply" && frame[1] == msg_ref {
            return frame[4].clone();
        }
    }
}

async fn join(ws: &mut WsClient, jr: &str, topic: &str) -> Value {
    ws.push(Some(jr), jr, topic, "phx_join", json!({})).await;
    reply_to(ws, jr).await
}

fn assert_rate_limited(reply: &Value) {
    assert_eq!(reply["status"], "error", "{reply}");
    assert_eq!(reply["response"]["reason"], "rate_limited", "{reply}");
    assert!(reply["response"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{reply}");
}

#[tokio::test]
async fn anonymous_sockets_join_at_most_10_channels() {
    let app = spawn_app().await;
    let mut anon = app.ws("").await;
    for i in 1..=10 {
        anon.join(&i.to_string(), &format!("bookmarks:tag:t{i}")).await;
    }
    anon.push(Some("11"), "11", "bookmarks:tag:t11", "phx_join", json!({})).await;
    assert_eq!(
        anon.expect_frame().await,
        error_reply(Some("11"), "11", "bookmarks:tag:t11", "too many channels joined")
    );
    // Signed in, the limit is --max-channels (100).
    let alice = app.create_user("alice").await;
    let mut signed = app.ws(&format!("&token={}", alice.token)).await;
    for i in 1..=11 {
        signed.join(&i.to_string(), &format!("bookmarks:tag:t{i}")).await;
    }
}

#[tokio::test]
async fn anonymous_sockets_have_a_budget_for_page_joins_and_history() {
    let app = spawn_app_with(|c| c.anonymous.costly_pushes = Some(Rate::new(2, Duration::from_secs(60)))).await;
    let alice = app.create_user("alice").await;
    let resp = app.post_json("/api/rooms", Some(&alice.token), &json!({"name": "open"})).await;
    assert_eq!(resp.status(), 201);
    let mut anon = app.ws("").await;
    assert_eq!(join(&mut anon, "1", "page:/a").await["status"], "ok");
    assert_eq!(join(&mut anon, "2", "page:/b").await["status"], "ok");
    assert_rate_limited(&join(&mut anon, "3", "page:/c").await);
    // A public room is open to anonymous readers (a join is not costly), its history is.
    assert_eq!(join(&mut anon, "4", "room:open").await["status"], "ok");
    anon.push(Some("4"), "5", "room:open", "history", json!({})).await;
    assert_rate_limited(&reply_to(&mut anon, "5").await);
    // Another anonymous socket has its own budget; a signed-in one is not limited here.
    let mut other = app.ws("").await;
    assert_eq!(join(&mut other, "1", "page:/c").await["status"], "ok");
    let mut signed = app.ws(&format!("&token={}", alice.token)).await;
    for (i, page) in ["/a", "/b", "/c", "/d"].iter().enumerate() {
        assert_eq!(join(&mut signed, &i.to_string(), &format!("page:{page}")).await["status"], "ok");
    }
    assert_eq!(join(&mut signed, "9", "room:open").await["status"], "ok");
    signed.push(Some("9"), "10", "room:open", "history", json!({})).await;
    assert_eq!(reply_to(&mut signed, "10").await["status"], "ok");
    assert_eq!(app.metric("firehose_anonymous_refused_total").await, Some(2.0));
}

#[tokio::test]
async fn anonymous_search_has_a_per_ip_budget_of_30_a_minute() {
    let app = spawn_app().await;
    for i in 0..30 {
        assert_eq!(app.get("/api/search?q=hello").await.status(), 200, "search {i}");
    }
    let refused = app.get("/api/search?q=hello").await;
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_error(refused, 429).await;
    // The page searches through the same budget.
    let page = app.get("/search?q=hello").await;
    assert_eq!(page.status(), 429);
    assert!(page.text().await.unwrap().contains("Too many searches"));
    // Signed-in searches are not limited by it.
    let alice = app.create_user("alice").await;
    for _ in 0..3 {
        assert_eq!(app.get_as("/api/search?q=hello", &alice.token).await.status(), 200);
    }
    assert_eq!(app.metric("firehose_anonymous_refused_total").await, Some(2.0));
}
