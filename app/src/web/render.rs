//! The frame every page shares (`Layout`), rendering a template into a response, and
//! the pages' errors: each becomes an HTML page with its status (or a redirect to the
//! login page), never a JSON body and never a panic.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::assets::{AssetUrls, URLS};
use super::viewer::Ctx;
use crate::http::ApiError;
use crate::store::StoreError;

/// The signed-in user as the page header shows them.
pub struct Chip {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
}

/// What the shared frame (`base.html`) needs.
pub struct Layout {
    pub title: String,
    /// Which script behaviour the page wants (`data-page` on `<body>`).
    pub page: &'static str,
    /// The page's readers topic is `page:<path>`.
    pub path: String,
    pub csrf: String,
    pub user: Option<Chip>,
    /// Readers on this page and on all pages when it was rendered (the script keeps
    /// them live).
    pub readers: usize,
    pub total: usize,
    pub assets: &'static AssetUrls,
}

impl Layout {
    /// A frame for pages rendered without a viewer (errors).
    fn bare(title: &str) -> Self {
        Layout {
            title: title.to_owned(),
            page: "error",
            path: "/error".to_owned(),
            csrf: String::new(),
            user: None,
            readers: 0,
            total: 0,
            assets: &URLS,
        }
    }
}

impl Ctx {
    /// The frame for this page.
    pub async fn layout(&self, title: impl Into<String>, page: &'static str) -> Layout {
        let (readers, total) = self
            .state
            .readers
            .counts(&format!("{}{}", crate::readers::TOPIC_PREFIX, self.path))
            .await
            .unwrap_or((0, 0));
        let user = self.viewer.account.as_ref().map(|a| Chip {
            id: a.user.id,
            username: a.user.username.clone(),
            display_name: a.display_name.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| a.user.username.clone()),
            avatar_url: a.avatar_path.as_ref().map(|key| format!("/uploads/{key}")),
        });
        Layout {
            title: title.into(),
            page,
            path: self.path.clone(),
            csrf: self.viewer.csrf(),
            user,
            readers,
            total,
            assets: &URLS,
        }
    }

    /// Renders `template` with `status`, setting the viewer's cookies.
    pub fn render(&self, status: StatusCode, template: &impl Template) -> Response {
        let mut response = html(status, template);
        self.viewer.set_cookies(response.headers_mut());
        response
    }
}

/// A rendered template as an HTML response.
fn html(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], body)
            .into_response(),
        Err(err) => {
            tracing::error!(%err, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html(status, &ErrorPage { layout: Layout::bare(title), status: status.as_u16(), message: message.to_owned() })
}

/// The HTML 404 for a browser that asked for a page that is not there.
pub fn not_found_page(message: &str) -> Response {
    let mut response = error_page(StatusCode::NOT_FOUND, message);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(super::CONTENT_SECURITY_POLICY));
    response
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The page needs a signed-in user: go to the login page, then back to this path.
    #[error("sign in first")]
    SignIn(String),
    /// A form without this viewer's CSRF token.
    #[error("csrf")]
    Csrf,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<StoreError> for WebError {
    fn from(err: StoreError) -> Self {
        WebError::Api(err.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn(back) => Redirect::to(&login_url(&back)).into_response(),
            WebError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or came from another site. Go back, reload the page and try again.",
            ),
            WebError::Api(ApiError::Internal(cause)) => {
                tracing::error!(%cause, "internal error");
                error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.")
            }
            WebError::Api(err) => {
                let mut response = error_page(err.status(), &err.to_string());
                if let ApiError::RateLimited(wait) = err {
                    let secs = wait.as_secs().max(1);
                    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                        response.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                }
                response
            }
        }
    }
}

/// A form body (`application/x-www-form-urlencoded`); a body that is not one is a 400
/// page rather than axum's plain-text rejection.
pub struct PageForm<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for PageForm<T> {
    type Rejection = WebError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(PageForm(value)),
            Err(err) => Err(WebError::Api(ApiError::BadRequest(format!("bad form: {}", err.body_text())))),
        }
    }
}

/// `/login?next=<back>`.
pub fn login_url(back: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    format!("/login?next={next}")
}

/// A path to return to after a form: only a local path (`/…`, not `//…`), else `/`.
pub fn local_path(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// 303 to `to` (after a form).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/rooms/a?x=1")), "/rooms/a?x=1");
        for bad in ["//evil.test", "https://evil.test", "/\\evil.test", "", "rooms"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
        assert_eq!(login_url("/rooms/a b"), "/login?next=%2Frooms%2Fa+b");
    }
}
