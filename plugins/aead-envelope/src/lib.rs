//! The sealed form of credhost's AEAD policies: a nonce drawn fresh for every
//! seal, then the ciphertext with its tag. The caller's associated data is
//! authenticated, so a row copied under another credential id fails to open.

use aead::generic_array::typenum::Unsigned;
use aead::{Aead, AeadCore, KeyInit, Nonce, Payload};

fn cipher<C: KeyInit>(key: &[u8]) -> Result<C, String> {
    C::new_from_slice(key)
        .map_err(|_| format!("key must be {} bytes, got {}", C::key_size(), key.len()))
}

pub fn seal<C: Aead + KeyInit>(
    key: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, String> {
    let cipher = cipher::<C>(key)?;
    let mut nonce = Nonce::<C>::default();
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| "encryption failed".to_string())?;
    let mut out = Vec::with_capacity(nonce.len() + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

pub fn open<C: Aead + KeyInit>(key: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    let cipher = cipher::<C>(key)?;
    let nonce_len = Nonce::<C>::default().len();
    if sealed.len() < nonce_len + <C as AeadCore>::TagSize::USIZE {
        return Err("ciphertext is too short".into());
    }
    let (nonce, body) = sealed.split_at(nonce_len);
    cipher
        .decrypt(Nonce::<C>::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| {
            "authentication failed: wrong key, wrong associated data or altered ciphertext".into()
        })
}
