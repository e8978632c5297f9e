//! The sealed form of credhost's AEAD policies: a nonce drawn fresh for every
//! seal, then the ciphertext with its tag. The caller's associated data is
//! authenticated, so a row copied under another credential id fails to open.
//!
//! An instance may serve many calls in a row (a rewrap batch), so the keyed
//! cipher is kept for as long as the key stays the same: the key schedule is
//! the costly part of sealing a short secret.

use std::cell::RefCell;

use aead::generic_array::typenum::Unsigned;
use aead::{Aead, AeadCore, KeyInit, Nonce, Payload};

/// The last key and its cipher, kept by each policy in a `thread_local!`.
pub struct Keyed<C> {
    key: Vec<u8>,
    cipher: C,
}

pub type Cache<C> = RefCell<Option<Keyed<C>>>;

fn with_cipher<C: KeyInit, R>(
    cache: &Cache<C>,
    key: &[u8],
    f: impl FnOnce(&C) -> R,
) -> Result<R, String> {
    let mut slot = cache.borrow_mut();
    if slot.as_ref().is_none_or(|k| k.key != key) {
        let cipher = C::new_from_slice(key)
            .map_err(|_| format!("key must be {} bytes, got {}", C::key_size(), key.len()))?;
        *slot = Some(Keyed {
            key: key.to_vec(),
            cipher,
        });
    }
    Ok(f(&slot.as_ref().expect("just filled").cipher))
}

pub fn seal<C: Aead + KeyInit>(
    cache: &Cache<C>,
    key: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, String> {
    let mut nonce = Nonce::<C>::default();
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
    let sealed = with_cipher(cache, key, |c| {
        c.encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
    })?
    .map_err(|_| "encryption failed".to_string())?;
    let mut out = Vec::with_capacity(nonce.len() + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

pub fn open<C: Aead + KeyInit>(
    cache: &Cache<C>,
    key: &[u8],
    sealed: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, String> {
    let nonce_len = Nonce::<C>::default().len();
    if sealed.len() < nonce_len + <C as AeadCore>::TagSize::USIZE {
        return Err("ciphertext is too short".into());
    }
    let (nonce, body) = sealed.split_at(nonce_len);
    with_cipher(cache, key, |c| {
        c.decrypt(Nonce::<C>::from_slice(nonce), Payload { msg: body, aad })
    })?
    .map_err(|_| {
        "authentication failed: wrong key, wrong associated data or altered ciphertext".into()
    })
}
