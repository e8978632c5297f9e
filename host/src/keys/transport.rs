//! The server's RSA key pair for obshell's "API hybrid encryption": created
//! once, kept in the data directory (0600), outside the database.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};

use super::write_private;

#[derive(Debug, thiserror::Error)]
#[error("RSA key {path}: {reason}")]
pub struct TransportKeyError {
    path: PathBuf,
    reason: String,
}

pub struct TransportKey {
    private: RsaPrivateKey,
    /// Base64 of the PKCS#1 DER public key, as `GET /api/v1/secret` shows it.
    public_base64: String,
}

impl TransportKey {
    pub fn open_or_create(path: &Path, bits: usize) -> Result<Self, TransportKeyError> {
        let fail = |reason: String| TransportKeyError {
            path: path.to_path_buf(),
            reason,
        };
        let private = match std::fs::read(path) {
            Ok(der) => RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| fail(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = RsaPrivateKey::new(&mut rand_core_rng(), bits)
                    .map_err(|e| fail(e.to_string()))?;
                let der = key.to_pkcs1_der().map_err(|e| fail(e.to_string()))?;
                write_private(path, der.as_bytes()).map_err(|e| fail(e.to_string()))?;
                tracing::info!(path = %path.display(), bits, "created the RSA key pair");
                key
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let public = private
            .to_public_key()
            .to_pkcs1_der()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            public_base64: STANDARD.encode(public.as_bytes()),
            private,
        })
    }

    pub fn public_base64(&self) -> &str {
        &self.public_base64
    }

    /// Bytes in one RSA block.
    pub fn block_len(&self) -> usize {
        self.private.size()
    }

    pub fn public_key(&self) -> rsa::RsaPublicKey {
        self.private.to_public_key()
    }

    /// Decrypts one PKCS#1 v1.5 block.
    pub fn decrypt_block(&self, block: &[u8]) -> Result<Vec<u8>, rsa::Error> {
        self.private.decrypt(Pkcs1v15Encrypt, block)
    }
}

/// rsa 0.9 wants a rand_core 0.6 generator: the OS one.
fn rand_core_rng() -> rsa::rand_core::OsRng {
    rsa::rand_core::OsRng
}
