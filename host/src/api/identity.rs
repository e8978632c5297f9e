//! What a client asks before it authenticates: who we are, and our key.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use serde_json::json;

use super::auth::Authenticator;
use super::envelope::Reply;

/// obshell clients gate features on the agent version; credhost speaks the
/// credential API of obshell 4.3.1, and says which build it is after that.
pub const AGENT_VERSION: &str = concat!("4.3.1.0-credhost-", env!("CARGO_PKG_VERSION"));

#[derive(Clone)]
pub struct Identity {
    pub auth: Arc<Authenticator>,
    pub addr: SocketAddr,
}

/// Who answers: what obshell clients ask first (no authentication).
#[utoipa::path(get, path = "/api/v1/info", tag = "identity",
    responses((status = 200, body = super::schema::Envelope<super::schema::Info>), super::schema::Refusals))]
pub async fn info(State(_): State<Identity>) -> Reply {
    Reply::of(json!({
        "identity": "CLUSTER AGENT",
        "version": AGENT_VERSION,
        "supportedAuth": ["v2"],
        "security": false,
        "isObproxyAgent": false,
    }))
}

/// The RSA public key the v2 header is encrypted to (no authentication).
#[utoipa::path(get, path = "/api/v1/secret", tag = "identity",
    responses((status = 200, body = super::schema::Envelope<super::schema::PublicKey>), super::schema::Refusals))]
pub async fn secret(State(identity): State<Identity>) -> Reply {
    Reply::of(json!({
        "ip": identity.addr.ip().to_string(),
        "port": identity.addr.port(),
        "public_key": identity.auth.public_key_base64(),
    }))
}
