//! obshell's "API hybrid encryption": an RSA-encrypted `X-OCS-Header` that
//! carries the password, an expiry, the request target and an AES key, and a
//! body encrypted with that key. Stronger where no client can tell: a header
//! is accepted once, expiries far in the future are refused, the password is
//! compared in constant time, and every malformed input is a clean 4xx.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::ApiError;
use crate::keys::TransportKey;
use crate::secret::Secret;

pub const HEADER: &str = "x-ocs-header";
pub const AGENT_HEADER: &str = "x-ocs-agent-header";

/// An encrypted body may be this large (Base64 of the 1 MiB plaintext limit).
const MAX_SEALED_BODY: usize = (super::decode::MAX_BODY / 3 + 1) * 4 + 64;
/// Headers remembered against replay before expired ones are swept.
const REPLAY_SWEEP_AT: usize = 100_000;

pub struct Authenticator {
    key: TransportKey,
    password: Option<Secret>,
    /// How far in the future a header's expiry may lie.
    horizon: Duration,
    seen: Mutex<HashMap<[u8; 32], u64>>,
}

impl Authenticator {
    pub fn new(key: TransportKey, password: Option<Secret>, horizon: Duration) -> Self {
        Self {
            key,
            password,
            horizon,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn public_key_base64(&self) -> &str {
        self.key.public_base64()
    }

    pub fn password_set(&self) -> bool {
        self.password.is_some()
    }
}

/// What the header said, keys matched case-insensitively.
struct Claims {
    auth: String,
    ts: Option<String>,
    uri: Option<String>,
    keys: Option<String>,
}

fn unauthorized(err_code: &str, message: impl Into<String>, code: i64) -> ApiError {
    let mut error = ApiError::new(StatusCode::UNAUTHORIZED, err_code, message);
    error.code = Some(code);
    error
}

fn decrypt_failed(why: &str) -> ApiError {
    unauthorized(
        "Security.Authentication.Header.DecryptFailed",
        format!("Decrypt http header failed: {why}"),
        1,
    )
}

fn body_error(err_code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, err_code, message)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    fn open_header(&self, value: &[u8]) -> Result<Claims, ApiError> {
        let sealed = STANDARD
            .decode(value)
            .map_err(|_| decrypt_failed("the header is not Base64"))?;
        let block = self.key.block_len();
        if sealed.is_empty() || sealed.len() % block != 0 {
            return Err(decrypt_failed("the header is not whole RSA blocks"));
        }
        let mut plain = Vec::with_capacity(sealed.len());
        for chunk in sealed.chunks(block) {
            let part = self
                .key
                .decrypt_block(chunk)
                .map_err(|_| decrypt_failed("RSA decryption failed"))?;
            plain.extend_from_slice(&part);
        }
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&plain) else {
            return Err(decrypt_failed("the header is not a JSON object"));
        };
        let field = |name: &str| -> Result<Option<String>, ApiError> {
            match map
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
                .next_back()
            {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(decrypt_failed(&format!(
                    "header field {name} is not a string"
                ))),
            }
        };
        Ok(Claims {
            auth: field("auth")?.unwrap_or_default(),
            ts: field("ts")?,
            uri: field("uri")?,
            keys: field("keys")?,
        })
    }

    fn check(&self, claims: &Claims, target: &str, agent_header: bool) -> Result<(), ApiError> {
        if claims.uri.as_deref() != Some(target) {
            return Err(unauthorized(
                "Security.Authentication.Header.UriMismatch",
                "URI mismatch",
                10008,
            ));
        }
        // obshell skips the expiry for an empty `auth`; so do we, but only
        // when no password is configured (then there is nothing to protect).
        if self.password.is_some() || !claims.auth.is_empty() {
            let ts = claims.ts.as_deref().unwrap_or("");
            let expiry: u64 = ts.trim().parse().map_err(|_| {
                unauthorized(
                    "Security.Authentication.Timestamp.Invalid",
                    format!("Unauthorized: Invalid timestamp: {ts:?}"),
                    10008,
                )
            })?;
            let now = now();
            if expiry < now {
                return Err(unauthorized(
                    "Security.Authentication.Expired",
                    "Unauthorized: Authentication expired",
                    10008,
                ));
            }
            if expiry > now + self.horizon.as_secs() {
                return Err(unauthorized(
                    "Security.Authentication.Timestamp.Invalid",
                    format!(
                        "Unauthorized: Invalid timestamp: expiry is more than {} s ahead",
                        self.horizon.as_secs()
                    ),
                    10008,
                ));
            }
        }
        let expected = self.password.as_ref().map_or(&[][..], Secret::expose);
        if !bool::from(claims.auth.as_bytes().ct_eq(expected)) {
            let (err_code, message) = if agent_header {
                (
                    "Security.Authentication.IncorrectAgentPassword",
                    "Unauthorized: Agent password is incorrect",
                )
            } else {
                (
                    "Security.Authentication.IncorrectOceanbasePassword",
                    "Unauthorized: OceanBase password is incorrect",
                )
            };
            return Err(unauthorized(err_code, message, 10008));
        }
        Ok(())
    }

    /// Refuses a header seen before while it is still valid.
    fn first_use(&self, header: &[u8], expiry: u64) -> Result<(), ApiError> {
        let digest: [u8; 32] = Sha256::digest(header).into();
        let mut seen = self.seen.lock().expect("replay cache lock");
        let now = now();
        if seen.len() >= REPLAY_SWEEP_AT {
            seen.retain(|_, until| *until >= now);
        }
        if seen.get(&digest).is_some_and(|until| *until >= now) {
            return Err(unauthorized(
                "Security.Authentication.Replayed",
                "Unauthorized: this request header was already used",
                10008,
            ));
        }
        // Without an expiry the header is remembered for the horizon.
        seen.insert(digest, expiry.max(now + 1));
        Ok(())
    }
}

fn open_body(keys: Option<&str>, sealed: &[u8]) -> Result<Vec<u8>, ApiError> {
    let keys = keys
        .and_then(|k| STANDARD.decode(k).ok())
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            body_error(
                "Request.Body.Decrypt.AES.KeyAndIv.Invalid",
                "AES key and IV size error: keys must be Base64 of 32 bytes",
            )
        })?;
    let text: Vec<u8> = sealed
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut data = STANDARD.decode(&text).map_err(|_| {
        body_error(
            "Request.Body.Decrypt.Failed",
            "the encrypted body is not Base64",
        )
    })?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(body_error(
            "Request.Body.Decrypt.AES.ContentLength.Invalid",
            "Decrypted string length is not a multiple of the block size",
        ));
    }
    let decryptor = cbc::Decryptor::<aes::Aes128>::new_from_slices(&keys[..16], &keys[16..])
        .expect("16-byte key and iv");
    let plain = decryptor
        .decrypt_padded_mut::<Pkcs7>(&mut data)
        .map_err(|_| {
            body_error(
                "Request.Body.Decrypt.Failed",
                "the encrypted body has bad padding",
            )
        })?;
    Ok(plain.to_vec())
}

/// Routes anyone may call: how a client learns to authenticate.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/info" | "/api/v1/secret" | "/api/v1/openapi.json"
    )
}

pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    match admit(&auth, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn admit(auth: &Authenticator, request: Request) -> Result<Request, ApiError> {
    if is_public(request.uri().path()) {
        return Ok(request);
    }
    let headers = request.headers();
    let (value, agent_header) = match (headers.get(AGENT_HEADER), headers.get(HEADER)) {
        (Some(agent), _) => (agent.as_bytes().to_vec(), true),
        (None, Some(plain)) => (plain.as_bytes().to_vec(), false),
        (None, None) if !auth.password_set() => return Ok(request),
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Request.Header.NotFound",
                "X-OCS-Agent-Header or X-OCS-Header not found in http request header",
            ));
        }
    };
    let claims = auth.open_header(&value)?;
    let target = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    auth.check(&claims, &target, agent_header)?;
    let expiry = claims
        .ts
        .as_deref()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or_else(|| now() + auth.horizon.as_secs());
    auth.first_use(&value, expiry)?;

    let (parts, body) = request.into_parts();
    let sealed = axum::body::to_bytes(body, MAX_SEALED_BODY)
        .await
        .map_err(|_| ApiError::illegal("request body is too large"))?;
    let plain = if sealed.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        open_body(claims.keys.as_deref(), &sealed)?
    };
    Ok(Request::from_parts(parts, Body::from(plain)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_the_spec_test_vector() {
        // obshell-credential-spec §6.4.
        let keys = "AAECAwQFBgcICQoLDA0OD2RlZmdoaWprbG1ub3BxcnM=";
        let plain = open_body(Some(keys), b"A6p23rkqZm/03nlybz8PUYfA51QZXl9rA8Ew8jVkKhM=").unwrap();
        assert_eq!(plain, br#"{"credential_id_list":[1,2]}"#);
    }

    #[test]
    fn refuses_bad_bodies_cleanly() {
        let keys = "AAECAwQFBgcICQoLDA0OD2RlZmdoaWprbG1ub3BxcnM=";
        let sealed = b"A6p23rkqZm/03nlybz8PUYfA51QZXl9rA8Ew8jVkKhM=";
        assert_eq!(
            open_body(None, sealed).unwrap_err().err_code,
            "Request.Body.Decrypt.AES.KeyAndIv.Invalid"
        );
        assert_eq!(
            open_body(Some("AAEC"), sealed).unwrap_err().err_code,
            "Request.Body.Decrypt.AES.KeyAndIv.Invalid"
        );
        assert_eq!(
            open_body(Some(keys), b"not base64!").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            open_body(Some(keys), b"A6p23rkqZm/03nly")
                .unwrap_err()
                .err_code,
            "Request.Body.Decrypt.AES.ContentLength.Invalid"
        );
    }
}
