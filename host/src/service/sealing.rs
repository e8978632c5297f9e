//! Sealing and opening secrets with the active policy and the keyring. The
//! associated data binds a ciphertext to its credential, key and policy, so
//! a row copied elsewhere does not open.

use super::{Error, Service};
use crate::budget::Client;
use crate::plugins::SealError;
use crate::secret::Secret;
use crate::store::{Record, SealedSecret};

pub(super) fn associated_data(id: u64, key_id: u32, policy: &str) -> Vec<u8> {
    format!("credhost/credential/{id}/key/{key_id}/policy/{policy}").into_bytes()
}

impl Service {
    pub fn active_policy(&self) -> String {
        self.policy.read().expect("policy lock").clone()
    }

    /// Seals a secret of `client`'s request: the call counts against its
    /// share of the instances, as the request's `normalize` does.
    pub(super) async fn seal(
        &self,
        client: &Client,
        id: u64,
        secret: &Secret,
    ) -> Result<SealedSecret, Error> {
        let registry = self.plugins();
        let name = self.active_policy();
        let policy = registry
            .policy(&name)
            .ok_or_else(|| Error::Encrypt(format!("encryption policy '{name}' is not loaded")))?;
        let (key_id, key) =
            (self.keys.sealing_key()).map_err(|e| Error::Unavailable(e.to_string()))?;
        let aad = associated_data(id, key_id, &policy.info.name);
        let ciphertext = policy
            .seal(client, &key, secret, &aad)
            .await
            .map_err(|e| match e {
                SealError::Plugin(p) => Error::Plugin(p),
                SealError::Refused(reason) => Error::Encrypt(reason),
            })?;
        Ok(SealedSecret {
            policy: policy.info.name.clone(),
            policy_version: policy.meta.version.clone(),
            key_id,
            ciphertext,
        })
    }

    /// Opens a row read a moment ago. A rewrap may have re-sealed it and
    /// retired its old key since, so one failure is retried on a fresh read.
    pub(super) async fn open_current(
        &self,
        client: &Client,
        record: &Record,
    ) -> Result<Secret, Error> {
        match self.open(client, record).await {
            Err(error @ Error::Decrypt { .. }) => {
                let fresh = self.load(record.id as i64).await?;
                if fresh.secret == record.secret {
                    return Err(error);
                }
                self.open(client, &fresh).await
            }
            other => other,
        }
    }

    pub(super) async fn open(&self, client: &Client, record: &Record) -> Result<Secret, Error> {
        let sealed = &record.secret;
        let fail = |reason: String| Error::Decrypt {
            id: record.id,
            reason,
        };
        let registry = self.plugins();
        let policy = registry.policy(&sealed.policy).ok_or_else(|| {
            fail(format!(
                "encryption policy '{}' is not loaded",
                sealed.policy
            ))
        })?;
        let key = self
            .key(sealed.key_id)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let aad = associated_data(record.id, sealed.key_id, &sealed.policy);
        let opened = policy
            .open(client, &key, &sealed.ciphertext, &aad)
            .await
            .map_err(|e| match e {
                SealError::Plugin(p) => Error::Plugin(p),
                SealError::Refused(reason) => fail(reason),
            })?;
        self.confirm_key(sealed.key_id).await;
        Ok(opened)
    }

    /// Records, once, that a row opened under key `id`: the key is then
    /// bound to the database (see `keys::binding`). A shared keyring lives
    /// in the database itself and needs no binding.
    pub(super) async fn confirm_key(&self, id: u32) {
        if self.cluster.is_some()
            || !(self.confirmed_keys.lock())
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id)
        {
            return;
        }
        let keys = self.keys.clone();
        let recorded = self
            .store(move |s| crate::keys::binding::confirm(s, &keys, id))
            .await;
        if let Err(e) = recorded {
            tracing::warn!(key_id = id, "cannot record the key's check value: {e}");
        }
    }
}
