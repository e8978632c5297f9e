//! Rows the database holds cannot be trusted to be the rows this server
//! wrote: anyone with write access to the database (another application, an
//! administrator, someone on an unencrypted link) could point a credential's
//! targets at their own host, and the next validation would send the secret
//! there; or add a token of their own. So every credential body and token
//! document carries a MAC under a key derived from the key-encryption key,
//! bound to its kind and id, and one that does not verify is refused.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

const TAG_LEN: usize = 32;

pub struct RowMac {
    key: Secret,
}

impl RowMac {
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    fn tag(&self, kind: &str, id: &[u8], bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose()).expect("any key length");
        mac.update(kind.as_bytes());
        mac.update(&(id.len() as u64).to_be_bytes());
        mac.update(id);
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// `bytes` with its tag in front.
    pub fn seal(&self, kind: &str, id: &[u8], bytes: &[u8]) -> Vec<u8> {
        [self.tag(kind, id, bytes).as_slice(), bytes].concat()
    }

    /// The bytes behind a tag that verifies, or None.
    pub fn open<'a>(&self, kind: &str, id: &[u8], stored: &'a [u8]) -> Option<&'a [u8]> {
        if stored.len() < TAG_LEN {
            return None;
        }
        let (tag, bytes) = stored.split_at(TAG_LEN);
        bool::from(self.tag(kind, id, bytes).ct_eq(tag)).then_some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_verifies_only_as_written_under_its_own_id_and_kind() {
        let mac = RowMac::new(Secret::new(vec![5; 32]));
        let sealed = mac.seal("credential", b"7", b"body");
        assert_eq!(mac.open("credential", b"7", &sealed), Some(&b"body"[..]));
        assert_eq!(mac.open("credential", b"8", &sealed), None);
        assert_eq!(mac.open("token", b"7", &sealed), None);
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(mac.open("credential", b"7", &changed), None);
        let other = RowMac::new(Secret::new(vec![6; 32]));
        assert_eq!(other.open("credential", b"7", &sealed), None);
    }
}
