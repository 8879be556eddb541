//! Middleware counting HTTP requests by matched route and status.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = req.method().clone();
    let response = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    state.metrics.http_request(method.as_str(), &route, response.status().as_u16());
    response
}
