//! The plugin contract in the host's own terms: what the rest of the server
//! sees instead of the generated bindings.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use crate::secret::Secret;

/// The version of `wit/` this host speaks.
pub const WIT_PACKAGE: &str = "credhost:plugin@0.1.0";

/// An endpoint of a credential, canonical (`IpAddr` display form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Target {
    pub ip: IpAddr,
    pub port: u16,
}

/// An endpoint as a plugin reported it in a verdict (obshell shows
/// `{"ip": "", "port": 0}` when a stored credential cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

impl From<Target> for Endpoint {
    fn from(t: Target) -> Self {
        Self {
            ip: t.ip.to_string(),
            port: t.port,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifierInfo {
    pub target_type: String,
    pub property_field: String,
    pub public_field: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Update,
    Validate,
}

#[derive(Debug, Clone)]
pub enum SecretChange {
    Keep,
    Replace(Secret),
}

/// A property that the plugin accepted, in canonical form.
#[derive(Debug, Clone)]
pub struct Normalized {
    pub public: serde_json::Value,
    pub secret: SecretChange,
    pub targets: Vec<Target>,
    pub search_terms: Vec<String>,
}

/// A property the plugin refused: an obshell error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    Ok,
    AuthFailed,
    Refused,
    Unreachable,
    Timeout,
    HostKeyMismatch,
    ProtocolError,
    NotGranted,
    Other,
    /// The stored secret could not be opened (host-side, never from a plugin).
    SecretUnreadable,
    /// No verifier for the credential's target type is installed (host-side).
    Unsupported,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "OK",
            Reason::AuthFailed => "AUTH_FAILED",
            Reason::Refused => "REFUSED",
            Reason::Unreachable => "UNREACHABLE",
            Reason::Timeout => "TIMEOUT",
            Reason::HostKeyMismatch => "HOST_KEY_MISMATCH",
            Reason::ProtocolError => "PROTOCOL_ERROR",
            Reason::NotGranted => "NOT_GRANTED",
            Reason::Other => "OTHER",
            Reason::SecretUnreadable => "SECRET_UNREADABLE",
            Reason::Unsupported => "UNSUPPORTED",
        }
    }
}

/// The verdict for one target.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub target: Endpoint,
    pub connection_result: String,
    pub reason: Reason,
    pub message: String,
}

impl Detail {
    pub fn succeeded(&self) -> bool {
        self.connection_result == "SUCCESS"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum Source {
    Embedded,
    Directory(PathBuf),
}

/// What operators see of a loaded plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub wit: &'static str,
    pub source: Source,
    pub limits: Limits,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyInfo {
    pub name: String,
    pub algorithm: String,
    pub key_length: u32,
}
