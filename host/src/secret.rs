//! A secret in memory: never printed, wiped when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes (a passphrase, a key). `Debug` shows only the length, so a
/// secret cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = Secret::new(b"hunter2".to_vec());
        let shown = format!("{secret:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("7 bytes"));
    }

    /// What holds a secret in a plain `String` (the API and store
    /// passwords, an obshell header's password and body key, a token just
    /// issued) has no `Debug` at all: `{:?}` of it, or of anything that
    /// holds it, does not compile, so no log line can show it by accident.
    /// (A request's notes, which hold a header's body key, are checked in
    /// `api::observe`.)
    #[test]
    fn plain_holders_of_secrets_cannot_be_debug_printed() {
        use static_assertions::assert_not_impl_any;
        assert_not_impl_any!(crate::config::Config: fmt::Debug);
        assert_not_impl_any!(crate::config::Overrides: fmt::Debug);
        assert_not_impl_any!(crate::client::Claims: fmt::Debug);
        assert_not_impl_any!(crate::service::tokens::IssuedToken: fmt::Debug);
    }
}
