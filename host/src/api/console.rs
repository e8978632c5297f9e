//! The web console: static files embedded in the binary at build time
//! (`host/console/`), served under `/console/` with a strict
//! Content-Security-Policy: no inline script or style, no `eval`, nothing
//! from another origin, no framing. The console is a client of the API like
//! any other; it holds its token in the tab's session storage only.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::decode::PathId;
use super::handlers::AppState;

macro_rules! assets {
    ($($name:literal => $kind:literal),* $(,)?) => {
        /// Every file of the console, with its content type.
        const ASSETS: &[(&str, &str, &[u8])] = &[
            $(($name, $kind, include_bytes!(concat!("../../console/", $name))),)*
        ];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "session.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "dom.js" => "text/javascript; charset=utf-8",
    "credentials.js" => "text/javascript; charset=utf-8",
    "form.js" => "text/javascript; charset=utf-8",
    "encryption.js" => "text/javascript; charset=utf-8",
    "plugins.js" => "text/javascript; charset=utf-8",
    "audit.js" => "text/javascript; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Where the files come from: the binary, or (for working on the console)
/// a directory named by `CREDHOST_CONSOLE_DIR`, read at every request.
#[derive(Clone, Default)]
pub struct Files {
    dir: Option<PathBuf>,
}

impl Files {
    pub fn from_env() -> Self {
        Self {
            dir: std::env::var_os("CREDHOST_CONSOLE_DIR").map(PathBuf::from),
        }
    }

    fn get(&self, name: &str) -> Option<(&'static str, Vec<u8>)> {
        let (_, kind, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
        let bytes = match &self.dir {
            Some(dir) => std::fs::read(dir.join(name)).ok()?,
            None => bytes.to_vec(),
        };
        Some((kind, bytes))
    }
}

fn answer(files: &Files, name: &str) -> Response {
    let Some((kind, bytes)) = files.get(name) else {
        return super::errors::ApiError::not_found().into_response();
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The console's front page.
#[utoipa::path(get, path = "/console/", tag = "console",
    responses((status = 200, description = "The web console", content_type = "text/html", body = String)))]
pub async fn index(
    State(_): State<AppState>,
    axum::Extension(files): axum::Extension<Files>,
) -> Response {
    answer(&files, "index.html")
}

/// One of the console's files (scripts, styles).
#[utoipa::path(get, path = "/console/{file}", tag = "console", params(("file" = String, Path)),
    responses((status = 200, description = "A file of the console", body = String),
              (status = 404, description = "No such file")))]
pub async fn file(
    State(_): State<AppState>,
    axum::Extension(files): axum::Extension<Files>,
    // A name that does not decode (`%FF`) is no file of the console: a 404
    // in the envelope, not axum's plain-text refusal.
    PathId(name): PathId,
) -> Response {
    answer(&files, name.as_deref().unwrap_or_default())
}

/// The root leads to the console.
#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 303, description = "To /console/")))]
pub async fn root(State(_): State<AppState>) -> Redirect {
    Redirect::to("/console/")
}

/// Whether a path is the console's (static files: no authentication).
pub fn is_console(path: &str) -> bool {
    path == "/" || path == "/console" || path.starts_with("/console/")
}
