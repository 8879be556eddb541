//! Tests of topic freeing: idle topics go once their history ages out, busy or recent
//! ones stay, and a topic made again never sends a `seq` a client already saw.

use std::time::{Duration, Instant};

use super::*;

fn limits(max_age_ms: u64) -> HistoryLimits {
    HistoryLimits { max_events: 100, max_age: Duration::from_millis(max_age_ms) }
}

fn handle(id: u64) -> (SocketHandle, mpsc::Receiver<SharedFrame>) {
    let (outbox, rx) = mpsc::channel(64);
    (SocketHandle { id, outbox, slow: CancellationToken::new() }, rx)
}

/// A broadcast of an empty object (the pub/sub adds `seq`), numbered at once.
fn bc(pubsub: &PubSub, topic: &str, event: &str) -> Published {
    pubsub.broadcast(topic, event, &serde_json::json!({})).expect("alone, a broadcast is numbered at once")
}

/// [`PubSub::subscribe_since`] of a node on its own, which never waits.
fn subscribe_since(pubsub: &PubSub, topic: &str, socket: SocketHandle, since: &Since) -> (SubId, Recovery) {
    use futures_util::FutureExt;
    let subscribed = pubsub.subscribe_since(topic, Vsn::V2, socket, Some(since)).now_or_never();
    subscribed.expect("alone, nothing to wait for").expect("alone, nothing to fail")
}

fn since(pubsub: &PubSub, seq: u64) -> Since {
    Since { seq, epoch: pubsub.epoch().to_string() }
}

#[test]
fn idle_topics_are_freed_once_their_history_ages_out() {
    let pubsub = PubSub::new(limits(5_000));
    for i in 0..10_000 {
        bc(&pubsub, &format!("bookmarks:tag:t{i}"), "new");
    }
    let (socket, _rx) = handle(1);
    pubsub.subscribe("bookmarks:tag:kept", Vsn::V2, socket);
    assert_eq!(pubsub.census(), Census { topics: 10_001, subscribers: 1, history_events: 10_000, largest_history: 1 });
    assert_eq!(pubsub.sweep(), 0, "history still inside the recovery window");
    std::thread::sleep(Duration::from_millis(300));
    let recent = Instant::now();
    bc(&pubsub, "bookmarks:tag:recent", "new");
    // 150 ms short of the recent event's window: every earlier one is past its own.
    assert_eq!(pubsub.sweep_at(recent + Duration::from_millis(4_850)), 10_000);
    assert_eq!(pubsub.census(), Census { topics: 2, subscribers: 1, history_events: 1, largest_history: 1 });
}

#[test]
fn a_topic_made_again_continues_past_every_seq_sent_before() {
    let pubsub = PubSub::new(limits(0));
    for _ in 0..3 {
        bc(&pubsub, "likes:1", "count");
    }
    bc(&pubsub, "likes:2", "count");
    assert_eq!(pubsub.sweep_at(Instant::now() + Duration::from_millis(5)), 2);
    assert_eq!(pubsub.position("likes:1"), 3, "a freed topic stands at the floor");
    // A client that saw the last event recovers (nothing was missed); one that did not
    // is told plainly, since the history that would prove it is gone.
    let (a, _ra) = handle(1);
    let (_, saw_last) = subscribe_since(&pubsub, "likes:1", a, &since(&pubsub, 3));
    assert!(saw_last.recovered && saw_last.missed.is_empty(), "{saw_last:?}");
    let (b, _rb) = handle(2);
    let (_, behind) = subscribe_since(&pubsub, "likes:1", b, &since(&pubsub, 2));
    assert!(!behind.recovered, "{behind:?}");
    assert_eq!(bc(&pubsub, "likes:1", "count").seq, 4);
    assert_eq!(bc(&pubsub, "likes:2", "count").seq, 4, "past every freed topic's seq");
}

#[test]
fn a_subscriber_holding_a_freed_topic_lands_on_the_live_one() {
    let pubsub = PubSub::new(limits(0));
    bc(&pubsub, "room:busy", "msg");
    // Looked up just before a sweep freed it (the race a lock order cannot prevent).
    let stale = pubsub.topic("room:busy");
    assert_eq!(pubsub.sweep_at(Instant::now() + Duration::from_millis(5)), 1);
    let (socket, mut rx) = handle(1);
    pubsub.with_topic_from(stale.clone(), "room:busy", |state| pubsub.add_subscriber(state, Vsn::V2, socket, None));
    assert!(stale.state.lock().subscribers.is_empty(), "nothing joins a freed topic");
    assert_eq!(pubsub.census().subscribers, 1);
    assert_eq!(bc(&pubsub, "room:busy", "msg").seq, 2);
    assert!(rx.try_recv().is_ok(), "the subscriber gets what the live topic broadcasts");
}

#[test]
fn a_topic_used_between_the_sweeps_two_passes_is_kept() {
    let pubsub = PubSub::new(limits(0));
    for name in ["tag:quiet", "tag:broadcast", "tag:joined"] {
        bc(&pubsub, name, "new");
    }
    // First pass: all three aged out and unwatched. Then, before the second pass takes
    // the map's write lock, one gets a broadcast and one a subscriber.
    let idle = pubsub.expire_all(Instant::now() + Duration::from_millis(5));
    assert_eq!(idle.len(), 3);
    bc(&pubsub, "tag:broadcast", "new");
    let (socket, _rx) = handle(1);
    pubsub.subscribe("tag:joined", Vsn::V2, socket);
    assert_eq!(pubsub.free_idle(&idle), 1, "only the untouched topic goes");
    assert_eq!(pubsub.census(), Census { topics: 2, subscribers: 1, history_events: 1, largest_history: 1 });
    assert_eq!(pubsub.position("tag:broadcast"), 2);
    assert_eq!(pubsub.free_idle(&idle), 0, "a topic is forgotten once");
}

#[test]
fn a_sweep_of_many_idle_topics_frees_them_all_in_chunks() {
    let pubsub = PubSub::new(limits(0));
    let n = 3 * SWEEP_CHUNK + 7;
    for i in 0..n {
        bc(&pubsub, &format!("likes:{i}"), "count");
    }
    assert_eq!(pubsub.sweep_at(Instant::now() + Duration::from_millis(5)), n);
    assert_eq!(pubsub.census(), Census::default());
    assert_eq!(bc(&pubsub, "likes:0", "count").seq, 2, "past the freed topic's seq");
}

#[test]
fn the_census_names_the_largest_history_of_any_topic() {
    let pubsub = PubSub::new(limits(60_000));
    for _ in 0..3 {
        bc(&pubsub, "room:busy", "msg");
    }
    bc(&pubsub, "room:quiet", "msg");
    assert_eq!(pubsub.census(), Census { topics: 2, subscribers: 0, history_events: 4, largest_history: 3 });
    for _ in 0..200 {
        bc(&pubsub, "room:busy", "msg");
    }
    assert_eq!(pubsub.census().largest_history, 100, "bounded by max_events");
}
