//! The actions beyond bookmark creation in `firehose-sim run` (likes, unlikes,
//! deletions, chat messages, typing) and their listener groups (`room`, `likes`,
//! `user`), against the embedded app and against a server with default per-user limits.
//! Counts are checked against figures derived independently of the group accounting:
//! with one room and one like target, every successful message or typing push owes
//! each room listener one delivery and every like/unlike owes each likes listener one.

use firehose_sim::Plan;
use serde_json::Value;

use super::{OwnServer, json_of, n, run_judged};

/// 3 firehose listeners and 5 bookmarks/s for 3 s besides `flags` (also the base of
/// the several-targets runs).
pub(super) fn plan(flags: &[&str]) -> Plan {
    const BASE: &[&str] = &[
        "--max-lag",
        "500ms",
        "--listeners",
        "3",
        "--rate",
        "5",
        "--duration",
        "3s",
        "--warmup",
        "500ms",
        "--seed-bookmarks",
        "5",
        "--connect-rate",
        "200",
    ];
    super::plan_of(&[BASE, flags].concat())
}

/// Every action of `kind` answered ok (or skipped: nothing to act on), none failed or
/// went out late.
fn all_ok(r: &Value, kind: &str) -> u64 {
    let a = &r["actions"][kind];
    assert!(a.is_object(), "no actions.{kind}: {}", r["actions"]);
    assert_eq!((n(&a["error_count"]), n(&a["late"])), (0, 0), "{kind}: {a}");
    assert_eq!(n(&a["ok"]) + n(&a["skipped"]), n(&a["scheduled"]), "{kind}: {a}");
    assert_eq!(n(&a["ok"]), n(&a["sent"]), "{kind}: {a}");
    assert!(n(&a["ok"]) > 0, "{kind}: nothing succeeded");
    assert!(
        n(&a["latency_corrected"]["count"]) > 0 && n(&a["latency_corrected"]["count"]) < n(&a["ok"]),
        "{kind}: warm-up not excluded"
    );
    n(&a["ok"])
}

/// Post-warm-up actions of `kind` (each one's corrected latency is one value).
fn measured(r: &Value, kind: &str) -> u64 {
    n(&r["actions"][kind]["latency_corrected"]["count"])
}

/// `groups.<group>.reach`: `events` measured events reached their whole audience (and
/// so 50 % of it, no later than all of it), with histograms to recompute it.
fn reached_all(r: &Value, histograms: &[(String, hdrhistogram::Histogram<u64>)], group: &str, events: u64) {
    let reach = &r["groups"][group]["reach"];
    assert!(events > 0, "{group}: no measured event");
    for pct in ["50", "99", "100"] {
        assert_eq!(n(&reach[format!("pct_{pct}")]["count"]), events, "{group}.reach.pct_{pct}: {reach}");
        let name = format!("reach_{group}_{pct}");
        assert_eq!(r["histogram_paths"][&name], format!("/groups/{group}/reach/pct_{pct}"), "{name}");
        assert!(histograms.iter().any(|(h, _)| *h == name), "no histogram {name}");
    }
    let ms = |pct: &str, stat: &str| reach[format!("pct_{pct}")][stat].as_f64().unwrap();
    for stat in ["p50_ms", "max_ms"] {
        assert!(ms("50", stat) <= ms("100", stat), "{group}: 50 % after 100 % at {stat}: {reach}");
    }
    assert!(ms("100", "min_ms") > 0.0, "{group}: {reach}");
}

fn exact(r: &Value, group: &str) -> u64 {
    let g = &r["groups"][group];
    assert!(g.is_object(), "no groups.{group}");
    for field in ["lost", "listeners_with_loss", "excess", "duplicates", "unowed", "reordered", "foreign"] {
        assert_eq!(n(&g[field]), 0, "{group}.{field}: {g}");
    }
    assert_eq!(n(&g["received"]), n(&g["expected"]), "{group}: {g}");
    assert!(n(&g["latency"]["count"]) > 0, "{group}: no latency measured");
    n(&g["expected"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_kind_arrives_exactly_in_its_group() {
    let p = plan(&[
        "--like-rate",
        "20",
        "--unlike-rate",
        "5",
        "--delete-rate",
        "5",
        "--message-rate",
        "20",
        "--typing-rate",
        "8",
        "--rooms",
        "1",
        "--like-targets",
        "1",
        "--room-listeners",
        "4",
        "--likes-listeners",
        "3",
        "--user-listeners",
        "2",
        "--mention-fraction",
        "1",
    ]);
    let report = run_judged(p).await;
    let r = json_of(&report);
    super::assert_passed(&r);
    let (likes, unlikes) = (all_ok(&r, "like"), all_ok(&r, "unlike"));
    all_ok(&r, "delete_bookmark");
    let (messages, typing) = (all_ok(&r, "chat_message"), all_ok(&r, "typing"));
    // One room: each message and typing push owes each of the 4 room listeners one.
    assert_eq!(exact(&r, "room"), (messages + typing) * 4);
    // One target: each like and unlike changes its count once, heard by all 3.
    assert_eq!(exact(&r, "likes"), (likes + unlikes) * 3);
    // Every message mentions exactly one of the 2 user listeners, and only that one
    // hears it (a notification on the other socket would be excess).
    assert_eq!(exact(&r, "user"), messages);
    assert_eq!(n(&r["groups"]["user"]["listeners"]), 2);
    for name in
        ["action_like_corrected", "action_typing_uncorrected", "delivery_room", "delivery_likes", "delivery_user"]
    {
        assert!(report.histograms.iter().any(|(h, _)| h == name), "no histogram {name}");
        assert!(r["histogram_paths"][name].is_string(), "no histogram path for {name}");
    }
    assert_eq!(r["histogram_paths"]["delivery_likes"], "/groups/likes/latency");
    // Zero loss: every measured event reached everyone it was owed to.
    let h = &report.histograms;
    reached_all(&r, h, "room", measured(&r, "chat_message") + measured(&r, "typing"));
    reached_all(&r, h, "likes", measured(&r, "like") + measured(&r, "unlike"));
    reached_all(&r, h, "user", measured(&r, "chat_message"));
    for expr in [
        "loss.room == 0",
        "loss.likes == 0",
        "loss.user == 0",
        "actions.like.errors == 0",
        "actions.chat_message.p99 < 10s",
        "delivery.room.p99 < 10s",
        "delivery.user.count > 0",
        "reach.room.100.p99 < 10s",
        "reach.likes.50.count > 0",
        "reach.user.100.max < 10s",
    ] {
        let gate = firehose_sim::report::gate::Threshold::parse(expr).unwrap();
        assert!(gate.evaluate(&report.model).passed, "{expr}: {:?}", gate.evaluate(&report.model));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_rooms_and_bookmarks_spread_listeners_without_loss() {
    let p = plan(&[
        "--like-rate",
        "30",
        "--message-rate",
        "30",
        "--typing-rate",
        "10",
        "--rooms",
        "4",
        "--like-targets",
        "6",
        "--room-listeners",
        "12",
        "--likes-listeners",
        "12",
        "--user-listeners",
        "3",
    ]);
    let r = json_of(&run_judged(p).await);
    super::assert_passed(&r);
    all_ok(&r, "like");
    all_ok(&r, "chat_message");
    assert!(exact(&r, "room") > 0);
    assert!(exact(&r, "likes") > 0);
    assert!(n(&r["groups"]["room"]["topics"]) > 1 && n(&r["groups"]["likes"]["topics"]) > 1);
    assert!(r["plan"]["actions"]["actor_sockets"].as_u64().unwrap() >= 1);
}

/// A server with the app's default per-user limits (10 messages per 10 s): one actor
/// user posting 8 messages a second must be refused as `rate_limited`, counted as an
/// error kind, and refused messages owe no deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_is_counted_when_one_user_posts_too_fast() {
    let server = OwnServer::start(false).await;
    let p = plan(&[
        "--target",
        &server.base,
        "--message-rate",
        "8",
        "--rooms",
        "1",
        "--room-listeners",
        "2",
        "--actor-users",
        "1",
    ]);
    assert_eq!(p.actions.actor_users, 1);
    let r = json_of(&run_judged(p).await);
    let a = &r["actions"]["chat_message"];
    let limited = a["errors"]["rate_limited"].as_u64().unwrap_or(0);
    assert!(limited > 0, "{a}");
    assert_eq!(a["errors"].as_object().unwrap().len(), 1, "only rate_limited: {a}");
    assert_eq!((n(&a["ok"]) + limited, n(&a["error_count"])), (n(&a["scheduled"]), limited), "{a}");
    // 24 messages in 3 s from one user: the bucket holds 10 and refills 1/s.
    assert!(n(&a["ok"]) <= 14, "{a}");
    assert_eq!(exact(&r, "room"), n(&a["ok"]) * 2);
    // Refused messages fail the run by default.
    assert_eq!(r["verdict"]["failed_gates"], serde_json::json!(["errors == 0"]), "{}", r["verdict"]);
    assert_eq!(n(&r["verdict"]["exit_code"]), 5);
    server.stop().await;
}
