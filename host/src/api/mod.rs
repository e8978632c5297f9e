//! HTTP: routing, the obshell envelope and error catalogue, request decoding.
//! Knows nothing of redb or wasmtime.

mod decode;
mod envelope;
mod errors;
mod handlers;
mod openapi;
mod query;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post, put};

pub use envelope::Reply;
pub use errors::ApiError;
pub use handlers::AppState;

pub fn router(state: AppState) -> Router {
    use handlers::*;
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
        .route("/api/v1/openapi.json", get(openapi::document))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(envelope::envelope))
}
