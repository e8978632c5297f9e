//! Everything a use case can refuse or fail with. `api::errors` maps each to
//! its obshell code and HTTP status, in one place.

use crate::plugins::PluginError;
use crate::store::{Conflict, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Bind JSON failed: {0}")]
    Bind(String),
    #[error("Illegal argument: {0}")]
    IllegalArgument(String),
    /// A verifier refused the property, with an obshell code.
    #[error("{message}")]
    Refused {
        code: crate::plugins::RefusalCode,
        message: String,
    },
    #[error("Unsupported target_type '{requested}', installed target types: {}", installed.join(", "))]
    TargetTypeNotSupported {
        requested: String,
        installed: Vec<String>,
    },
    #[error("Credential name {0} already exists")]
    NameExists(String),
    #[error("Host {0} already has a credential")]
    HostExists(String),
    #[error("Host {0} appears more than once in targets")]
    DuplicateHost(String),
    #[error("Host {0} is not in the allowed target ranges")]
    TargetNotAllowed(String),
    #[error("{0} is where this server itself listens: a credential cannot point at it")]
    OwnListener(String),
    #[error("send the passphrase to add targets: {0} not among the credential's targets")]
    SecretRequired(String),
    /// A target did not accept the credential: the verifier names the code
    /// and the start of the message (`Credential.SSH.ValidationFailed`,
    /// "SSH connection validation failed" for HOST, as obshell).
    #[error("{prefix}: {detail}")]
    ValidationFailed {
        code: String,
        prefix: String,
        detail: String,
    },
    #[error("Credential not found")]
    NotFound,
    /// Another update of the credential was written while this one ran
    /// (obshell has no such check: the later update won and undid the
    /// earlier one).
    #[error(
        "Credential {0} was changed by another request while this update ran; read it again and retry"
    )]
    Changed(u64),
    #[error("Credential not found: {}", super::ids::name_some(ids))]
    NotFoundIds { ids: Vec<i64> },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("Encrypt credential passphrase failed: {0}")]
    Encrypt(String),
    #[error("Decrypt credential passphrase failed: credential {id}: {reason}")]
    Decrypt { id: u64, reason: String },
    #[error("rewrap stopped: {0}")]
    Rewrap(String),
    /// Another server of the cluster holds the rewrap lease now.
    #[error("the rewrap lease passed to another server")]
    LeaseLost,
    #[error("storage failure: {0}")]
    Store(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("Token not found")]
    TokenNotFound,
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(c) => c.into(),
            StoreError::NotFound(_) => Error::NotFound,
            StoreError::Changed(id) => Error::Changed(id),
            StoreError::Unavailable(reason) => Error::Unavailable(reason),
            e @ StoreError::KeyRetired => Error::Unavailable(e.to_string()),
            // Named once: both say "storage failure".
            StoreError::Backend(reason) => Error::Store(reason),
            other => Error::Store(other.to_string()),
        }
    }
}

impl From<Conflict> for Error {
    fn from(c: Conflict) -> Self {
        match c {
            Conflict::Name(name) => Error::NameExists(name),
            Conflict::Host(ip) => Error::HostExists(ip),
            Conflict::DuplicateHost(ip) => Error::DuplicateHost(ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_is_named_once() {
        let error = Error::from(StoreError::Backend("the statement failed".into()));
        assert_eq!(error.to_string(), "storage failure: the statement failed");
    }
}
