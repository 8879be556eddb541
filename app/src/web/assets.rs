//! The pages' static files, compiled into the binary (no build step, nothing to deploy
//! beside it) and served under names that carry a hash of their content, so a browser
//! may cache them for good and still never runs a stale script after an upgrade.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::render::not_found_page;
use crate::state::AppState;

struct Asset {
    /// e.g. `app.js`; served as `app-<hash>.js` (cached for good) and as itself (revalidated).
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

static FILES: [Asset; 3] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/app.js"),
    },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../../static/app.css") },
    Asset { name: "icon.svg", content_type: "image/svg+xml", body: include_bytes!("../../static/icon.svg") },
];

/// Hashed names, in the order of `FILES`.
static HASHED: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
            let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
            format!("{stem}-{hash}.{ext}")
        })
        .collect()
});

/// Where the pages load their files from.
pub struct AssetUrls {
    pub js: String,
    pub css: String,
    pub icon: String,
}

pub static URLS: LazyLock<AssetUrls> = LazyLock::new(|| AssetUrls {
    js: format!("/assets/{}", HASHED[0]),
    css: format!("/assets/{}", HASHED[1]),
    icon: format!("/assets/{}", HASHED[2]),
});

pub fn router() -> Router<AppState> {
    Router::new().route("/assets/{name}", get(serve)).route("/favicon.ico", get(favicon))
}

async fn serve(Path(name): Path<String>) -> Response {
    for (asset, hashed) in FILES.iter().zip(HASHED.iter()) {
        let cache = if name == *hashed {
            "public, max-age=31536000, immutable"
        } else if name == asset.name {
            "no-cache"
        } else {
            continue;
        };
        return (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
            asset.body,
        )
            .into_response();
    }
    not_found_page("no such file")
}

/// Browsers ask for `/favicon.ico` on their own; they get the SVG icon.
async fn favicon() -> Response {
    serve(Path("icon.svg".to_owned())).await
}
