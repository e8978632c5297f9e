//! HTTP: routing, the obshell envelope and error catalogue, request decoding.
//! Knows nothing of redb or wasmtime.

pub mod auth;
mod caller;
mod console;
mod decode;
mod envelope;
mod errors;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
mod handlers;
mod identity;
pub mod observe;
mod openapi;
mod operators;
mod query;
mod refusal_log;
pub mod schema;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use envelope::Reply;
pub use errors::ApiError;
pub use handlers::AppState;
pub use observe::Note;

/// How the front door is kept, besides authentication.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    pub guard: guard::Guard,
    /// A request that takes longer is answered 503 and its work dropped,
    /// unless it is a change already under way (see `observe::gate`).
    pub request_timeout: Duration,
    /// The changes under way, which the server waits for as it stops.
    pub changes: observe::Changes,
}

/// Answers 503 when a request outlives its deadline (a slowly sent body,
/// a handler waiting on something stuck), so no request holds its
/// connection and its resources forever.
async fn deadline(
    State(limit): State<Duration>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "Request.Timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// `/metrics` alone, without authentication, for `--metrics-listen`;
/// behind the same guard as the API, so a web page cannot read it by
/// rebinding its own name to the listener's address.
pub fn metrics_router(state: AppState, guard: guard::Guard) -> Router {
    Router::new()
        .route("/metrics", get(operators::metrics))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            Arc::new(guard),
            guard::guard,
        ))
}

/// Every route, each with its OpenAPI operation: a route served is a route
/// documented, and the other way round.
fn routes(auth: Arc<auth::Authenticator>, addr: SocketAddr) -> OpenApiRouter<AppState> {
    use handlers::*;
    let public = OpenApiRouter::new()
        .routes(routes!(identity::info))
        .routes(routes!(identity::secret))
        .with_state(identity::Identity { auth, addr });
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(create))
        .routes(routes!(validate))
        .routes(routes!(replace_key))
        .routes(routes!(get_one, update, delete_one))
        .routes(routes!(list, delete_many))
        .routes(routes!(validate_many))
        .routes(routes!(last_validations))
        .routes(routes!(rotate_key))
        .routes(routes!(encryption))
        .routes(routes!(set_policy))
        .routes(routes!(resume_rewrap))
        .routes(routes!(plugins))
        .routes(routes!(reload_plugins))
        .routes(routes!(operators::create_token, operators::list_tokens))
        .routes(routes!(operators::whoami))
        .routes(routes!(operators::revoke_token))
        .routes(routes!(operators::audit_records))
        .routes(routes!(operators::audit_hash))
        .routes(routes!(operators::metrics))
        .routes(routes!(operators::cluster))
        .routes(routes!(openapi::document))
        .routes(routes!(console::root))
        .routes(routes!(console::index))
        .routes(routes!(console::file))
        .merge(public)
}

/// The OpenAPI document of the routes, before the loaded plugins' schemas
/// are merged in (tests compare it with what the router serves).
pub fn documented(auth: Arc<auth::Authenticator>, addr: SocketAddr) -> utoipa::openapi::OpenApi {
    routes(auth, addr).into_openapi()
}

/// A method a path does not take: obshell (gin) answers 404, except where
/// its `/credential/{id}` route shadows a static one.
async fn method_fallback(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    match uri.path() {
        "/api/v1/security/credential/validate"
        | "/api/v1/security/credential/encrypt-secret-key" => decode::shadowed_by_id_route(&method),
        _ => ApiError::not_found(),
    }
}

/// The whole API. Every route but the public ones (`/api/v1/info`,
/// `/api/v1/secret`, the OpenAPI document) goes through `auth`; every
/// request through the guard and the deadline.
pub fn router(
    state: AppState,
    auth: Arc<auth::Authenticator>,
    door: FrontDoor,
    addr: SocketAddr,
) -> Router {
    let audit = state.audit().clone();
    let (router, document) = routes(auth.clone(), addr).split_for_parts();
    router
        .method_not_allowed_fallback(method_fallback)
        .layer(axum::Extension(openapi::Base::new(document)))
        .layer(axum::Extension(console::Files::from_env()))
        .with_state(state)
        .route_layer(middleware::from_fn(envelope::catch_panics))
        .route_layer(middleware::from_fn_with_state(
            observe::Gate {
                audit: audit.clone(),
                changes: door.changes.clone(),
            },
            observe::gate,
        ))
        .route_layer(middleware::from_fn_with_state(auth, auth::authenticate))
        .fallback(handlers::not_found)
        .layer(middleware::from_fn_with_state(
            door.request_timeout,
            deadline,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(door.guard),
            guard::guard,
        ))
        .layer(middleware::from_fn_with_state(audit, observe::observe))
        .layer(middleware::from_fn(envelope::envelope))
}
