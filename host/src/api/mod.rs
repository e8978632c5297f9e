//! HTTP: routing, the obshell envelope and error catalogue, request decoding.
//! Knows nothing of redb or wasmtime.

pub mod auth;
mod decode;
mod envelope;
mod errors;
mod handlers;
mod identity;
mod openapi;
mod query;

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post, put};

pub use envelope::Reply;
pub use errors::ApiError;
pub use handlers::AppState;

/// The whole API. Every route but the public ones (`/api/v1/info`,
/// `/api/v1/secret`, the OpenAPI document) goes through `auth`.
pub fn router(state: AppState, auth: Arc<auth::Authenticator>, addr: SocketAddr) -> Router {
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
        .layer(middleware::from_fn(envelope::envelope))
}
