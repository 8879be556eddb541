//! The HTTP edge: the router as a value, the JSON error type every handler returns, the
//! JSON body extractor, and per-route request counting for `/metrics`.

mod error;
mod json;
mod metrics_layer;
pub mod params;

pub use error::{ApiError, FieldErrors};
pub use json::{JsonBody, parse_object};

use axum::Router;
use axum::middleware;
use axum::routing::get;

use crate::state::AppState;

/// The whole application router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::accounts::router())
        .merge(crate::bookmarks::router())
        .merge(crate::chat::router())
        .merge(crate::likes::router())
        .merge(crate::channels::router())
        .merge(crate::search::router())
        .merge(crate::uploads::router())
        .merge(crate::web::router())
        .route("/metrics", get(crate::metrics::render))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the count, so a 408 for a trickling body is counted like any answer.
        .layer(middleware::from_fn_with_state(state.clone(), crate::connections::pace_bodies))
        .layer(middleware::from_fn_with_state(state.clone(), metrics_layer::count_requests))
        .with_state(state)
}

/// A browser asking for a page that is not there gets an HTML page; API clients JSON.
async fn not_found(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let wants_html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("text/html")));
    if wants_html {
        return crate::web::not_found_page("There is no page here.");
    }
    ApiError::NotFound("no such route").into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
