//! The MAC chain that makes the audit log tamper-evident: each line ends
//! with `"mac":"<hex>"`, an HMAC-SHA256 under a key of the installation
//! over the previous line's MAC and this line without its MAC. Altering a
//! line, removing one, or moving one breaks the chain at that point.
//!
//! The keys come from `audit.key` in the data directory: one for the chain,
//! one for the `hmac-sha256:` values written in place of identifiers that
//! must not be readable (token ids, the header's `keys`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

const MAC_FIELD: &str = ",\"mac\":\"";

/// The two keys, each as an HMAC already keyed: a copy of one is all a
/// record's MAC or hash needs, with no key schedule per record.
#[derive(Clone)]
pub struct Keys {
    chain: HmacSha256,
    values: HmacSha256,
}

fn derive(master: &[u8], label: &str) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes any key");
    mac.update(label.as_bytes());
    let key = Secret::new(mac.finalize().into_bytes().to_vec());
    <HmacSha256 as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key")
}

impl Keys {
    pub fn from_master(master: &Secret) -> Self {
        Self {
            chain: derive(master.expose(), "credhost audit chain v1"),
            values: derive(master.expose(), "credhost audit values v1"),
        }
    }

    /// `hmac-sha256:<hex>` of a value, as Vault writes such values; the
    /// same value gives the same text, so a known one can be searched for.
    pub fn hash(&self, value: &str) -> String {
        let mut mac = self.values.clone();
        mac.update(value.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    fn mac(&self, prev: &str, body: &str) -> String {
        let mut mac = self.chain.clone();
        mac.update(prev.as_bytes());
        mac.update(b"\n");
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Seals `body` (a JSON object without `mac`, on one line) after the
    /// line whose MAC is `prev`; returns the line and its MAC.
    pub fn seal(&self, prev: &str, body: &str) -> (String, String) {
        debug_assert!(body.ends_with('}') && !body.contains('\n'));
        let mac = self.mac(prev, body);
        let line = format!("{}{MAC_FIELD}{mac}\"}}", &body[..body.len() - 1]);
        (line, mac)
    }

    /// The MAC a line carries, if it is the one the chain gives after `prev`.
    pub fn check(&self, prev: &str, line: &str) -> Result<String, Broken> {
        let (body, mac) = split(line).ok_or(Broken::Unsealed)?;
        let expected = self.mac(prev, &body);
        let ok: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), mac.as_bytes()).into();
        if ok { Ok(expected) } else { Err(Broken::Mac) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The line carries no MAC where it should.
    Unsealed,
    /// The MAC is not the chain's: this line or one before it changed.
    Mac,
}

/// A sealed line's body (as it was sealed) and its MAC.
pub fn split(line: &str) -> Option<(String, String)> {
    let at = line.rfind(MAC_FIELD)?;
    let mac = line[at + MAC_FIELD.len()..].strip_suffix("\"}")?;
    if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((format!("{}}}", &line[..at]), mac.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_master(&Secret::new(vec![7; 32]))
    }

    #[test]
    fn lines_chain_and_changes_break_them() {
        let keys = keys();
        let (a, mac_a) = keys.seal("", r#"{"seq":1,"x":"a"}"#);
        let (b, mac_b) = keys.seal(&mac_a, r#"{"seq":2,"x":"b"}"#);
        assert!(a.ends_with(&format!("\"mac\":\"{mac_a}\"}}")));
        assert_eq!(keys.check("", &a).unwrap(), mac_a);
        assert_eq!(keys.check(&mac_a, &b).unwrap(), mac_b);
        // Out of order, altered, or with the MAC taken off.
        assert_eq!(keys.check("", &b), Err(Broken::Mac));
        assert_eq!(
            keys.check(&mac_a, &b.replace("\"b\"", "\"c\"")),
            Err(Broken::Mac)
        );
        assert_eq!(keys.check("", r#"{"seq":1}"#), Err(Broken::Unsealed));
        // Another installation's key does not verify it.
        let other = Keys::from_master(&Secret::new(vec![8; 32]));
        assert_eq!(other.check("", &a), Err(Broken::Mac));
    }

    #[test]
    fn hashes_are_stable_and_keyed() {
        let keys = keys();
        assert_eq!(keys.hash("alice"), keys.hash("alice"));
        assert!(keys.hash("alice").starts_with("hmac-sha256:"));
        assert_ne!(keys.hash("alice"), keys.hash("bob"));
        let other = Keys::from_master(&Secret::new(vec![8; 32]));
        assert_ne!(keys.hash("alice"), other.hash("alice"));
    }
}
