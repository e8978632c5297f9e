//! Reading requests the way obshell's clients send them.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path};
use axum::http::Method;
use axum::http::request::Parts;

use super::errors::ApiError;
use crate::fields::{Fields, required};

/// Bodies larger than this are refused.
pub const MAX_BODY: usize = 1 << 20;

/// A body bound to the Go struct `param` (obshell's name for it, where
/// obshell has the endpoint), whose name Go's type errors carry.
pub async fn fields(body: Body, param: &'static str) -> Result<Fields, ApiError> {
    let bytes = whole(body).await?;
    let parsed = Fields::parse(&bytes, param).map_err(ApiError::from);
    // The body held the passphrase in clear: wipe it where we own it.
    if let Ok(mut owned) = bytes.try_into_mut() {
        zeroize::Zeroize::zeroize(owned.as_mut());
    }
    parsed
}

/// A body read whole: refused if longer than [`MAX_BODY`], or cut off.
pub async fn whole(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let too_long = std::error::Error::source(&e)
            .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
        if too_long {
            ApiError::illegal(format!("request body is larger than {MAX_BODY} bytes"))
        } else {
            ApiError::illegal("the request body could not be read whole")
        }
    })
}

/// A path's `{id}` as sent, `None` when it does not decode (escapes of
/// bytes that are not UTF-8, `%FF`): axum's own answer to that is plain
/// text, outside the envelope.
pub struct PathId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let id = Path::<String>::from_request_parts(parts, state).await;
        Ok(PathId(id.ok().map(|Path(id)| id)))
    }
}

/// obshell parses `{id}` as a signed base-10 int64 (`+5` and `007` too).
pub fn credential_id(text: Option<&str>) -> Result<i64, ApiError> {
    text.and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| ApiError::illegal("invalid credential id"))
}

/// Required string fields, reported together as obshell's validator does.
pub struct Required<'a> {
    param: &'a str,
    missing: Vec<String>,
}

impl<'a> Required<'a> {
    pub fn new(param: &'a str) -> Self {
        Self {
            param,
            missing: Vec::new(),
        }
    }

    /// A string that must be present and non-empty.
    pub fn string(
        &mut self,
        fields: &Fields,
        key: &str,
        go_name: &str,
    ) -> Result<String, ApiError> {
        let value = fields.string(key)?;
        match value {
            Some(v) if !v.is_empty() => Ok(v),
            _ => {
                self.missing.push(required(self.param, go_name));
                Ok(String::new())
            }
        }
    }

    /// A list of ids that must be present (`[]` passes).
    pub fn ids(&mut self, fields: &Fields, key: &str, go_name: &str) -> Result<Vec<i64>, ApiError> {
        match fields.ids(key)? {
            Some(ids) => Ok(ids),
            None => {
                self.missing.push(required(self.param, go_name));
                Ok(Vec::new())
            }
        }
    }

    pub fn check(self) -> Result<(), ApiError> {
        if self.missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bind(self.missing.join("\n")))
        }
    }
}

/// An optional string field.
pub fn optional(fields: &Fields, key: &str) -> Result<String, ApiError> {
    Ok(fields.string(key)?.unwrap_or_default())
}

/// `GET /credential/validate` is `GET /credential/{id}` with id "validate"
/// in obshell's router: an invalid id, not a missing route.
pub fn shadowed_by_id_route(method: &Method) -> ApiError {
    if matches!(*method, Method::GET | Method::PATCH | Method::DELETE) {
        ApiError::illegal("invalid credential id")
    } else {
        ApiError::not_found()
    }
}
