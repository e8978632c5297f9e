//! What keeps a web page in the operator's browser from using the API: a
//! page can make the browser send requests here, but
//! - only to a `Host` that names this server (an IP literal, `localhost`,
//!   or a configured name): a page on a name it re-pointed at this address
//!   (DNS rebinding) is refused, so it can neither read answers nor act;
//! - not from another origin: a request whose `Origin` is neither this
//!   server's own nor configured is refused, and so is one a browser marks
//!   `Sec-Fetch-Site: cross-site` or `same-site`;
//! - not with a body a form or a "simple" cross-origin request can send
//!   (`text/plain`, form encodings, multipart): obshell's SDK sends no
//!   `Content-Type`, curl and the other clients send JSON.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;

#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Extra names `Host` may carry (lower case, without port).
    pub names: Vec<String>,
    /// Extra origins allowed to call (`scheme://host[:port]`, lower case).
    pub origins: Vec<String>,
    /// Whether this server speaks HTTPS (its own origin's scheme).
    pub tls: bool,
}

/// The host part of a `Host` value: `name`, `1.2.3.4` or `::1` (from
/// `[::1]`), without the port; None if it is not a plausible authority.
fn host_of(authority: &str) -> Option<&str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return (after.is_empty() || after.starts_with(':')).then_some(ip);
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then_some(host)
}

impl Guard {
    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::HOST) else {
            // Browsers always send Host; a client that does not is not one.
            return true;
        };
        let Some(host) = value.to_str().ok().and_then(host_of) else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host.parse::<IpAddr>().is_ok() || host == "localhost" || self.names.contains(&host)
    }

    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        let scheme = if self.tls { "https" } else { "http" };
        let own = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| origin == format!("{scheme}://{}", host.to_ascii_lowercase()));
        own || self.origins.contains(&origin)
    }

    fn fetch_site_allowed(&self, headers: &HeaderMap) -> bool {
        match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some("cross-site" | "same-site") => {
                // Allowed only where the origin was configured on purpose.
                headers
                    .get(header::ORIGIN)
                    .and_then(|o| o.to_str().ok())
                    .is_some_and(|o| self.origins.contains(&o.to_ascii_lowercase()))
            }
            _ => true,
        }
    }
}

/// A content type a browser sends cross-origin without asking first.
fn form_like(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_TYPE).iter().any(|value| {
        let essence = value
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(
            essence.as_str(),
            "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
        ) || value.to_str().is_err()
    })
}

pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !guard.host_allowed(headers) {
        return ApiError::forbidden(
            "Security.Host.NotAllowed",
            "the Host header does not name this server; add the name to server_names",
        )
        .into_response();
    }
    if !guard.origin_allowed(headers) || !guard.fetch_site_allowed(headers) {
        return ApiError::forbidden(
            "Security.Origin.NotAllowed",
            "cross-origin requests are refused; add the origin to allowed_origins",
        )
        .into_response();
    }
    if form_like(headers) {
        return ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Request.ContentType.NotAllowed",
            "send JSON (Content-Type: application/json) or no Content-Type",
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn hosts() {
        let guard = Guard {
            names: vec!["creds.example".into()],
            ..Guard::default()
        };
        for ok in [
            "127.0.0.1:2886",
            "localhost:2886",
            "LOCALHOST",
            "[::1]:2886",
            "creds.example.",
            "creds.example:443",
        ] {
            assert!(guard.host_allowed(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in [
            "rebind.evil.example",
            "evil.example:2886",
            "[::1",
            ":2886",
            "localhost.evil",
        ] {
            assert!(!guard.host_allowed(&headers(&[("host", bad)])), "{bad}");
        }
        assert!(guard.host_allowed(&HeaderMap::new()));
    }

    #[test]
    fn origins() {
        let guard = Guard {
            origins: vec!["https://console.example".into()],
            ..Guard::default()
        };
        let own = headers(&[
            ("host", "127.0.0.1:2886"),
            ("origin", "http://127.0.0.1:2886"),
        ]);
        assert!(guard.origin_allowed(&own));
        let evil = headers(&[
            ("host", "127.0.0.1:2886"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!guard.origin_allowed(&evil));
        let null = headers(&[("host", "127.0.0.1:2886"), ("origin", "null")]);
        assert!(!guard.origin_allowed(&null));
        let configured = headers(&[
            ("host", "127.0.0.1:2886"),
            ("origin", "https://console.example"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert!(guard.origin_allowed(&configured) && guard.fetch_site_allowed(&configured));
        let cross = headers(&[("sec-fetch-site", "cross-site")]);
        assert!(!guard.fetch_site_allowed(&cross));
        assert!(guard.fetch_site_allowed(&headers(&[("sec-fetch-site", "same-origin")])));
    }

    #[test]
    fn content_types() {
        assert!(!form_like(&HeaderMap::new()));
        assert!(!form_like(&headers(&[(
            "content-type",
            "application/json"
        )])));
        for bad in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "Multipart/Form-Data; boundary=x",
        ] {
            assert!(form_like(&headers(&[("content-type", bad)])), "{bad}");
        }
    }
}
