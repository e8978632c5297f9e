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
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::sealing::associated_data;
use super::{Error, Service};
use crate::budget::Client;
use crate::clock;
use crate::keys::{KeyError, KeyInfo};
use crate::secret::Secret;
use crate::store::{Record, SealedSecret, SecretChange};

/// Rows opened, re-sealed and written per transaction, at most.
const BATCH: usize = 1024;
/// The first batch of a cluster's rewrap, and its smallest: the pace of
/// each batch sizes the next (see `batch_after`).
const FIRST_CLUSTER_BATCH: usize = 64;
/// The settings key the rewrap job is recorded under.
pub(super) const JOB: &str = "rewrap_job";
/// The settings key a cluster's rewrap records its progress under.
const PROGRESS: &str = "rewrap_progress";
/// The lease that lets one server of a cluster rewrap.
const LEASE: &str = "rewrap";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RewrapState {
    Idle,
    Running,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Set by a start that found a run under way: that run may be past its
    /// last batch, toward a target the start has just replaced, so it runs
    /// again once it ends.
    again: AtomicBool,
    /// Bumped whenever a run ends.
    ended: watch::Sender<u64>,
    /// Runs failed in a row, and when the last one ended: a cluster's
    /// heartbeat starts an unfinished rewrap again, and one that fails on
    /// the same row every time would otherwise count the rows, log and
    /// audit its failure every heartbeat, for ever.
    failed: std::sync::Mutex<(u32, Option<Instant>)>,
}

/// The wait before a heartbeat starts again a rewrap that failed once; it
/// doubles with each failure in a row, up to [`RETRY_AT_MOST`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_AT_MOST: Duration = Duration::from_secs(300);

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
            again: AtomicBool::new(false),
            ended: watch::channel(0).0,
            failed: std::sync::Mutex::new((0, None)),
        }
    }

    /// Whether the caller starts a run (`true`), or one is under way and
    /// has been asked to run again when it ends.
    fn claim(&self) -> bool {
        // Asked before claimed: a run that ends between the two sees the ask
        // and runs again, rather than both missing each other.
        self.again.store(true, Ordering::SeqCst);
        if self.running.swap(true, Ordering::SeqCst) {
            return false;
        }
        // Nothing has run yet: this run reads the target at its first batch.
        self.again.store(false, Ordering::SeqCst);
        true
    }

    pub(super) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Ends a run; whether a start came while it ran (see `claim`).
    fn release(&self) -> bool {
        self.running.store(false, Ordering::SeqCst);
        self.ended.send_modify(|n| *n += 1);
        self.again.swap(false, Ordering::SeqCst)
    }

    fn update(&self, f: impl FnOnce(&mut RewrapStatus)) {
        f(&mut self.status.lock().expect("rewrap status lock"));
    }

    fn record(&self, succeeded: bool) {
        let mut failed = self.failed.lock().expect("rewrap failures lock");
        *failed = if succeeded {
            (0, None)
        } else {
            (failed.0.saturating_add(1), Some(Instant::now()))
        };
    }

    /// Whether a heartbeat may start an unfinished rewrap again now.
    pub(super) fn retry_due(&self) -> bool {
        let (failures, last) = *self.failed.lock().expect("rewrap failures lock");
        let wait = RETRY_FIRST
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(RETRY_AT_MOST);
        last.is_none_or(|last| last.elapsed() >= wait)
    }
}

/// What `GET /api/v1/security/encryption` shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EncryptionStatus {
    pub active_policy: String,
    pub current_key_id: u32,
    pub policies: Vec<PolicyUse>,
    pub keys: Vec<KeyUse>,
    pub rewrap: RewrapStatus,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyUse {
    pub name: String,
    pub version: String,
    pub algorithm: String,
    pub loaded: bool,
    pub active: bool,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyUse {
    #[serde(flatten)]
    pub key: KeyInfo,
    pub rows: u64,
}

/// Nice 10: under contention the rewrap gets about a tenth of what a request
/// thread gets.
const REWRAP_NICE: i32 = 10;

/// Rows for the batch after one of `rows` took `took`. A batch renews the
/// cluster's `lease` once, so it holds as many rows as take a quarter of the
/// lease at the last batch's pace: on a loaded server a full batch could
/// outlast the lease, which would pass to another server while this one
/// still works. A server of its own (no lease) always takes full batches.
fn batch_after(lease: Option<Duration>, rows: usize, took: Duration) -> usize {
    let Some(lease) = lease else {
        return BATCH;
    };
    let pace = rows as f64 / took.as_secs_f64().max(1e-6);
    ((pace * lease.as_secs_f64() / 4.0) as usize).clamp(FIRST_CLUSTER_BATCH, BATCH)
}

impl Service {
    /// Starts a rewrap in the background unless one is running; it works
    /// towards whatever (policy, key) is current at each batch.
    pub fn start_rewrap(self: &Arc<Self>) {
        if !self.rewrap.claim() {
            return;
        }
        // Running from now, not from when the thread gets going: whoever
        // started it and then asks must not read the last run's outcome.
        let before = self.rewrap_status();
        self.rewrap.update(|s| {
            s.state = RewrapState::Running;
            s.done = 0;
            s.error = None;
            s.started = Some(clock::format_us(clock::now_us()));
            s.finished = None;
        });
        let service = self.clone();
        // Its own thread, at a lower priority, with a runtime of its own:
        // requests keep the CPUs first and the rewrap takes what is left.
        let spawned = std::thread::Builder::new()
            .name("rewrap".into())
            .spawn(move || {
                crate::priority::lower_current_thread(REWRAP_NICE);
                let run = service.clone();
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for the rewrap");
                    runtime.block_on(run.rewrap_run(before));
                }));
                // A bug that panics must not leave the rewrap marked as
                // running, or none would start again and whoever waits for
                // this one would wait for ever; it ends as a failed run
                // does (recorded, and the lease given back).
                if ran.is_err() {
                    let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        service.end_rewrap(Err(Error::Rewrap(
                            "the rewrap stopped on an internal error (see the log); \
                             POST /api/v1/security/encryption/rewrap retries it"
                                .into(),
                        )))
                    }));
                    // Whatever else failed, it is no longer running.
                    if ended.is_err() {
                        service.rewrap.running.store(false, Ordering::SeqCst);
                        service.rewrap.ended.send_modify(|n| *n += 1);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the rewrap thread: {e}");
            self.rewrap.update(|s| {
                s.state = RewrapState::Failed;
                s.error = Some(format!("cannot start the rewrap thread: {e}"));
            });
            self.rewrap.running.store(false, Ordering::SeqCst);
        }
    }

    /// `before`: the status before this run was asked for, shown again if
    /// another server holds the lease and this one does not run.
    async fn rewrap_run(self: Arc<Self>, before: RewrapStatus) {
        let service = self;
        // In a cluster one server rewraps: the holder of the lease. One
        // without the cluster's policy does not take it: its target is not
        // the cluster's, and it would move rows back.
        if let Some(cluster) = &service.cluster {
            let missing = service.policy_missing.load(Ordering::SeqCst);
            let held = if missing {
                Ok(false)
            } else {
                cluster.coordination.hold_lease(
                    LEASE,
                    &cluster.server_id,
                    cluster.lease.as_millis() as u64,
                )
            };
            if !matches!(held, Ok(true)) {
                if let Err(e) = held {
                    tracing::warn!("cannot take the rewrap lease: {e}");
                }
                service.rewrap.update(|s| *s = before);
                // The holder runs toward whatever target a later start set.
                service.rewrap.release();
                return;
            }
            tracing::info!(server = %cluster.server_id, "took the rewrap lease");
        }
        {
            let started = Instant::now();
            let outcome = match service.run_rewrap(started).await {
                // Our lease ran out (a stall longer than it) and another
                // server carries on: a handover, not a failure.
                Err(Error::LeaseLost) => {
                    tracing::warn!("the rewrap lease passed to another server; it carries on");
                    Ok(())
                }
                outcome => outcome,
            };
            if service.end_rewrap(outcome) {
                service.start_rewrap();
            }
        }
    }

    /// How a run ends, however it ended: its state shown, logged and
    /// recorded in the audit log, in a cluster its progress published and
    /// the lease given back, and the rewrap no longer running.
    fn end_rewrap(&self, outcome: Result<(), Error>) -> bool {
        self.rewrap.record(outcome.is_ok());
        self.rewrap.update(|s| {
            s.finished = Some(clock::format_us(clock::now_us()));
            match &outcome {
                Ok(()) => s.state = RewrapState::Idle,
                Err(e) => {
                    s.state = RewrapState::Failed;
                    s.error = Some(e.to_string());
                }
            }
        });
        let status = self.rewrap_status();
        match &outcome {
            Ok(()) => tracing::info!("rewrap finished"),
            Err(e) => tracing::error!("rewrap stopped: {e}"),
        }
        self.audit_event(
            if outcome.is_ok() {
                "rewrap.finished"
            } else {
                "rewrap.failed"
            },
            serde_json::json!({ "rows": status.done, "policy": status.target_policy,
                                "key_id": status.target_key_id,
                                "rows_per_second": status.rows_per_second.round(),
                                "error": status.error }),
        );
        if let Some(cluster) = &self.cluster {
            self.publish_progress();
            // Only ours is given back: one held by another server stays.
            let _ = cluster
                .coordination
                .release_lease(LEASE, &cluster.server_id);
        }
        self.rewrap.release()
    }

    /// Renews the lease (a server that lost it stops) and records progress
    /// where every server of the cluster reads it.
    fn keep_lease(&self) -> Result<(), Error> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let held = cluster.coordination.hold_lease(
            LEASE,
            &cluster.server_id,
            cluster.lease.as_millis() as u64,
        )?;
        if !held {
            return Err(Error::LeaseLost);
        }
        self.publish_progress();
        Ok(())
    }

    fn publish_progress(&self) {
        let status = self.rewrap_status();
        let doc = serde_json::to_string(&status).expect("a status serialises");
        if let Err(e) = self.store.set_setting(PROGRESS, &doc) {
            tracing::warn!("cannot record the rewrap's progress: {e}");
        }
    }

    /// The rewrap's status: this server's own run, or in a cluster where
    /// this server is not rewrapping, what the server that is recorded.
    pub async fn shared_rewrap_status(&self) -> Result<RewrapStatus, Error> {
        if self.cluster.is_none() || self.rewrap.is_running() {
            return Ok(self.rewrap_status());
        }
        let recorded = self.store(|s| s.setting(PROGRESS)).await?;
        Ok(recorded
            .and_then(|doc| serde_json::from_str(&doc).ok())
            .unwrap_or_else(|| self.rewrap_status()))
    }

    /// Rewraps until every row is under the current (policy, key).
    pub async fn rewrap_until_done(self: &Arc<Self>) -> Result<(), Error> {
        loop {
            // Its own target is not the cluster's: no row would ever reach
            // it, and the servers that have the policy rewrap.
            if self.policy_missing.load(Ordering::SeqCst) {
                return Err(Error::Rewrap(
                    "this server does not have the cluster's encryption policy loaded: \
                     the servers that have it rewrap (GET /api/v1/security/encryption there)"
                        .into(),
                ));
            }
            let mut ended = self.rewrap.ended.subscribe();
            ended.mark_unchanged();
            self.start_rewrap();
            if self.rewrap.is_running() {
                let _ = ended.changed().await;
            }
            let status = self.shared_rewrap_status().await?;
            if status.state == RewrapState::Failed {
                return Err(Error::Rewrap(status.error.unwrap_or_default()));
            }
            let (policy, key_id) = self.target()?;
            if self
                .store(move |s| s.not_sealed_by(&policy, key_id, 1))
                .await?
                .is_empty()
            {
                return Ok(());
            }
            if self.cluster.is_some() {
                // Another server may hold the lease (a run here then ends
                // at once): its progress is waited for, not polled.
                tokio::time::sleep(Duration::from_millis(200)).await;
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

    /// The (policy, key id) new secrets are sealed under; none while the
    /// shared keyring cannot take in the key the database names current
    /// (a rewrap then would re-seal every row under the one rotated away).
    fn target(&self) -> Result<(String, u32), Error> {
        let (key_id, _) =
            (self.keys.sealing_key()).map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok((self.active_policy(), key_id))
    }

    async fn run_rewrap(&self, started: Instant) -> Result<(), Error> {
        let (policy, key_id) = self.target()?;
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
        let lease = self.cluster.as_ref().map(|c| c.lease);
        let mut rows = if lease.is_some() {
            FIRST_CLUSTER_BATCH
        } else {
            BATCH
        };
        loop {
            let (policy, key_id) = self.target()?;
            self.rewrap.update(|s| {
                s.target_policy = policy.clone();
                s.target_key_id = key_id;
            });
            // Store calls run inline: this is the rewrap's own thread.
            let step = Instant::now();
            let batch = self.store.not_sealed_by(&policy, key_id, rows)?;
            if batch.is_empty() {
                break;
            }
            let read = step.elapsed();
            // Held from sealing to committing, as a writer holds it: a
            // reload counting rows by policy, or a retirement counting them
            // by key, sees this batch either before or after.
            let sealing = self.sealing.clone().read_owned().await;
            let changes = self.reseal(&batch, &policy, key_id).await?;
            let resealed = step.elapsed();
            self.keep_lease()?;
            let leased = step.elapsed();
            let replaced = self.store.replace_secrets(&changes)? as u64;
            drop(sealing);
            // Where a batch's time goes, for whoever tunes the store.
            tracing::debug!(
                rows = batch.len(),
                read_ms = read.as_millis() as u64,
                reseal_ms = (resealed - read).as_millis() as u64,
                lease_ms = (leased - resealed).as_millis() as u64,
                write_ms = (step.elapsed() - leased).as_millis() as u64,
                "rewrap batch"
            );
            self.audit_event(
                "rewrap.step",
                serde_json::json!({ "rows": replaced, "policy": policy, "key_id": key_id }),
            );
            done += replaced;
            rows = batch_after(lease, batch.len(), step.elapsed());
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

    /// Opens every secret of `batch`, each under its own policy and key;
    /// the first that will not open is the error, naming its row.
    async fn open_all<'a>(&self, batch: &'a [Record]) -> Result<Vec<(&'a Record, Secret)>, Error> {
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
                .key(old_key)
                .await
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
            let opened = plugin.open_many(&Client::server(), &key, &items).await?;
            for (record, result) in records.into_iter().zip(opened) {
                plaintexts.push((record, result.map_err(|reason| fail(record.id, reason))?));
            }
            self.confirm_key(old_key).await;
        }
        Ok(plaintexts)
    }

    /// Opens every stored secret, in id order (a check after a store
    /// copy); returns how many there are.
    pub async fn open_every_row(&self) -> Result<u64, Error> {
        let mut after = 0;
        let mut opened = 0;
        loop {
            let batch = self.store(move |s| s.scan(after, BATCH)).await?;
            let Some(last) = batch.last() else {
                return Ok(opened);
            };
            after = last.id;
            opened += self.open_all(&batch).await?.len() as u64;
        }
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
        let plaintexts = self.open_all(batch).await?;
        let plugin = registry
            .policy(policy)
            .ok_or_else(|| Error::Encrypt(format!("encryption policy '{policy}' is not loaded")))?;
        let key = self
            .key(key_id)
            .await
            .map_err(|e| Error::Encrypt(e.to_string()))?;
        // The policy cuts the calls to fit its output cap.
        let items: Vec<(Secret, Vec<u8>)> = plaintexts
            .iter()
            .map(|(r, secret)| (secret.clone(), associated_data(r.id, key_id, policy)))
            .collect();
        let sealed = plugin.seal_many(&Client::server(), &key, &items).await?;
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
            self.audit_event("keys.retired", serde_json::json!({ "key_ids": retired }));
        }
        // On a shared store, another server whose keyring was a moment
        // behind may have committed a row under a key while it was up for
        // retirement (which then kept it): the counts read before do not
        // show that row, and the run would end with it left behind.
        let counts = if self.cluster.is_some() {
            self.store.sealing_counts()?
        } else {
            counts
        };
        let (policy, key_id) = self.target()?;
        Ok(counts
            .iter()
            .any(|c| !(c.policy == policy && c.key_id == key_id)))
    }

    /// Adds a key as current and rewraps every row under it before answering
    /// (obshell's `PUT /credential/encrypt-secret-key`).
    pub async fn replace_key(self: &Arc<Self>, key: Secret) -> Result<(), Error> {
        // A retry may come to another server of a cluster than the first
        // try: the key that try made current is read first.
        self.keyring(|keys| keys.refresh())
            .await?
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let (current_id, current_key) = self.keys.current();
        // The current key sent again (a client retrying after its request
        // timed out during the rewrap) is not added again: the retry
        // finishes the rewrap under it.
        let again = bool::from(subtle::ConstantTimeEq::ct_eq(
            key.expose(),
            current_key.expose(),
        ));
        let id = if again {
            tracing::info!(
                key_id = current_id,
                "the current key was sent again; rewrapping"
            );
            current_id
        } else {
            let id = self.add_key(key).await?;
            tracing::info!(key_id = id, "key added by the API; rewrapping");
            self.audit_event(
                "keys.replaced",
                serde_json::json!({ "key_id": id, "source": "api" }),
            );
            id
        };
        // The key took effect whatever happens to the rewrap: a failure
        // must not read as the replacement refused.
        let current = |why: String| {
            format!(
                "key {id} is current and seals new secrets; re-encrypting the stored ones: {why}"
            )
        };
        self.rewrap_until_done().await.map_err(|e| match e {
            Error::Rewrap(why) => Error::Rewrap(current(why)),
            Error::Unavailable(why) => Error::Unavailable(current(why)),
            Error::Store(why) => Error::Store(current(why)),
            other => other,
        })
    }

    /// A server-generated key; the rewrap runs in the background.
    pub async fn rotate_key(self: &Arc<Self>) -> Result<u32, Error> {
        let key = Secret::new(rand::random::<[u8; crate::keys::KEY_LEN]>().to_vec());
        let id = self.add_key(key).await?;
        tracing::info!(key_id = id, "key rotated; rewrapping in the background");
        self.audit_event(
            "keys.rotated",
            serde_json::json!({ "key_id": id, "source": "server" }),
        );
        self.start_rewrap();
        Ok(id)
    }

    /// Adds a key as current, off the async threads (a shared keyring
    /// writes it to the database).
    async fn add_key(&self, key: Secret) -> Result<u32, Error> {
        let id = self
            .keyring(move |keys| keys.add_current(key))
            .await?
            .map_err(|e| match e {
                // Refused for good: a retry would get the same answer.
                KeyError::ReadOnly => Error::IllegalArgument(e.to_string()),
                e => Error::Unavailable(e.to_string()),
            })?;
        let keys = self.keys.clone();
        if let Err(e) = self
            .store(move |s| crate::keys::binding::record(s, &keys, id))
            .await
        {
            // A row that opens under it records it later (`confirm_key`).
            tracing::warn!(key_id = id, "cannot record the new key's check value: {e}");
        }
        Ok(id)
    }

    /// Makes an installed policy current; old rows are rewrapped in the background.
    pub async fn set_policy(self: &Arc<Self>, name: &str) -> Result<(), Error> {
        // A reload must not swap in a set without the policy between this
        // check and the switch.
        let _no_reload = self.reloading.lock().await;
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
        self.audit_event("policy.changed", serde_json::json!({ "policy": name }));
        self.start_rewrap();
        Ok(())
    }

    /// The keys and their states, without counting rows (cheap: for
    /// `/metrics`, which anyone who reaches its listener may scrape).
    pub fn key_states(&self) -> Vec<crate::keys::KeyInfo> {
        self.keys.info()
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
            rewrap: self.shared_rewrap_status().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start that finds a run under way is not lost: that run may be
    /// past its last batch toward the target the start replaced.
    #[test]
    fn a_start_during_a_run_makes_it_run_again_once() {
        let rewrap = Rewrap::new();
        assert!(rewrap.claim(), "nothing runs: the first start runs");
        assert!(!rewrap.release(), "no start came while it ran");
        assert!(rewrap.claim());
        assert!(!rewrap.claim(), "a run is under way");
        assert!(!rewrap.claim());
        assert!(rewrap.release(), "starts came while it ran: run again");
        assert!(rewrap.claim());
        assert!(!rewrap.release(), "the asks were answered by one more run");
    }

    #[test]
    fn a_failing_rewrap_is_started_again_less_and_less_often() {
        let rewrap = Rewrap::new();
        assert!(rewrap.retry_due());
        let ago = |secs| Some(Instant::now() - Duration::from_secs(secs));
        rewrap.record(false);
        assert!(!rewrap.retry_due());
        *rewrap.failed.lock().unwrap() = (1, ago(1));
        assert!(rewrap.retry_due());
        *rewrap.failed.lock().unwrap() = (4, ago(7));
        assert!(!rewrap.retry_due());
        *rewrap.failed.lock().unwrap() = (4, ago(8));
        assert!(rewrap.retry_due());
        // Never more than five minutes, however many failed.
        *rewrap.failed.lock().unwrap() = (u32::MAX, ago(300));
        assert!(rewrap.retry_due());
        rewrap.record(true);
        assert!(rewrap.retry_due());
    }

    #[test]
    fn a_batch_takes_a_quarter_of_the_lease_at_the_last_pace() {
        let second = Duration::from_secs(1);
        // Alone: full batches, however slow.
        assert_eq!(batch_after(None, 10, 10 * second), BATCH);
        // A loaded cluster server doing 1,024 rows in 2.6 s under a 2 s
        // lease would lose it: the next batch takes about 0.5 s instead.
        assert_eq!(
            batch_after(Some(2 * second), 1024, Duration::from_millis(2600)),
            196
        );
        // Fast enough: full batches; very slow: the smallest.
        assert_eq!(
            batch_after(Some(10 * second), 64, Duration::from_millis(2)),
            BATCH
        );
        assert_eq!(
            batch_after(Some(2 * second), 64, 10 * second),
            FIRST_CLUSTER_BATCH
        );
        assert_eq!(
            batch_after(Some(2 * second), 0, Duration::ZERO),
            FIRST_CLUSTER_BATCH
        );
    }
}
