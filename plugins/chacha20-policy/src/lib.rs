//! credhost encryption policy `chacha20-poly1305`: fast without AES hardware,
//! and a second policy to swap to.

wit_bindgen::generate!({ world: "encryption-policy", path: "../../wit/0.2.0" });

use chacha20poly1305::ChaCha20Poly1305;
use exports::credhost::plugin::sealing::{Descriptor, Guest};

thread_local! {
    static CIPHER: aead_envelope::Cache<ChaCha20Poly1305> = const { std::cell::RefCell::new(None) };
}

struct ChaChaPolicy;

impl Guest for ChaChaPolicy {
    fn describe() -> Descriptor {
        Descriptor {
            name: "chacha20-poly1305".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            algorithm: "ChaCha20-Poly1305".into(),
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

export!(ChaChaPolicy);
