//! Reading `X-OCS-Header`: Base64 of RSA blocks whose joined plaintexts are
//! a JSON object. Everything here is cheap and pure but the decryption
//! itself, which the pool does between `blocks` and `claims`.
//!
//! The blocks are not bound to each other (the protocol has no MAC), so a
//! captured header's blocks could be recombined with blocks of one's own.
//! What closes most of that: a key may appear once and only the four known
//! keys may appear, so appended blocks cannot override or add fields.

use std::fmt;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

/// Most blocks a header may have. The SDK cuts its JSON into 53-byte
/// chunks: a 256-character password written entirely in `\uXXXX` escapes
/// (1,536 bytes), the fixed fields (about 100) and a 900-byte request
/// target still fit in 48, at a worst-case cost of 48 RSA operations
/// (about 50 ms of one core at 2048 bits) for an unauthenticated request.
pub const MAX_BLOCKS: usize = 48;

/// Any way the header is unreadable. Deliberately carries no detail: every
/// such failure gets one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// The Base64 header cut into whole blocks, before any decryption.
pub fn blocks(value: &[u8], block_len: usize) -> Result<Vec<u8>, Unreadable> {
    // Checked before decoding so an oversized header costs nothing.
    if value.len() > (MAX_BLOCKS * block_len).div_ceil(3) * 4 {
        return Err(Unreadable);
    }
    let sealed = STANDARD.decode(value).map_err(|_| Unreadable)?;
    if sealed.is_empty() || sealed.len() % block_len != 0 {
        return Err(Unreadable);
    }
    Ok(sealed)
}

/// What a header says. `auth` is a password: zeroised when dropped.
#[derive(Default)]
pub struct Claims {
    pub auth: Zeroizing<String>,
    pub ts: Option<String>,
    pub uri: Option<String>,
    pub keys: Option<String>,
    /// Where `auth`'s value (with its quotes) lies in the plaintext: the
    /// blocks that hold it are the ones nobody without the password can
    /// make, which is what identifies the header against replay.
    pub auth_span: Range<usize>,
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("auth", &"<redacted>")
            .field("ts", &self.ts)
            .field("uri", &self.uri)
            .field("keys", &self.keys.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The joined plaintext as claims: one JSON object with the keys `auth`,
/// `ts`, `uri` and `keys` (matched case-insensitively, as obshell does),
/// each at most once, each a string or null. Anything else is unreadable.
pub fn claims(plain: &[u8]) -> Result<Claims, Unreadable> {
    let mut deserializer = serde_json::Deserializer::from_slice(plain);
    let claims = deserializer
        .deserialize_map(ClaimsVisitor { plain })
        .map_err(|_| Unreadable)?;
    deserializer.end().map_err(|_| Unreadable)?;
    Ok(claims)
}

struct ClaimsVisitor<'de> {
    plain: &'de [u8],
}

impl<'de> Visitor<'de> for ClaimsVisitor<'de> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of auth, ts, uri and keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut claims = Claims::default();
        let mut seen = [false; 4];
        while let Some(key) = map.next_key::<Zeroizing<String>>()? {
            let slot = ["auth", "ts", "uri", "keys"]
                .iter()
                .position(|k| key.eq_ignore_ascii_case(k))
                .ok_or_else(|| de::Error::custom("unknown key"))?;
            if std::mem::replace(&mut seen[slot], true) {
                return Err(de::Error::custom("duplicate key"));
            }
            let raw: &'de RawValue = map.next_value()?;
            let value: Option<Zeroizing<String>> =
                serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
            if slot == 0 {
                // The raw value borrows from the plaintext: its offset there.
                let start = raw.get().as_ptr() as usize - self.plain.as_ptr() as usize;
                claims.auth_span = start..start + raw.get().len();
            }
            match slot {
                0 => claims.auth = value.unwrap_or_default(),
                1 => claims.ts = value.map(|v| v.to_string()),
                2 => claims.uri = value.map(|v| v.to_string()),
                _ => claims.keys = value.map(|v| v.to_string()),
            }
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sdk_and_the_console_spellings() {
        let sdk = claims(br#"{"auth": "pw", "ts": "1", "uri": "/a", "keys": "k"}"#).unwrap();
        assert_eq!((sdk.auth.as_str(), sdk.uri.as_deref()), ("pw", Some("/a")));
        let console = claims(br#"{"Auth":"pw","Ts":"1","Uri":"/a"}"#).unwrap();
        assert_eq!(console.ts.as_deref(), Some("1"));
        assert!(console.keys.is_none());
        assert_eq!(claims(br#"{"auth": null}"#).unwrap().auth.as_str(), "");
    }

    #[test]
    fn knows_where_the_password_lies() {
        let text = br#"{"ts": "1", "auth": "pa\u0073s"}"#;
        let span = claims(text).unwrap().auth_span;
        assert_eq!(&text[span], br#""pa\u0073s""#);
    }

    #[test]
    fn refuses_duplicates_unknown_keys_and_wrong_types() {
        for text in [
            &br#"{"auth": "pw", "uri": "/a", "URI": "/b"}"#[..],
            br#"{"auth": "pw", "auth": "pw"}"#,
            br#"{"auth": "pw", "session_id": "x"}"#,
            br#"{"auth": "pw", "ts": 12}"#,
            br#"{"auth": "pw"}x"#,
            br#"["auth"]"#,
            b"",
            b"\xff\xfe",
        ] {
            assert!(claims(text).is_err(), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn caps_blocks_before_decoding() {
        let one = STANDARD.encode([1u8; 256]);
        assert_eq!(blocks(one.as_bytes(), 256).unwrap().len(), 256);
        let most = STANDARD.encode(vec![1u8; 256 * MAX_BLOCKS]);
        assert!(blocks(most.as_bytes(), 256).is_ok());
        let too_many = STANDARD.encode(vec![1u8; 256 * (MAX_BLOCKS + 1)]);
        assert!(blocks(too_many.as_bytes(), 256).is_err());
        assert!(blocks(STANDARD.encode([1u8; 255]).as_bytes(), 256).is_err());
        assert!(blocks(b"not base64!", 256).is_err());
    }
}
