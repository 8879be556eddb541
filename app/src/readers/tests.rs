//! The readers actor driven directly, with sockets that are just outboxes.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::pubsub::{SharedFrame, SocketHandle};
use crate::wire::Vsn;

struct FakeSocket {
    handle: SocketHandle,
    rx: mpsc::Receiver<SharedFrame>,
}

fn socket(id: u64) -> FakeSocket {
    let (outbox, rx) = mpsc::channel(1024);
    FakeSocket { handle: SocketHandle { id, outbox, slow: CancellationToken::new() }, rx }
}

fn reader(key: &str, s: &FakeSocket) -> Reader {
    Reader { key: key.to_owned(), meta: Map::new(), socket: s.handle.clone(), vsn: Vsn::V2 }
}

/// `(event, payload)` of every frame queued so far.
fn drain(s: &mut FakeSocket) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while let Ok(frame) = s.rx.try_recv() {
        let v: Value = serde_json::from_str(frame.as_str()).expect("frame JSON");
        out.push((v[3].as_str().unwrap_or_default().to_owned(), v[4].clone()));
    }
    out
}

fn setup(interval_ms: u64) -> Readers {
    let config = ReadersConfig { interval: Duration::from_millis(interval_ms), queue: 16 };
    Readers::spawn(config, None)
}

/// How many frames of `event` the socket got whose payload mentions `needle`.
fn count(frames: &[(String, Value)], event: &str, needle: &str) -> usize {
    frames.iter().filter(|(e, p)| e == event && p.to_string().contains(needle)).count()
}

#[tokio::test]
async fn a_join_and_leave_within_one_interval_is_never_broadcast() {
    let readers = setup(500);
    let mut watcher = socket(1);
    let visitor = socket(2);
    readers.join("page:/a", reader("w", &watcher)).await.unwrap();
    let first = drain(&mut watcher);
    assert_eq!(first.len(), 2, "own join diff and counts, at once: {first:?}");
    assert_eq!(first[1], ("readers".to_owned(), json!({"readers": 1, "total": 1})));

    let joined = readers.join("page:/a", reader("v", &visitor)).await.unwrap();
    assert_eq!((joined.readers, joined.total), (2, 2));
    readers.leave(joined.ticket).await;
    assert_eq!(readers.counts("page:/a").await, Some((1, 1)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(drain(&mut watcher), [], "the join and leave cancelled out, and so did the counts");
}

#[tokio::test]
async fn the_total_counts_each_key_once_and_stale_leaves_are_ignored() {
    let readers = setup(10);
    let (s1, s2, mut s3) = (socket(1), socket(2), socket(3));
    let a1 = readers.join("page:/a", reader("u1", &s1)).await.unwrap();
    let b1 = readers.join("page:/b", reader("u1", &s2)).await.unwrap();
    assert_eq!((b1.readers, b1.total), (1, 1), "one user on two pages is one reader in total");
    let b2 = readers.join("page:/b", reader("u2", &s3)).await.unwrap();
    assert_eq!((b2.readers, b2.total), (2, 2));

    // A re-join from the same socket replaces its reader (and its seat: later changes
    // reach it once); the old ticket is then stale.
    let b2again = readers.join("page:/b", reader("u2", &s3)).await.unwrap();
    assert_eq!((b2again.readers, b2again.total), (2, 2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    drain(&mut s3);
    let s4 = socket(4);
    let b3 = readers.join("page:/b", reader("u3", &s4)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(count(&drain(&mut s3), "presence_diff", "u3"), 1, "one seat per socket");
    readers.leave(b3.ticket).await;
    readers.leave(b2.ticket).await;
    assert_eq!(readers.counts("page:/b").await, Some((2, 2)));

    readers.leave(b2again.ticket).await;
    readers.leave(b1.ticket).await;
    assert_eq!(readers.counts("page:/b").await, Some((0, 1)));
    readers.leave(a1.ticket).await;
    assert_eq!(readers.counts("page:/a").await, Some((0, 0)));
}

#[tokio::test]
async fn held_diffs_are_merged_and_released_once_per_interval() {
    let readers = setup(400);
    let mut watcher = socket(1);
    readers.join("page:/busy", reader("w", &watcher)).await.unwrap();
    drain(&mut watcher);
    let sockets: Vec<FakeSocket> = (2..22).map(socket).collect();
    let mut tickets = Vec::new();
    for (i, s) in sockets.iter().enumerate() {
        tickets.push(readers.join("page:/busy", reader(&format!("r{i}"), s)).await.unwrap().ticket);
    }
    // Half of them leave again before anything was released.
    for ticket in tickets.drain(..10) {
        readers.leave(ticket).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = drain(&mut watcher);
    let diffs: Vec<&Value> = got.iter().filter(|(e, _)| e == "presence_diff").map(|(_, p)| p).collect();
    assert_eq!(diffs.len(), 1, "{got:?}");
    let joins: Vec<&String> = diffs[0]["joins"].as_object().unwrap().keys().collect();
    assert_eq!(joins.len(), 10, "{}", diffs[0]);
    assert!(joins.iter().all(|k| k[1..].parse::<usize>().unwrap() >= 10), "{}", diffs[0]);
    assert_eq!(diffs[0]["leaves"], json!({}));
    let counts: Vec<&Value> = got.iter().filter(|(e, _)| e == "readers").map(|(_, p)| p).collect();
    assert_eq!(counts, [&json!({"readers": 11, "total": 11})]);
}

#[tokio::test]
async fn a_busy_page_caches_its_state_text_and_a_quiet_one_drops_it() {
    let readers = setup(10);
    let sockets: Vec<FakeSocket> = (1..=40).map(socket).collect();
    let mut tickets = Vec::new();
    // Each join checks (in test builds) that the cached text equals the serialized
    // state, through the cache being built at 32 keys and dropped below 16.
    for (i, s) in sockets.iter().enumerate() {
        let joined = readers.join("page:/hot", reader(&format!("k{i:02}"), s)).await.unwrap();
        assert_eq!(joined.readers, i + 1);
        let state: Value = serde_json::from_str(&joined.state).unwrap();
        assert_eq!(state.as_object().unwrap().len(), i + 1);
        tickets.push(joined.ticket);
    }
    let late = socket(99);
    for ticket in tickets.drain(..35) {
        readers.leave(ticket).await;
    }
    let joined = readers.join("page:/hot", reader("k99", &late)).await.unwrap();
    let state: Value = serde_json::from_str(&joined.state).unwrap();
    let keys: Vec<&String> = state.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["k35", "k36", "k37", "k38", "k39", "k99"]);
}

#[test]
fn paths() {
    assert!(valid_path("/"));
    assert!(valid_path("/blog/hello-world?x=1#top"));
    assert!(valid_path("/ünïcødé/页面"));
    assert!(valid_path(&format!("/{}", "é".repeat(MAX_PATH_CHARS - 1))));
    assert!(!valid_path(&format!("/{}", "a".repeat(MAX_PATH_CHARS))));
    assert!(!valid_path(""));
    assert!(!valid_path("blog"));
    assert!(!valid_path("/a\nb"));
    assert!(!valid_path("/a\u{0}b"));
    assert!(!valid_path("/a\u{7f}"));
}

#[tokio::test]
async fn a_seat_that_saw_a_held_join_hears_its_leave_even_when_the_two_cancel_out() {
    let readers = setup(400);
    let mut watcher = socket(1);
    readers.join("page:/hold", reader("w", &watcher)).await.unwrap();
    drain(&mut watcher);
    // V's join is held; N joins meanwhile, and its presence_state shows V.
    let visitor = socket(2);
    let v = readers.join("page:/hold", reader("v", &visitor)).await.unwrap();
    let mut newcomer = socket(3);
    let n = readers.join("page:/hold", reader("n", &newcomer)).await.unwrap();
    assert!(n.state.contains("\"v\""), "the newcomer's state shows the held join: {}", n.state);
    drain(&mut newcomer);
    // V leaves inside the hold: its join and leave cancel out in the held diff.
    readers.leave(v.ticket).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let watched = drain(&mut watcher);
    assert_eq!(count(&watched, "presence_diff", "\"v\""), 0, "the watcher never saw V: {watched:?}");
    let heard = drain(&mut newcomer);
    let leaves: Vec<&Value> =
        heard.iter().filter(|(e, p)| e == "presence_diff" && p["leaves"].get("v").is_some()).map(|(_, p)| p).collect();
    assert_eq!(leaves.len(), 1, "the newcomer hears V leave once: {heard:?}");
}
