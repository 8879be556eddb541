//! Multipart filename handling: the input is the `Content-Disposition` header value of
//! one part of a `multipart/form-data` body, parsed by the extractor the upload route
//! uses (axum's `Multipart`); every filename it yields goes through the sanitizer the
//! route applies, and so does the input itself as a name. A kept name must be a safe
//! bare name: not empty, at most `MAX_NAME_BYTES`, no path separator, control or
//! bidirectional-formatting character, no leading dot, no dot or whitespace at either
//! end, and sanitizing it again changes nothing.

#![no_main]

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{Request, header};
use firehose_app::fuzzing::{MAX_NAME_BYTES, sanitize_filename};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

static RUNTIME: LazyLock<Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime"));

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = std::str::from_utf8(data) {
        check(Some(raw), &sanitize_filename(Some(raw)));
    }
    let body = [
        b"--XyZ\r\nContent-Disposition: ".as_slice(),
        data,
        b"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n",
    ]
    .concat();
    let request = Request::builder()
        .method("POST")
        .uri("/api/uploads")
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
        .body(Body::from(body))
        .expect("a valid request");
    RUNTIME.block_on(async {
        let Ok(mut form) = Multipart::from_request(request, &()).await else { return };
        while let Ok(Some(field)) = form.next_field().await {
            let raw = field.file_name().map(str::to_owned);
            check(raw.as_deref(), &sanitize_filename(raw.as_deref()));
            let _ = field.bytes().await;
        }
    });
});

fn check(raw: Option<&str>, name: &str) {
    let bidi =
        |c: char| matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    assert!(!name.is_empty(), "{raw:?}");
    assert!(name.len() <= MAX_NAME_BYTES, "{raw:?} -> {} bytes", name.len());
    assert!(!name.contains(['/', '\\']), "{raw:?} -> {name:?}");
    assert!(!name.chars().any(|c| c.is_control() || bidi(c)), "{raw:?} -> {name:?}");
    assert!(!name.starts_with('.'), "{raw:?} -> {name:?} starts with a dot");
    assert!(!name.ends_with('.'), "{raw:?} -> {name:?} ends with a dot");
    assert!(name.trim() == name, "{raw:?} -> {name:?} has whitespace at an end");
    assert_eq!(sanitize_filename(Some(name)), name, "{raw:?}: sanitizing {name:?} again changes it");
}
