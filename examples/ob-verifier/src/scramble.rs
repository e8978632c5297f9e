//! The password proofs of MySQL's two common auth plugins.

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// `mysql_native_password`: SHA1(pw) XOR SHA1(nonce ‖ SHA1(SHA1(pw))).
pub fn native(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut mix = Sha1::new();
    mix.update(nonce);
    mix.update(stage2);
    stage1
        .iter()
        .zip(mix.finalize())
        .map(|(a, b)| a ^ b)
        .collect()
}

/// `caching_sha2_password` fast path: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ nonce).
pub fn caching_sha2(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut mix = Sha256::new();
    mix.update(stage2);
    mix.update(nonce);
    stage1
        .iter()
        .zip(mix.finalize())
        .map(|(a, b)| a ^ b)
        .collect()
}

/// `caching_sha2_password` full authentication without TLS: the password
/// (NUL-terminated) XOR the nonce, RSA-OAEP encrypted with the server's key.
pub fn caching_sha2_rsa(password: &[u8], nonce: &[u8], pem: &str) -> Result<Vec<u8>, String> {
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
        .map_err(|e| format!("unusable server public key: {e}"))?;
    let mut plain = password.to_vec();
    plain.push(0);
    for (i, byte) in plain.iter_mut().enumerate() {
        *byte ^= nonce[i % nonce.len()];
    }
    key.encrypt(&mut WasiRng, rsa::Oaep::new::<Sha1>(), &plain)
        .map_err(|e| format!("RSA encryption failed: {e}"))
}

/// The rand_core 0.6 interface rsa wants, over WASI's random source.
struct WasiRng;

impl rsa::rand_core::RngCore for WasiRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).expect("WASI random is always available");
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for WasiRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_proof_undoes_with_the_stored_hash() {
        // The server checks SHA1(proof XOR SHA1(nonce ‖ stored)) == stored,
        // where stored = SHA1(SHA1(pw)).
        let nonce = b"abcdefghijklmnopqrst";
        let proof = native(b"secret", nonce);
        let stored = Sha1::digest(Sha1::digest(b"secret"));
        let mut mix = Sha1::new();
        mix.update(nonce);
        mix.update(stored);
        let stage1: Vec<u8> = proof
            .iter()
            .zip(mix.finalize())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(Sha1::digest(&stage1).as_slice(), stored.as_slice());
        assert!(native(b"", nonce).is_empty());
    }
}
