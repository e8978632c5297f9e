//! The last validation of each stored credential, kept with its time so a
//! console shows it after a reload: written by batch validations and by the
//! proofs of creates and updates.

use crate::store::Validation;
use serde::{Deserialize, Serialize};

use super::{Error, Service};
use crate::clock;
use crate::plugins::{Detail, Endpoint, Reason};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    checked_us: i64,
    details: Vec<StoredDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredDetail {
    ip: String,
    port: u16,
    reason: Reason,
    message: String,
}

/// What `GET /credentials/validations` answers for one credential.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LastValidation {
    pub credential_id: u64,
    pub checked_at: String,
    pub succeeded_count: usize,
    pub failed_count: usize,
    pub details: Vec<Detail>,
}

/// How a verification is kept: its time and one verdict per target.
pub(super) fn validation_doc(checked_us: i64, details: &[Detail]) -> String {
    let stored = Stored {
        checked_us,
        details: details
            .iter()
            .map(|d| StoredDetail {
                ip: d.target.ip.clone(),
                port: d.target.port,
                reason: d.reason,
                message: d.message.clone(),
            })
            .collect(),
    };
    serde_json::to_string(&stored).expect("plain data serialises")
}

impl Service {
    /// Keeps these verdicts as the credentials' last; a failure to write
    /// them is logged, never the request's failure.
    /// Keeps each credential's verdicts, as (id, the `updated_us` of the
    /// row verified, details), unless an update replaced the row meanwhile.
    pub(super) async fn remember(&self, verdicts: Vec<(u64, i64, &[Detail])>) {
        let now = clock::now_us();
        let docs: Vec<Validation> = verdicts
            .into_iter()
            .map(|(id, made_on, details)| Validation {
                id,
                made_on: Some(made_on),
                doc: validation_doc(now, details),
            })
            .collect();
        if let Err(e) = self.store(move |s| s.put_validations(&docs)).await {
            tracing::warn!("cannot keep the last validations: {e}");
        }
    }

    pub async fn last_validations(&self, ids: Vec<i64>) -> Result<Vec<LastValidation>, Error> {
        let ids: Vec<u64> = super::ids::distinct(ids)?
            .into_iter()
            .filter_map(|id| u64::try_from(id).ok())
            .collect();
        let found = self.store(move |s| s.validations(&ids)).await?;
        Ok(found
            .into_iter()
            .filter_map(|(id, doc)| {
                let stored: Stored = serde_json::from_str(&doc).ok()?;
                let details: Vec<Detail> = stored
                    .details
                    .into_iter()
                    .map(|d| {
                        Detail::new(
                            Endpoint {
                                ip: d.ip,
                                port: d.port,
                            },
                            d.reason,
                            d.message,
                        )
                    })
                    .collect();
                let succeeded_count = details.iter().filter(|d| d.succeeded()).count();
                Some(LastValidation {
                    credential_id: id,
                    checked_at: clock::format_us(stored.checked_us),
                    succeeded_count,
                    failed_count: details.len() - succeeded_count,
                    details,
                })
            })
            .collect())
    }
}
