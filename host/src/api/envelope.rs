//! obshell's response envelope, written in one place: handlers answer with a
//! `Reply`, and the `envelope` middleware wraps it with the timing and trace id
//! of the request.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use serde::Serialize;
use serde_json::value::RawValue;

use super::errors::ApiError;
use super::refusal_log;
use crate::clock;

pub const TRACE_HEADER: &str = "x-obshell-trace-id";
/// The response header naming the server's id of the request.
pub const REQUEST_ID_HEADER: &str = "x-credhost-request-id";

/// What a handler answered, before it is enveloped.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Serialised once, here; the envelope embeds it as it is.
    Data(Box<RawValue>),
    /// Success without a `data` key (delete, key rotation).
    Empty,
}

impl Reply {
    pub fn of(data: impl Serialize) -> Self {
        Reply::Data(
            serde_json::value::to_raw_value(&data).expect("response data always serialises"),
        )
    }
}

#[derive(Debug, Clone)]
struct Outcome(Result<Reply, ApiError>);

/// The request's trace id, as the envelope will show it.
#[derive(Debug, Clone)]
pub struct TraceId(pub String);

/// The id the server gives each request, for the audit log: unlike the
/// trace id, which a client may choose and reuse, no two requests share it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The `errCode` a response will carry, before it is enveloped.
pub fn error_code(response: &Response) -> Option<String> {
    match response.extensions().get::<Outcome>() {
        Some(Outcome(Err(e))) => Some(e.err_code.clone()),
        _ => None,
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = StatusCode::OK.into_response();
        response.extensions_mut().insert(Outcome(Ok(self)));
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(Outcome(Err(self)));
        response
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    successful: bool,
    timestamp: String,
    duration: u128,
    status: u16,
    #[serde(rename = "traceId")]
    trace_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

#[derive(Serialize)]
struct ErrorBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i64>,
    #[serde(rename = "errCode")]
    err_code: String,
    message: String,
}

fn trace_id(request: &Request) -> String {
    request
        .headers()
        .get(TRACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()))
}

/// A bug that panics in a handler ends its request with a 500 in the
/// envelope, counted and audited as any other answer, not a connection
/// dropped without one (the panic itself is in the log).
pub async fn catch_panics(request: Request, next: Next) -> Response {
    caught(next.run(request)).await
}

async fn caught(answer: impl std::future::Future<Output = Response>) -> Response {
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Common.Unexpected",
            "an internal error ended this request (see the server's log)",
        )
        .into_response(),
    }
}

pub async fn envelope(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let trace = trace_id(&request);
    request.extensions_mut().insert(TraceId(trace.clone()));
    let request_id = hex::encode(rand::random::<[u8; 16]>());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let method = super::observe::method_name(request.method());
    // The URI's parts are shared, not copied: it is kept only for the log.
    let uri = request.uri().clone();
    let path = uri.path();
    let client = (request.extensions().get::<super::auth::ClientAddr>()).map(|c| c.0.ip());
    // The last resort for a bug that panics in a middleware (a handler's
    // is caught nearer, by `catch_panics`).
    let mut response = caught(next.run(request)).await;
    // So a client can name the very request it means (its audit records).
    response.headers_mut().insert(
        REQUEST_ID_HEADER,
        HeaderValue::from_str(&request_id).expect("hex is a header value"),
    );
    let Some(Outcome(outcome)) = response.extensions_mut().remove::<Outcome>() else {
        return response;
    };
    let status = response.status();
    let duration = started.elapsed();
    let (data, error) = match outcome {
        Ok(Reply::Data(data)) => (Some(data), None),
        Ok(Reply::Empty) => (None, None),
        Err(e) => {
            if let Some(seconds) = e.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            // `{:?}`: a message may hold the client's text, and quoted and
            // escaped it cannot start a log line of its own.
            if let Some(dropped) =
                refusal_log::admit(client, status == StatusCode::INTERNAL_SERVER_ERROR)
            {
                let (path, message) = (refusal_log::cut(path), refusal_log::cut(&e.message));
                if dropped > 0 {
                    tracing::info!(
                        dropped,
                        "lines of refused requests were dropped, over the log's budget"
                    );
                }
                tracing::info!(%method, %path, status = status.as_u16(), err_code = %e.err_code, trace = ?trace, "request refused: {message:?}");
            }
            (
                None,
                Some(ErrorBody {
                    code: e.code,
                    err_code: e.err_code,
                    message: e.message,
                }),
            )
        }
    };
    tracing::debug!(%method, path = %refusal_log::cut(path), status = status.as_u16(), ms = duration.as_millis(), trace = ?trace, "request");
    let body = Envelope {
        successful: error.is_none(),
        timestamp: clock::format_now_precise(),
        duration: duration.as_millis(),
        status: status.as_u16(),
        trace_id: &trace,
        data,
        error,
    };
    let bytes = serde_json::to_vec(&body).expect("the envelope always serialises");
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Credentials' metadata, token records, audit records: an API URL
    // opened in a browser must not leave them in its disk cache.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    *response.body_mut() = axum::body::Body::from(bytes);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_handler_that_panics_gets_a_500_in_the_envelope() {
        async fn broken() -> Result<Reply, ApiError> {
            panic!("a bug");
        }
        let routes = axum::Router::new()
            .route("/broken", axum::routing::get(broken))
            .route_layer(axum::middleware::from_fn(catch_panics));
        // Caught next to the handler, so the layers around it (which count
        // and audit requests) see an answer.
        let request = || {
            Request::builder()
                .uri("/broken")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let bare = routes.clone().oneshot(request()).await.unwrap();
        assert_eq!(bare.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let app = routes.layer(axum::middleware::from_fn(envelope));
        let response = app.oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            envelope["error"]["errCode"], "Common.Unexpected",
            "{envelope}"
        );
    }
}
