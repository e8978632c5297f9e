//! Proving credentials: before a write, on demand, and in batches.

use std::sync::Arc;

use futures::StreamExt;

use super::{Contents, Error, Service, ValidateRequest, ValidationResult};
use crate::plugins::{Detail, Endpoint, Purpose, Reason, SecretChange, Target, VerifierPlugin};
use crate::secret::Secret;
use crate::store::Record;

impl Service {
    /// Every target must log in; otherwise the write is refused with a
    /// message naming each failing target and why.
    pub(super) async fn prove(
        &self,
        verifier: &VerifierPlugin,
        public: &serde_json::Value,
        secret: &Secret,
        targets: &[Target],
    ) -> Result<(), Error> {
        let details = verifier.verify(public, secret, targets).await?;
        if details.len() != targets.len() {
            return Err(Error::ValidationFailed(format!(
                "the verifier answered for {} of {} targets",
                details.len(),
                targets.len()
            )));
        }
        let failures: Vec<String> = details
            .iter()
            .filter(|d| !d.succeeded())
            .map(|d| {
                format!(
                    "{} {}: {}",
                    address(&d.target),
                    d.reason.as_str(),
                    d.message
                )
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::ValidationFailed(failures.join("; ")))
        }
    }

    /// Checks a credential that is not stored.
    pub async fn validate(&self, req: ValidateRequest) -> Result<ValidationResult, Error> {
        let registry = self.plugins();
        let verifier = self.verifier(&registry, &req.target_type)?;
        let normalized = self
            .normalize(&verifier, &req.body, Purpose::Validate)
            .await?;
        let secret = match normalized.secret {
            SecretChange::Replace(secret) => secret,
            SecretChange::Keep => Secret::new(Vec::new()),
        };
        let details = verifier
            .verify(&normalized.public, &secret, &normalized.targets)
            .await?;
        Ok(ValidationResult::new(
            None,
            verifier.info.target_type.clone(),
            details,
        ))
    }

    /// Checks stored credentials, all of them concurrently (bounded). Every
    /// id must exist; the unknown ones are named. Each id is checked once.
    pub async fn validate_many(&self, ids: Vec<i64>) -> Result<Contents<ValidationResult>, Error> {
        let wanted = super::ids::distinct(ids)?;
        let mut records = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        for id in wanted {
            match self.load(id).await {
                Ok(record) => records.push(record),
                Err(Error::NotFound) => missing.push(id.unsigned_abs()),
                Err(e) => return Err(e),
            }
        }
        if !missing.is_empty() {
            return Err(Error::NotFoundIds { ids: missing });
        }
        let contents = futures::stream::iter(records)
            .map(|record| self.check_stored(record))
            .buffered(self.settings.verify_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        Ok(Contents { contents })
    }

    /// One stored credential's verdict. Whatever goes wrong becomes a failed
    /// detail per target, so the counts always add up to the details.
    async fn check_stored(&self, record: Record) -> ValidationResult {
        let details = match self.verify_stored(&record).await {
            Ok(details) => details,
            Err((reason, message)) => record
                .targets
                .iter()
                .map(|t| Detail {
                    target: Endpoint::from(*t),
                    connection_result: "CONNECT_FAILED".into(),
                    reason,
                    message: message.clone(),
                })
                .collect(),
        };
        ValidationResult::new(Some(record.id), record.target_type.clone(), details)
    }

    async fn verify_stored(&self, record: &Record) -> Result<Vec<Detail>, (Reason, String)> {
        let verifier: Arc<VerifierPlugin> = self
            .plugins()
            .verifier(&record.target_type)
            .cloned()
            .ok_or_else(|| {
            (
                Reason::Unsupported,
                format!(
                    "no verifier for target type {} is installed",
                    record.target_type
                ),
            )
        })?;
        let secret = self.open_current(record).await.map_err(|e| {
            (
                Reason::SecretUnreadable,
                format!("failed to decrypt passphrase: {e}"),
            )
        })?;
        let public: serde_json::Value = serde_json::from_str(&record.public)
            .map_err(|e| (Reason::Other, format!("failed to deserialize secret: {e}")))?;
        verifier
            .verify(&public, &secret, &record.targets)
            .await
            .map_err(|e| (Reason::Other, e.to_string()))
    }
}

fn address(target: &Endpoint) -> String {
    if target.ip.contains(':') {
        format!("[{}]:{}", target.ip, target.port)
    } else {
        format!("{}:{}", target.ip, target.port)
    }
}
