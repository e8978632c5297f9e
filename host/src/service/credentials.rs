//! Create, read, update and delete.

use super::{
    CreateRequest, CredentialView, Deleted, Error, Service, UpdateRequest, check_description,
    check_name,
};
use crate::budget::Client;
use crate::clock;
use crate::plugins::{Purpose, SecretChange};
use crate::store::{Record, SealedSecret, SecretWrite};

impl Service {
    pub async fn create(
        &self,
        req: CreateRequest,
        client: &Client,
    ) -> Result<CredentialView, Error> {
        check_name(&req.name)?;
        check_description(&req.description)?;
        let registry = self.plugins();
        let verifier = self.verifier(&registry, &req.target_type)?;
        let normalized = self
            .normalize(&verifier, &req.body, Purpose::Create, None, client)
            .await?;
        let SecretChange::Replace(secret) = normalized.secret else {
            return Err(Error::IllegalArgument(
                "a new credential needs its secret".into(),
            ));
        };
        let now = clock::now_us();
        let mut record = Record {
            id: 0,
            name: req.name,
            description: req.description,
            target_type: verifier.info.target_type.clone(),
            public_field: verifier.info.public_field.clone(),
            public: normalized.public.clone(),
            targets: normalized.targets,
            search_terms: normalized.search_terms,
            secret: SealedSecret {
                policy: String::new(),
                policy_version: String::new(),
                key_id: 0,
                ciphertext: Vec::new(),
            },
            created_us: now,
            updated_us: now,
            version: 1,
            host_keys: Vec::new(),
        };
        // Refuse a duplicate before logging in anywhere; the insert checks again.
        let probe = record.clone();
        if let Some(conflict) = self.store(move |s| s.conflict(&probe)).await? {
            return Err(conflict.into());
        }
        let host_keys = self.learn_host_keys(&record.targets);
        let proof = self
            .prove(
                &verifier,
                &normalized.public,
                &secret,
                &record.targets,
                &host_keys,
                client,
            )
            .await?;
        record.host_keys = host_keys.accepted();
        record.id = self.reserve_id().await?;
        let sealing = self.sealing.clone().read_owned().await;
        record.secret = self.seal(client, record.id, &secret).await?;
        let stored = record.clone();
        // The proof is kept as the credential's last validation, in the
        // same write.
        let proven = super::validations::validation_doc(clock::now_us(), &proof);
        self.store_holding(sealing, move |s| s.insert(&stored, Some(&proven)))
            .await?;
        tracing::info!(id = record.id, target_type = %record.target_type, "credential created");
        Ok(CredentialView::of(&record))
    }

    pub async fn get(&self, id: i64) -> Result<CredentialView, Error> {
        let record = self.load(id).await?;
        Ok(CredentialView::of(&record))
    }

    /// What an update of an id that is not there is answered: obshell binds
    /// the body before it looks the credential up, so a body it cannot bind
    /// is a bind error (400) whether or not the id exists. With no row there
    /// is no target type: the body is bound by the verifier whose property
    /// field it holds (HOST's, for obshell's clients), if just one's.
    async fn unbound_or_missing(&self, req: &UpdateRequest, client: &Client) -> Error {
        let registry = self.plugins();
        let mut holding = registry
            .verifiers()
            .filter(|v| req.body.raw(&v.info.property_field).as_str() != "null");
        let (Some(verifier), None) = (holding.next().cloned(), holding.next()) else {
            return Error::NotFound;
        };
        match (self.normalize(&verifier, &req.body, Purpose::Update, None, client)).await {
            Err(
                unbound @ Error::Refused {
                    code: crate::plugins::RefusalCode::BindJsonFailed,
                    ..
                },
            ) => unbound,
            _ => Error::NotFound,
        }
    }

    /// A point read: from redb's cache it takes microseconds, so it runs
    /// inline rather than paying for a hop to the blocking pool; a shared
    /// database's round trip goes to the pool.
    pub(super) async fn load(&self, id: i64) -> Result<Record, Error> {
        let Ok(id) = u64::try_from(id) else {
            return Err(Error::NotFound);
        };
        if let Some(read) = self.store.get_async(id) {
            return read.await?.ok_or(Error::NotFound);
        }
        if self.store.inline_reads() {
            return self.store.get(id)?.ok_or(Error::NotFound);
        }
        self.store(move |s| s.get(id)).await?.ok_or(Error::NotFound)
    }

    pub async fn update(
        &self,
        id: i64,
        req: UpdateRequest,
        client: &Client,
    ) -> Result<CredentialView, Error> {
        let current = match self.load(id).await {
            Err(Error::NotFound) => return Err(self.unbound_or_missing(&req, client).await),
            loaded => loaded?,
        };
        check_name(&req.name)?;
        check_description(&req.description)?;
        let registry = self.plugins();
        let verifier = self.verifier(&registry, &current.target_type)?;
        let normalized = self
            .normalize(
                &verifier,
                &req.body,
                Purpose::Update,
                Some(&current.public),
                client,
            )
            .await?;
        let mut record = Record {
            name: req.name,
            description: req.description,
            public_field: verifier.info.public_field.clone(),
            public: normalized.public.clone(),
            targets: normalized.targets,
            search_terms: normalized.search_terms,
            updated_us: clock::now_us(),
            ..current.clone()
        };
        let probe = record.clone();
        if let Some(conflict) = self.store(move |s| s.conflict(&probe)).await? {
            return Err(conflict.into());
        }
        let (secret, replaced) = match normalized.secret {
            SecretChange::Replace(secret) => (secret, true),
            SecretChange::Keep => {
                if req.forget_host_keys {
                    return Err(Error::IllegalArgument(
                        "forget_host_keys needs the passphrase: a stored secret goes only to \
                         the host keys pinned for it"
                            .into(),
                    ));
                }
                // A stored secret goes only where it was proven: new
                // targets need the caller to send it.
                let new: Vec<String> = record
                    .targets
                    .iter()
                    .filter(|t| !current.targets.contains(t))
                    .map(|t| std::net::SocketAddr::new(t.ip, t.port).to_string())
                    .collect();
                if !new.is_empty() {
                    return Err(Error::SecretRequired(new.join(", ")));
                }
                (self.open_current(client, &current).await?, false)
            }
        };
        // A new secret is proven like a new credential and pins what it
        // meets, but a target pinned already must present its pin (the
        // secret re-entered while another holds the address is not sent
        // there) unless the caller says its key changed; the stored one goes
        // only to the keys pinned for it.
        let host_keys = if replaced {
            let kept = if req.forget_host_keys {
                Vec::new()
            } else {
                current.host_keys.clone()
            };
            self.learn_host_keys_holding(&record.targets, kept)
        } else {
            record.host_keys = current
                .host_keys
                .iter()
                .filter(|k| {
                    record
                        .targets
                        .iter()
                        .any(|t| (t.ip, t.port) == (k.ip, k.port))
                })
                .cloned()
                .collect();
            self.enforce_host_keys(record.host_keys.clone())
        };
        let proof = self
            .prove(
                &verifier,
                &normalized.public,
                &secret,
                &record.targets,
                &host_keys,
                client,
            )
            .await?;
        if replaced {
            record.host_keys = host_keys.accepted();
        }
        let sealing = self.sealing.clone().read_owned().await;
        let write = if replaced {
            SecretWrite::Replace(self.seal(client, record.id, &secret).await?)
        } else {
            SecretWrite::Keep
        };
        // The proof is kept in the update's own write, as a create's is: an
        // acknowledged update always shows the validation that allowed it.
        let proven = super::validations::validation_doc(clock::now_us(), &proof);
        let stored = self
            .store_holding(sealing, move |s| s.update(record, write, Some(&proven)))
            .await?;
        tracing::info!(id = stored.id, "credential updated");
        Ok(CredentialView::of(&stored))
    }

    pub async fn delete(&self, id: i64) -> Result<(), Error> {
        let record = self.load(id).await?;
        let id = record.id;
        if !self.store(move |s| s.delete(id)).await? {
            return Err(Error::NotFound);
        }
        tracing::info!(id, "credential deleted");
        Ok(())
    }

    /// Deletes every listed credential that exists, atomically. Unknown ids
    /// are reported, not an error, so a retried request is harmless.
    pub async fn delete_many(&self, ids: Vec<i64>) -> Result<Deleted, Error> {
        if ids.is_empty() {
            return Err(Error::IllegalArgument("credential id list is empty".into()));
        }
        // A negative id names no credential, and is reported as sent.
        let (wanted, mut not_found): (Vec<i64>, Vec<i64>) = super::ids::distinct(ids)?
            .into_iter()
            .partition(|id| *id >= 0);
        let requested: Vec<u64> = wanted.iter().map(|id| id.unsigned_abs()).collect();
        let deleted = self.store(move |s| s.delete_many(&requested)).await?;
        let gone: std::collections::HashSet<u64> = deleted.iter().copied().collect();
        not_found.extend(
            wanted
                .into_iter()
                .filter(|id| !gone.contains(&id.unsigned_abs())),
        );
        tracing::info!(deleted = deleted.len(), "credentials deleted");
        Ok(Deleted { deleted, not_found })
    }
}

impl Error {
    pub(super) fn refused(r: crate::plugins::Refusal) -> Self {
        Error::Refused {
            code: r.code,
            message: r.message,
        }
    }
}
