//! The operator web console: static files compiled into the binary and
//! served at `/`. The page talks to the same HTTP API as the CLI.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// A static file of the console or the public page.
pub(crate) fn page(mime: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache")], body)
}

/// Routes of the console (no authentication: the files are public; the
/// data behind them needs a session).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page("text/html; charset=utf-8", INDEX) }))
        .route("/console/app.js", get(|| async { page("text/javascript; charset=utf-8", APP_JS) }))
        .route("/console/app.css", get(|| async { page("text/css; charset=utf-8", APP_CSS) }))
}
