//! Unicode and control-character edge cases across the API and the socket: what is text
//! is stored verbatim and comes back identical; NUL and other control characters are
//! refused with a clear error and nothing is stored; the server keeps serving.

use serde_json::{Value, json};

use crate::helpers::*;

/// Text that must survive a round trip byte for byte.
const TRICKY: [&str; 6] = [
    "emoji 😀👩‍👩‍👧‍👦 and flags 🇫🇷",
    "right-to-left שלום مرحبا with \u{202e}override\u{202c}",
    "combining e\u{301}\u{301}\u{301} and zero\u{200b}width\u{200d}joiners",
    "CJK 漢字かなカナ 한국어",
    "<script>alert('x')</script> & \"quotes\" ' ; DROP TABLE bookmarks; --",
    "astral 𝕏𝔸𝕄 and BOM \u{feff}inside",
];

#[tokio::test]
async fn unicode_titles_round_trip_exactly_through_api_and_firehose() {
    let app = spawn_app().await;
    let user = app.create_user("unicode_fan").await;
    let mut ws = app.ws("vsn=2.0.0").await;
    ws.join("1", "bookmarks:firehose").await;
    for (i, title) in TRICKY.iter().enumerate() {
        let created = app.create_bookmark(&user, json!({"title": title, "url": "https://example.com/ü/ñ?q=ß", "description": format!("{title}\nline two\ttab"), "tags": ["ünïcode", "日本"]})).await;
        assert_eq!(created["title"], json!(title), "case {i}");
        let frame = ws.expect_frame().await;
        assert_eq!(frame[4]["title"], json!(title), "broadcast case {i}");
        let (status, fetched) = app.get_json(&format!("/api/bookmarks/{}", created["id"])).await;
        assert_eq!(status, 200);
        assert_eq!(fetched["data"]["title"], json!(title));
        assert_eq!(fetched["data"]["description"], json!(format!("{title}\nline two\ttab")));
        assert_eq!(fetched["data"]["tags"], json!(["ünïcode", "日本"]));
    }
}

#[tokio::test]
async fn control_characters_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let user = app.create_user("control_freak").await;
    let before = app.stored_bookmarks().await;
    let cases: [Value; 4] = [
        json!({"title": "nul\u{0}inside", "url": "https://example.com"}),
        json!({"title": "bell\u{7}", "url": "https://example.com"}),
        json!({"title": "ok", "url": "https://example.com", "description": "escape \u{1b}[31m red"}),
        json!({"title": "ok", "url": "https://example.com", "tags": ["tab\ttag"]}),
    ];
    for fields in cases {
        let resp = app.post_json("/api/bookmarks", Some(&user.token), &json!({ "bookmark": fields })).await;
        let body = assert_error(resp, 422).await;
        assert!(body["fields"].is_object(), "{fields}: {body}");
    }
    // Invalid JSON escapes (a lone surrogate) and invalid UTF-8 are malformed bodies.
    let resp = app
        .post_raw("/api/bookmarks", Some(&user.token), r#"{"bookmark":{"title":"\ud800","url":"https://e.x"}}"#)
        .await;
    assert_error(resp, 400).await;
    let resp = app
        .post_raw(
            "/api/bookmarks",
            Some(&user.token),
            b"{\"bookmark\":{\"title\":\"\xff\xfe\",\"url\":\"https://e.x\"}}".to_vec(),
        )
        .await;
    assert_error(resp, 400).await;
    assert_eq!(app.stored_bookmarks().await, before);
    // The server still serves.
    app.create_bookmark(&user, json!({"title": "still fine", "url": "https://example.com"})).await;
}

#[tokio::test]
async fn socket_frames_with_unicode_topics_and_payloads_are_answered_not_crashed() {
    let app = spawn_app().await;
    let mut ws = app.ws("vsn=2.0.0").await;
    // A tag topic in another script joins; an escaped one decodes to the same topic.
    ws.join("1", "bookmarks:tag:日本").await;
    ws.push(Some("2"), "2", "bookmarks:tag:\u{65e5}\u{672c}", "phx_join", json!({"x": "😀"})).await;
    let reply = ws.expect_frame().await;
    assert_eq!(reply[4]["status"], json!("ok"), "{reply}");
    // It is the same topic, so the first join is closed.
    assert_eq!(ws.expect_frame().await, json!(["1", "1", "bookmarks:tag:日本", "phx_close", {}]));
    // Upper-case or control characters in a tag topic are refused with a reason.
    for topic in ["bookmarks:tag:ÜBER", "bookmarks:tag:a\u{0}b"] {
        ws.push(Some("3"), "3", topic, "phx_join", json!({})).await;
        let reply = ws.expect_frame().await;
        assert_eq!(reply[4]["status"], json!("error"), "{topic}: {reply}");
    }
    // Heartbeats still work afterwards.
    ws.push(None, "9", "phoenix", "heartbeat", json!({})).await;
    assert_eq!(ws.expect_frame().await, ok_reply(None, "9", "phoenix"));
}
