//! Whom a request's work is done for, so that slow work (verification) is
//! shared fairly between clients.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::auth::ClientAddr;
use crate::budget::Client;
use crate::service::Principal;

/// The client a request's verifications count against: its API token, or
/// else its address.
pub struct Caller(pub Client);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let key = match parts.extensions.get::<Principal>() {
            Some(Principal::Token { id, .. }) => format!("token:{id}"),
            _ => parts
                .extensions
                .get::<ClientAddr>()
                .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string()),
        };
        Ok(Caller(Client::new(key)))
    }
}
