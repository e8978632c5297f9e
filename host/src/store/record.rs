//! One stored credential.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
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

fn to_base64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    STANDARD.decode(text).map_err(serde::de::Error::custom)
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record always serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
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
