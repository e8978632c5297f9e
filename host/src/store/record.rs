//! One stored credential.

use serde::{Deserialize, Serialize};

use crate::plugins::Target;

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
    /// Bumped by every write of the row.
    pub version: u64,
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

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
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
