//! Uploads: each allowed kind stored and served back byte for byte with inert headers;
//! the kind decided by content whatever the name or declared type; lying files,
//! executables and HTML refused; `../` in filenames and in URLs harmless; the size
//! limit, the per-user budgets and the quota enforced with nothing left on disk; only
//! owners delete; files a crash left behind swept at start.

use std::path::{Path, PathBuf};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use std::time::Duration;

use firehose_app::ratelimit::{Rate, RateLimits};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_on, spawn_app_with};

const LIMIT: usize = 10 * 1024 * 1024;

/// Every byte value, so "byte-identical" means something.
fn all_bytes() -> Vec<u8> {
    (0..=255u8).cycle().take(4096).collect()
}

fn with_magic(magic: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    bytes.extend(all_bytes());
    bytes
}

fn jpeg() -> Vec<u8> {
    with_magic(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00])
}

fn png() -> Vec<u8> {
    with_magic(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'])
}

fn gif() -> Vec<u8> {
    with_magic(b"GIF89a\x01\x00\x01\x00\x80\x00\x00")
}

fn webp() -> Vec<u8> {
    with_magic(b"RIFF\x24\x10\x00\x00WEBPVP8 ")
}

fn pdf() -> Vec<u8> {
    with_magic(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n")
}

fn text() -> Vec<u8> {
    "Plain text with ünïcödé, emoji 😀, CJK 漢字, RTL שלום,\r\n\ttabs and <script>alert(1)</script> inside.\n"
        .repeat(20)
        .into_bytes()
}

fn form(bytes: Vec<u8>, file_name: &str, content_type: &str) -> Form {
    let part = Part::bytes(bytes).file_name(file_name.to_owned()).mime_str(content_type).expect("mime");
    Form::new().part("file", part)
}

async fn post_form(app: &TestApp, token: Option<&str>, form: Form) -> reqwest::Response {
    let mut req = app.http.post(app.url("/api/uploads")).multipart(form);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("POST /api/uploads")
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, file_name: &str, content_type: &str) -> reqwest::Response {
    post_form(app, Some(token), form(bytes, file_name, content_type)).await
}

/// Uploads and asserts 201; returns `data`.
async fn upload_ok(app: &TestApp, token: &str, bytes: Vec<u8>, file_name: &str, content_type: &str) -> Value {
    let resp = upload(app, token, bytes, file_name, content_type).await;
    let status = resp.status();
    let body: Value = resp.json().await.expect("upload JSON");
    assert_eq!(status, 201, "upload {file_name}: {body}");
    body["data"].clone()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Files under the data dir other than the database's own.
fn upload_files(app: &TestApp) -> Vec<PathBuf> {
    files_under(app.data_dir.path())
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("firehose.db"))
        .collect()
}

async fn stored_uploads(app: &TestApp) -> i64 {
    let mut conn = app.db().await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM uploads").fetch_one(&mut conn).await.expect("count");
    n
}

fn key_of(data: &Value) -> String {
    let url = data["url"].as_str().expect("url");
    url.strip_prefix("/uploads/").unwrap_or_else(|| panic!("url shape: {url}")).to_owned()
}

/// Asserts a refusal left nothing behind: no file in either upload directory, no row.
async fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(upload_files(app), Vec::<PathBuf>::new(), "files left on disk");
    assert_eq!(stored_uploads(app).await, 0, "rows left in uploads");
}

#[tokio::test]
async fn each_allowed_kind_is_stored_and_served_back_byte_identical_with_inert_headers() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let cases: [(&str, Vec<u8>, &str, &str, &str); 6] = [
        ("photo.jpg", jpeg(), "image/jpeg", "jpg", "inline"),
        ("pic.png", png(), "image/png", "png", "inline"),
        ("anim.gif", gif(), "image/gif", "gif", "inline"),
        ("img.webp", webp(), "image/webp", "webp", "inline"),
        ("doc.pdf", pdf(), "application/pdf", "pdf", "attachment"),
        ("notes.txt", text(), "text/plain; charset=utf-8", "txt", "attachment"),
    ];
    for (name, bytes, content_type, ext, disposition) in cases {
        let data = upload_ok(&app, &alice.token, bytes.clone(), name, "application/octet-stream").await;
        assert_eq!(data["content_type"], json!(content_type), "{data}");
        assert_eq!(data["size"], json!(bytes.len()), "{data}");
        assert_eq!(data["original_name"], json!(name), "{data}");
        assert!(data["id"].as_i64().is_some(), "{data}");
        let key = key_of(&data);
        assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()), "generated key: {key}");

        let on_disk = app.data_dir.path().join("uploads").join(format!("{key}.{ext}"));
        assert_eq!(std::fs::read(&on_disk).expect("stored file"), bytes, "{name} on disk");

        let resp = app.get(data["url"].as_str().unwrap()).await;
        assert_eq!(resp.status(), 200, "{name}");
        let h = resp.headers().clone();
        let header = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert_eq!(header("content-type"), content_type, "{name}");
        assert_eq!(header("content-length"), bytes.len().to_string(), "{name}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
        assert!(header("content-security-policy").starts_with("default-src 'none'"), "{name}: {h:?}");
        assert!(header("content-disposition").starts_with(disposition), "{name}: {h:?}");
        assert!(!header("content-disposition").contains(name), "the client's name is not echoed: {h:?}");
        assert_eq!(resp.bytes().await.expect("body").as_ref(), bytes.as_slice(), "{name} served back");
    }
    assert_eq!(stored_uploads(&app).await, 6);
    assert_eq!(files_under(&app.data_dir.path().join("uploads-partial")), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn content_decides_the_kind_not_the_filename_or_declared_type() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let data = upload_ok(&app, &alice.token, png(), "evil.txt", "text/plain").await;
    assert_eq!(data["content_type"], json!("image/png"));
    assert_eq!(data["original_name"], json!("evil.txt"), "the name is kept, as metadata");
    let key = key_of(&data);
    assert!(app.data_dir.path().join("uploads").join(format!("{key}.png")).is_file());
    let resp = app.get(&format!("/uploads/{key}")).await;
    assert_eq!(resp.headers()["content-type"], "image/png");

    let data = upload_ok(&app, &alice.token, text(), "report.pdf", "application/pdf").await;
    assert_eq!(data["content_type"], json!("text/plain; charset=utf-8"));
}

#[tokio::test]
async fn html_claiming_to_be_a_png_is_refused() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    for html in [
        &b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"[..],
        b"  \n<html><script>alert(1)</script>",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
        b"<?xml version=\"1.0\"?><x/>",
    ] {
        let resp = upload(&app, &alice.token, html.to_vec(), "x.png", "image/png").await;
        let error = assert_error(resp, 415).await;
        assert_eq!(error["message"], json!("unsupported file type"));
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn executables_archives_and_binary_junk_are_refused() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    elf.extend(all_bytes());
    let mut pe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    pe.extend(all_bytes());
    let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    zip.extend(all_bytes());
    // Text until a NUL far past the first chunk.
    let mut late_nul = vec![b'a'; 200_000];
    late_nul.push(0);
    let cases = [
        (elf, "tool", "application/octet-stream"),
        (pe, "setup.jpg", "image/jpeg"),
        (zip, "archive.txt", "text/plain"),
        (late_nul, "notes.txt", "text/plain"),
        (b"caf\xe9 latin-1".to_vec(), "latin1.txt", "text/plain"),
    ];
    for (bytes, name, content_type) in cases {
        let error = assert_error(upload(&app, &alice.token, bytes, name, content_type).await, 415).await;
        assert_eq!(error["message"], json!("unsupported file type"), "{name}");
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn traversal_in_the_filename_cannot_place_the_file() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let cases = [
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("..", "upload"),
        ("invoice\u{202E}fdp.exe.txt", "invoicefdp.exe.txt"),
    ];
    for (i, (raw, sanitised)) in cases.iter().enumerate() {
        let data = upload_ok(&app, &alice.token, text(), raw, "text/plain").await;
        assert_eq!(data["original_name"], json!(sanitised), "{raw:?}");
        let stored = app.data_dir.path().join("uploads").join(format!("{}.txt", key_of(&data)));
        assert!(stored.is_file(), "{raw:?}");
        assert_eq!(upload_files(&app).len(), i + 1, "only the generated file appeared");
    }
    let uploads_dir = app.data_dir.path().join("uploads");
    assert!(upload_files(&app).iter().all(|p| p.parent() == Some(uploads_dir.as_path())), "{:?}", upload_files(&app));
    assert!(!app.data_dir.path().join("../etc/passwd").exists());
}

#[tokio::test]
async fn the_size_limit_is_enforced_while_streaming_and_leaves_nothing() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;

    // One byte over: read as it streams, refused, nothing kept.
    let error =
        assert_error(upload(&app, &alice.token, vec![b'a'; LIMIT + 1], "big.txt", "text/plain").await, 413).await;
    assert!(error["message"].as_str().unwrap().contains(&LIMIT.to_string()), "{error}");
    assert_nothing_stored(&app).await;

    // Declared far too big: refused before reading.
    let resp = upload(&app, &alice.token, vec![b'a'; LIMIT + 2 * 1024 * 1024], "bigger.txt", "text/plain").await;
    assert_error(resp, 413).await;
    assert_nothing_stored(&app).await;

    // Exactly the limit is fine (and beyond axum's default 2 MB body limit).
    let mut bytes = png();
    bytes.resize(LIMIT, 7);
    let data = upload_ok(&app, &alice.token, bytes.clone(), "max.png", "image/png").await;
    assert_eq!(data["size"], json!(LIMIT));
    let served = app.get(data["url"].as_str().unwrap()).await.bytes().await.expect("body");
    assert!(served.as_ref() == bytes.as_slice(), "10 MiB served back identical");
}

#[tokio::test]
async fn uploading_needs_a_signed_in_user() {
    let app = spawn_app().await;
    assert_error(post_form(&app, None, form(png(), "a.png", "image/png")).await, 401).await;
    assert_error(post_form(&app, Some("not-a-token"), form(png(), "a.png", "image/png")).await, 401).await;
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_session_cookie_uploads_with_its_csrf_token_only() {
    let app = spawn_app().await;
    let body = json!({"email": "carol@example.com", "password": "correct horse battery", "display_name": "Carol"});
    let resp = app.post_json("/api/accounts/register", None, &body).await;
    assert_eq!(resp.status(), 201);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("firehose_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    let csrf = body["data"]["csrf_token"].as_str().expect("csrf token").to_owned();

    let send = |with_csrf: bool| {
        let mut req = app.http.post(app.url("/api/uploads")).header("cookie", &cookie);
        if with_csrf {
            req = req.header("x-csrf-token", &csrf);
        }
        req.multipart(form(gif(), "a.gif", "image/gif")).send()
    };
    assert_error(send(false).await.expect("POST"), 403).await;
    assert_nothing_stored(&app).await;
    let resp = send(true).await.expect("POST");
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn a_form_without_exactly_one_file_is_a_json_client_error() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;

    let error = assert_error(post_form(&app, Some(&alice.token), Form::new().text("caption", "hi")).await, 422).await;
    assert!(error["fields"]["file"].is_array(), "{error}");

    let wrong_name = Form::new().part("upload", Part::bytes(png()).file_name("a.png"));
    assert_error(post_form(&app, Some(&alice.token), wrong_name).await, 422).await;

    let two = Form::new()
        .part("file", Part::bytes(png()).file_name("a.png"))
        .part("file", Part::bytes(gif()).file_name("b.gif"));
    let error = assert_error(post_form(&app, Some(&alice.token), two).await, 422).await;
    assert!(error["fields"]["file"].is_array(), "{error}");

    assert_error(upload(&app, &alice.token, Vec::new(), "empty.txt", "text/plain").await, 422).await;

    // Not multipart at all, and multipart that breaks off.
    assert_error(app.post_raw("/api/uploads", Some(&alice.token), r#"{"file":"x"}"#).await, 400).await;
    let truncated = app
        .http
        .post(app.url("/api/uploads"))
        .bearer_auth(&alice.token)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello")
        .send()
        .await
        .expect("POST");
    assert_error(truncated, 400).await;

    assert_nothing_stored(&app).await;
    // A caption beside the file is fine.
    let with_caption = form(png(), "a.png", "image/png").text("caption", "hello");
    assert_eq!(post_form(&app, Some(&alice.token), with_caption).await.status(), 201);
}

/// Sends `GET <target>` byte for byte (no client-side URL normalisation); returns the
/// status and the body.
async fn raw_get(app: &TestApp, target: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn anything_but_a_stored_key_is_a_json_404() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let key = key_of(&upload_ok(&app, &alice.token, text(), "a.txt", "text/plain").await);
    // Something a traversal would find, were the key ever used as a path.
    std::fs::write(app.data_dir.path().join("Cargo.toml"), "[secret]").unwrap();
    for target in [
        "/uploads/../../Cargo.toml".to_owned(),
        "/uploads/..%2F..%2FCargo.toml".to_owned(),
        "/uploads/%2e%2e%2f%2e%2e%2fCargo.toml".to_owned(),
        "/uploads/..%2fCargo.toml".to_owned(),
        "/uploads/%2Fetc%2Fpasswd".to_owned(),
        format!("/uploads/{}", "0".repeat(32)),
        format!("/uploads/{}", key.to_uppercase()),
        format!("/uploads/{key}.txt"),
        format!("/uploads/{key}%00"),
        format!("/uploads/{key}/x"),
        "/uploads/%ff%fe".to_owned(),
        "/uploads/".to_owned(),
    ] {
        let (status, body) = raw_get(&app, &target).await;
        assert_eq!(status, 404, "{target}: {body}");
        assert_eq!(body["error"]["status"], json!(404), "{target}: {body}");
    }
    assert_eq!(raw_get(&app, &format!("/uploads/{key}")).await.0, 200);
}

#[tokio::test]
async fn only_the_owner_deletes_and_then_it_is_gone() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let data = upload_ok(&app, &alice.token, jpeg(), "me.jpg", "image/jpeg").await;
    let id = data["id"].as_i64().unwrap();
    let url = data["url"].as_str().unwrap().to_owned();
    let path = format!("/api/uploads/{id}");

    assert_error(app.http.delete(app.url(&path)).send().await.expect("DELETE"), 401).await;
    assert_error(app.delete_as(&path, &bob.token).await, 404).await;
    assert_eq!(app.get(&url).await.status(), 200, "still there after others tried");
    assert_eq!(upload_files(&app).len(), 1);

    assert_eq!(app.delete_as(&path, &alice.token).await.status(), 204);
    assert_error(app.get(&url).await, 404).await;
    assert_nothing_stored(&app).await;
    assert_error(app.delete_as(&path, &alice.token).await, 404).await;
    assert_error(app.delete_as("/api/uploads/abc", &alice.token).await, 400).await;
}

async fn put_avatar(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let resp = app.http.put(app.url("/api/accounts/me/avatar")).bearer_auth(token).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn my_avatar(app: &TestApp, token: &str) -> Value {
    let resp = app.http.get(app.url("/api/accounts/me")).bearer_auth(token).send().await.unwrap();
    let body: Value = resp.json().await.unwrap();
    body["data"]["user"]["avatar_url"].clone()
}

#[tokio::test]
async fn an_avatar_is_one_of_the_users_own_image_uploads() {
    let app = spawn_app().await;
    let alice = app.create_user("avatar_alice").await;
    let bob = app.create_user("avatar_bob").await;
    assert_eq!(my_avatar(&app, &alice.token).await, Value::Null);

    let image = upload_ok(&app, &alice.token, png(), "me.png", "image/png").await;
    let (status, body) = put_avatar(&app, &alice.token, json!({"upload_id": image["id"]})).await;
    assert_eq!(status, 200, "{body}");
    let url = body["data"]["user"]["avatar_url"].as_str().expect("avatar_url").to_owned();
    assert_eq!(url, image["url"].as_str().unwrap());
    assert_eq!(my_avatar(&app, &alice.token).await, json!(url));
    let served = app.http.get(app.url(&url)).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");

    // Not an image, someone else's, missing, or not a number: 422 and the avatar stays.
    let doc = upload_ok(&app, &alice.token, pdf(), "cv.pdf", "application/pdf").await;
    let bobs = upload_ok(&app, &bob.token, gif(), "bob.gif", "image/gif").await;
    for bad in [
        json!({"upload_id": doc["id"]}),
        json!({"upload_id": bobs["id"]}),
        json!({"upload_id": 999_999}),
        json!({"upload_id": "1"}),
        json!({}),
    ] {
        let (status, body) = put_avatar(&app, &alice.token, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["error"]["fields"]["upload_id"].is_array(), "{body}");
    }
    assert_eq!(my_avatar(&app, &alice.token).await, json!(url));

    // Deleting the upload clears the avatar; so does DELETE.
    let id = image["id"].as_i64().unwrap();
    let gone = app.delete_as(&format!("/api/uploads/{id}"), &alice.token).await;
    assert_eq!(gone.status(), 204);
    assert_eq!(my_avatar(&app, &alice.token).await, Value::Null);
    let again = upload_ok(&app, &alice.token, jpeg(), "me.jpg", "image/jpeg").await;
    assert_eq!(put_avatar(&app, &alice.token, json!({"upload_id": again["id"]})).await.0, 200);
    let cleared = app.http.delete(app.url("/api/accounts/me/avatar")).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(my_avatar(&app, &alice.token).await, Value::Null);
    // Unauthenticated: 401.
    let anon = app.http.put(app.url("/api/accounts/me/avatar")).json(&json!({"upload_id": 1})).send().await.unwrap();
    assert_eq!(anon.status(), 401);
}

fn per_hour(n: u32) -> Option<Rate> {
    Some(Rate::new(n, Duration::from_secs(3600)))
}

/// The `Retry-After` of a response, in seconds.
fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After in seconds")
}

#[tokio::test]
async fn the_per_user_upload_count_is_budgeted_with_429_and_nothing_stored_past_it() {
    let app = spawn_app_with(|c| c.limits = RateLimits { uploads: per_hour(2), ..RateLimits::off() }).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    upload_ok(&app, &alice.token, jpeg(), "1.jpg", "image/jpeg").await;
    upload_ok(&app, &alice.token, png(), "2.png", "image/png").await;
    let resp = upload(&app, &alice.token, gif(), "3.gif", "image/gif").await;
    // 2 per hour: the next one in half an hour.
    let wait = retry_after(&resp);
    assert!((1700..=1800).contains(&wait), "Retry-After {wait}");
    assert_error(resp, 429).await;
    assert_eq!((upload_files(&app).len(), stored_uploads(&app).await), (2, 2), "nothing stored past the budget");
    upload_ok(&app, &bob.token, gif(), "3.gif", "image/gif").await;
    assert_eq!(app.metric(r#"firehose_rate_limited_total{action="upload"}"#).await, Some(1.0));
}

#[tokio::test]
async fn the_per_user_byte_budget_counts_the_bytes_of_accepted_files() {
    let budget = (jpeg().len() + png().len()) as u32;
    let app = spawn_app_with(|c| c.limits = RateLimits { upload_bytes: per_hour(budget), ..RateLimits::off() }).await;
    let alice = app.create_user("alice").await;
    upload_ok(&app, &alice.token, jpeg(), "1.jpg", "image/jpeg").await;
    upload_ok(&app, &alice.token, png(), "2.png", "image/png").await;
    let resp = upload(&app, &alice.token, gif(), "3.gif", "image/gif").await;
    assert!(retry_after(&resp) >= 1);
    assert_error(resp, 429).await;
    assert_eq!((upload_files(&app).len(), stored_uploads(&app).await), (2, 2), "the refused file is not kept");
    assert_eq!(files_under(&app.data_dir.path().join("uploads-partial")), Vec::<PathBuf>::new());
    assert_eq!(app.metric(r#"firehose_rate_limited_total{action="upload_bytes"}"#).await, Some(1.0));
}

#[tokio::test]
async fn the_storage_quota_is_413_with_what_is_used_until_uploads_are_deleted() {
    let quota = (jpeg().len() + png().len() + 10) as u64;
    let app = spawn_app_with(|c| c.upload_quota_bytes = Some(quota)).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let first = upload_ok(&app, &alice.token, jpeg(), "1.jpg", "image/jpeg").await;
    upload_ok(&app, &alice.token, png(), "2.png", "image/png").await;
    // Only 10 bytes left: the file is received, found too big for the quota, dropped.
    let error = assert_error(upload(&app, &alice.token, gif(), "3.gif", "image/gif").await, 413).await;
    assert!(error["message"].as_str().unwrap().contains("quota"), "{error}");
    assert_eq!(error["quota_bytes"], json!(quota));
    assert_eq!(error["used_bytes"], json!(jpeg().len() + png().len()));
    assert_eq!((upload_files(&app).len(), stored_uploads(&app).await), (2, 2), "the refused file is not kept");
    // Another user's quota is their own.
    upload_ok(&app, &bob.token, gif(), "3.gif", "image/gif").await;
    // Deleting makes room again.
    let path = format!("/api/uploads/{}", first["id"]);
    assert_eq!(app.delete_as(&path, &alice.token).await.status(), 204);
    upload_ok(&app, &alice.token, gif(), "3.gif", "image/gif").await;
}

#[tokio::test]
async fn a_full_quota_refuses_before_reading_and_the_client_still_reads_the_answer() {
    let app = spawn_app_with(|c| c.upload_quota_bytes = Some(jpeg().len() as u64)).await;
    let alice = app.create_user("alice").await;
    upload_ok(&app, &alice.token, jpeg(), "1.jpg", "image/jpeg").await;
    for _ in 0..3 {
        let error = assert_error(upload(&app, &alice.token, text(), "a.txt", "text/plain").await, 413).await;
        assert_eq!(error["used_bytes"], json!(jpeg().len()), "{error}");
    }
    assert_eq!((upload_files(&app).len(), stored_uploads(&app).await), (1, 1));
}

#[tokio::test]
async fn files_a_crash_left_behind_are_swept_at_start_and_real_uploads_stay() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let kept = upload_ok(&app, &alice.token, png(), "keep.png", "image/png").await;
    let kept_file = app.data_dir.path().join("uploads").join(format!("{}.png", key_of(&kept)));
    assert!(kept_file.is_file());

    // What a SIGKILL can leave: a half-received file, and a stored file whose row was
    // never committed. And a file that is not ours at all.
    let dir = app.data_dir.path().to_owned();
    let partial = dir.join("uploads-partial").join("0123456789abcdef0123456789abcdef.part");
    let orphan = dir.join("uploads").join("fedcba9876543210fedcba9876543210.jpg");
    let foreign = dir.join("uploads").join("README.txt");
    std::fs::create_dir_all(dir.join("uploads-partial")).unwrap();
    std::fs::write(&partial, b"half a fi").unwrap();
    std::fs::write(&orphan, jpeg()).unwrap();
    std::fs::write(&foreign, b"left by an operator").unwrap();

    let app = app.restarted().await;
    assert!(!partial.exists(), "the partial file is swept");
    assert!(!orphan.exists(), "the unrecorded file is swept");
    assert!(foreign.exists(), "a file we never make is left alone");
    assert!(kept_file.is_file(), "a recorded upload stays");
    let resp = app.get(kept["url"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), png().as_slice());
    assert_eq!(stored_uploads(&app).await, 1);
}

#[tokio::test]
async fn a_shared_uploads_dir_holds_the_files_and_a_start_sweeps_only_long_untouched_orphans() {
    let shared = tempfile::tempdir().expect("temp dir");
    let root = shared.path().to_owned();
    let mut app = spawn_app_with(|c| c.uploads_dir = Some(root.clone())).await;
    let alice = app.create_user("alice").await;
    let kept = upload_ok(&app, &alice.token, png(), "keep.png", "image/png").await;
    let kept_file = root.join("uploads").join(format!("{}.png", key_of(&kept)));
    assert!(kept_file.is_file(), "stored in the shared dir");
    assert!(!app.data_dir.path().join("uploads").exists(), "not in the node's own data dir");

    // Another node may be mid-upload in a shared dir: only what was left alone longer
    // than the grace is an orphan.
    let old = std::time::SystemTime::now() - firehose_app::uploads::SHARED_GRACE - Duration::from_secs(60);
    let write = |path: &std::path::Path, bytes: &[u8], modified: Option<std::time::SystemTime>| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        if let Some(at) = modified {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(at).unwrap();
        }
    };
    let fresh_partial = root.join("uploads-partial").join("0123456789abcdef0123456789abcdef.part");
    let old_partial = root.join("uploads-partial").join("1123456789abcdef0123456789abcdef.part");
    let fresh_orphan = root.join("uploads").join("fedcba9876543210fedcba9876543210.jpg");
    let old_orphan = root.join("uploads").join("eedcba9876543210fedcba9876543210.jpg");
    write(&fresh_partial, b"half a fi", None);
    write(&old_partial, b"half a fi", Some(old));
    write(&fresh_orphan, &jpeg(), None);
    write(&old_orphan, &jpeg(), Some(old));

    app.trigger_shutdown();
    app.stopped().await;
    let database = app.database.take();
    let app = spawn_app_on(app.data_dir, database, |c| c.uploads_dir = Some(root.clone())).await;
    assert!(fresh_partial.exists() && fresh_orphan.exists(), "recent files may be another node's: kept");
    assert!(!old_partial.exists() && !old_orphan.exists(), "files untouched past the grace are swept");
    assert!(kept_file.is_file(), "a recorded upload stays");
    let resp = app.get(kept["url"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);
}
