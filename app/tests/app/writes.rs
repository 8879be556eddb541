//! The write path: bookmarks, likes and chat messages are committed in groups by one
//! writer; a full write queue is answered at once with 503 and `Retry-After` (never a
//! 500 or a wait), and every acknowledged write is stored and published exactly once.

use std::sync::atomic::Ordering::Relaxed;

use firehose_app::accounts::TokenHash;
use firehose_app::bookmarks::NewBookmark;
use firehose_app::store::{Committed, Store, Writer, publish_queue};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, TestUser, spawn_app, spawn_app_with};

const FIREHOSE: &str = "bookmarks:firehose";

/// `(status, Retry-After, body)` of one bookmark POST.
async fn post_bookmark(app: &TestApp, user: &TestUser, i: usize) -> (u16, Option<String>, Value) {
    let body = json!({"bookmark": {"title": format!("burst {i}"), "url": format!("https://example.com/burst/{i}"),
                                   "tags": ["burst", format!("t{}", i % 3)]}});
    let resp = app.post_json("/api/bookmarks", Some(&user.token), &body).await;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap_or("?").to_owned());
    (status, retry_after, resp.json().await.unwrap_or(Value::Null))
}

/// Asserts a refusal for overload: 503, `Retry-After` of a whole number of seconds ≥ 1,
/// and the JSON error body.
fn assert_overloaded(retry_after: Option<&str>, body: &Value) {
    let secs: u64 = retry_after.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("Retry-After: {retry_after:?}"));
    assert!(secs >= 1, "Retry-After {secs}");
    assert_eq!(body["error"]["status"], json!(503), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// Ids of every stored bookmark, ascending, read straight from the database.
async fn stored_ids(app: &TestApp) -> Vec<i64> {
    let mut conn = app.db().await;
    sqlx::query_scalar("SELECT id FROM bookmarks ORDER BY id").fetch_all(&mut conn).await.unwrap()
}

async fn metric(app: &TestApp, name: &str) -> u64 {
    app.metric(name).await.unwrap_or_else(|| panic!("no metric {name}")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_a_tiny_write_queue_gets_201_or_503_and_every_201_is_stored_and_published() {
    const BURST: usize = 300;
    let app = spawn_app_with(|c| c.write_queue = 1).await;
    let user = app.create_user("burster").await;
    let mut ws = app.ws("").await;
    ws.join("1", FIREHOSE).await;

    let answers = join_all((0..BURST).map(|i| post_bookmark(&app, &user, i))).await;
    let mut created = Vec::new();
    let mut refused = 0;
    for (status, retry_after, body) in &answers {
        match status {
            201 => created.push(body["data"]["id"].as_i64().expect("id")),
            503 => {
                assert_overloaded(retry_after.as_deref(), body);
                refused += 1;
            }
            other => panic!("only 201 or 503 may answer an overloaded write path, got {other}: {body}"),
        }
    }
    assert!(!created.is_empty(), "some writes get through");
    assert!(refused > 0, "a queue of one write overflows under a burst of {BURST}");
    assert_eq!(metric(&app, "firehose_write_queue_rejected_total").await, refused);

    // Every acknowledged bookmark is in the database, and nothing refused is.
    created.sort_unstable();
    assert_eq!(stored_ids(&app).await, created);
    // … and was published once, in commit order (ids and seqs rise together).
    let mut published = Vec::new();
    for seq in 1..=created.len() as u64 {
        let frame = ws.expect_frame().await;
        assert_eq!((&frame[3], &frame[4]["seq"]), (&json!("bookmark_created"), &json!(seq)), "{frame}");
        published.push(frame[4]["id"].as_i64().expect("id"));
    }
    assert_eq!(published, created, "published in commit order");
    ws.expect_silence(200).await;

    // Likes share the queue: the same burst answers 200 or 503, never anything else.
    let id = created[0];
    let likes = join_all((0..BURST).map(|i| {
        let url = app.url(&format!("/api/bookmarks/{id}/like"));
        let req = if i % 2 == 0 { app.http.post(url) } else { app.http.delete(url) };
        req.bearer_auth(&user.token).send()
    }))
    .await;
    for resp in likes {
        let resp = resp.expect("like request");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap_or("?").to_owned());
        let body: Value = resp.json().await.expect("JSON");
        match status {
            200 => assert_eq!(body["data"]["bookmark_id"], json!(id), "{body}"),
            503 => assert_overloaded(retry_after.as_deref(), &body),
            other => panic!("a like answered {other}: {body}"),
        }
    }
    // The server goes on: a lone write after the burst is accepted.
    let (status, _, body) = post_bookmark(&app, &user, BURST).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_committed_in_groups_of_more_than_one() {
    const WRITES: usize = 100;
    let app = spawn_app().await;
    let user = app.create_user("grouper").await;
    let batches_before = metric(&app, "firehose_write_batches_total").await;
    let writes_before = metric(&app, "firehose_writes_committed_total").await;

    let answers = join_all((0..WRITES).map(|i| post_bookmark(&app, &user, i))).await;
    assert!(answers.iter().all(|(status, _, _)| *status == 201), "a default queue takes {WRITES} writes");

    let batches = metric(&app, "firehose_write_batches_total").await - batches_before;
    let writes = metric(&app, "firehose_writes_committed_total").await - writes_before;
    assert_eq!(writes, WRITES as u64);
    assert!(batches < writes, "{writes} concurrent writes took {batches} transactions: none were grouped");
    assert_eq!(stored_ids(&app).await.len(), WRITES);
    assert_eq!(metric(&app, "firehose_write_queue_rejected_total").await, 0);
    assert_eq!(metric(&app, "firehose_write_queue_depth").await, 0, "nothing left queued");
}

#[tokio::test]
async fn likes_and_chat_messages_go_through_the_writer() {
    let app = spawn_app().await;
    let user = app.create_user("writer").await;
    let (status, _, body) = post_bookmark(&app, &user, 1).await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_i64().unwrap();
    let resp = app.post_json("/api/rooms", Some(&user.token), &json!({"room": {"name": "Writers"}})).await;
    assert_eq!(resp.status(), 201);
    let slug = resp.json::<Value>().await.unwrap()["data"]["slug"].as_str().unwrap().to_owned();
    let before = metric(&app, "firehose_writes_committed_total").await;

    let resp =
        app.http.post(app.url(&format!("/api/bookmarks/{id}/like"))).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["data"]["count"], json!(1));
    let resp = app
        .post_json(&format!("/api/rooms/{slug}/messages"), Some(&user.token), &json!({"body": "group commit"}))
        .await;
    assert_eq!(resp.status(), 201);
    let message = resp.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(message["body"], json!("group commit"), "{message}");

    assert_eq!(metric(&app, "firehose_writes_committed_total").await - before, 2);
    let resp = app.get_as(&format!("/api/rooms/{slug}/messages"), &user.token).await;
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["data"][0]["id"], message["id"], "{page}");
}

/// Bookmarks committed together (one statement for all of a batch's bookmarks) each get
/// their own id, fields and tags in their order: what the POST answered is what is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_committed_together_each_keep_their_own_fields_and_tags() {
    const WRITES: usize = 60;
    let app = spawn_app().await;
    let user = app.create_user("together").await;
    let posted = join_all((0..WRITES).map(|i| {
        let tags: Vec<String> = (0..i % 4).map(|k| format!("t{}-{k}", (i * 7 + k) % 5)).collect();
        let body = json!({"bookmark": {"title": format!("together {i}"), "url": format!("https://example.com/t/{i}"),
                                       "description": format!("d{i}"), "public": i % 5 != 0, "tags": tags}});
        let app = &app;
        let user = &user;
        async move {
            let resp = app.post_json("/api/bookmarks", Some(&user.token), &body).await;
            (body, resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    }))
    .await;
    let mut ids = Vec::new();
    for (sent, status, answer) in &posted {
        assert_eq!(*status, 201, "{answer}");
        let id = answer["data"]["id"].as_i64().unwrap();
        ids.push(id);
        let stored: Value = app.get_as(&format!("/api/bookmarks/{id}"), &user.token).await.json().await.unwrap();
        for field in ["title", "url", "description", "public", "tags"] {
            assert_eq!(answer["data"][field], sent["bookmark"][field], "answer's {field}: {answer}");
            assert_eq!(stored["data"][field], sent["bookmark"][field], "stored {field}: {stored}");
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), WRITES, "every bookmark has its own id");
    assert!(
        metric(&app, "firehose_write_batches_total").await < WRITES as u64,
        "the bookmarks were not committed together"
    );
}

fn new_bookmark(title: String) -> NewBookmark {
    NewBookmark {
        title,
        description: String::new(),
        url: "https://example.com/bulk".into(),
        public: true,
        tags: vec!["bulk".into(), "test".into()],
    }
}

/// Three bookmark inserts in one batch run as one bulk insert; the middle one breaks
/// a constraint of the table (validation would have refused it), so the batch goes
/// again a write at a time and only that caller gets the error. (On PostgreSQL the
/// failed statement aborts the whole transaction, so this also shows the batch is
/// rolled back and retried with a savepoint per write.)
#[tokio::test]
async fn a_bookmark_that_fails_in_a_bulk_insert_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::for_suite().await;
    let store = Store::open(&TestDatabase::url_or_sqlite(database.as_ref(), dir.path())).await.unwrap();
    let user = store.create_user("bulk", &TokenHash::of("bulk-token")).await.unwrap();
    let (publish, mut published) = publish_queue();
    tokio::spawn(async move {
        while let Some(batch) = published.recv().await {
            batch.into_iter().for_each(Committed::answer);
        }
    });
    let writer = Writer::spawn(store.clone(), 16, publish);
    let (first, bad, last) = (new_bookmark("first".into()), new_bookmark("x".repeat(301)), new_bookmark("last".into()));
    // Polled together, all three are queued before the writer takes its batch.
    let (first, bad, last) = tokio::join!(
        writer.insert_bookmark(&user, &first),
        writer.insert_bookmark(&user, &bad),
        writer.insert_bookmark(&user, &last),
    );
    let (first, last) = (first.unwrap(), last.unwrap());
    assert!(bad.is_err(), "{bad:?}");
    assert_eq!(writer.stats().batches.load(Relaxed), 1, "one transaction");
    assert_eq!(writer.stats().committed.load(Relaxed), 2);
    assert_eq!(writer.stats().bulk_runs.load(Relaxed), 1, "tried as one bulk insert first");
    for (answer, title) in [(&first, "first"), (&last, "last")] {
        let stored = store.bookmark(answer.id).await.unwrap().unwrap();
        assert_eq!((stored.title.as_str(), &stored.tags), (title, &answer.tags));
    }
    assert!(first.id < last.id);
    writer.stop().await;
    store.close().await;
}
