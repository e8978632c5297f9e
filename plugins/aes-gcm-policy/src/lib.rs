//! credhost encryption policy `aes-256-gcm`.
//!
//! Sealed form: a 96-bit nonce drawn fresh for every seal, then the AES-256-GCM
//! ciphertext with its 128-bit tag. The caller's associated data is
//! authenticated, so a row copied under another credential id fails to open.

wit_bindgen::generate!({ world: "encryption-policy", path: "../../wit" });

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use exports::credhost::plugin::sealing::{Descriptor, Guest};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

struct AesGcmPolicy;

fn cipher(key: &[u8]) -> Result<Aes256Gcm, String> {
    if key.len() != KEY_LEN {
        return Err(format!("key must be {KEY_LEN} bytes, got {}", key.len()));
    }
    Aes256Gcm::new_from_slice(key).map_err(|_| "invalid key".to_string())
}

impl Guest for AesGcmPolicy {
    fn describe() -> Descriptor {
        Descriptor {
            name: "aes-256-gcm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            algorithm: "AES-256-GCM".into(),
            key_length: KEY_LEN as u32,
        }
    }

    fn seal(key: Vec<u8>, plaintext: Vec<u8>, aad: Vec<u8>) -> Result<Vec<u8>, String> {
        let cipher = cipher(&key)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| "encryption failed".to_string())?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(key: Vec<u8>, ciphertext: Vec<u8>, aad: Vec<u8>) -> Result<Vec<u8>, String> {
        let cipher = cipher(&key)?;
        if ciphertext.len() < NONCE_LEN + 16 {
            return Err("ciphertext is too short".into());
        }
        let (nonce, body) = ciphertext.split_at(NONCE_LEN);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                "authentication failed: wrong key, wrong associated data or altered ciphertext"
                    .into()
            })
    }
}

export!(AesGcmPolicy);
