//! Servers sharing one database: each records a heartbeat, picks up what the
//! others changed (the keyring, the policy, tokens), and takes over a rewrap
//! whose holder stopped renewing its lease.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Error, Service};
use crate::clock;
use crate::store::{Coordination, ServerRow};

/// A server of a cluster, as this one knows itself.
pub struct Cluster {
    pub coordination: Arc<dyn Coordination>,
    /// Unique per process: a restarted server is a new row.
    pub server_id: String,
    pub address: String,
    pub started_us: i64,
    pub heartbeat: Duration,
    pub lease: Duration,
}

impl Cluster {
    pub fn new(
        coordination: Arc<dyn Coordination>,
        address: String,
        heartbeat: Duration,
        lease: Duration,
    ) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Self {
            coordination,
            server_id: format!("{host}-{}", hex::encode(rand::random::<[u8; 4]>())),
            address,
            started_us: clock::now_us(),
            heartbeat,
            lease,
        }
    }
}

/// A server silent for this many heartbeats is shown as gone.
const SILENT_BEATS: u32 = 3;
/// Rows of servers silent this long are dropped.
const FORGET_SERVERS_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Heartbeats between sweeps of expired replay entries.
const SWEEP_EVERY: u64 = 30;
/// How long after its expiry (by the database's clock) a used header's
/// record is kept: the clock skew between servers this tolerates.
const REPLAY_SWEEP_MARGIN: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// `redb` (one server, its own file) or `mysql` (a shared database).
    pub store: &'static str,
    pub this_server: String,
    pub servers: Vec<ServerView>,
    /// Some live servers have other verifiers or policies than others: a
    /// credential whose target type one of them lacks is UNSUPPORTED there.
    pub plugin_sets_differ: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerView {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started: String,
    pub last_heartbeat: String,
    /// Heard from within the last three heartbeats.
    pub alive: bool,
    pub plugins_hash: String,
    #[schema(value_type = Object)]
    pub plugins: serde_json::Value,
    /// Its plugin set is not the one most live servers have.
    pub plugins_differ: bool,
}

impl Service {
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// What this server has loaded, and a digest to compare it by.
    fn plugin_set(&self) -> (String, String) {
        let registry = self.plugins();
        let mut verifiers: Vec<serde_json::Value> = registry
            .target_types()
            .into_iter()
            .filter_map(|t| registry.verifier(t))
            .map(|v| {
                serde_json::json!({ "target_type": v.info.target_type, "name": v.meta.name,
                                    "version": v.meta.version, "sha256": v.meta.sha256 })
            })
            .collect();
        verifiers.sort_by_key(|v| v["target_type"].to_string());
        let mut policies: Vec<serde_json::Value> = registry
            .policies()
            .map(|p| {
                serde_json::json!({ "name": p.info.name, "version": p.meta.version,
                                    "sha256": p.meta.sha256 })
            })
            .collect();
        policies.sort_by_key(|p| p["name"].to_string());
        let set = serde_json::json!({ "verifiers": verifiers, "policies": policies }).to_string();
        let hash = hex::encode(&Sha256::digest(set.as_bytes())[..8]);
        (hash, set)
    }

    fn server_row(&self, cluster: &Cluster) -> ServerRow {
        let (plugins_hash, plugins) = self.plugin_set();
        ServerRow {
            id: cluster.server_id.clone(),
            address: cluster.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_us: cluster.started_us,
            heartbeat_us: clock::now_us(),
            plugins_hash,
            plugins,
        }
    }

    /// Starts the heartbeat; a no-op for a server of its own.
    pub fn start_cluster(self: &Arc<Self>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let every = cluster.heartbeat;
        let service = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut beat = 0u64;
            loop {
                ticks.tick().await;
                if let Err(e) = service.cluster_beat(beat).await {
                    tracing::warn!("cluster heartbeat failed: {e}");
                }
                beat += 1;
            }
        });
    }

    async fn cluster_beat(self: &Arc<Self>, beat: u64) -> Result<(), Error> {
        let cluster = self.cluster.as_ref().expect("a cluster server");
        let row = self.server_row(cluster);
        let coordination = cluster.coordination.clone();
        let before = self.keys.current().0;
        let (policy, job, tokens) = self
            .store(move |s| {
                coordination.heartbeat(&row)?;
                if beat.is_multiple_of(SWEEP_EVERY) {
                    let now = clock::now_us();
                    // Another server's clock may be behind the database's:
                    // what it still counts as live is kept a while longer.
                    coordination.forget_used(REPLAY_SWEEP_MARGIN.as_secs())?;
                    coordination.forget_servers(now - FORGET_SERVERS_AFTER.as_micros() as i64)?;
                }
                Ok((
                    s.setting(super::POLICY_SETTING)?,
                    s.setting(super::rewrap::JOB)?,
                    s.tokens()?,
                ))
            })
            .await?;
        // Apart from the rest: a keyring that will not refresh must not keep
        // this server from seeing revocations.
        let keys = self.keys.clone();
        let refreshed = tokio::task::spawn_blocking(move || keys.refresh()).await;
        if let Ok(Err(e)) = refreshed {
            tracing::warn!("cannot refresh the shared keyring: {e}");
        }
        let chosen = super::policy_from_setting(policy.as_deref(), &self.settings.policy);
        let policy_changed = {
            let mut current = self.policy.write().expect("policy lock");
            let loaded = self.plugins().policy(&chosen).is_some();
            let changed = *current != chosen && loaded;
            let missing = *current != chosen && !loaded;
            if !self
                .policy_missing
                .swap(missing, std::sync::atomic::Ordering::SeqCst)
                && missing
            {
                tracing::warn!(
                    chosen = %chosen, sealing_with = %*current,
                    "the cluster's encryption policy is not loaded here: this server seals with \
                     its own and leaves rewrapping to the others"
                );
            }
            if changed {
                *current = chosen;
            }
            changed
        };
        self.merge_tokens(tokens);
        // Another server rotated or swapped the policy, or the server that
        // was rewrapping stopped: rewrap here (the lease lets one run). Not
        // while this server's own run goes on: a start then asks that run
        // to run again when it ends, which only a new target needs.
        let unfinished = job.as_deref().is_some_and(|j| j != "done");
        let retry = unfinished && !self.rewrap.is_running() && self.rewrap.retry_due();
        if policy_changed || self.keys.current().0 != before || retry {
            self.start_rewrap();
        }
        Ok(())
    }

    pub async fn cluster_view(&self) -> Result<ClusterView, Error> {
        let Some(cluster) = &self.cluster else {
            let (plugins_hash, plugins) = self.plugin_set();
            let now = clock::format_us(clock::now_us());
            return Ok(ClusterView {
                store: "redb",
                this_server: "this".into(),
                servers: vec![ServerView {
                    id: "this".into(),
                    address: String::new(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    started: now.clone(),
                    last_heartbeat: now,
                    alive: true,
                    plugins_hash,
                    plugins: serde_json::from_str(&plugins).unwrap_or_default(),
                    plugins_differ: false,
                }],
                plugin_sets_differ: false,
            });
        };
        let coordination = cluster.coordination.clone();
        let rows = self.store(move |_| coordination.servers()).await?;
        let now = clock::now_us();
        let silent = (cluster.heartbeat * SILENT_BEATS).as_micros() as i64;
        let alive = |row: &ServerRow| now - row.heartbeat_us <= silent;
        // The set most live servers have is the norm the others differ from.
        let mut tally: Vec<(&str, usize)> = Vec::new();
        for row in rows.iter().filter(|r| alive(r)) {
            match tally.iter_mut().find(|(h, _)| *h == row.plugins_hash) {
                Some((_, n)) => *n += 1,
                None => tally.push((&row.plugins_hash, 1)),
            }
        }
        let norm = tally
            .iter()
            .max_by_key(|(_, n)| *n)
            .map(|(h, _)| h.to_string());
        let servers: Vec<ServerView> = rows
            .iter()
            .map(|row| ServerView {
                id: row.id.clone(),
                address: row.address.clone(),
                version: row.version.clone(),
                started: clock::format_us(row.started_us),
                last_heartbeat: clock::format_us(row.heartbeat_us),
                alive: alive(row),
                plugins_hash: row.plugins_hash.clone(),
                plugins: serde_json::from_str(&row.plugins).unwrap_or_default(),
                plugins_differ: alive(row) && norm.as_deref() != Some(row.plugins_hash.as_str()),
            })
            .collect();
        Ok(ClusterView {
            store: "mysql",
            this_server: cluster.server_id.clone(),
            plugin_sets_differ: tally.len() > 1,
            servers,
        })
    }
}
