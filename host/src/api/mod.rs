//! HTTP: routing, the obshell envelope and error catalogue, request decoding.
//! Knows nothing of redb or wasmtime.

pub mod auth;
mod decode;
mod envelope;
mod errors;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
mod handlers;
mod identity;
mod openapi;
mod query;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use axum::routing::{get, post, put};

pub use envelope::Reply;
pub use errors::ApiError;
pub use handlers::AppState;

/// How the front door is kept, besides authentication.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    pub guard: guard::Guard,
    /// A request that takes longer is answered 503 and its work dropped.
    pub request_timeout: Duration,
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

/// The whole API. Every route but the public ones (`/api/v1/info`,
/// `/api/v1/secret`, the OpenAPI document) goes through `auth`; every
/// request through the guard and the deadline.
pub fn router(
    state: AppState,
    auth: Arc<auth::Authenticator>,
    door: FrontDoor,
    addr: SocketAddr,
) -> Router {
    use handlers::*;
    let public = Router::new()
        .route("/api/v1/info", get(identity::info))
        .route("/api/v1/secret", get(identity::secret))
        .with_state(identity::Identity {
            auth: auth.clone(),
            addr,
        });
    Router::new()
        .route(
            "/api/v1/security/credential",
            post(create).fallback(not_found),
        )
        .route(
            "/api/v1/security/credential/validate",
            post(validate).fallback(shadowed),
        )
        .route(
            "/api/v1/security/credential/encrypt-secret-key",
            put(replace_key).fallback(shadowed),
        )
        .route(
            "/api/v1/security/credential/{id}",
            get(get_one)
                .patch(update)
                .delete(delete_one)
                .fallback(not_found),
        )
        .route(
            "/api/v1/security/credentials",
            get(list).delete(delete_many).fallback(not_found),
        )
        .route(
            "/api/v1/security/credentials/validate",
            post(validate_many).fallback(not_found),
        )
        .route(
            "/api/v1/security/keys/rotate",
            post(rotate_key).fallback(not_found),
        )
        .route(
            "/api/v1/security/encryption",
            get(encryption).fallback(not_found),
        )
        .route(
            "/api/v1/security/encryption/policy",
            put(set_policy).fallback(not_found),
        )
        .route(
            "/api/v1/security/encryption/rewrap",
            post(resume_rewrap).fallback(not_found),
        )
        .route("/api/v1/plugins", get(plugins).fallback(not_found))
        .route(
            "/api/v1/plugins/reload",
            post(reload_plugins).fallback(not_found),
        )
        .route("/api/v1/openapi.json", get(openapi::document))
        .with_state(state)
        .merge(public)
        .route_layer(middleware::from_fn_with_state(auth, auth::authenticate))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            door.request_timeout,
            deadline,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(door.guard),
            guard::guard,
        ))
        .layer(middleware::from_fn(envelope::envelope))
}
