//! The shapes of request bodies and answers as the OpenAPI document names
//! them. Answers are obshell's envelope around each handler's `data`; the
//! service types that are serialised as `data` derive their own schemas, and
//! the loaded verifiers' property and public schemas are merged in when the
//! document is served (`openapi`).

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// obshell's envelope around an answer's `data`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    pub successful: bool,
    /// When the answer was made, RFC 3339 in the server's offset.
    pub timestamp: String,
    /// Milliseconds spent.
    pub duration: u64,
    /// The HTTP status, repeated.
    pub status: u16,
    /// The request's trace id (`X-OBSHELL-Trace-ID`, or a fresh one).
    #[serde(rename = "traceId")]
    pub trace_id: String,
    pub data: T,
}

/// A success without `data` (delete, obshell's key replacement).
#[derive(Serialize, ToSchema)]
pub struct Done {
    pub successful: bool,
    pub timestamp: String,
    pub duration: u64,
    pub status: u16,
    #[serde(rename = "traceId")]
    pub trace_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// obshell's legacy numeric code, where it has one (10008, 1).
    pub code: Option<i64>,
    /// e.g. `Credential.NotFound`, `Common.IllegalArgument`.
    #[serde(rename = "errCode")]
    pub err_code: String,
    pub message: String,
}

/// A refusal or failure, in the envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub successful: bool,
    pub timestamp: String,
    pub duration: u64,
    pub status: u16,
    #[serde(rename = "traceId")]
    pub trace_id: String,
    pub error: ErrorBody,
}

/// What any request may be answered besides its success.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// Bad input: `Common.BindJsonFailed`, `Common.IllegalArgument`, a
    /// verifier's refusal, a failed verification.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// Authentication failed (v2 header or API token).
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// Beyond the token's scope; a `Host`, `Origin` or transport refused.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// No such credential, token or route.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// `Credential.Changed`: another update of the credential was written
    /// while this one ran (read it again and retry).
    #[response(status = 409)]
    Conflict(ErrorEnvelope),
    /// A body a browser form can send (`text/plain`, form encodings).
    #[response(status = 415)]
    UnsupportedMediaType(ErrorEnvelope),
    /// Too many failed authentications, or in flight, from this address;
    /// or the caller past its rate (`Common.TooManyRequests`).
    #[response(status = 429)]
    TooMany(ErrorEnvelope),
    #[response(status = 500)]
    Internal(ErrorEnvelope),
    /// Busy (`Retry-After`), the audit log cannot be written, or too slow.
    #[response(status = 503)]
    Unavailable(ErrorEnvelope),
}

/// A credential as answered: the verifier's public part sits under the
/// field it names (`ssh_secret` for HOST).
#[derive(Serialize, ToSchema)]
pub struct Credential {
    pub credential_id: u64,
    pub name: String,
    pub target_type: String,
    pub description: String,
    pub create_time: String,
    pub update_time: String,
}

#[derive(Serialize, ToSchema)]
pub struct CredentialPage {
    pub contents: Vec<Credential>,
    pub page: crate::service::PageView,
}

/// `POST /credential`: the verifier's property goes under the field it
/// names (`ssh_credential_property` for HOST).
#[derive(Serialize, ToSchema)]
pub struct CreateCredential {
    pub target_type: String,
    /// At most 64 characters, unique case-insensitively.
    pub name: String,
    /// At most 256 characters.
    pub description: Option<String>,
}

/// `PATCH /credential/{id}`: a full replace; an empty passphrase keeps the
/// stored secret.
#[derive(Serialize, ToSchema)]
pub struct UpdateCredential {
    pub name: String,
    pub description: Option<String>,
}

/// `POST /credential/validate`.
#[derive(Serialize, ToSchema)]
pub struct ValidateCredential {
    pub target_type: String,
}

#[derive(Serialize, ToSchema)]
pub struct EncryptSecretKey {
    /// Base64 of exactly 32 bytes.
    pub aes_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct IdList {
    /// At most 1,000 ids.
    pub credential_id_list: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SetPolicy {
    pub policy: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyId {
    pub key_id: u32,
}

#[derive(Serialize, ToSchema)]
pub struct NewToken {
    pub name: String,
    /// `read`, `validate`, `write` or `admin`.
    pub scope: Option<String>,
    /// Several scopes: the widest counts.
    pub scopes: Option<Vec<String>>,
    pub ttl_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct Tokens {
    pub contents: Vec<crate::service::TokenView>,
}

#[derive(Serialize, ToSchema)]
pub struct Whoami {
    /// `token`, `v2-password`, `anonymous` or `local`.
    pub kind: String,
    pub token: Option<crate::service::TokenView>,
    pub scope: Option<String>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditRecords {
    /// Newest first; each a record as written to the audit log.
    #[schema(value_type = Vec<Object>)]
    pub contents: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct HashValue {
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct Hashed {
    /// `hmac-sha256:<hex>`.
    pub hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct Info {
    /// `CLUSTER AGENT`.
    pub identity: String,
    /// obshell's version this speaks, then credhost's.
    pub version: String,
    #[serde(rename = "supportedAuth")]
    pub supported_auth: Vec<String>,
    pub security: bool,
    #[serde(rename = "isObproxyAgent")]
    pub is_obproxy_agent: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PublicKey {
    pub ip: String,
    pub port: u16,
    /// Base64 of the PKCS#1 DER public key.
    pub public_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct ValidationResults {
    pub contents: Vec<crate::service::ValidationResult>,
}

#[derive(Serialize, ToSchema)]
pub struct LastValidations {
    pub contents: Vec<crate::service::LastValidation>,
}
