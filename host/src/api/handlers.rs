//! The nine credential endpoints: decode, call the service, reply.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use base64::Engine as _;

use super::caller::Caller;
use super::decode::{self, Required};
use super::envelope::Reply;
use super::errors::ApiError;
use super::observe::Note;
use super::query;
use crate::secret::Secret;
use crate::service::{CreateRequest, Service, UpdateRequest, ValidateRequest};

pub type AppState = Arc<Service>;
type Answer = Result<Reply, ApiError>;

/// Create a credential; every target is logged in to first, and nothing is
/// stored if one fails.
#[utoipa::path(post, path = "/api/v1/security/credential", tag = "credentials",
    request_body = super::schema::CreateCredential,
    responses((status = 200, body = super::schema::Envelope<super::schema::Credential>), super::schema::Refusals))]
pub async fn create(
    State(service): State<AppState>,
    Caller(client): Caller,
    note: Note,
    body: Body,
) -> Answer {
    let fields = decode::fields(body, "CreateCredentialParam").await?;
    let mut required = Required::new(fields.param());
    let target_type = required.string(&fields, "target_type", "TargetType")?;
    let name = required.string(&fields, "name", "Name")?;
    required.check()?;
    let description = decode::optional(&fields, "description")?;
    let view = service
        .create(
            CreateRequest {
                target_type,
                name,
                description,
                body: fields,
            },
            &client,
        )
        .await?;
    note.add_ids([view.id]);
    Ok(Reply::of(view))
}

/// A credential (never its secret).
#[utoipa::path(get, path = "/api/v1/security/credential/{id}", tag = "credentials",
    params(("id" = i64, Path)),
    responses((status = 200, body = super::schema::Envelope<super::schema::Credential>), super::schema::Refusals))]
pub async fn get_one(
    State(service): State<AppState>,
    decode::PathId(id): decode::PathId,
) -> Answer {
    let id = decode::credential_id(id.as_deref())?;
    Ok(Reply::of(service.get(id).await?))
}

/// Replace a credential (name, description, property); an empty passphrase
/// keeps the stored secret, which then goes to no target it was not proven on.
/// A new passphrase goes only to the host keys pinned for its targets, unless
/// `forget_host_keys` says to learn them afresh (a host's key really changed).
#[utoipa::path(patch, path = "/api/v1/security/credential/{id}", tag = "credentials",
    params(("id" = i64, Path),
        ("forget_host_keys" = Option<bool>, Query, description = "learn the targets' host keys afresh (needs the passphrase)")),
    request_body = super::schema::UpdateCredential,
    responses((status = 200, body = super::schema::Envelope<super::schema::Credential>), super::schema::Refusals))]
pub async fn update(
    State(service): State<AppState>,
    Caller(client): Caller,
    decode::PathId(id): decode::PathId,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Answer {
    let id = decode::credential_id(id.as_deref())?;
    let forget_host_keys = query::forget_host_keys(raw.as_deref())?;
    let fields = decode::fields(body, "UpdateCredentialParam").await?;
    let mut required = Required::new(fields.param());
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
                forget_host_keys,
            },
            &client,
        )
        .await?;
    Ok(Reply::of(view))
}

/// Delete a credential.
#[utoipa::path(delete, path = "/api/v1/security/credential/{id}", tag = "credentials",
    params(("id" = i64, Path)),
    responses((status = 200, body = super::schema::Done), super::schema::Refusals))]
pub async fn delete_one(
    State(service): State<AppState>,
    decode::PathId(id): decode::PathId,
) -> Answer {
    let id = decode::credential_id(id.as_deref())?;
    service.delete(id).await?;
    Ok(Reply::Empty)
}

/// Verify a credential without storing it: one detail per target.
#[utoipa::path(post, path = "/api/v1/security/credential/validate", tag = "credentials",
    request_body = super::schema::ValidateCredential,
    responses((status = 200, body = super::schema::Envelope<crate::service::ValidationResult>), super::schema::Refusals))]
pub async fn validate(
    State(service): State<AppState>,
    Caller(client): Caller,
    body: Body,
) -> Answer {
    let fields = decode::fields(body, "ValidateCredentialParam").await?;
    let mut required = Required::new(fields.param());
    let target_type = required.string(&fields, "target_type", "TargetType")?;
    required.check()?;
    let result = service
        .validate(
            ValidateRequest {
                target_type,
                body: fields,
            },
            &client,
        )
        .await?;
    Ok(Reply::of(result))
}

/// Add a 32-byte key as current and re-encrypt every stored secret under
/// it before answering (obshell's key replacement).
#[utoipa::path(put, path = "/api/v1/security/credential/encrypt-secret-key", tag = "keys",
    request_body = super::schema::EncryptSecretKey,
    responses((status = 200, body = super::schema::Done), super::schema::Refusals))]
pub async fn replace_key(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body, "UpdateCredentialEncryptSecretKeyParam").await?;
    let mut required = Required::new(fields.param());
    let key = zeroize::Zeroizing::new(required.string(&fields, "aes_key", "AesKey")?);
    required.check()?;
    // Go's StdEncoding skips CR and LF; padding is required.
    let cleaned: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(key.chars().filter(|c| *c != '\r' && *c != '\n').collect());
    // A `Secret` at once: wiped when dropped, whatever follows.
    let bytes = Secret::new(
        base64::engine::general_purpose::STANDARD
            .decode(cleaned.as_bytes())
            .map_err(|_| ApiError::illegal("invalid base64 key"))?,
    );
    if bytes.len() != crate::keys::KEY_LEN {
        return Err(ApiError::illegal(
            "invalid aes key length, must be 32 bytes",
        ));
    }
    service.replace_key(bytes).await?;
    Ok(Reply::Empty)
}

/// List credentials, a page at a time.
#[utoipa::path(get, path = "/api/v1/security/credentials", tag = "credentials",
    params(
        ("credential_id" = Option<i64>, Query), ("target_type" = Option<String>, Query),
        ("key_word" = Option<String>, Query, description = "literal, case-insensitive: name, targets, username"),
        ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query),
        ("sort" = Option<String>, Query, description = "id, name, target_type, create_time, update_time"),
        ("sort_order" = Option<String>, Query, description = "asc or desc")),
    responses((status = 200, body = super::schema::Envelope<super::schema::CredentialPage>), super::schema::Refusals))]
pub async fn list(
    State(service): State<AppState>,
    Caller(client): Caller,
    RawQuery(raw): RawQuery,
) -> Answer {
    let request = query::list_request(raw.as_deref())?;
    let (page, place) = service.list_for(request, &client).await?;
    let reply = Reply::of(page);
    drop(place);
    Ok(reply)
}

/// Delete credentials atomically; unknown ids are reported.
#[utoipa::path(delete, path = "/api/v1/security/credentials", tag = "credentials",
    request_body = super::schema::IdList,
    responses((status = 200, body = super::schema::Envelope<crate::service::Deleted>), super::schema::Refusals))]
pub async fn delete_many(State(service): State<AppState>, note: Note, body: Body) -> Answer {
    let fields = decode::fields(body, "BatchDeleteCredentialParam").await?;
    let mut required = Required::new(fields.param());
    let ids = required.ids(&fields, "credential_id_list", "CredentialIdList")?;
    required.check()?;
    let deleted = service.delete_many(ids).await?;
    note.add_ids(deleted.deleted.iter().copied());
    Ok(Reply::of(deleted))
}

/// Verify stored credentials (each only to the host keys pinned for it).
#[utoipa::path(post, path = "/api/v1/security/credentials/validate", tag = "credentials",
    request_body = super::schema::IdList,
    responses((status = 200, body = super::schema::Envelope<super::schema::ValidationResults>), super::schema::Refusals))]
pub async fn validate_many(
    State(service): State<AppState>,
    Caller(client): Caller,
    note: Note,
    body: Body,
) -> Answer {
    let fields = decode::fields(body, "BatchValidateCredentialParam").await?;
    let mut required = Required::new(fields.param());
    let ids = required.ids(&fields, "credential_id_list", "CredentialIdList")?;
    required.check()?;
    let validated = service.validate_many(ids, &client).await?;
    // The credentials it found, each once: ids as sent (repeated, or none
    // of them stored) would let a caller write large records for nothing.
    note.add_ids(validated.contents.iter().filter_map(|r| r.credential_id));
    Ok(Reply::of(validated))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Make a server-generated key current; old rows are re-encrypted in the background.
#[utoipa::path(post, path = "/api/v1/security/keys/rotate", tag = "keys",
    responses((status = 200, body = super::schema::Envelope<super::schema::KeyId>), super::schema::Refusals))]
pub async fn rotate_key(State(service): State<AppState>) -> Answer {
    let key_id = service.rotate_key().await?;
    Ok(Reply::of(serde_json::json!({ "key_id": key_id })))
}

/// Make a loaded encryption policy current.
#[utoipa::path(put, path = "/api/v1/security/encryption/policy", tag = "keys",
    request_body = super::schema::SetPolicy,
    responses((status = 200, body = super::schema::Envelope<crate::service::EncryptionStatus>), super::schema::Refusals))]
pub async fn set_policy(State(service): State<AppState>, body: Body) -> Answer {
    let fields = decode::fields(body, "SetEncryptionPolicyParam").await?;
    let mut required = Required::new(fields.param());
    let policy = required.string(&fields, "policy", "Policy")?;
    required.check()?;
    service.set_policy(&policy).await?;
    Ok(Reply::of(service.encryption_status().await?))
}

/// Policies and keys with their rows, and the rewrap's progress.
#[utoipa::path(get, path = "/api/v1/security/encryption", tag = "keys",
    responses((status = 200, body = super::schema::Envelope<crate::service::EncryptionStatus>), super::schema::Refusals))]
pub async fn encryption(State(service): State<AppState>) -> Answer {
    Ok(Reply::of(service.encryption_status().await?))
}

/// Resume a rewrap that stopped.
#[utoipa::path(post, path = "/api/v1/security/encryption/rewrap", tag = "keys",
    responses((status = 200, body = super::schema::Envelope<crate::service::RewrapStatus>), super::schema::Refusals))]
pub async fn resume_rewrap(State(service): State<AppState>) -> Answer {
    service.start_rewrap();
    Ok(Reply::of(service.shared_rewrap_status().await?))
}

/// Loaded verifiers and policies, with the files that failed to load.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins",
    responses((status = 200, body = super::schema::Envelope<crate::service::PluginsView>), super::schema::Refusals))]
pub async fn plugins(State(service): State<AppState>) -> Answer {
    Ok(Reply::of(service.plugins_view()))
}

/// Load the plugin directory again and swap the set at once (as SIGHUP does).
#[utoipa::path(post, path = "/api/v1/plugins/reload", tag = "plugins",
    responses((status = 200, body = super::schema::Envelope<crate::service::PluginsView>), super::schema::Refusals))]
pub async fn reload_plugins(State(service): State<AppState>) -> Answer {
    Ok(Reply::of(service.reload_plugins().await?))
}

/// The last validation of each listed credential that has one, with its
/// time: `credential_id_list=1,2,3` (at most 1,000).
#[utoipa::path(get, path = "/api/v1/security/credentials/validations", tag = "credentials",
    params(("credential_id_list" = String, Query, description = "comma-separated ids")),
    responses((status = 200, body = super::schema::Envelope<super::schema::LastValidations>), super::schema::Refusals))]
pub async fn last_validations(State(service): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let mut ids = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        if key == "credential_id_list" {
            for part in value.split(',').filter(|p| !p.trim().is_empty()) {
                ids.push(
                    part.trim().parse::<i64>().map_err(|_| {
                        ApiError::illegal(format!("{part:?} is not a credential id"))
                    })?,
                );
            }
        }
    }
    let contents = service.last_validations(ids).await?;
    Ok(Reply::of(serde_json::json!({ "contents": contents })))
}
