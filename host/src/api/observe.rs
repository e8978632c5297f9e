//! What every request leaves behind: an audit record and metrics. The
//! layers and handlers that learn something about a request (who sent it,
//! which route it took, which credentials it touched) write it on the
//! request's `Note`; `observe` reads the note once the answer is ready.
//! `gate` makes a change wait until the audit log has its record.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::cell::RefCell;
use std::collections::HashMap;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::decode::{self, PathId};

use super::auth::ClientAddr;
use super::envelope::{RequestId, TraceId, error_code};
use super::errors::ApiError;
use crate::audit::Audit;
use crate::connections::{Admitted, Over};
use crate::service::Principal;

#[derive(Default)]
struct Noted {
    principal: Option<Principal>,
    route: Option<MatchedPath>,
    credential_ids: Vec<u64>,
    /// The v2 header's `keys`, only ever written as an HMAC.
    header_keys: Option<zeroize::Zeroizing<String>>,
    /// Credentials were sent and refused.
    credentials_refused: bool,
    /// Its caller was past its rate (see `auth::pace`).
    throttled: bool,
}

/// What is learnt about one request on its way through.
#[derive(Clone, Default)]
pub struct Note(Arc<Mutex<Noted>>);

impl Note {
    fn with<T>(&self, f: impl FnOnce(&mut Noted) -> T) -> T {
        f(&mut self.0.lock().expect("request note lock"))
    }

    pub fn set_principal(&self, principal: &Principal) {
        self.with(|n| n.principal = Some(principal.clone()));
    }

    pub fn set_route(&self, route: &MatchedPath) {
        self.with(|n| n.route = Some(route.clone()));
    }

    pub fn set_header_keys(&self, keys: &str) {
        self.with(|n| n.header_keys = Some(zeroize::Zeroizing::new(keys.to_string())));
    }

    /// The credentials the request touched.
    pub fn add_ids(&self, ids: impl IntoIterator<Item = u64>) {
        self.with(|n| n.credential_ids.extend(ids));
    }

    pub fn set_credentials_refused(&self) {
        self.with(|n| n.credentials_refused = true);
    }

    pub fn set_throttled(&self) {
        self.with(|n| n.throttled = true);
    }

    /// Whether the request is recorded whatever the rate: not when nobody
    /// was authenticated, nor when a caller without credentials was let in
    /// (a public route, or every route without a password), nor when its
    /// caller was refused for going too fast.
    fn accountable(&self) -> bool {
        self.with(|n| !n.throttled && !matches!(n.principal, None | Some(Principal::Anonymous)))
    }

    fn credentials_refused(&self) -> bool {
        self.with(|n| n.credentials_refused)
    }

    fn route(&self) -> Option<MatchedPath> {
        self.with(|n| n.route.clone())
    }

    /// The request's audit record, as a JSON object: the fields every
    /// record of it carries, then what `answer` says of how it ended.
    fn record(
        &self,
        audit: &Audit,
        kind: &str,
        parts: &RequestParts,
        answer: Option<Answered>,
    ) -> String {
        self.with(|n| {
            let principal = match &n.principal {
                None => Who {
                    kind: "unauthenticated",
                    id: None,
                    name: None,
                },
                Some(Principal::Token { id, name, .. }) => Who {
                    kind: "token",
                    id: Some(audit.hash(id)),
                    name: Some(name),
                },
                Some(other) => Who {
                    kind: other.kind(),
                    id: None,
                    name: None,
                },
            };
            let record = Record {
                time: crate::audit::now(),
                kind,
                request_id: &parts.request_id,
                trace_id: &parts.trace,
                principal,
                client: parts.peer,
                method: method_name(&parts.method),
                route: route_name(n.route.as_ref()),
                header_keys: n.header_keys.as_ref().map(|keys| audit.hash(keys)),
                credential_ids: (!n.credential_ids.is_empty()).then_some(&n.credential_ids),
                status: answer.as_ref().map(|a| a.status),
                error_code: answer.as_ref().map(|a| a.error_code.as_deref()),
                duration_ms: answer.as_ref().map(|a| a.duration_ms),
                unrecorded_before: answer
                    .as_ref()
                    .and_then(|a| a.unrecorded_before)
                    .filter(|n| *n > 0),
            };
            serde_json::to_string(&record).expect("an audit record serialises")
        })
    }
}

/// How a request ended, for its record.
struct Answered {
    status: u16,
    error_code: Option<String>,
    duration_ms: f64,
    unrecorded_before: Option<u64>,
}

#[derive(Serialize)]
struct Who<'a> {
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// One request's audit record, written straight to its line's text.
#[derive(Serialize)]
struct Record<'a> {
    time: String,
    #[serde(rename = "type")]
    kind: &'a str,
    request_id: &'a str,
    /// The envelope's `traceId`, which the client may have chosen.
    trace_id: &'a str,
    principal: Who<'a>,
    client: Option<std::net::IpAddr>,
    method: &'a str,
    route: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_keys: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_ids: Option<&'a Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    /// Requests of this client nobody authenticated that got no record
    /// since its last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    unrecorded_before: Option<u64>,
}

impl<S: Send + Sync> FromRequestParts<S> for Note {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Note>().cloned().unwrap_or_default())
    }
}

fn route_name(route: Option<&MatchedPath>) -> &str {
    route.map_or("unmatched", MatchedPath::as_str)
}

/// A request's metrics: its count and its duration.
type RequestHandles = (metrics::Counter, metrics::Histogram);

/// A worker's request metrics of one method and status, by route.
type ByRoute = HashMap<String, RequestHandles>;

thread_local! {
    /// Each worker's handles on the request metrics, by method and status,
    /// then route: looking a labelled metric up builds its key anew (three
    /// strings, a hash, a lock), which costs more than a small request's
    /// own work; these few dozen handles are found with one hash.
    static REQUEST_METRICS: RefCell<HashMap<(&'static str, u16), ByRoute>> = RefCell::default();
}

/// A request's method as metrics, logs and the audit log name it: HTTP's
/// own methods by name, any other as `OTHER`. A method is any token the
/// client likes, up to the header limit: named as sent, each new one would
/// add a metric series for good, and a long one would be copied into every
/// line about its request.
pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Counts a request and records its duration.
fn count_request(route: &str, method: &Method, status: StatusCode, elapsed: f64) {
    REQUEST_METRICS.with_borrow_mut(|cache| {
        let method = method_name(method);
        let by_route = cache.entry((method, status.as_u16())).or_default();
        if !by_route.contains_key(route) {
            let handles = (
                metrics::counter!("credhost_http_requests_total",
                    "route" => route.to_string(), "method" => method,
                    "status" => status.as_str().to_string()),
                metrics::histogram!("credhost_http_request_duration_seconds",
                    "route" => route.to_string(), "method" => method),
            );
            by_route.insert(route.to_string(), handles);
        }
        let (counter, histogram) = &by_route[route];
        counter.increment(1);
        histogram.record(elapsed);
    });
}

struct RequestParts {
    request_id: String,
    trace: String,
    peer: Option<std::net::IpAddr>,
    method: Method,
}

fn parts_of(request: &Request) -> RequestParts {
    RequestParts {
        request_id: request
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        trace: request
            .extensions()
            .get::<TraceId>()
            .map(|t| t.0.clone())
            .unwrap_or_default(),
        peer: request.extensions().get::<ClientAddr>().map(|c| c.0.ip()),
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
    count_request(
        route_name(route.as_ref()),
        &parts.method,
        status,
        elapsed.as_secs_f64(),
    );
    if audit.enabled() {
        // A request nobody answers for is recorded within its client's
        // allowance, so a flood of them cannot rotate the log away.
        let unrecorded_before = match parts.peer {
            Some(peer) if !note.accountable() => {
                // Refusals by authentication have an allowance of their own,
                // which junk requests cannot spend.
                match audit.admit_unauthenticated(peer, note.credentials_refused()) {
                    Some(skipped) => Some(skipped),
                    None => return response,
                }
            }
            _ => None,
        };
        let answered = Answered {
            status: status.as_u16(),
            error_code: error_code(&response),
            duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            unrecorded_before,
        };
        audit.record_json(note.record(&audit, "request", &parts, Some(answered)));
    }
    response
}

/// Changes under way at once, and of one client. A change runs to its end
/// even when its client is gone, so the connection caps no longer bound
/// them: these do, and one client cannot take every place.
const MAX_CHANGES: usize = 256;
const MAX_CHANGES_PER_CLIENT: usize = 64;

/// The changes under way (see [`gate`]): bounded, and waited for when the
/// server stops.
#[derive(Debug, Clone)]
pub struct Changes(crate::connections::Caps);

impl Default for Changes {
    fn default() -> Self {
        Self(crate::connections::Caps::new(
            MAX_CHANGES,
            MAX_CHANGES_PER_CLIENT,
        ))
    }
}

impl Changes {
    /// Waits, up to `within`, until no change is under way, and takes no
    /// more: says whether every one ended.
    pub async fn drained(&self, within: std::time::Duration) -> bool {
        self.0.drained(within).await
    }

    /// A place for a change of `client`'s, or why there is none.
    fn admit(&self, client: std::net::IpAddr) -> Result<Admitted, Over> {
        self.0.admit(client)
    }
}

/// What [`gate`] needs: the audit log and the changes under way.
#[derive(Clone)]
pub struct Gate {
    pub audit: Arc<Audit>,
    pub changes: Changes,
}

/// A request that may change something waits until the audit log holds
/// its record (if the log cannot be written, nothing is changed), then
/// runs to its end in a task of its own.
pub async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let audit = gate.audit;
    let note = request
        .extensions()
        .get::<Note>()
        .cloned()
        .unwrap_or_default();
    // The credential a change names in its path is in the record written
    // before it, which alone is sure to be on disk should the server die
    // (and, being noted, in the record of its outcome too).
    let (mut parts, body) = request.into_parts();
    if note.route().is_some_and(|r| r.as_str() == CREDENTIAL_BY_ID) {
        let Ok(PathId(id)) = PathId::from_request_parts(&mut parts, &()).await;
        let id = decode::credential_id(id.as_deref()).ok();
        note.add_ids(id.and_then(|id| u64::try_from(id).ok()));
    }
    let request = Request::from_parts(parts, body);
    let request_parts = parts_of(&request);
    if audit.enabled() {
        let record = note.record(&audit, "request.begin", &request_parts, None);
        if let Err(e) = audit.record_json_durably(record).await {
            tracing::error!(
                route = route_name(note.route().as_ref()),
                "change refused: {e}"
            );
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Audit.Unavailable",
                format!("{e}; nothing was changed"),
            );
            error.retry_after = Some(5);
            return error.into_response();
        }
    }
    // A validation proves credentials and changes none: cut short with its
    // request, it leaves nothing half done, and its work stops.
    if note
        .route()
        .is_some_and(|r| VALIDATIONS.contains(&r.as_str()))
    {
        return next.run(request).await;
    }
    // The body first, within the request's deadline: a change that runs
    // to its end must not wait on a client that sends slowly, nor hold
    // its place while it does.
    let (parts, body) = request.into_parts();
    let body = match decode::whole(body).await {
        Ok(bytes) => axum::body::Body::from(bytes),
        Err(e) => return e.into_response(),
    };
    // The local socket's callers, who have no address, count as one.
    let client = request_parts
        .peer
        .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    let place = match gate.changes.admit(client) {
        Ok(place) => place,
        Err(over) => {
            let whose = match over {
                Over::Total => format!("{MAX_CHANGES} changes"),
                Over::Client => {
                    format!("{MAX_CHANGES_PER_CLIENT} changes of this client")
                }
            };
            return ApiError::unavailable(
                format!("{whose} are under way; nothing was changed, retry"),
                1,
            )
            .into_response();
        }
    };
    let request = Request::from_parts(parts, body);
    run_to_its_end(audit, note, request_parts, place, next.run(request)).await
}

/// The routes that validate.
const VALIDATIONS: [&str; 2] = [
    "/api/v1/security/credential/validate",
    "/api/v1/security/credentials/validate",
];

/// A change, once begun, runs to its end in a task of its own, holding
/// its `place` among the changes under way. Dropped with its request (the
/// client went away, the deadline passed) it could stop between a write
/// and what must follow it: a token revoked in the database but still
/// taken, a credential deleted with no record of which. If nobody waits
/// for the answer any more, its outcome is recorded here
/// (`request.finished`), since the request's own record says only how the
/// request ended.
async fn run_to_its_end(
    audit: Arc<Audit>,
    note: Note,
    parts: RequestParts,
    place: Admitted,
    change: impl std::future::Future<Output = Response> + Send + 'static,
) -> Response {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    tokio::spawn(async move {
        let response = change.await;
        if let Err(response) = answer.send(response)
            && audit.enabled()
        {
            let finished = Answered {
                status: response.status().as_u16(),
                error_code: error_code(&response),
                duration_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
                unrecorded_before: None,
            };
            audit.record_json(note.record(&audit, "request.finished", &parts, Some(finished)));
        }
        drop(place);
    });
    answered.await.unwrap_or_else(|_| {
        // The task panicked past `catch_panics`, which answers for a
        // handler's own panics.
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Common.Unexpected",
            "an internal error ended this request (see the server's log)",
        )
        .into_response()
    })
}

/// The one route that names a credential in its path.
const CREDENTIAL_BY_ID: &str = "/api/v1/security/credential/{id}";

#[cfg(test)]
mod tests {
    /// A request's notes hold its v2 header's body key: without `Debug`,
    /// no log line can print them.
    #[test]
    fn notes_cannot_be_debug_printed() {
        static_assertions::assert_not_impl_any!(super::Note: std::fmt::Debug);
        static_assertions::assert_not_impl_any!(super::Noted: std::fmt::Debug);
    }
}
