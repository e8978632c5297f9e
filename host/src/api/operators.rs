//! What operators have besides obshell's API: API tokens, the audit log,
//! metrics.

use axum::Extension;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::decode::{self, Required};
use super::envelope::Reply;
use super::errors::ApiError;
use super::handlers::AppState;
use crate::service::{NewToken, Principal, Scope};

type Answer = Result<Reply, ApiError>;

/// `{"name", "scope" | "scopes", "ttl_secs"?}`; of several scopes the
/// widest counts, since each includes the ones before it.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = super::schema::NewToken,
    responses((status = 200, body = super::schema::Envelope<crate::service::IssuedToken>), super::schema::Refusals))]
pub async fn create_token(
    State(service): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Body,
) -> Answer {
    let fields = decode::fields(body, "CreateTokenParam").await?;
    let mut required = Required::new(fields.param());
    let name = required.string(&fields, "name", "Name")?;
    required.check()?;
    let mut names: Vec<String> = Vec::new();
    if let Some(scope) = fields.value("scope")? {
        names.push(
            scope
                .as_str()
                .ok_or_else(|| ApiError::illegal("scope must be a string"))?
                .to_string(),
        );
    }
    if let Some(scopes) = fields.value("scopes")? {
        let list = scopes
            .as_array()
            .ok_or_else(|| ApiError::illegal("scopes must be a list"))?;
        for scope in list {
            names.push(
                scope
                    .as_str()
                    .ok_or_else(|| ApiError::illegal("scopes must be strings"))?
                    .to_string(),
            );
        }
    }
    let scope = names
        .iter()
        .map(|n| {
            Scope::parse(n).ok_or_else(|| {
                ApiError::illegal(format!(
                    "unknown scope {n:?}; scopes: read, validate, write, admin"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .ok_or_else(|| ApiError::illegal("a token needs a scope"))?;
    let ttl_secs = fields
        .value("ttl_secs")?
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| ApiError::illegal("ttl_secs must be a positive integer"))
        })
        .transpose()?;
    let issued = service
        .create_token(
            NewToken {
                name,
                scope,
                ttl_secs,
            },
            &principal,
        )
        .await?;
    Ok(Reply::of(issued))
}

/// Every token's record, never a secret.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = super::schema::Envelope<super::schema::Tokens>), super::schema::Refusals))]
pub async fn list_tokens(State(service): State<AppState>) -> Answer {
    Ok(Reply::of(json!({ "contents": service.tokens() })))
}

/// The servers sharing this server's database, with their heartbeats and
/// plugin sets (one server of its own with the embedded store).
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster",
    responses((status = 200, body = super::schema::Envelope<crate::service::ClusterView>), super::schema::Refusals))]
pub async fn cluster(State(service): State<AppState>) -> Answer {
    Ok(Reply::of(service.cluster_view().await?))
}

/// Who the caller is: the token's record, or the kind of principal.
#[utoipa::path(get, path = "/api/v1/tokens/self", tag = "tokens",
    responses((status = 200, body = super::schema::Envelope<super::schema::Whoami>), super::schema::Refusals))]
pub async fn whoami(
    State(service): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Answer {
    match &principal {
        Principal::Token { id, .. } => Ok(Reply::of(json!({
            "kind": "token", "token": service.token(id)?,
        }))),
        other => Ok(Reply::of(json!({
            "kind": other.kind(), "scope": other.scope(), "scopes": other.scope().included(),
        }))),
    }
}

/// Revoke a token, and every token it made: refused from their next request on.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = super::schema::Envelope<crate::service::TokenView>), super::schema::Refusals))]
pub async fn revoke_token(
    State(service): State<AppState>,
    Extension(principal): Extension<Principal>,
    super::decode::PathId(id): super::decode::PathId,
) -> Answer {
    // An id that does not decode names no token.
    let id = id.ok_or(crate::service::Error::TokenNotFound)?;
    Ok(Reply::of(service.revoke_token(&id, &principal).await?))
}

/// The latest audit records, newest first: `principal` (a kind, a token
/// name, or an `hmac-sha256:` id), `route`, `outcome` (`success`,
/// `failure` or a status), `limit` (default 100, at most 1000).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(("principal" = Option<String>, Query), ("route" = Option<String>, Query),
           ("outcome" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = super::schema::Envelope<super::schema::AuditRecords>), super::schema::Refusals))]
pub async fn audit_records(State(service): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let mut principal = None;
    let mut route = None;
    let mut outcome = None;
    let mut limit = 100usize;
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "principal" if !value.is_empty() => principal = Some(value.into_owned()),
            "route" if !value.is_empty() => route = Some(value.into_owned()),
            "outcome" if !value.is_empty() => outcome = Some(value.into_owned()),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .map_err(|_| ApiError::illegal("limit must be a number"))?
                    .clamp(1, 1000)
            }
            _ => {}
        }
    }
    let records = service.audit().recent(limit, |record| {
        let who = &record["principal"];
        principal.as_ref().is_none_or(|p| {
            who["kind"] == p.as_str() || who["name"] == p.as_str() || who["id"] == p.as_str()
        }) && route.as_ref().is_none_or(|r| record["route"] == r.as_str())
            && outcome.as_ref().is_none_or(|o| {
                let status = record["status"].as_u64();
                match o.as_str() {
                    "success" => status.is_some_and(|s| s < 400),
                    "failure" => status.is_some_and(|s| s >= 400),
                    code => status.is_some_and(|s| s.to_string() == code),
                }
            })
    });
    Ok(Reply::of(json!({ "contents": records })))
}

/// `{"value": …}` → the `hmac-sha256:` form the audit log writes it in.
#[utoipa::path(post, path = "/api/v1/audit/hash", tag = "audit", request_body = super::schema::HashValue,
    responses((status = 200, body = super::schema::Envelope<super::schema::Hashed>), super::schema::Refusals))]
pub async fn audit_hash(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body, "AuditHashParam").await?;
    let mut required = Required::new(fields.param());
    let value = required.string(&fields, "value", "Value")?;
    required.check()?;
    Ok(Reply::of(json!({ "hash": service.audit().hash(&value) })))
}

/// Prometheus' text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
              super::schema::Refusals))]
pub async fn metrics(State(service): State<AppState>) -> Response {
    let text = crate::metrics::render(&service);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
