//! The obshell error catalogue: every error the server answers with gets its
//! HTTP status and `errCode` here, and nowhere else.

use axum::http::StatusCode;

use crate::service::Error;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// obshell's legacy numeric code (10008, 1), where it has one.
    pub code: Option<i64>,
    pub err_code: String,
    pub message: String,
    /// Seconds to send as `Retry-After` (429 and 503 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, err_code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: None,
            err_code: err_code.to_string(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429: this client should slow down.
    pub fn too_many(err_code: &str, message: impl Into<String>, retry_after: u64) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, err_code, message);
        error.retry_after = Some(retry_after);
        error
    }

    /// 503: the server cannot take this now; a retry later may work.
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Common.Unavailable",
            message,
        );
        error.retry_after = Some(retry_after);
        error
    }

    pub fn forbidden(err_code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, err_code, message)
    }

    pub fn bind(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Common.BindJsonFailed",
            format!("Bind JSON failed: {message}"),
        )
    }

    pub fn illegal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Common.IllegalArgument",
            format!("Illegal argument: {message}"),
        )
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Common.NotFound",
            "Element not found: 404 not found",
        )
    }
}

impl From<crate::fields::BindError> for ApiError {
    fn from(e: crate::fields::BindError) -> Self {
        Self::bind(e.0)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        let (status, err_code) = match &e {
            Error::Bind(_) => (S::BAD_REQUEST, "Common.BindJsonFailed"),
            Error::IllegalArgument(_) => (S::BAD_REQUEST, "Common.IllegalArgument"),
            Error::Refused { code, .. } => (S::BAD_REQUEST, code.obshell()),
            Error::TargetTypeNotSupported { .. } => {
                (S::BAD_REQUEST, "Credential.TargetType.NotSupported")
            }
            Error::NameExists(_) => (S::BAD_REQUEST, "Credential.Name.AlreadyExists"),
            Error::HostExists(_) | Error::DuplicateHost(_) => {
                (S::BAD_REQUEST, "Credential.Host.AlreadyExists")
            }
            Error::TargetNotAllowed(_) | Error::OwnListener(_) => {
                (S::BAD_REQUEST, "Credential.Host.NotAllowed")
            }
            Error::SecretRequired(_) => (S::BAD_REQUEST, "Credential.Targets.SecretRequired"),
            Error::ValidationFailed { code, .. } => (S::BAD_REQUEST, code.as_str()),
            Error::NotFound | Error::NotFoundIds { .. } => (S::NOT_FOUND, "Credential.NotFound"),
            Error::Changed(_) => (S::CONFLICT, "Credential.Changed"),
            Error::TokenNotFound => (S::NOT_FOUND, "Token.NotFound"),
            Error::Plugin(crate::plugins::PluginError::Busy(_)) | Error::Unavailable(_) => {
                (S::SERVICE_UNAVAILABLE, "Common.Unavailable")
            }
            Error::Plugin(_) => (S::INTERNAL_SERVER_ERROR, "Plugin.Failed"),
            Error::Encrypt(_) => (S::INTERNAL_SERVER_ERROR, "Credential.EncryptFailed"),
            Error::Decrypt { .. } => (S::INTERNAL_SERVER_ERROR, "Credential.DecryptFailed"),
            Error::Rewrap(_) => (S::INTERNAL_SERVER_ERROR, "Credential.Rewrap.Failed"),
            Error::LeaseLost => (S::SERVICE_UNAVAILABLE, "Common.Unavailable"),
            Error::Store(_) => (S::INTERNAL_SERVER_ERROR, "Common.Unexpected"),
        };
        if status == S::SERVICE_UNAVAILABLE {
            tracing::warn!(err_code, "{message:?}");
            let mut error = ApiError::new(status, err_code, message);
            error.retry_after = Some(1);
            return error;
        }
        if status.is_server_error() {
            tracing::error!(err_code, "{message:?}");
        }
        ApiError::new(status, err_code, message)
    }
}
