//! Who is asking, and what they may do.

use serde::{Deserialize, Serialize};

/// What a caller may do; each scope includes the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Get, list, encryption status, the plugin list, metrics.
    Read,
    /// And validate, batch validate.
    Validate,
    /// And create, update, delete, batch delete.
    Write,
    /// And keys, policy, rewrap, plugin reload, tokens, audit.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Validate, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Validate => "validate",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// The scopes this one includes, itself last.
    pub fn included(self) -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|s| *s <= self)
            .map(Scope::as_str)
            .collect()
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No password is configured: obshell's open mode, loopback only.
    Anonymous,
    /// obshell's v2 header with the configured password.
    V2Password,
    /// An API token.
    Token {
        id: String,
        name: String,
        scope: Scope,
        /// When it stops working: a token it makes stops then too.
        expires_us: Option<i64>,
    },
    /// The server's own Unix socket in the data directory, which only its
    /// owner can open.
    Local,
}

impl Principal {
    /// When the caller's own right ends (only tokens have an end).
    pub fn expires_us(&self) -> Option<i64> {
        match self {
            Principal::Token { expires_us, .. } => *expires_us,
            _ => None,
        }
    }

    pub fn scope(&self) -> Scope {
        match self {
            Principal::Token { scope, .. } => *scope,
            // The password and the data directory's owner may do anything,
            // as obshell's root password may; so may anyone in the open mode.
            Principal::Anonymous | Principal::V2Password | Principal::Local => Scope::Admin,
        }
    }

    pub fn may(&self, needed: Scope) -> bool {
        self.scope() >= needed
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::V2Password => "v2-password",
            Principal::Token { .. } => "token",
            Principal::Local => "local",
        }
    }

    /// How the principal is named where it is recorded (`created_by`).
    pub fn label(&self) -> String {
        match self {
            Principal::Token { id, name, .. } => format!("token:{id} ({name})"),
            other => other.kind().to_string(),
        }
    }

    /// The id of the token a [`label`](Self::label) names, if it names one.
    pub fn token_of_label(label: &str) -> Option<&str> {
        label.strip_prefix("token:")?.split(' ').next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_ones_before() {
        assert!(Scope::Admin > Scope::Write && Scope::Write > Scope::Validate);
        assert_eq!(Scope::Write.included(), ["read", "validate", "write"]);
        assert_eq!(Scope::parse(" Admin "), Some(Scope::Admin));
        assert_eq!(Scope::parse("root"), None);
        let reader = Principal::Token {
            id: "x".into(),
            name: "r".into(),
            scope: Scope::Read,
            expires_us: None,
        };
        assert!(reader.may(Scope::Read) && !reader.may(Scope::Validate));
        assert!(Principal::V2Password.may(Scope::Admin));
    }
}
