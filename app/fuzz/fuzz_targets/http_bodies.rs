//! Every JSON body the HTTP API accepts, through what the handlers run: the body
//! extractor's parse (`JsonBody`), then each route's validation. A client mistake must
//! be a 400, 404 or 422 whose response renders, never a panic or a 500; what passes
//! must already be normal (validating it again gives the same value) and keep the
//! rules the validators promise.

#![no_main]

use axum::response::IntoResponse;
use firehose_app::fuzzing::{
    ApiError, Invitee, NewBookmark, NewRoom, Outgoing, RoomPatch, SendError, accounts, parse_object,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let body = match parse_object(data) {
        Ok(body) => body,
        Err(err) => return refused(err, &[400]),
    };
    bookmark(&body);
    rooms(&body);
    account(&body);
    chat(&body);
});

/// A refusal: one of the statuses a client mistake gets, rendered as the API does.
fn refused(err: ApiError, statuses: &[u16]) {
    let status = err.status().as_u16();
    assert!(statuses.contains(&status), "{err:?} is a {status}, expected one of {statuses:?}");
    let _ = err.to_string();
    assert_eq!(err.into_response().status().as_u16(), status);
}

/// A validator's answer: the value, or its refusal (a domain error or an `ApiError`)
/// turned into the response the handler sends.
fn check<T, E: Into<ApiError>>(result: Result<T, E>, statuses: &[u16]) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(err) => {
            refused(err.into(), statuses);
            None
        }
    }
}

/// `POST /api/bookmarks` and the bookmark form's live validation.
fn bookmark(body: &Value) {
    let Some(b) = check(NewBookmark::from_body(body), &[400, 422]) else { return };
    assert!(!b.title.is_empty() && b.title == b.title.trim(), "{b:?}");
    for tag in &b.tags {
        assert!(!tag.is_empty() && !tag.contains(',') && *tag == tag.trim(), "{b:?}");
    }
    let again = json!({"bookmark": {
        "title": b.title, "url": b.url, "description": b.description, "public": b.public, "tags": b.tags,
    }});
    assert_eq!(NewBookmark::from_body(&again).ok().as_ref(), Some(&b), "not normal: {b:?}");
    // The browser extension's comma-separated tags mean the same.
    let joined = json!({"bookmark": {"title": b.title, "url": b.url, "description": b.description,
        "public": b.public, "tags": b.tags.join(",")}});
    assert_eq!(NewBookmark::from_body(&joined).ok().as_ref(), Some(&b), "tags as a string: {b:?}");
}

/// `POST /api/rooms`, `PATCH /api/rooms/{slug}`, `POST /api/rooms/{slug}/invites`.
fn rooms(body: &Value) {
    if let Some(r) = check(NewRoom::from_body(body), &[400, 422]) {
        assert!(!r.name.is_empty() && !r.slug.is_empty(), "{r:?}");
        let again =
            json!({"room": {"name": r.name, "slug": r.slug, "description": r.description, "private": r.private}});
        assert_eq!(NewRoom::from_body(&again).ok().as_ref(), Some(&r), "not normal: {r:?}");
    }
    if let Some(p) = check(RoomPatch::from_body(body), &[400, 422]) {
        let mut fields = serde_json::Map::new();
        for (key, value) in [
            ("name", p.name.clone().map(Value::from)),
            ("description", p.description.clone().map(Value::from)),
            ("private", p.private.map(Value::from)),
        ] {
            if let Some(v) = value {
                fields.insert(key.into(), v);
            }
        }
        let again = json!({ "room": fields });
        assert_eq!(RoomPatch::from_body(&again).ok().as_ref(), Some(&p), "not normal: {p:?}");
    }
    check(Invitee::from_body(body), &[404, 422]);
}

/// `/api/users`, `/api/accounts/*`, `/api/tokens`, the avatar.
fn account(body: &Value) {
    if let Some(username) = check(accounts::new_user(body), &[422]) {
        assert!((3..=32).contains(&username.len()), "{username:?}");
        assert!(username.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{username:?}");
    }
    if let Some(r) = check(accounts::registration(body), &[422]) {
        assert!(r.email.contains('@') && r.email == r.email.trim(), "{r:?}");
        assert!((accounts::PASSWORD_MIN..=accounts::PASSWORD_MAX).contains(&r.password.chars().count()), "{r:?}");
        let again = json!({"email": r.email, "password": r.password, "display_name": r.display_name,
            "username": r.username});
        assert_eq!(accounts::registration(&again).ok().as_ref(), Some(&r), "not normal: {r:?}");
        // Whatever registers, the derived username base is usable with a suffix.
        let base = accounts::username_from_email(&r.email);
        check(accounts::new_user(&json!({"username": format!("{base}_1")})), &[]);
    }
    check(accounts::login(body), &[422]);
    check(accounts::password_change(body), &[422]);
    check(accounts::profile(body), &[422]);
    check(accounts::token_name(body), &[422]);
    check(accounts::avatar(body), &[422]);
}

/// `POST /api/rooms/{slug}/messages`: the envelope, then the checks `send` makes before
/// spending anything.
fn chat(body: &Value) {
    let Some(outgoing) = check(Outgoing::from_http_body(body), &[400]) else { return };
    match outgoing.validate() {
        Ok((message, attachment)) => {
            let text = message.as_str();
            assert!(!text.is_empty() && text == text.trim() && text.chars().count() <= 4000, "{text:?}");
            assert!(attachment.is_none_or(|id| id > 0), "{attachment:?}");
        }
        Err(SendError::Invalid(msg)) => assert!(!msg.is_empty()),
        Err(other) => panic!("validation alone answered {other:?}"),
    }
}
