//! `GET /api/search`: FTS5 over message bodies. Rooms and messages are written straight
//! into the test's database file (the chat API is exercised by its own tests); the
//! triggers of migration 0006 must index them like any other write.

use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};

use crate::helpers::*;

async fn db(app: &TestApp) -> AnyConnection {
    let mut conn = app.db().await;
    if app.database.is_none() {
        // SQLite: enforce foreign keys as the server does, and wait out its writer.
        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut conn).await.expect("foreign keys");
        sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut conn).await.expect("busy timeout");
    }
    conn
}

const NOW: &str = "2026-01-01T00:00:00.000000Z";

async fn room(conn: &mut AnyConnection, creator: &TestUser, slug: &str, private: bool) -> i64 {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO rooms (name, slug, private, creator_id, inserted_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(slug)
    .bind(slug)
    .bind(i64::from(private))
    .bind(creator.id)
    .bind(NOW)
    .bind(NOW)
    .fetch_one(&mut *conn)
    .await
    .expect("insert room");
    member(conn, id, creator).await;
    id
}

async fn member(conn: &mut AnyConnection, room: i64, user: &TestUser) {
    sqlx::query("INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)")
        .bind(room)
        .bind(user.id)
        .bind(NOW)
        .execute(&mut *conn)
        .await
        .expect("insert member");
}

async fn message(conn: &mut AnyConnection, room: i64, user: &TestUser, body: &str) -> i64 {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO messages (room_id, user_id, body, inserted_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(room)
    .bind(user.id)
    .bind(body)
    .bind(NOW)
    .fetch_one(&mut *conn)
    .await
    .expect("insert message");
    id
}

/// `GET /api/search` with `params`; returns the status and JSON body.
async fn search(app: &TestApp, params: &[(&str, &str)], token: Option<&str>) -> (u16, Value) {
    let mut req = app.http.get(app.url("/api/search")).query(params);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("GET /api/search");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// The ids of the results of a successful search.
async fn ids(app: &TestApp, params: &[(&str, &str)], token: Option<&str>) -> Vec<i64> {
    let (status, body) = search(app, params, token).await;
    assert_eq!(status, 200, "{params:?}: {body}");
    body["data"].as_array().expect("data").iter().map(|h| h["id"].as_i64().expect("id")).collect()
}

#[tokio::test]
async fn more_matches_rank_higher() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut conn = db(&app).await;
    let lobby = room(&mut conn, &alice, "lobby", false).await;
    let once = message(&mut conn, lobby, &alice, "I wrote some rust today and then went for a long walk outside").await;
    let thrice = message(&mut conn, lobby, &alice, "rust, rust and more rust").await;
    message(&mut conn, lobby, &alice, "nothing to see here").await;
    let both = message(&mut conn, lobby, &alice, "tokio makes async rust pleasant").await;

    assert_eq!(ids(&app, &[("q", "rust")], None).await, [thrice, both, once]);
    assert_eq!(ids(&app, &[("q", "rust tokio")], None).await, [both], "terms are ANDed");
    assert_eq!(ids(&app, &[("q", "rust"), ("limit", "1")], None).await, [thrice]);
    let (_, body) = search(&app, &[("q", "rust")], None).await;
    let scores: Vec<f64> = body["data"].as_array().unwrap().iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    assert_eq!(body["data"][0]["room"], json!("lobby"));
    assert_eq!(body["data"][0]["user"], json!({"id": alice.id, "username": "alice"}));
}

/// The ids `q` finds, in id order.
async fn sorted_ids(app: &TestApp, q: &str) -> Vec<i64> {
    let mut found = ids(app, &[("q", q)], None).await;
    found.sort_unstable();
    found
}

/// AND, OR and NOT (any case) are no operators: each is one more word a message must
/// have, like every word of `q`.
#[tokio::test]
async fn and_or_not_are_plain_words_that_every_match_must_contain() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut conn = db(&app).await;
    let lobby = room(&mut conn, &alice, "lobby", false).await;
    let with_or = message(&mut conn, lobby, &alice, "cats or dogs").await;
    let with_and = message(&mut conn, lobby, &alice, "cats and dogs").await;
    let with_not = message(&mut conn, lobby, &alice, "cats not dogs").await;
    let only_cats = message(&mut conn, lobby, &alice, "only cats here").await;
    let only_dogs = message(&mut conn, lobby, &alice, "only dogs here").await;

    let found = |q: &'static str| sorted_ids(&app, q);
    // As operators, OR would find all five and NOT `only_cats`; as dropped words, each
    // query would find the three messages with both animals.
    assert_eq!(found("cats OR dogs").await, [with_or]);
    assert_eq!(found("cats or dogs").await, [with_or]);
    assert_eq!(found("cats AND dogs").await, [with_and]);
    assert_eq!(found("cats NOT dogs").await, [with_not]);
    assert_eq!(found("NOT dogs").await, [with_not]);
    let mut both = vec![with_or, with_and, with_not];
    both.sort_unstable();
    assert_eq!(found("cats dogs").await, both, "words are ANDed");
    assert_eq!(found("only").await, [only_cats, only_dogs]);
    let (_, body) = search(&app, &[("q", "cats OR dogs")], None).await;
    assert_eq!(body["meta"]["match"], json!(r#""cats" "OR" "dogs""#));
}

#[tokio::test]
async fn matches_are_marked_and_everything_else_is_escaped() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut conn = db(&app).await;
    let lobby = room(&mut conn, &alice, "lobby", false).await;
    message(&mut conn, lobby, &alice, "Say hello to the world").await;
    message(&mut conn, lobby, &alice, "Un Café noir, s'il vous plaît").await;
    message(&mut conn, lobby, &alice, "<script>alert(\"pwned\")</script> findme & <b>bold</b>").await;
    // A body carrying the sentinels FTS5 marks matches with must not forge marks.
    message(&mut conn, lobby, &alice, "\u{E000}<img src=x onerror=alert(1)>\u{E001} sneaky").await;

    let (status, body) = search(&app, &[("q", "HELLO")], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["highlight"], json!("Say <mark>hello</mark> to the world"));
    assert_eq!(body["data"][0]["snippet"], json!("Say <mark>hello</mark> to the world"));

    // Case and diacritics are folded; the stored text keeps its accents.
    let (_, body) = search(&app, &[("q", "cafe plait")], None).await;
    assert_eq!(body["data"][0]["highlight"], json!("Un <mark>Café</mark> noir, s&#39;il vous <mark>plaît</mark>"));

    let (_, body) = search(&app, &[("q", "findme")], None).await;
    let expected =
        "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; <mark>findme</mark> &amp; &lt;b&gt;bold&lt;/b&gt;";
    assert_eq!(body["data"][0]["highlight"], json!(expected));
    let (_, body) = search(&app, &[("q", "script")], None).await;
    let hl = body["data"][0]["highlight"].as_str().unwrap();
    assert!(hl.starts_with("&lt;<mark>script</mark>&gt;"), "{hl}");
    assert!(!body.to_string().contains("<script"), "{body}");

    let (_, body) = search(&app, &[("q", "sneaky")], None).await;
    let hit = &body["data"][0];
    assert_eq!(hit["highlight"], json!("&lt;img src=x onerror=alert(1)&gt; sneaky"), "no forged marks: {hit}");
    assert!(!hit["snippet"].as_str().unwrap().contains('<'), "{hit}");

    // Long bodies are cut to a snippet around the match.
    let long = format!("{} needle {}", "filler ".repeat(100), "padding ".repeat(100));
    message(&mut conn, lobby, &alice, &long).await;
    let (_, body) = search(&app, &[("q", "needle")], None).await;
    let snippet = body["data"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>needle</mark>") && snippet.len() < 200 && snippet.contains('…'), "{snippet}");
}

#[tokio::test]
async fn query_metacharacters_never_cause_an_error() {
    // More anonymous searches than the per-IP budget (`abuse.rs`) allows a minute.
    let app = spawn_app_with(|c| c.anonymous.search = None).await;
    let alice = app.create_user("alice").await;
    let mut conn = db(&app).await;
    let lobby = room(&mut conn, &alice, "lobby", false).await;
    let quoted =
        message(&mut conn, lobby, &alice, "she said \"near\" or not; it's fine -- (really) 100% 页面 😀").await;

    let nasty = [
        "\"",
        "\"\"",
        "\"unbalanced",
        "*",
        "rust*",
        "NEAR(",
        "NEAR(a b, 2)",
        "OR",
        "a OR",
        "AND NOT",
        "-",
        "-rust",
        "'",
        "it's",
        "';--",
        "; DROP TABLE messages;--",
        "(",
        ")",
        "((a)",
        "body:near",
        "^near",
        "{body}: x",
        "a + b",
        "%",
        "_",
        "\\",
        "\u{0}",
        "😀",
        "页面",
        "e\u{301}",
        "\u{202e}rtl",
        "\u{E000}",
    ];
    for q in nasty {
        let (status, body) = search(&app, &[("q", q)], None).await;
        assert_eq!(status, 200, "q={q:?}: {body}");
        assert!(body["data"].is_array(), "q={q:?}: {body}");
    }
    // Quoted text is searched as text.
    assert_eq!(ids(&app, &[("q", "\"near\"")], None).await, [quoted]);
    assert_eq!(ids(&app, &[("q", "NEAR( near")], None).await, [quoted]);
    assert_eq!(ids(&app, &[("q", "it's")], None).await, [quoted]);
    assert_eq!(ids(&app, &[("q", "页面")], None).await, [quoted]);
    assert_eq!(ids(&app, &[("q", "(really)")], None).await, [quoted]);
    // Operator words are plain words (the message has "or" and "not", not "and");
    // punctuation-only queries find nothing, without an error.
    assert_eq!(ids(&app, &[("q", "OR NOT")], None).await, [quoted]);
    assert_eq!(ids(&app, &[("q", "OR AND NOT")], None).await, Vec::<i64>::new());
    assert_eq!(ids(&app, &[("q", "* - ( ) ;--")], None).await, Vec::<i64>::new());

    // Blank, oversized and malformed parameters are clear 400s.
    for params in [vec![], vec![("q", "")], vec![("q", "   ")]] {
        let mut req = app.http.get(app.url("/api/search")).query(&params);
        req = req.header("accept", "application/json");
        let error = assert_error(req.send().await.unwrap(), 400).await;
        assert!(error["message"].as_str().unwrap().contains("q is required"), "{error}");
    }
    let long = "a".repeat(300);
    let many = "a ".repeat(20);
    for params in [vec![("q", long.as_str())], vec![("q", many.as_str())], vec![("q", "x"), ("limit", "0")]] {
        assert_error(app.http.get(app.url("/api/search")).query(&params).send().await.unwrap(), 400).await;
    }
    for limit in ["1000", "-1", "ten", "1e3"] {
        let resp = app.http.get(app.url("/api/search")).query(&[("q", "x"), ("limit", limit)]).send().await.unwrap();
        assert_error(resp, 400).await;
    }
    // The server still serves.
    assert_eq!(ids(&app, &[("q", "fine")], None).await, [quoted]);
}

#[tokio::test]
async fn searches_are_scoped_to_a_room_or_to_the_rooms_the_caller_may_read() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    let mut conn = db(&app).await;
    let general = room(&mut conn, &alice, "general", false).await;
    let random = room(&mut conn, &alice, "random", false).await;
    let secret = room(&mut conn, &alice, "secret", true).await;
    member(&mut conn, secret, &bob).await;
    let g = message(&mut conn, general, &alice, "launch plans for monday").await;
    let r = message(&mut conn, random, &bob, "launch party snacks").await;
    let s = message(&mut conn, secret, &alice, "secret launch plans, do not share").await;

    // One room.
    assert_eq!(ids(&app, &[("q", "launch"), ("room", "general")], None).await, [g]);
    assert_eq!(ids(&app, &[("q", "launch"), ("room", "random")], None).await, [r]);
    // Every readable room: public ones for anyone, plus the private rooms one belongs to.
    let mut anon = ids(&app, &[("q", "launch")], None).await;
    anon.sort();
    assert_eq!(anon, [g, r]);
    let mut outsider = ids(&app, &[("q", "launch")], Some(&carol.token)).await;
    outsider.sort();
    assert_eq!(outsider, [g, r]);
    let mut insider = ids(&app, &[("q", "launch")], Some(&bob.token)).await;
    insider.sort();
    assert_eq!(insider, [g, r, s]);
    assert_eq!(ids(&app, &[("q", "share")], Some(&alice.token)).await, [s]);
    assert_eq!(ids(&app, &[("q", "share")], Some(&carol.token)).await, Vec::<i64>::new());
    assert_eq!(ids(&app, &[("q", "share")], None).await, Vec::<i64>::new());

    // A private room is readable by its members only, and looks absent to others.
    assert_eq!(ids(&app, &[("q", "plans"), ("room", "secret")], Some(&bob.token)).await, [s]);
    for token in [None, Some(carol.token.as_str())] {
        let mut req = app.http.get(app.url("/api/search")).query(&[("q", "plans"), ("room", "secret")]);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let error = assert_error(req.send().await.unwrap(), 404).await;
        assert_eq!(error["message"], json!("no such room"));
    }
    let resp = app.http.get(app.url("/api/search")).query(&[("q", "plans"), ("room", "nope")]).send().await.unwrap();
    assert_eq!(assert_error(resp, 404).await["message"], json!("no such room"));
    // Room names are data, never SQL.
    let resp = app.http.get(app.url("/api/search")).query(&[("q", "plans"), ("room", "x' OR 1=1 --")]).send();
    assert_error(resp.await.unwrap(), 404).await;
    // An invalid bearer token is refused rather than read as anonymous.
    let resp = app.http.get(app.url("/api/search")).query(&[("q", "plans")]).bearer_auth("nope").send().await;
    assert_error(resp.unwrap(), 401).await;
}

#[tokio::test]
async fn triggers_keep_the_index_in_sync() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut conn = db(&app).await;
    let lobby = room(&mut conn, &alice, "lobby", false).await;
    let doomed = room(&mut conn, &alice, "doomed", false).await;
    let gone = message(&mut conn, lobby, &alice, "ephemeral thought").await;
    let kept = message(&mut conn, lobby, &alice, "lasting thought").await;
    let edited = message(&mut conn, lobby, &alice, "original wording").await;
    message(&mut conn, doomed, &alice, "cascading thought").await;
    let mut all = ids(&app, &[("q", "thought")], None).await;
    all.sort();
    assert_eq!(all.len(), 3);

    sqlx::query("DELETE FROM messages WHERE id = $1").bind(gone).execute(&mut conn).await.unwrap();
    assert_eq!(ids(&app, &[("q", "ephemeral")], None).await, Vec::<i64>::new());

    sqlx::query("UPDATE messages SET body = 'revised wording' WHERE id = $1")
        .bind(edited)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids(&app, &[("q", "original")], None).await, Vec::<i64>::new());
    assert_eq!(ids(&app, &[("q", "revised")], None).await, [edited]);

    // Deleting a room deletes its messages by cascade, and the index follows.
    sqlx::query("DELETE FROM rooms WHERE id = $1").bind(doomed).execute(&mut conn).await.unwrap();
    assert_eq!(ids(&app, &[("q", "thought")], None).await, [kept]);

    // The index agrees with the table row for row.
    if app.database.is_none() {
        sqlx::query("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
            .execute(&mut conn)
            .await
            .expect("FTS index matches the messages table");
    } else {
        // The tsvector column is generated from the body, so it cannot disagree with
        // it; what can go missing is the index the search uses.
        let index: Option<String> = sqlx::query_scalar(
            "SELECT CAST(indexdef AS TEXT) FROM pg_indexes WHERE tablename = 'messages' AND indexname = 'messages_search_idx'",
        )
        .fetch_optional(&mut conn)
        .await
        .expect("read the message indexes");
        assert!(index.as_deref().is_some_and(|def| def.contains("USING gin (search)")), "{index:?}");
    }
    conn.close().await.unwrap();
}

/// Pushes `event` on `topic` and waits for its reply (skipping broadcasts).
async fn call(ws: &mut WsClient, msg_ref: &str, topic: &str, event: &str, payload: Value) -> Value {
    ws.push(Some("1"), msg_ref, topic, event, payload).await;
    loop {
        let frame = ws.expect_frame().await;
        if frame[3] == json!("phx_reply") && frame[1] == json!(msg_ref) {
            assert_eq!(frame[4]["status"], json!("ok"), "{frame}");
            return frame[4]["response"].clone();
        }
    }
}

#[tokio::test]
async fn messages_sent_and_deleted_through_the_chat_socket_are_searchable_then_gone() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    for room in [json!({"name": "open", "slug": "open"}), json!({"name": "hidden", "slug": "hidden", "private": true})]
    {
        let resp = app.post_json("/api/rooms", Some(&alice.token), &json!({ "room": room })).await;
        assert_eq!(resp.status(), 201);
    }
    let mut ws = app.ws(&format!("&token={}", alice.token)).await;
    let mut ids_by_room = Vec::new();
    for topic in ["room:open", "room:hidden"] {
        ws.push(Some("1"), "1", topic, "phx_join", json!({})).await;
        loop {
            let frame = ws.expect_frame().await;
            if frame[3] == json!("phx_reply") && frame[2] == json!(topic) {
                assert_eq!(frame[4]["status"], json!("ok"), "{frame}");
                break;
            }
        }
        let reply = call(&mut ws, "2", topic, "new_msg", json!({"body": "Quarterly <b>numbers</b> attached"})).await;
        ids_by_room.push(reply["id"].as_i64().expect("message id"));
    }
    let (open, hidden) = (ids_by_room[0], ids_by_room[1]);

    let mut mine = ids(&app, &[("q", "quarterly numbers")], Some(&alice.token)).await;
    mine.sort();
    assert_eq!(mine, [open, hidden]);
    assert_eq!(ids(&app, &[("q", "quarterly")], Some(&bob.token)).await, [open]);
    let (_, body) = search(&app, &[("q", "numbers"), ("room", "open")], None).await;
    assert_eq!(body["data"][0]["highlight"], json!("Quarterly &lt;b&gt;<mark>numbers</mark>&lt;/b&gt; attached"));

    call(&mut ws, "3", "room:open", "delete_msg", json!({"id": open})).await;
    assert_eq!(ids(&app, &[("q", "quarterly")], Some(&alice.token)).await, [hidden]);
    assert_eq!(ids(&app, &[("q", "quarterly")], None).await, Vec::<i64>::new());
}
