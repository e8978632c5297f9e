//! The nine credential endpoints: decode, call the service, reply.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use base64::Engine as _;

use super::decode::{self, Required};
use super::envelope::Reply;
use super::errors::ApiError;
use super::query;
use crate::secret::Secret;
use crate::service::{CreateRequest, Service, UpdateRequest, ValidateRequest};

pub type AppState = Arc<Service>;
type Answer = Result<Reply, ApiError>;

pub async fn create(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body).await?;
    let mut required = Required::new("CreateCredentialParam");
    let target_type = required.string(&fields, "target_type", "TargetType")?;
    let name = required.string(&fields, "name", "Name")?;
    required.check()?;
    let description = decode::optional(&fields, "description")?;
    let view = service
        .create(CreateRequest {
            target_type,
            name,
            description,
            body: fields,
        })
        .await?;
    Ok(Reply::of(view))
}

pub async fn get_one(State(service): State<AppState>, Path(id): Path<String>) -> Answer {
    let id = decode::credential_id(&id)?;
    Ok(Reply::of(service.get(id).await?))
}

pub async fn update(State(service): State<AppState>, Path(id): Path<String>, body: Body) -> Answer {
    let id = decode::credential_id(&id)?;
    let fields = decode::fields(body).await?;
    let mut required = Required::new("UpdateCredentialParam");
    let name = required.string(&fields, "name", "Name")?;
    required.check()?;
    let description = decode::optional(&fields, "description")?;
    let view = service
        .update(
            id,
            UpdateRequest {
                name,
                description,
                body: fields,
            },
        )
        .await?;
    Ok(Reply::of(view))
}

pub async fn delete_one(State(service): State<AppState>, Path(id): Path<String>) -> Answer {
    let id = decode::credential_id(&id)?;
    service.delete(id).await?;
    Ok(Reply::Empty)
}

pub async fn validate(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body).await?;
    let mut required = Required::new("ValidateCredentialParam");
    let target_type = required.string(&fields, "target_type", "TargetType")?;
    required.check()?;
    let result = service
        .validate(ValidateRequest {
            target_type,
            body: fields,
        })
        .await?;
    Ok(Reply::of(result))
}

pub async fn replace_key(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body).await?;
    let mut required = Required::new("UpdateCredentialEncryptSecretKeyParam");
    let key = required.string(&fields, "aes_key", "AesKey")?;
    required.check()?;
    // Go's StdEncoding skips CR and LF; padding is required.
    let cleaned: String = key.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|_| ApiError::illegal("invalid base64 key"))?;
    if bytes.len() != crate::keys::KEY_LEN {
        return Err(ApiError::illegal(
            "invalid aes key length, must be 32 bytes",
        ));
    }
    service.replace_key(Secret::new(bytes)).await?;
    Ok(Reply::Empty)
}

pub async fn list(State(service): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let request = query::list_request(raw.as_deref())?;
    Ok(Reply::of(service.list(request).await?))
}

pub async fn delete_many(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body).await?;
    let mut required = Required::new("BatchDeleteCredentialParam");
    let ids = required.ids(&fields, "credential_id_list", "CredentialIdList")?;
    required.check()?;
    Ok(Reply::of(service.delete_many(ids).await?))
}

pub async fn validate_many(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body).await?;
    let mut required = Required::new("BatchValidateCredentialParam");
    let ids = required.ids(&fields, "credential_id_list", "CredentialIdList")?;
    required.check()?;
    Ok(Reply::of(service.validate_many(ids).await?))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

pub async fn shadowed(method: Method) -> ApiError {
    decode::shadowed_by_id_route(&method)
}

/// A server-generated key becomes current; the rewrap runs in the background.
pub async fn rotate_key(State(service): State<AppState>) -> Answer {
    let key_id = service.rotate_key()?;
    Ok(Reply::of(serde_json::json!({ "key_id": key_id })))
}

pub async fn set_policy(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body).await?;
    let mut required = Required::new("SetEncryptionPolicyParam");
    let policy = required.string(&fields, "policy", "Policy")?;
    required.check()?;
    service.set_policy(&policy).await?;
    Ok(Reply::of(service.encryption_status().await?))
}

pub async fn encryption(State(service): State<AppState>) -> Answer {
    Ok(Reply::of(service.encryption_status().await?))
}

/// Resumes a rewrap that stopped (after the row it named was fixed).
pub async fn resume_rewrap(State(service): State<AppState>) -> Answer {
    service.start_rewrap();
    Ok(Reply::of(service.rewrap_status()))
}

pub async fn plugins(State(service): State<AppState>) -> Answer {
    Ok(Reply::of(service.plugins_view()))
}

pub async fn reload_plugins(State(service): State<AppState>) -> Answer {
    Ok(Reply::of(service.reload_plugins().await?))
}
