//! A client for obshell's "API hybrid encryption", as the obshell SDK and web
//! console speak it: used by the tests, and the base of a CLI.
//!
//! Each request gets a fresh AES key and IV; its body is sent as
//! Base64(AES-128-CBC-PKCS7(json)) and a JSON header `{auth, ts, uri, keys}` is
//! RSA-encrypted (PKCS#1 v1.5, in chunks) into `X-OCS-Header`.

use std::time::{SystemTime, UNIX_EPOCH};

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the server's public key is unusable: {0}")]
    Key(String),
    #[error("the answer is not the obshell envelope: {0}")]
    Envelope(String),
}

/// An encrypted request, ready to send (or to tamper with, in tests).
#[derive(Debug, Clone)]
pub struct Sealed {
    pub header: String,
    pub body: Option<String>,
}

/// The fields of the auth header, before encryption.
#[derive(Clone)]
pub struct Claims {
    pub auth: String,
    pub ts: String,
    pub uri: String,
    pub keys: [u8; 32],
}

pub struct Client {
    base: String,
    http: reqwest::Client,
    password: String,
    key: RsaPublicKey,
    /// Bytes of header plaintext per RSA block (the SDK uses 53; any size up
    /// to the block size less 11 works).
    chunk: usize,
}

impl Client {
    /// Fetches the server's public key; `base` is e.g. `http://127.0.0.1:2886`.
    pub async fn connect(base: &str, password: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()?;
        let answer: Value = http
            .get(format!("{base}/api/v1/secret"))
            .send()
            .await?
            .json()
            .await?;
        let encoded = answer["data"]["public_key"]
            .as_str()
            .ok_or_else(|| ClientError::Envelope(answer.to_string()))?;
        let der = STANDARD
            .decode(encoded)
            .map_err(|e| ClientError::Key(e.to_string()))?;
        let key =
            RsaPublicKey::from_pkcs1_der(&der).map_err(|e| ClientError::Key(e.to_string()))?;
        let chunk = key.size() - 11;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            password: password.to_string(),
            key,
            chunk,
        })
    }

    /// Splits header plaintext into chunks of this many bytes.
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.clamp(1, self.key.size() - 11);
        self
    }

    pub fn public_key(&self) -> &RsaPublicKey {
        &self.key
    }

    /// Claims for `target` (path and query, exactly as sent), valid 60 s.
    pub fn claims(&self, target: &str) -> Claims {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Claims {
            auth: self.password.clone(),
            ts: (now + 60).to_string(),
            uri: target.to_string(),
            keys: rand::random(),
        }
    }

    pub fn seal(&self, claims: &Claims, body: Option<&[u8]>) -> Sealed {
        let header = json!({
            "auth": claims.auth,
            "ts": claims.ts,
            "uri": claims.uri,
            "keys": STANDARD.encode(claims.keys),
        });
        Sealed {
            header: encrypt_header(&self.key, header.to_string().as_bytes(), self.chunk),
            body: body.map(|b| encrypt_body(&claims.keys, b)),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        target: &str,
        sealed: &Sealed,
    ) -> Result<(u16, Value), ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{target}", self.base))
            .header("X-OCS-Header", &sealed.header);
        if let Some(body) = &sealed.body {
            request = request.body(body.clone());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let envelope: Value = response.json().await?;
        Ok((status, envelope))
    }

    /// One authenticated request with a JSON body (or none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let claims = self.claims(target);
        let body = body.map(|b| b.to_string().into_bytes());
        let sealed = self.seal(&claims, body.as_deref());
        self.send(method, target, &sealed).await
    }
}

/// RSA PKCS#1 v1.5 over chunks of `chunk` bytes, concatenated, Base64.
pub fn encrypt_header(key: &RsaPublicKey, plaintext: &[u8], chunk: usize) -> String {
    let mut rng = rsa::rand_core::OsRng;
    let mut out = Vec::new();
    for part in plaintext.chunks(chunk.max(1)) {
        out.extend(
            key.encrypt(&mut rng, Pkcs1v15Encrypt, part)
                .expect("a chunk within the key size always encrypts"),
        );
    }
    STANDARD.encode(out)
}

/// Base64(AES-128-CBC-PKCS7) with key = keys[..16], iv = keys[16..].
pub fn encrypt_body(keys: &[u8; 32], plaintext: &[u8]) -> String {
    let encryptor = cbc::Encryptor::<aes::Aes128>::new_from_slices(&keys[..16], &keys[16..])
        .expect("16-byte key and iv");
    STANDARD.encode(encryptor.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypts_the_spec_test_vector() {
        // obshell-credential-spec §6.4: key 00..0F, IV 64..73.
        let mut keys = [0u8; 32];
        for (i, b) in keys.iter_mut().enumerate() {
            *b = if i < 16 {
                i as u8
            } else {
                0x64 + (i as u8 - 16)
            };
        }
        assert_eq!(
            encrypt_body(&keys, br#"{"credential_id_list":[1,2]}"#),
            "A6p23rkqZm/03nlybz8PUYfA51QZXl9rA8Ew8jVkKhM="
        );
    }
}
