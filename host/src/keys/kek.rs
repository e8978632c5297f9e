//! The key-encryption key of a shared store: it wraps every data key (and the
//! RSA transport key) kept in the database, and never goes there itself, so a
//! copy of the database alone opens nothing. Every server of a cluster holds
//! the same one, in a file (0600) or in `CREDHOST_KEK`.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use zeroize::Zeroizing;

use super::{KEY_LEN, KeyError, write_private};
use crate::secret::Secret;

/// The environment variable that may carry the key (Base64 of 32 bytes).
pub const KEK_ENV: &str = "CREDHOST_KEK";
const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct Kek {
    key: Secret,
}

fn fail(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Kek {
    /// From `CREDHOST_KEK` when set, else from `path`; created there only
    /// when `may_create` (a database that has no keys yet).
    pub fn load(path: &Path, may_create: bool) -> Result<Self, KeyError> {
        if let Ok(text) = std::env::var(KEK_ENV).map(Zeroizing::new) {
            return Self::decode(text.trim())
                .map_err(|reason| fail(&PathBuf::from(format!("${KEK_ENV}")), reason));
        }
        match crate::data_dir::read_key_file(path).map_err(|e| fail(path, e.to_string()))? {
            Some(text) => Self::decode(text.trim()).map_err(|reason| fail(path, reason)),
            None if may_create => {
                let key = Zeroizing::new(rand::random::<[u8; KEY_LEN]>());
                let text = Zeroizing::new(STANDARD.encode(*key));
                write_private(path, text.as_bytes()).map_err(|e| fail(path, e.to_string()))?;
                tracing::warn!(
                    path = %path.display(),
                    "created the key-encryption key of the shared store: every other server \
                     needs a copy of this file (or CREDHOST_KEK), and a backup of the database \
                     is useless without it"
                );
                Ok(Self {
                    key: Secret::new(key.to_vec()),
                })
            }
            None => Err(fail(
                path,
                "missing: the shared store's keys are wrapped by a key-encryption key that \
                 every server must hold; copy it from a server of the cluster or set CREDHOST_KEK",
            )),
        }
    }

    pub fn from_bytes(key: Secret) -> Result<Self, String> {
        if key.len() != KEY_LEN {
            return Err(format!("a key-encryption key is {KEY_LEN} bytes"));
        }
        Ok(Self { key })
    }

    fn decode(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| "not Base64 of 32 bytes".to_string())?;
        Self::from_bytes(Secret::new(bytes))
    }

    /// A value the database keeps to tell a server with the wrong key
    /// before it fails on every row (it reveals nothing of the key).
    pub fn check_value(&self) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose()).expect("any key length");
        mac.update(b"credhost key-encryption key check");
        hex::encode(mac.finalize().into_bytes())
    }

    /// A key for another purpose (`label`), derived from this one, so the
    /// KEK itself is used for wrapping only.
    pub fn derive(&self, label: &str) -> Secret {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose()).expect("any key length");
        mac.update(b"credhost derived key\0");
        mac.update(label.as_bytes());
        Secret::new(mac.finalize().into_bytes().to_vec())
    }

    /// Seals `plain`, bound to `context` (which key it is), as nonce ‖ ciphertext.
    pub fn wrap(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new_from_slice(self.key.expose()).expect("a 32-byte key");
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message this size");
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn unwrap(&self, context: &str, wrapped: &[u8]) -> Result<Secret, KeyError> {
        let refused = || KeyError::Wrapped(context.to_string());
        if wrapped.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new_from_slice(self.key.expose()).expect("a 32-byte key");
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map(Secret::new)
            .map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_only_with_its_kek_and_its_context() {
        let kek = Kek::from_bytes(Secret::new(vec![1; KEY_LEN])).unwrap();
        let other = Kek::from_bytes(Secret::new(vec![2; KEY_LEN])).unwrap();
        let wrapped = kek.wrap("key 1", b"material");
        assert_eq!(kek.unwrap("key 1", &wrapped).unwrap().expose(), b"material");
        assert!(kek.unwrap("key 2", &wrapped).is_err());
        assert!(other.unwrap("key 1", &wrapped).is_err());
        assert!(!wrapped.windows(8).any(|w| w == b"material"));
        assert_ne!(kek.check_value(), other.check_value());
    }
}
