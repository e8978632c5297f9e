//! The signature of a key login, made off the async threads. russh's
//! `authenticate_publickey` signs on the task that drives the session, and
//! an RSA signature takes a core for milliseconds (74 ms at 8,192 bits on
//! a development machine): a handful of such logins at once would stall
//! every request their workers serve. Through russh's `Signer` hook, an
//! RSA signature is made on the blocking pool instead, a few at a time (in
//! a queue of its own, apart from key reads: see `private_key`); ed25519
//! and ECDSA sign in microseconds and stay inline.

use std::sync::Arc;

use russh::keys::agent::AgentIdentity;
use russh::keys::signature::Signer as _;
use russh::keys::ssh_encoding::Encode;
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::{HashAlg, PrivateKey};

use super::private_key::{KeyWork, off_thread};
use crate::budget::Client;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Session(#[from] russh::SendError),
    #[error("the key could not sign")]
    Sign,
}

/// Signs for one key login, made for `client`.
pub struct KeySigner {
    key: Arc<PrivateKey>,
    client: Client,
}

impl KeySigner {
    pub fn new(key: Arc<PrivateKey>, client: Client) -> Self {
        Self { key, client }
    }
}

impl russh::Signer for KeySigner {
    type Error = SignError;

    #[allow(clippy::manual_async_fn)] // the trait asks for a `Send` future
    fn auth_sign(
        &mut self,
        _asked: &AgentIdentity,
        hash: Option<HashAlg>,
        to_sign: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, SignError>> + Send {
        let key = self.key.clone();
        let client = self.client.clone();
        async move {
            if matches!(key.key_data(), KeypairData::Rsa(_)) {
                off_thread(KeyWork::Sign, &client, move || sign(&key, hash, to_sign))
                    .await
                    .unwrap_or(Err(SignError::Sign))
            } else {
                sign(&key, hash, to_sign)
            }
        }
    }
}

/// `data` with its signature appended, as the userauth request carries it.
/// `hash` picks RSA's digest (the one the server takes); other keys have one.
fn sign(key: &PrivateKey, hash: Option<HashAlg>, mut data: Vec<u8>) -> Result<Vec<u8>, SignError> {
    let signature = match key.key_data() {
        KeypairData::Rsa(rsa) => (rsa, hash).try_sign(&data),
        _ => key.try_sign(&data),
    }
    .map_err(|_| SignError::Sign)?;
    signature
        .encode_prefixed(&mut data)
        .map_err(|_| SignError::Sign)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use russh::Signer as _;
    use russh::keys::signature::Verifier;
    use russh::keys::ssh_encoding::Decode;
    use russh::keys::ssh_key::Signature;

    use super::*;
    use crate::capabilities::private_key::tests::keygen;

    fn generate(kind: &str) -> Arc<PrivateKey> {
        let dir = tempfile::tempdir().unwrap();
        let text = keygen(dir.path(), "key", kind, "");
        Arc::new(russh::keys::decode_secret_key(&text, None).unwrap())
    }

    /// The signature russh will send: the signed data, then the signature
    /// blob as one SSH string, which the key's public half verifies.
    fn appended(key: &PrivateKey, to_sign: &[u8], signed: &[u8]) -> Signature {
        assert_eq!(&signed[..to_sign.len()], to_sign);
        let mut rest = &signed[to_sign.len()..];
        let blob = Vec::<u8>::decode(&mut rest).unwrap();
        assert!(rest.is_empty());
        let signature = Signature::try_from(blob.as_slice()).unwrap();
        Verifier::verify(key.public_key().key_data(), to_sign, &signature).unwrap();
        signature
    }

    /// On a single-threaded runtime nothing else runs while a task computes:
    /// a ticker that counts while an RSA key signs shows the signature was
    /// made elsewhere.
    #[tokio::test(flavor = "current_thread")]
    async fn an_rsa_key_signs_off_the_async_thread_and_every_key_verifies() {
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        let to_sign = b"session id and userauth request".to_vec();
        let identity = |key: &PrivateKey| AgentIdentity::PublicKey {
            key: key.public_key().clone(),
            comment: String::new(),
        };

        let rsa = generate("rsa");
        for (hash, name) in [
            (Some(HashAlg::Sha512), "rsa-sha2-512"),
            (Some(HashAlg::Sha256), "rsa-sha2-256"),
        ] {
            let before = ticks.load(Ordering::Relaxed);
            let signed = KeySigner::new(rsa.clone(), Client::server())
                .auth_sign(&identity(&rsa), hash, to_sign.clone())
                .await
                .unwrap();
            assert!(ticks.load(Ordering::Relaxed) > before, "signed inline");
            assert_eq!(appended(&rsa, &to_sign, &signed).algorithm().as_str(), name);
        }

        for (kind, name) in [("ed25519", "ssh-ed25519"), ("ecdsa", "ecdsa-sha2-nistp256")] {
            let key = generate(kind);
            let signed = KeySigner::new(key.clone(), Client::server())
                .auth_sign(&identity(&key), None, to_sign.clone())
                .await
                .unwrap();
            assert_eq!(appended(&key, &to_sign, &signed).algorithm().as_str(), name);
        }
        ticker.abort();
    }
}
