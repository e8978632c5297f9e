//! One stored credential.

use serde::{Deserialize, Serialize};

use crate::plugins::{HostKey, Target};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub target_type: String,
    /// The response field the public part is shown under (the verifier's
    /// `public-field`), kept so the row reads the same if the plugin goes.
    pub public_field: String,
    /// The verifier's public part, JSON text.
    pub public: String,
    pub targets: Vec<Target>,
    pub search_terms: Vec<String>,
    pub secret: SealedSecret,
    /// Microseconds since the Unix epoch.
    pub created_us: i64,
    pub updated_us: i64,
    /// Bumped by every create or update: what a client wrote. A rewrap
    /// reseals the secret under another key and leaves it, so an update
    /// that read a row is refused only when a client changed it meanwhile.
    pub version: u64,
    /// The server keys the secret was proven against, per endpoint.
    pub host_keys: Vec<HostKey>,
}

/// Rows written before host keys were pinned: the same fields, fewer.
#[derive(Deserialize)]
struct RecordWithoutPins {
    id: u64,
    name: String,
    description: String,
    target_type: String,
    public_field: String,
    public: String,
    targets: Vec<Target>,
    search_terms: Vec<String>,
    secret: SealedSecret,
    created_us: i64,
    updated_us: i64,
    version: u64,
}

/// A secret as stored: sealed by a named policy under a key id, so it can be
/// opened after any number of rotations and policy swaps.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub policy: String,
    pub policy_version: String,
    pub key_id: u32,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("policy", &self.policy)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

impl Record {
    /// Compact and quick: rows are decoded on every read and rewrap.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a record always serialises")
    }

    /// Reads rows of this version and of the one before, which ends
    /// before `host_keys` (postcard is not self-describing, so the older
    /// shape is tried when the newer one runs out of bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes).or_else(|error| {
            let old: RecordWithoutPins = postcard::from_bytes(bytes).map_err(|_| error)?;
            Ok(Self {
                id: old.id,
                name: old.name,
                description: old.description,
                target_type: old.target_type,
                public_field: old.public_field,
                public: old.public,
                targets: old.targets,
                search_terms: old.search_terms,
                secret: old.secret,
                created_us: old.created_us,
                updated_us: old.updated_us,
                version: old.version,
                host_keys: Vec::new(),
            })
        })
    }

    /// What `key_word` searches, lower-cased: name, target ips, search terms.
    pub fn haystack(&self) -> String {
        let mut text = self.name.to_lowercase();
        for target in &self.targets {
            text.push('\n');
            text.push_str(&target.ip.to_string());
        }
        for term in &self.search_terms {
            text.push('\n');
            text.push_str(&term.to_lowercase());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_written_before_pins_still_read() {
        let old = (
            7u64,
            "web".to_string(),
            String::new(),
            "HOST".to_string(),
            "ssh_secret".to_string(),
            "{}".to_string(),
            vec![Target {
                ip: "127.0.0.1".parse().unwrap(),
                port: 22,
            }],
            Vec::<String>::new(),
            SealedSecret {
                policy: "aes-256-gcm".into(),
                policy_version: "0.1.0".into(),
                key_id: 1,
                ciphertext: vec![1, 2, 3],
            },
            1i64,
            2i64,
            3u64,
        );
        let bytes = postcard::to_allocvec(&old).unwrap();
        let record = Record::decode(&bytes).unwrap();
        assert_eq!((record.id, record.version), (7, 3));
        assert!(record.host_keys.is_empty());
        let again = Record::decode(&record.encode()).unwrap();
        assert_eq!(again.name, "web");
    }
}
