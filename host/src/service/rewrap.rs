//! Re-encryption ("rewrap") of stored secrets after a key rotation or a policy
//! swap: online, in small batches, each its own transaction.
//!
//! Which rows are left is read from the store's (policy, key id) index, so a
//! restart simply carries on: nothing needs replaying, and a row written while
//! the rewrap runs is sealed under the new target already and never touched.
//! A row is swapped only if it still holds the ciphertext that was opened
//! (compare-and-swap), so a concurrent update is never overwritten. A key is
//! retired only once no row references it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::sealing::associated_data;
use super::{Error, Service};
use crate::clock;
use crate::keys::KeyInfo;
use crate::secret::Secret;
use crate::store::{Record, SealedSecret, SecretChange};

/// Rows opened, re-sealed and written per transaction.
const BATCH: usize = 1024;
/// The settings key the rewrap job is recorded under.
const JOB: &str = "rewrap_job";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewrapState {
    Idle,
    Running,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewrapStatus {
    pub state: RewrapState,
    pub target_policy: String,
    pub target_key_id: u32,
    /// Rows re-sealed by the current (or last) run.
    pub done: u64,
    /// Rows not yet under the target.
    pub remaining: u64,
    pub rows_per_second: f64,
    pub error: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
}

pub(super) struct Rewrap {
    status: std::sync::Mutex<RewrapStatus>,
    running: AtomicBool,
    /// Bumped whenever a run ends.
    ended: watch::Sender<u64>,
}

impl Rewrap {
    pub(super) fn new() -> Self {
        Self {
            status: std::sync::Mutex::new(RewrapStatus {
                state: RewrapState::Idle,
                target_policy: String::new(),
                target_key_id: 0,
                done: 0,
                remaining: 0,
                rows_per_second: 0.0,
                error: None,
                started: None,
                finished: None,
            }),
            running: AtomicBool::new(false),
            ended: watch::channel(0).0,
        }
    }

    fn update(&self, f: impl FnOnce(&mut RewrapStatus)) {
        f(&mut self.status.lock().expect("rewrap status lock"));
    }
}

/// What `GET /api/v1/security/encryption` shows.
#[derive(Debug, Clone, Serialize)]
pub struct EncryptionStatus {
    pub active_policy: String,
    pub current_key_id: u32,
    pub policies: Vec<PolicyUse>,
    pub keys: Vec<KeyUse>,
    pub rewrap: RewrapStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyUse {
    pub name: String,
    pub version: String,
    pub algorithm: String,
    pub loaded: bool,
    pub active: bool,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyUse {
    #[serde(flatten)]
    pub key: KeyInfo,
    pub rows: u64,
}

/// Nice 10: under contention the rewrap gets about a tenth of what a request
/// thread gets.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

impl Service {
    /// Starts a rewrap in the background unless one is running; it works
    /// towards whatever (policy, key) is current at each batch.
    pub fn start_rewrap(self: &Arc<Self>) {
        if self.rewrap.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let service = self.clone();
        // Its own thread, at a lower priority, with a runtime of its own:
        // requests keep the CPUs first and the rewrap takes what is left.
        let spawned = std::thread::Builder::new()
            .name("rewrap".into())
            .spawn(move || {
                lower_priority();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the rewrap");
                runtime.block_on(service.rewrap_run());
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the rewrap thread: {e}");
            self.rewrap.running.store(false, Ordering::SeqCst);
        }
    }

    async fn rewrap_run(self: Arc<Self>) {
        let service = self;
        {
            let started = Instant::now();
            service.rewrap.update(|s| {
                s.state = RewrapState::Running;
                s.done = 0;
                s.error = None;
                s.started = Some(clock::format_us(clock::now_us()));
                s.finished = None;
            });
            let outcome = service.run_rewrap(started).await;
            service.rewrap.update(|s| {
                s.finished = Some(clock::format_us(clock::now_us()));
                match &outcome {
                    Ok(()) => s.state = RewrapState::Idle,
                    Err(e) => {
                        s.state = RewrapState::Failed;
                        s.error = Some(e.to_string());
                    }
                }
            });
            match &outcome {
                Ok(()) => tracing::info!("rewrap finished"),
                Err(e) => tracing::error!("rewrap stopped: {e}"),
            }
            service.rewrap.running.store(false, Ordering::SeqCst);
            service.rewrap.ended.send_modify(|n| *n += 1);
        }
    }

    /// Rewraps until every row is under the current (policy, key).
    pub async fn rewrap_until_done(self: &Arc<Self>) -> Result<(), Error> {
        loop {
            let mut ended = self.rewrap.ended.subscribe();
            ended.mark_unchanged();
            self.start_rewrap();
            if self.rewrap.running.load(Ordering::SeqCst) {
                let _ = ended.changed().await;
            }
            let status = self.rewrap_status();
            if status.state == RewrapState::Failed {
                return Err(Error::Rewrap(status.error.unwrap_or_default()));
            }
            let (policy, key_id) = self.target();
            if self
                .store(move |s| s.not_sealed_by(&policy, key_id, 1))
                .await?
                .is_empty()
            {
                return Ok(());
            }
        }
    }

    pub fn rewrap_status(&self) -> RewrapStatus {
        self.rewrap
            .status
            .lock()
            .expect("rewrap status lock")
            .clone()
    }

    /// The (policy, key id) new secrets are sealed under.
    fn target(&self) -> (String, u32) {
        (self.active_policy(), self.keys.current().0)
    }

    async fn run_rewrap(&self, started: Instant) -> Result<(), Error> {
        let (policy, key_id) = self.target();
        let counts = self.store.sealing_counts()?;
        let remaining: u64 = counts
            .iter()
            .filter(|c| !(c.policy == policy && c.key_id == key_id))
            .map(|c| c.rows)
            .sum();
        self.rewrap.update(|s| s.remaining = remaining);
        let job = serde_json::json!({ "policy": policy, "key_id": key_id, "started_us": clock::now_us() });
        self.store.set_setting(JOB, &job.to_string())?;

        let mut done = 0u64;
        loop {
            let (policy, key_id) = self.target();
            self.rewrap.update(|s| {
                s.target_policy = policy.clone();
                s.target_key_id = key_id;
            });
            // Store calls run inline: this is the rewrap's own thread.
            let batch = self.store.not_sealed_by(&policy, key_id, BATCH)?;
            if batch.is_empty() {
                break;
            }
            let changes = self.reseal(&batch, &policy, key_id).await?;
            let replaced = self.store.replace_secrets(&changes)? as u64;
            done += replaced;
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            self.rewrap.update(|s| {
                s.done = done;
                s.remaining = s.remaining.saturating_sub(replaced);
                s.rows_per_second = rate;
            });
        }
        // A writer that sealed under an older key just before the last
        // batch commits its row while retirement waits for it: such rows
        // are picked up by running again.
        if self.retire_unused().await? {
            return Box::pin(self.run_rewrap(started)).await;
        }
        self.rewrap.update(|s| s.remaining = 0);
        self.store.set_setting(JOB, "done")?;
        Ok(())
    }

    /// Opens a batch under its old sealing and seals it under the target.
    /// Any row that will not open stops everything, naming the row.
    async fn reseal(
        &self,
        batch: &[Record],
        policy: &str,
        key_id: u32,
    ) -> Result<Vec<SecretChange>, Error> {
        let registry = self.plugins();
        let mut groups: BTreeMap<(&str, u32), Vec<&Record>> = BTreeMap::new();
        for record in batch {
            groups
                .entry((record.secret.policy.as_str(), record.secret.key_id))
                .or_default()
                .push(record);
        }
        let mut plaintexts: Vec<(&Record, Secret)> = Vec::with_capacity(batch.len());
        for ((old_policy, old_key), records) in groups {
            let fail = |id: u64, reason: String| {
                Error::Rewrap(format!("credential {id} cannot be opened: {reason}"))
            };
            let plugin = registry.policy(old_policy).ok_or_else(|| {
                fail(
                    records[0].id,
                    format!("encryption policy '{old_policy}' is not loaded"),
                )
            })?;
            let key = self
                .keys
                .get(old_key)
                .map_err(|e| fail(records[0].id, e.to_string()))?;
            let items: Vec<(Vec<u8>, Vec<u8>)> = records
                .iter()
                .map(|r| {
                    (
                        r.secret.ciphertext.clone(),
                        associated_data(r.id, old_key, old_policy),
                    )
                })
                .collect();
            let opened = plugin.open_many(&key, &items).await?;
            for (record, result) in records.into_iter().zip(opened) {
                plaintexts.push((record, result.map_err(|reason| fail(record.id, reason))?));
            }
        }
        let plugin = registry
            .policy(policy)
            .ok_or_else(|| Error::Encrypt(format!("encryption policy '{policy}' is not loaded")))?;
        let key = self
            .keys
            .get(key_id)
            .map_err(|e| Error::Encrypt(e.to_string()))?;
        // The policy cuts the calls to fit its output cap.
        let items: Vec<(Secret, Vec<u8>)> = plaintexts
            .iter()
            .map(|(r, secret)| (secret.clone(), associated_data(r.id, key_id, policy)))
            .collect();
        let sealed = plugin.seal_many(&key, &items).await?;
        plaintexts
            .into_iter()
            .zip(sealed)
            .map(|((record, _), ciphertext)| {
                Ok(SecretChange {
                    id: record.id,
                    expected: record.secret.clone(),
                    new: SealedSecret {
                        policy: plugin.info.name.clone(),
                        policy_version: plugin.meta.version.clone(),
                        key_id,
                        ciphertext: ciphertext.map_err(Error::Encrypt)?,
                    },
                })
            })
            .collect()
    }

    /// Retires the keys no row uses; says whether rows remain that are not
    /// under the current (policy, key).
    async fn retire_unused(&self) -> Result<bool, Error> {
        // No writer is between sealing and committing while this is held,
        // so every key in use shows in the counts.
        let _sealing = self.sealing.write().await;
        let counts = self.store.sealing_counts()?;
        let unused: Vec<u32> = self
            .keys
            .ids()
            .into_iter()
            .filter(|id| !counts.iter().any(|c| c.key_id == *id))
            .collect();
        let retired = self
            .keys
            .retire(&unused)
            .map_err(|e| Error::Store(e.to_string()))?;
        if !retired.is_empty() {
            tracing::info!(?retired, "keys retired: no row references them");
        }
        let (policy, key_id) = self.target();
        Ok(counts
            .iter()
            .any(|c| !(c.policy == policy && c.key_id == key_id)))
    }

    /// Adds a key as current and rewraps every row under it before answering
    /// (obshell's `PUT /credential/encrypt-secret-key`).
    pub async fn replace_key(self: &Arc<Self>, key: Secret) -> Result<(), Error> {
        let id = self
            .keys
            .add_current(key)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        tracing::info!(key_id = id, "key added by the API; rewrapping");
        self.rewrap_until_done().await
    }

    /// A server-generated key; the rewrap runs in the background.
    pub fn rotate_key(self: &Arc<Self>) -> Result<u32, Error> {
        let key = Secret::new(rand::random::<[u8; crate::keys::KEY_LEN]>().to_vec());
        let id = self
            .keys
            .add_current(key)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        tracing::info!(key_id = id, "key rotated; rewrapping in the background");
        self.start_rewrap();
        Ok(id)
    }

    /// Makes an installed policy current; old rows are rewrapped in the background.
    pub async fn set_policy(self: &Arc<Self>, name: &str) -> Result<(), Error> {
        let registry = self.plugins();
        if registry.policy(name).is_none() {
            let installed: Vec<String> = registry.policies().map(|p| p.info.name.clone()).collect();
            return Err(Error::IllegalArgument(format!(
                "encryption policy '{name}' is not installed; installed: {}",
                installed.join(", ")
            )));
        }
        let record = serde_json::json!({ "name": name, "config_was": self.settings.policy });
        self.store(move |s| s.set_setting(super::POLICY_SETTING, &record.to_string()))
            .await?;
        *self.policy.write().expect("policy lock") = name.to_string();
        tracing::info!(
            policy = name,
            "encryption policy made current; rewrapping in the background"
        );
        self.start_rewrap();
        Ok(())
    }

    pub async fn encryption_status(&self) -> Result<EncryptionStatus, Error> {
        let counts = self.store(|s| s.sealing_counts()).await?;
        let active = self.active_policy();
        let registry = self.plugins();
        let mut policies: Vec<PolicyUse> = registry
            .policies()
            .map(|p| PolicyUse {
                name: p.info.name.clone(),
                version: p.meta.version.clone(),
                algorithm: p.info.algorithm.clone(),
                loaded: true,
                active: p.info.name == active,
                rows: counts
                    .iter()
                    .filter(|c| c.policy == p.info.name)
                    .map(|c| c.rows)
                    .sum(),
            })
            .collect();
        for count in &counts {
            if !policies.iter().any(|p| p.name == count.policy) {
                policies.push(PolicyUse {
                    name: count.policy.clone(),
                    version: String::new(),
                    algorithm: String::new(),
                    loaded: false,
                    active: false,
                    rows: counts
                        .iter()
                        .filter(|c| c.policy == count.policy)
                        .map(|c| c.rows)
                        .sum(),
                });
            }
        }
        let keys = self
            .keys
            .info()
            .into_iter()
            .map(|key| KeyUse {
                rows: counts
                    .iter()
                    .filter(|c| c.key_id == key.id)
                    .map(|c| c.rows)
                    .sum(),
                key,
            })
            .collect();
        Ok(EncryptionStatus {
            active_policy: active,
            current_key_id: self.keys.current().0,
            policies,
            keys,
            rewrap: self.rewrap_status(),
        })
    }
}
