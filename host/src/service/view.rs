//! What the use cases answer with, shaped as obshell's JSON.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::clock;
use crate::plugins::Detail;
use crate::store::Record;

/// A credential as obshell shows it; the public part sits under the field
/// its verifier names (`ssh_secret` for HOST).
#[derive(Debug, Clone)]
pub struct CredentialView {
    pub id: u64,
    pub name: String,
    pub target_type: String,
    pub description: String,
    pub public_field: String,
    /// The stored JSON text, embedded as it is.
    pub public: Box<serde_json::value::RawValue>,
    pub created_us: i64,
    pub updated_us: i64,
}

impl CredentialView {
    pub fn of(record: &Record) -> Self {
        Self {
            id: record.id,
            name: record.name.clone(),
            target_type: record.target_type.clone(),
            description: record.description.clone(),
            public_field: record.public_field.clone(),
            public: serde_json::value::RawValue::from_string(public_with_pins(record))
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
            created_us: record.created_us,
            updated_us: record.updated_us,
        }
    }
}

/// The verifier's public part, and the host keys pinned for the
/// credential (fingerprints only) under `host_keys`.
fn public_with_pins(record: &Record) -> String {
    if record.host_keys.is_empty() {
        return record.public.clone();
    }
    match serde_json::from_str::<serde_json::Value>(&record.public) {
        Ok(serde_json::Value::Object(mut public)) => {
            public.insert(
                "host_keys".into(),
                serde_json::to_value(&record.host_keys).unwrap_or_default(),
            );
            serde_json::Value::Object(public).to_string()
        }
        _ => record.public.clone(),
    }
}

impl Serialize for CredentialView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(7))?;
        map.serialize_entry("credential_id", &self.id)?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("target_type", &self.target_type)?;
        map.serialize_entry("description", &self.description)?;
        map.serialize_entry(&self.public_field, &self.public)?;
        map.serialize_entry("create_time", &clock::format_us(self.created_us))?;
        map.serialize_entry("update_time", &clock::format_us(self.updated_us))?;
        map.end()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValidationResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<u64>,
    pub target_type: String,
    pub succeeded_count: usize,
    pub failed_count: usize,
    pub details: Vec<Detail>,
}

impl ValidationResult {
    pub fn new(credential_id: Option<u64>, target_type: String, details: Vec<Detail>) -> Self {
        let succeeded_count = details.iter().filter(|d| d.succeeded()).count();
        Self {
            credential_id,
            target_type,
            succeeded_count,
            failed_count: details.len() - succeeded_count,
            details,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PageView {
    pub total_elements: u64,
    pub total_pages: u64,
    pub size: u64,
    pub number: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListView {
    pub contents: Vec<CredentialView>,
    pub page: PageView,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contents<T> {
    pub contents: Vec<T>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: Vec<u64>,
    /// As sent (a negative id is named as it was, not as its magnitude).
    pub not_found: Vec<i64>,
}
