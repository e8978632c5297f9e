//! credhost encryption policy `aes-256-gcm`, the default.

wit_bindgen::generate!({ world: "encryption-policy", path: "../../wit/0.2.0" });

use aes_gcm::Aes256Gcm;
use exports::credhost::plugin::sealing::{Descriptor, Guest};

thread_local! {
    static CIPHER: aead_envelope::Cache<Aes256Gcm> = const { std::cell::RefCell::new(None) };
}

struct AesGcmPolicy;

impl Guest for AesGcmPolicy {
    fn describe() -> Descriptor {
        Descriptor {
            name: "aes-256-gcm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            algorithm: "AES-256-GCM".into(),
            key_length: 32,
        }
    }

    fn seal(key: Vec<u8>, plaintext: Vec<u8>, aad: Vec<u8>) -> Result<Vec<u8>, String> {
        CIPHER.with(|cache| aead_envelope::seal(cache, &key, &plaintext, &aad))
    }

    fn open(key: Vec<u8>, ciphertext: Vec<u8>, aad: Vec<u8>) -> Result<Vec<u8>, String> {
        CIPHER.with(|cache| aead_envelope::open(cache, &key, &ciphertext, &aad))
    }
}

export!(AesGcmPolicy);
