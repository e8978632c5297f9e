//! The server's RSA key pair for obshell's "API hybrid encryption": created
//! once, kept in the data directory (0600), outside the database.
//!
//! PKCS#1 v1.5 decryption is done with implicit rejection: a block whose
//! padding is wrong does not fail, it decrypts to a pseudo-random message
//! derived from the ciphertext and a secret only the key holder has, and the
//! padding check and the choice between the two messages take the same steps
//! whatever the padding was. A caller therefore cannot tell a well-padded
//! block from a badly padded one (Bleichenbacher's oracle): both are just
//! bytes that, almost surely, do not parse.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rsa::BigUint;
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeLess};
use zeroize::Zeroizing;

use super::write_private;

#[derive(Debug, thiserror::Error)]
#[error("RSA key {path}: {reason}")]
pub struct TransportKeyError {
    path: PathBuf,
    reason: String,
}

pub struct TransportKey {
    private: RsaPrivateKey,
    /// Keys the pseudo-random messages of implicit rejection; derived from
    /// the private exponent, so it is as secret as the key and as stable.
    rejection_key: Zeroizing<[u8; 32]>,
    /// Base64 of the PKCS#1 DER public key, as `GET /api/v1/secret` shows it.
    public_base64: String,
}

impl TransportKey {
    pub fn open_or_create(path: &Path, bits: usize) -> Result<Self, TransportKeyError> {
        let fail = |reason: String| TransportKeyError {
            path: path.to_path_buf(),
            reason,
        };
        // The file's bytes are the private key: wiped once parsed.
        let private = match std::fs::read(path).map(Zeroizing::new) {
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
        Ok(Self::from_private(
            private,
            STANDARD.encode(public.as_bytes()),
        ))
    }

    /// A fresh key pair as PKCS#1 DER (for a shared store to keep, wrapped).
    pub fn generate_der(bits: usize) -> Result<Zeroizing<Vec<u8>>, String> {
        let key = RsaPrivateKey::new(&mut rand_core_rng(), bits).map_err(|e| e.to_string())?;
        let der = key.to_pkcs1_der().map_err(|e| e.to_string())?;
        Ok(Zeroizing::new(der.as_bytes().to_vec()))
    }

    /// The key pair every server of a cluster shares, from its PKCS#1 DER.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let private = RsaPrivateKey::from_pkcs1_der(der).map_err(|e| e.to_string())?;
        let public = private
            .to_public_key()
            .to_pkcs1_der()
            .map_err(|e| e.to_string())?;
        Ok(Self::from_private(
            private,
            STANDARD.encode(public.as_bytes()),
        ))
    }

    fn from_private(private: RsaPrivateKey, public_base64: String) -> Self {
        let exponent = Zeroizing::new(private.d().to_bytes_be());
        let mut hash = Sha256::new();
        hash.update(b"credhost pkcs1 implicit rejection\0");
        hash.update(&exponent);
        Self {
            rejection_key: Zeroizing::new(hash.finalize().into()),
            public_base64,
            private,
        }
    }

    /// A key pair of `bits`, not stored anywhere: for tests and benchmarks.
    pub fn generate(bits: usize) -> Result<Self, rsa::Error> {
        let private = RsaPrivateKey::new(&mut rand_core_rng(), bits)?;
        let public = private.to_public_key().to_pkcs1_der()?;
        Ok(Self::from_private(
            private,
            STANDARD.encode(public.as_bytes()),
        ))
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

    /// Decrypts one PKCS#1 v1.5 block of exactly `block_len()` bytes, with
    /// implicit rejection: never an error, whatever the block holds.
    pub fn decrypt_block(&self, block: &[u8]) -> Zeroizing<Vec<u8>> {
        let k = self.block_len();
        debug_assert_eq!(block.len(), k, "callers cut whole blocks");
        // A block ≥ the modulus is refused by the RSA primitive; it is
        // rejected the same way as bad padding (the zero block below).
        let em = rsa::hazmat::rsa_decrypt_and_check(
            &self.private,
            Some(&mut rand_core_rng()),
            &BigUint::from_bytes_be(block),
        )
        .map(|m| Zeroizing::new(m.to_bytes_be()))
        .unwrap_or_else(|_| Zeroizing::new(Vec::new()));
        let mut padded = Zeroizing::new(vec![0u8; k]);
        let len = em.len().min(k);
        padded[k - len..].copy_from_slice(&em[em.len() - len..]);
        let synthetic = self.synthetic(block);
        select_message(&padded, &synthetic)
    }

    /// The message a badly padded block decrypts to: its last `len` bytes
    /// of `k - 11`, both drawn from HMAC-SHA256 keyed by a secret and the
    /// ciphertext, so the same block always gives the same message.
    fn synthetic(&self, block: &[u8]) -> Synthetic {
        let k = self.block_len();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.rejection_key)
            .expect("HMAC takes any key length");
        mac.update(block);
        let block_key: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
        let prf = |label: &[u8], counter: u32| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*block_key)
                .expect("HMAC takes any key length");
            mac.update(label);
            mac.update(&counter.to_be_bytes());
            mac.finalize().into_bytes()
        };
        let room = k - 11;
        let mut bytes = Zeroizing::new(Vec::with_capacity(room + 32));
        let mut counter = 0;
        while bytes.len() < room {
            bytes.extend_from_slice(&prf(b"message", counter));
            counter += 1;
        }
        bytes.truncate(room);
        let length = prf(b"length", 0);
        // The bias of a 32-bit value reduced modulo a few hundred is below
        // 2^-22: no use to anyone telling synthetic from real lengths.
        let draw = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        Synthetic {
            bytes,
            len: draw % (room as u32 + 1),
        }
    }
}

struct Synthetic {
    bytes: Zeroizing<Vec<u8>>,
    len: u32,
}

/// Checks `00 02 PS(≥ 8 non-zero bytes) 00 M` and returns M if it holds or
/// the synthetic message if not, in steps that do not depend on which.
fn select_message(em: &[u8], synthetic: &Synthetic) -> Zeroizing<Vec<u8>> {
    let k = em.len();
    let mut found = subtle::Choice::from(0);
    let mut separator: u32 = 0;
    for (i, byte) in em.iter().enumerate().skip(2) {
        let zero = byte.ct_eq(&0);
        separator.conditional_assign(&(i as u32), zero & !found);
        found |= zero;
    }
    let valid = em[0].ct_eq(&0) & em[1].ct_eq(&2) & found & !separator.ct_lt(&10);
    // A valid message starts at separator + 1 ≥ 11: it is a suffix of
    // em[11..], as the synthetic one is a suffix of its k - 11 bytes.
    let real_len = (k as u32).wrapping_sub(separator).wrapping_sub(1);
    let len = u32::conditional_select(&synthetic.len, &real_len, valid) as usize;
    let mut chosen = Zeroizing::new(vec![0u8; k - 11]);
    for (i, out) in chosen.iter_mut().enumerate() {
        *out = u8::conditional_select(&synthetic.bytes[i], &em[11 + i], valid);
    }
    Zeroizing::new(chosen[k - 11 - len..].to_vec())
}

/// rsa 0.9 wants a rand_core 0.6 generator: the OS one.
fn rand_core_rng() -> rsa::rand_core::OsRng {
    rsa::rand_core::OsRng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::{Pkcs1v15Encrypt, RsaPublicKey};

    fn key() -> TransportKey {
        TransportKey::generate(1024).unwrap()
    }

    fn encrypt(public: &RsaPublicKey, message: &[u8]) -> Vec<u8> {
        public
            .encrypt(&mut rand_core_rng(), Pkcs1v15Encrypt, message)
            .unwrap()
    }

    #[test]
    fn well_padded_blocks_decrypt_to_their_message() {
        let key = key();
        let public = key.public_key();
        for message in [&b""[..], b"{", b"{\"auth\": \"pw\"}", &[7u8; 117]] {
            let block = encrypt(&public, message);
            assert_eq!(&key.decrypt_block(&block)[..], message);
        }
    }

    #[test]
    fn badly_padded_blocks_decrypt_to_a_stable_pseudo_random_message() {
        let key = key();
        let public = key.public_key();
        let mut block = encrypt(&public, b"{\"auth\": \"secret password\"}");
        block[40] ^= 1;
        let first = key.decrypt_block(&block);
        let again = key.decrypt_block(&block);
        assert_eq!(first, again, "deterministic per ciphertext");
        assert!(!first.windows(6).any(|w| w == b"secret"));
        block[41] ^= 1;
        assert_ne!(key.decrypt_block(&block), first);
        // A block above the modulus and the all-zero block are rejected alike.
        assert!(key.decrypt_block(&[0xff; 128]).len() <= 117);
        assert!(key.decrypt_block(&[0; 128]).len() <= 117);
    }

    #[test]
    fn agrees_with_the_rsa_crate_on_valid_and_invalid_padding() {
        let key = key();
        let public = key.public_key();
        let e = public.e();
        let n = public.n();
        // Raw blocks with hand-made paddings: only the first is valid.
        let mut cases = Vec::new();
        let mut good = vec![0u8, 2];
        good.extend_from_slice(&[0x55; 8]);
        good.push(0);
        good.extend_from_slice(&[b'x'; 117]);
        cases.push((good, true));
        let mut short_ps = vec![0u8, 2];
        short_ps.extend_from_slice(&[0x55; 7]);
        short_ps.push(0);
        short_ps.extend_from_slice(&[b'x'; 118]);
        cases.push((short_ps, false));
        let mut no_zero = vec![0u8, 2];
        no_zero.extend_from_slice(&[0x55; 126]);
        cases.push((no_zero, false));
        let mut wrong_type = vec![0u8, 1];
        wrong_type.extend_from_slice(&[0x55; 8]);
        wrong_type.push(0);
        wrong_type.extend_from_slice(&[b'x'; 117]);
        cases.push((wrong_type, false));
        for (em, valid) in cases {
            let c = BigUint::from_bytes_be(&em).modpow(e, n).to_bytes_be();
            let mut block = vec![0u8; 128 - c.len()];
            block.extend_from_slice(&c);
            assert_eq!(key.private.decrypt(Pkcs1v15Encrypt, &block).is_ok(), valid);
            let out = key.decrypt_block(&block);
            assert_eq!(out[..] == [b'x'; 117][..], valid);
        }
    }
}
