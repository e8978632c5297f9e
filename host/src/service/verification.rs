//! Proving credentials: before a write, on demand, and in batches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use super::{Contents, Error, Service, ValidateRequest, ValidationResult};
use crate::budget::Client;
use crate::capabilities::HostKeys;
use crate::plugins::{
    Detail, Endpoint, PluginError, Purpose, Reason, SecretChange, Target, VerifierPlugin,
};
use crate::secret::Secret;
use crate::store::Record;

impl Service {
    /// Host keys for proving a secret the caller sent: learned, except
    /// where the operator pinned some in advance.
    pub(super) fn learn_host_keys(&self, targets: &[Target]) -> HostKeys {
        self.learn_host_keys_holding(targets, Vec::new())
    }

    /// [`Self::learn_host_keys`], with `pins` held as `known_hosts` entries
    /// are: a target they name must present one of them.
    pub(super) fn learn_host_keys_holding(
        &self,
        targets: &[Target],
        pins: Vec<crate::plugins::HostKey>,
    ) -> HostKeys {
        HostKeys::learn_known_holding(
            &self.known_hosts.load(),
            targets.iter().map(|t| SocketAddr::new(t.ip, t.port)),
            pins,
        )
    }

    /// Host keys for a stored secret: its pins, less what the operator
    /// revoked since.
    pub(super) fn enforce_host_keys(&self, pins: Vec<crate::plugins::HostKey>) -> HostKeys {
        HostKeys::enforce_known(pins, &self.known_hosts.load())
    }

    /// Verifies within the caller's allowance of secrets judged wrong per
    /// host (see `guesses`): every login credhost makes for a caller
    /// counts, with a secret the request sent or a stored one (a stored
    /// secret that keeps failing is a lockout in the making).
    async fn verify_within_allowance(
        &self,
        verifier: &VerifierPlugin,
        public: &str,
        secret: &Secret,
        targets: &[Target],
        host_keys: &HostKeys,
        client: &Client,
    ) -> Result<Vec<Detail>, PluginError> {
        let admitted = self.guesses.admit(client, targets, Instant::now());
        let details = if admitted.any() {
            let dial = admitted.dial();
            match (verifier.verify_dialling(public, secret, targets, &dial, host_keys, client))
                .await
            {
                Ok(details) => details,
                // Refused before any call started: nothing was sent.
                Err(busy @ PluginError::Busy(_)) => {
                    self.guesses.release(admitted);
                    return Err(busy);
                }
                // Any other error keeps the tokens: a secret may have been
                // sent (see `Guesses::conclude`).
                Err(e) => return Err(e),
            }
        } else {
            // Every target is held: nothing to call the plugin for.
            targets
                .iter()
                .map(|t| Detail::new((*t).into(), Reason::NotGranted, String::new()))
                .collect()
        };
        Ok(self.guesses.conclude(admitted, details))
    }

    /// Every target must log in; otherwise the write is refused with a
    /// message naming each failing target and why. The verdicts, when all
    /// passed.
    pub(super) async fn prove(
        &self,
        verifier: &VerifierPlugin,
        public: &str,
        secret: &Secret,
        targets: &[Target],
        host_keys: &HostKeys,
        client: &Client,
    ) -> Result<Vec<Detail>, Error> {
        let details = self
            .verify_within_allowance(verifier, public, secret, targets, host_keys, client)
            .await?;
        count(&verifier.info.target_type, &details);
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
            Ok(details)
        } else {
            Err(Error::ValidationFailed {
                code: verifier.info.validation_failed_code.clone(),
                prefix: verifier.info.validation_failed_message.clone(),
                detail: failures.join("; "),
            })
        }
    }

    /// Checks a credential that is not stored.
    pub async fn validate(
        &self,
        req: ValidateRequest,
        client: &Client,
    ) -> Result<ValidationResult, Error> {
        let registry = self.plugins();
        let verifier = self.verifier(&registry, &req.target_type)?;
        let normalized = self
            .normalize(&verifier, &req.body, Purpose::Validate, None, client)
            .await?;
        let SecretChange::Replace(secret) = normalized.secret else {
            return Err(Error::IllegalArgument(
                "a credential to validate needs its secret".into(),
            ));
        };
        let host_keys = self.learn_host_keys(&normalized.targets);
        let details = self
            .verify_within_allowance(
                &verifier,
                &normalized.public,
                &secret,
                &normalized.targets,
                &host_keys,
                client,
            )
            .await?;
        count(&verifier.info.target_type, &details);
        Ok(ValidationResult::new(
            None,
            verifier.info.target_type.clone(),
            details,
        ))
    }

    /// Checks stored credentials, all of them concurrently (bounded). Every
    /// id must exist; the unknown ones are named. Each id is checked once.
    pub async fn validate_many(
        &self,
        ids: Vec<i64>,
        client: &Client,
    ) -> Result<Contents<ValidationResult>, Error> {
        let wanted = super::ids::distinct(ids)?;
        let mut records = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        for id in wanted {
            match self.load(id).await {
                Ok(record) => records.push(record),
                Err(Error::NotFound) => missing.push(id),
                Err(e) => return Err(e),
            }
        }
        if !missing.is_empty() {
            return Err(Error::NotFoundIds { ids: missing });
        }
        // The rows as verified: a verdict is kept only on the same row.
        let made_on: Vec<i64> = records.iter().map(|r| r.updated_us).collect();
        let contents: Vec<ValidationResult> = futures::stream::iter(records)
            .map(|record| self.check_stored(record, client))
            .buffered(self.settings.verify_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        self.remember(
            contents
                .iter()
                .zip(made_on)
                .filter_map(|(r, made_on)| {
                    r.credential_id
                        .map(|id| (id, made_on, r.details.as_slice()))
                })
                .collect(),
        )
        .await;
        Ok(Contents { contents })
    }

    /// One stored credential's verdict. Whatever goes wrong becomes a failed
    /// detail per target, so the counts always add up to the details.
    async fn check_stored(&self, record: Record, client: &Client) -> ValidationResult {
        let details = match self.verify_stored(&record, client).await {
            Ok(details) => details,
            Err((reason, message)) => record
                .targets
                .iter()
                .map(|t| Detail::new(Endpoint::from(*t), reason, message.clone()))
                .collect(),
        };
        count(&record.target_type, &details);
        ValidationResult::new(Some(record.id), record.target_type.clone(), details)
    }

    async fn verify_stored(
        &self,
        record: &Record,
        client: &Client,
    ) -> Result<Vec<Detail>, (Reason, String)> {
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
        let secret = self.open_current(client, record).await.map_err(|e| {
            (
                Reason::SecretUnreadable,
                format!("failed to decrypt passphrase: {e}"),
            )
        })?;
        // A stored secret: only to the keys it was proven against.
        let host_keys = self.enforce_host_keys(record.host_keys.clone());
        // Stored targets are held to today's list too: it may have been
        // narrowed since they were saved, or they came from another server
        // of the cluster or a copied store.
        let permitted: Vec<bool> = (record.targets.iter()).map(|t| self.may_dial(t)).collect();
        let allowed: Vec<Target> = (record.targets.iter().zip(&permitted))
            .filter_map(|(t, permitted)| permitted.then_some(*t))
            .collect();
        let mut proven = if allowed.is_empty() {
            Vec::new()
        } else {
            self.verify_within_allowance(
                &verifier,
                &record.public,
                &secret,
                &allowed,
                &host_keys,
                client,
            )
            .await
            .map_err(|e| (Reason::Other, e.to_string()))?
        }
        .into_iter();
        Ok((record.targets.iter().zip(permitted))
            .map(|(t, permitted)| {
                let refused =
                    |reason, message: &str| Detail::new(Endpoint::from(*t), reason, message.into());
                match permitted {
                    false => refused(
                        Reason::NotGranted,
                        "the target is outside this server's allow_targets",
                    ),
                    true => proven
                        .next()
                        .unwrap_or_else(|| refused(Reason::Other, "the verifier gave no verdict")),
                }
            })
            .collect())
    }
}

/// Verdicts by target type and reason, for the metrics.
fn count(target_type: &str, details: &[Detail]) {
    for detail in details {
        metrics::counter!("credhost_verifications_total",
            "target_type" => target_type.to_string(), "reason" => detail.reason.as_str())
        .increment(1);
    }
}

fn address(target: &Endpoint) -> String {
    if target.ip.contains(':') {
        format!("[{}]:{}", target.ip, target.port)
    } else {
        format!("{}:{}", target.ip, target.port)
    }
}
