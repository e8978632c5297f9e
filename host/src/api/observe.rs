//! What every request leaves behind: an audit record and metrics. The
//! layers and handlers that learn something about a request (who sent it,
//! which route it took, which credentials it touched) write it on the
//! request's `Note`; `observe` reads the note once the answer is ready.
//! `gate` makes a change wait until the audit log has its record.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::ClientAddr;
use super::envelope::{TraceId, error_code};
use super::errors::ApiError;
use crate::audit::Audit;
use crate::service::Principal;

#[derive(Debug, Default)]
struct Noted {
    principal: Option<Principal>,
    route: Option<String>,
    credential_ids: Vec<u64>,
    /// The v2 header's `keys`, only ever written as an HMAC.
    header_keys: Option<zeroize::Zeroizing<String>>,
}

/// What is learnt about one request on its way through.
#[derive(Debug, Clone, Default)]
pub struct Note(Arc<Mutex<Noted>>);

impl Note {
    fn with<T>(&self, f: impl FnOnce(&mut Noted) -> T) -> T {
        f(&mut self.0.lock().expect("request note lock"))
    }

    pub fn set_principal(&self, principal: &Principal) {
        self.with(|n| n.principal = Some(principal.clone()));
    }

    pub fn set_route(&self, route: &str) {
        self.with(|n| n.route = Some(route.to_string()));
    }

    pub fn set_header_keys(&self, keys: &str) {
        self.with(|n| n.header_keys = Some(zeroize::Zeroizing::new(keys.to_string())));
    }

    /// The credentials the request touched.
    pub fn add_ids(&self, ids: impl IntoIterator<Item = u64>) {
        self.with(|n| n.credential_ids.extend(ids));
    }

    fn route(&self) -> String {
        self.with(|n| n.route.clone())
            .unwrap_or_else(|| "unmatched".to_string())
    }

    /// The fields every record of this request carries.
    fn fields(&self, audit: &Audit, kind: &str, parts: &RequestParts) -> Map<String, Value> {
        self.with(|n| {
            let principal = match &n.principal {
                None => json!({ "kind": "unauthenticated" }),
                Some(Principal::Token { id, name, .. }) => {
                    json!({ "kind": "token", "id": audit.hash(id), "name": name })
                }
                Some(other) => json!({ "kind": other.kind() }),
            };
            let mut fields = Map::new();
            fields.insert("time".into(), crate::audit::now().into());
            fields.insert("type".into(), kind.into());
            fields.insert("request_id".into(), parts.trace.clone().into());
            fields.insert("principal".into(), principal);
            fields.insert("client".into(), parts.client.clone());
            fields.insert("method".into(), parts.method.as_str().into());
            fields.insert(
                "route".into(),
                n.route.clone().unwrap_or_else(|| "unmatched".into()).into(),
            );
            if let Some(keys) = &n.header_keys {
                fields.insert("header_keys".into(), audit.hash(keys).into());
            }
            fields
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Note {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Note>().cloned().unwrap_or_default())
    }
}

struct RequestParts {
    trace: String,
    client: Value,
    method: Method,
}

fn parts_of(request: &Request) -> RequestParts {
    RequestParts {
        trace: request
            .extensions()
            .get::<TraceId>()
            .map(|t| t.0.clone())
            .unwrap_or_default(),
        client: request
            .extensions()
            .get::<ClientAddr>()
            .map_or(Value::Null, |c| c.0.ip().to_string().into()),
        method: request.method().clone(),
    }
}

/// Records the request once it is answered: one audit line, its metrics.
pub async fn observe(
    State(audit): State<Arc<Audit>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let note = Note::default();
    request.extensions_mut().insert(note.clone());
    let parts = parts_of(&request);
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let route = note.route();
    let method = parts.method.to_string();
    metrics::counter!("credhost_http_requests_total",
        "route" => route.clone(), "method" => method.clone(), "status" => status.as_str().to_string())
    .increment(1);
    metrics::histogram!("credhost_http_request_duration_seconds",
        "route" => route, "method" => method)
    .record(elapsed.as_secs_f64());
    if audit.enabled() {
        let mut fields = note.fields(&audit, "request", &parts);
        let ids = note.with(|n| std::mem::take(&mut n.credential_ids));
        if !ids.is_empty() {
            fields.insert("credential_ids".into(), ids.into());
        }
        fields.insert("status".into(), status.as_u16().into());
        fields.insert(
            "error_code".into(),
            error_code(&response).map_or(Value::Null, Value::from),
        );
        fields.insert(
            "duration_ms".into(),
            ((elapsed.as_secs_f64() * 1e6).round() / 1e3).into(),
        );
        audit.record(fields);
    }
    response
}

/// A request that may change something waits until the audit log holds
/// its record; if the log cannot be written, nothing is changed.
pub async fn gate(State(audit): State<Arc<Audit>>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || !audit.enabled()
    {
        return next.run(request).await;
    }
    let note = request
        .extensions()
        .get::<Note>()
        .cloned()
        .unwrap_or_default();
    let fields = note.fields(&audit, "request.begin", &parts_of(&request));
    if let Err(e) = audit.record_durably(fields).await {
        tracing::error!(route = %note.route(), "change refused: {e}");
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Audit.Unavailable",
            format!("{e}; nothing was changed"),
        );
        error.retry_after = Some(5);
        return error.into_response();
    }
    next.run(request).await
}
