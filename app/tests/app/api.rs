//! The JSON API: every bad input gets its status and `{"error": {…}}` body and stores
//! nothing; the good paths (pagination, filters, permissions) answer what they should.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, metric_value, spawn_app};

/// Asserts nothing was stored, through the API and in the database file itself.
async fn assert_nothing_stored(app: &TestApp) {
    let (status, body) = app.get_json("/api/bookmarks").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([]), "{body}");
    assert_eq!(app.stored_bookmarks().await, 0);
}

fn valid() -> Value {
    json!({"title": "A title", "url": "https://example.com/page"})
}

fn with(field: &str, value: Value) -> Value {
    let mut b = valid();
    b[field] = value;
    b
}

fn without(field: &str) -> Value {
    let mut b = valid();
    b.as_object_mut().unwrap().remove(field);
    b
}

#[tokio::test]
async fn invalid_bookmarks_are_422_per_field_and_store_nothing() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("missing title", without("title"), "title"),
        ("blank title", with("title", json!("   ")), "title"),
        ("missing url", without("url"), "url"),
        ("javascript url", with("url", json!("javascript:alert(1)")), "url"),
        ("ftp url", with("url", json!("ftp://example.com/file")), "url"),
        ("url without host", with("url", json!("https://")), "url"),
        ("not a url", with("url", json!("example.com")), "url"),
        ("title of 301", with("title", json!("x".repeat(301))), "title"),
        ("description of 10001", with("description", json!("d".repeat(10_001))), "description"),
        ("11 tags", with("tags", json!(eleven)), "tags"),
        ("tag of 51", with("tags", json!(["x".repeat(51)])), "tags"),
        ("title a number", with("title", json!(5)), "title"),
        ("public a string", with("public", json!("yes")), "public"),
        ("tags a number", with("tags", json!(3)), "tags"),
        ("tags with a number", with("tags", json!(["ok", 3])), "tags"),
        ("description a list", with("description", json!(["d"])), "description"),
    ];
    for (case, fields, field) in cases {
        let resp = app.post_json("/api/bookmarks", Some(&alice.token), &json!({ "bookmark": fields })).await;
        let error = assert_error(resp, 422).await;
        let messages = &error["fields"][field];
        assert!(
            messages.as_array().is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string)),
            "{case}: no message for {field} in {error}"
        );
    }
    // All wrong at once: every field reported.
    let all = json!({"title": "", "url": "javascript:alert(1)", "public": "yes", "tags": [1]});
    let error =
        assert_error(app.post_json("/api/bookmarks", Some(&alice.token), &json!({"bookmark": all})).await, 422).await;
    for field in ["title", "url", "public", "tags"] {
        assert!(error["fields"].get(field).is_some(), "{field} missing from {error}");
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn malformed_envelopes_are_400_and_oversized_bodies_413() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let token = Some(alice.token.as_str());
    assert_error(app.post_raw("/api/bookmarks", token, "{\"bookmark\": {").await, 400).await;
    assert_error(app.post_raw("/api/bookmarks", token, "not json").await, 400).await;
    assert_error(app.post_raw("/api/bookmarks", token, "").await, 400).await;
    assert_error(app.post_raw("/api/bookmarks", token, "[1,2]").await, 400).await;
    assert_error(app.post_json("/api/bookmarks", token, &valid()).await, 400).await;
    assert_error(app.post_json("/api/bookmarks", token, &json!({"bookmark": []})).await, 400).await;
    assert_error(app.post_json("/api/bookmarks", token, &json!({"bookmark": "x"})).await, 400).await;
    let big = json!({"bookmark": with("description", json!("d".repeat(70 * 1024)))});
    assert_error(app.post_json("/api/bookmarks", token, &big).await, 413).await;
    // Over the limit without a Content-Length (chunked): still 413.
    assert_eq!(chunked_post(&app, "/api/bookmarks", &alice.token, 70 * 1024).await, 413);
    assert_nothing_stored(&app).await;
}

/// POSTs a body of `len` bytes with `Transfer-Encoding: chunked` (no Content-Length)
/// over a raw connection; returns the response status.
async fn chunked_post(app: &TestApp, path: &str, token: &str, len: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and stop reading) before the whole body is sent.
    for _ in 0..len / 1024 {
        let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(crate::helpers::WAIT, stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1).unwrap_or_else(|| panic!("no HTTP response: {response:?}"));
    status.parse().unwrap()
}

#[tokio::test]
async fn writes_need_a_valid_bearer_token() {
    let app = spawn_app().await;
    let body = json!({"bookmark": valid()});
    assert_error(app.post_json("/api/bookmarks", None, &body).await, 401).await;
    assert_error(app.post_json("/api/bookmarks", Some("garbage"), &body).await, 401).await;
    let resp = app
        .http
        .post(app.url("/api/bookmarks"))
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(resp, 401).await;
    assert_error(app.http.delete(app.url("/api/bookmarks/1")).send().await.unwrap(), 401).await;
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn accepted_bookmarks_are_stored_as_given() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let title = "é".repeat(300);
    let data = app.create_bookmark(&alice, with("title", json!(title))).await;
    assert_eq!(data["title"], json!(title));
    let mut keys: Vec<&String> = data.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["description", "id", "inserted_at", "public", "tags", "title", "url", "user"]);
    assert_eq!(data["public"], true);
    assert_eq!(data["description"], "");
    assert_eq!(data["tags"], json!([]));
    assert_eq!(data["user"], json!({"id": alice.id, "username": "alice"}));

    let data = app.create_bookmark(&alice, with("tags", json!(" Elixir, web ,ELIXIR,, "))).await;
    assert_eq!(data["tags"], json!(["elixir", "web"]));

    let html = r#"<script>alert("x")</script> & <b>bold</b>"#;
    let mut fields = with("title", json!(html));
    fields["description"] = json!("d".repeat(10_000));
    let data = app.create_bookmark(&alice, fields).await;
    let (status, body) = app.get_json(&format!("/api/bookmarks/{}", data["id"])).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["title"], html, "stored and served verbatim, as text");
    assert_eq!(body["data"]["description"].as_str().unwrap().len(), 10_000);
    assert_eq!(body["data"], data);
    let resp = app.get(&format!("/api/bookmarks/{}", data["id"])).await;
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(app.stored_bookmarks().await, 3);
}

#[tokio::test]
async fn reads_and_deletes_respect_ownership_and_privacy() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let public = app.create_bookmark(&alice, valid()).await;
    let private = app.create_bookmark(&alice, with("public", json!(false))).await;
    let public_path = format!("/api/bookmarks/{}", public["id"]);
    let private_path = format!("/api/bookmarks/{}", private["id"]);

    // A private bookmark is invisible to anyone but its owner.
    assert_error(app.get(&private_path).await, 404).await;
    assert_error(app.get_as(&private_path, &bob.token).await, 404).await;
    let resp = app.get_as(&private_path, &alice.token).await;
    assert_eq!(resp.status(), 200);
    let (_, list) = app.get_json("/api/bookmarks").await;
    assert_eq!(list["data"], json!([public]));
    // A bad token is an error even where anonymous reads are allowed.
    assert_error(app.get_as(&public_path, "garbage").await, 401).await;

    assert_error(app.delete_as(&public_path, &bob.token).await, 403).await;
    assert_error(app.delete_as(&private_path, &bob.token).await, 404).await;
    assert_error(app.delete_as("/api/bookmarks/999999", &alice.token).await, 404).await;
    assert_eq!(app.stored_bookmarks().await, 2);

    assert_eq!(app.delete_as(&public_path, &alice.token).await.status(), 204);
    assert_error(app.get(&public_path).await, 404).await;
    assert_error(app.delete_as(&public_path, &alice.token).await, 404).await;
    assert_eq!(app.stored_bookmarks().await, 1);
    assert_error(app.get("/api/bookmarks/999999").await, 404).await;
}

#[tokio::test]
async fn bad_ids_and_query_parameters_are_400() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    assert_error(app.get("/api/bookmarks/abc").await, 400).await;
    assert_error(app.delete_as("/api/bookmarks/abc", &alice.token).await, 400).await;
    for query in ["limit=0", "limit=101", "limit=-1", "limit=ten", "before_id=x"] {
        assert_error(app.get(&format!("/api/bookmarks?{query}")).await, 400).await;
    }
    assert_error(app.get("/api/nope").await, 404).await;
}

#[tokio::test]
async fn pages_walk_back_with_before_id_and_filter_by_tag() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let tags = if i % 3 == 0 { json!(["third"]) } else { json!(["other"]) };
        let data =
            app.create_bookmark(&alice, json!({"title": format!("b{i}"), "url": "https://e.com/", "tags": tags})).await;
        ids.push(data["id"].as_i64().unwrap());
    }
    ids.reverse(); // newest first

    let (_, first) = app.get_json("/api/bookmarks").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 20, "default limit");

    let mut seen: Vec<i64> = Vec::new();
    let mut path = "/api/bookmarks?limit=7".to_owned();
    loop {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 200, "{body}");
        let page: Vec<i64> = body["data"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
        assert!(page.len() <= 7);
        seen.extend(&page);
        match body["next_before_id"].as_i64() {
            Some(next) => {
                assert_eq!(Some(&next), page.last(), "next_before_id is the last id of a full page");
                path = format!("/api/bookmarks?limit=7&before_id={next}");
            }
            None => {
                assert!(page.len() < 7, "a full page has a next_before_id");
                break;
            }
        }
    }
    assert_eq!(seen, ids);

    let (_, body) = app.get_json(&format!("/api/bookmarks?limit=100&before_id={}", ids[9])).await;
    let older: Vec<i64> = body["data"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(older, ids[10..]);
    assert_eq!(body["next_before_id"], Value::Null);

    let (_, body) = app.get_json("/api/bookmarks?tag=Third&limit=100").await;
    let third: Vec<i64> = body["data"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(third.len(), 10);
    assert!(body["data"].as_array().unwrap().iter().all(|b| b["tags"] == json!(["third"])));
    assert_eq!(third, ids.iter().copied().filter(|id| third.contains(id)).collect::<Vec<_>>(), "newest first");
    let (_, body) = app.get_json("/api/bookmarks?tag=unknown").await;
    assert_eq!(body["data"], json!([]));
    let (_, body) = app.get_json("/api/bookmarks?tag=&limit=100").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 30, "an empty tag filters nothing");
}

#[tokio::test]
async fn random_is_404_when_empty_then_a_public_bookmark() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    assert_error(app.get("/api/bookmarks/random").await, 404).await;
    app.create_bookmark(&alice, with("public", json!(false))).await;
    assert_error(app.get("/api/bookmarks/random").await, 404).await;
    let mut ids = HashSet::new();
    for i in 0..3 {
        let data = app.create_bookmark(&alice, with("title", json!(format!("r{i}")))).await;
        ids.insert(data["id"].as_i64().unwrap());
    }
    for _ in 0..10 {
        let (status, body) = app.get_json("/api/bookmarks/random").await;
        assert_eq!(status, 200);
        assert!(ids.contains(&body["data"]["id"].as_i64().unwrap()), "{body}");
    }
}

#[tokio::test]
async fn users_are_validated_and_unique() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let resp = app.post_json("/api/users", None, &json!({"username": "alice"})).await;
    let error = assert_error(resp, 409).await;
    assert_eq!(error["fields"], json!({"username": ["has already been taken"]}));
    assert_eq!(error["message"], json!("username has already been taken"));
    for bad in [
        json!({"username": "Al"}),
        json!({"username": "ALICE2"}),
        json!({"username": "a b c"}),
        json!({"username": "x".repeat(33)}),
        json!({"username": 5}),
        json!({}),
    ] {
        let error = assert_error(app.post_json("/api/users", None, &bad).await, 422).await;
        assert!(error["fields"]["username"].as_array().is_some_and(|m| !m.is_empty()), "{bad}: {error}");
    }
    assert_error(app.post_raw("/api/users", None, "{").await, 400).await;
    // Tokens are distinct per user and work.
    let bob = app.create_user("bob_2").await;
    app.create_bookmark(&bob, valid()).await;
}

#[tokio::test]
async fn metrics_count_http_requests_by_route_and_status() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    app.create_bookmark(&alice, valid()).await;
    app.create_bookmark(&alice, valid()).await;
    assert_error(app.post_json("/api/bookmarks", Some(&alice.token), &json!({"bookmark": {}})).await, 422).await;
    assert_error(app.get("/api/bookmarks/999").await, 404).await;
    assert_error(app.get("/api/bookmarks/abc").await, 400).await;
    let text = app.metrics().await;
    let count = |labels: &str| metric_value(&text, &format!("firehose_http_requests_total{{{labels}}}"));
    assert_eq!(count(r#"method="POST",route="/api/users",status="201""#), Some(1.0), "{text}");
    assert_eq!(count(r#"method="POST",route="/api/bookmarks",status="201""#), Some(2.0), "{text}");
    assert_eq!(count(r#"method="POST",route="/api/bookmarks",status="422""#), Some(1.0), "{text}");
    assert_eq!(count(r#"method="GET",route="/api/bookmarks/{id}",status="404""#), Some(1.0), "{text}");
    assert_eq!(count(r#"method="GET",route="/api/bookmarks/{id}",status="400""#), Some(1.0), "{text}");
    assert!(text.contains("# TYPE firehose_http_requests_total counter"));
}
