//! The body of an authenticated request: Base64(AES-128-CBC-PKCS7(json))
//! under the header's `keys` (16 bytes of key, 16 of IV).

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::api::errors::ApiError;

fn body_error(err_code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, err_code, message)
}

/// The plaintext body, or a 400 naming what is wrong with it.
pub fn open(keys: Option<&str>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let keys = keys
        .and_then(|k| STANDARD.decode(k).ok())
        .map(Zeroizing::new)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            body_error(
                "Request.Body.Decrypt.AES.KeyAndIv.Invalid",
                "AES key and IV size error: keys must be Base64 of 32 bytes",
            )
        })?;
    let text: Vec<u8> = sealed
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut data = Zeroizing::new(STANDARD.decode(&text).map_err(|_| {
        body_error(
            "Request.Body.Decrypt.Failed",
            "the encrypted body is not Base64",
        )
    })?);
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(body_error(
            "Request.Body.Decrypt.AES.ContentLength.Invalid",
            "Decrypted string length is not a multiple of the block size",
        ));
    }
    let decryptor = cbc::Decryptor::<aes::Aes128>::new_from_slices(&keys[..16], &keys[16..])
        .expect("16-byte key and iv");
    let plain = decryptor
        .decrypt_padded_mut::<Pkcs7>(&mut data)
        .map_err(|_| {
            body_error(
                "Request.Body.Decrypt.Failed",
                "the encrypted body has bad padding",
            )
        })?;
    Ok(Zeroizing::new(plain.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = "AAECAwQFBgcICQoLDA0OD2RlZmdoaWprbG1ub3BxcnM=";
    const SEALED: &[u8] = b"A6p23rkqZm/03nlybz8PUYfA51QZXl9rA8Ew8jVkKhM=";

    #[test]
    fn opens_the_reference_test_vector() {
        let plain = open(Some(KEYS), SEALED).unwrap();
        assert_eq!(&plain[..], br#"{"credential_id_list":[1,2]}"#);
    }

    #[test]
    fn refuses_bad_bodies_cleanly() {
        assert_eq!(
            open(None, SEALED).unwrap_err().err_code,
            "Request.Body.Decrypt.AES.KeyAndIv.Invalid"
        );
        assert_eq!(
            open(Some("AAEC"), SEALED).unwrap_err().err_code,
            "Request.Body.Decrypt.AES.KeyAndIv.Invalid"
        );
        assert_eq!(
            open(Some(KEYS), b"not base64!").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            open(Some(KEYS), b"A6p23rkqZm/03nly").unwrap_err().err_code,
            "Request.Body.Decrypt.AES.ContentLength.Invalid"
        );
    }
}
