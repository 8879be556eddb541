//! What every page and asset response carries, and the CSRF rule for page forms.
//!
//! **Content-Security-Policy**: scripts only from our own origin (`script-src 'self'`,
//! no `'unsafe-inline'`, no `'unsafe-eval'`), so neither an inline `<script>` nor an
//! `on*=` attribute nor a `javascript:` URL can run even if one slipped into a page;
//! styles only from our stylesheet; images from us (uploads, the icon) and `blob:`
//! (previews of files about to be uploaded); connections (fetch, the WebSocket) to our
//! origin only; forms post only to us; no framing, no `<base>`, no plugins.
//!
//! **CSRF**: every page form carries `_csrf`. For a signed-in viewer it is the session's
//! CSRF token (the one `X-CSRF-Token` carries for the JSON API); before sign-in it is
//! the token of a random pre-session cookie (`firehose_csrf`, HttpOnly). Another site
//! can make a browser send our cookies but can read neither cookie nor page, so it
//! cannot produce the token.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// Adds the security headers; pages (HTML) are also never cached (they carry CSRF
/// tokens and the viewer's own state).
pub async fn headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    let is_html = h.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
