//! The use cases: the order of checks, uniqueness, what gets encrypted.
//! Talks to the plugin registry, the store and the keyring; knows no HTTP.

mod cluster;
mod credentials;
mod error;
mod guesses;
mod ids;
mod list;
mod plugins;
mod principal;
mod rewrap;
mod sealing;
mod targets;
pub mod tokens;
mod validations;
mod verification;
mod view;

use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

pub use cluster::{Cluster, ClusterView, ServerView};
pub use error::Error;
pub use guesses::GuessLimits;
pub use ids::{MAX_IDS, distinct as distinct_ids};
pub use list::ListRequest;
pub use plugins::{PluginSource, PluginsView};
pub use principal::{Principal, Scope};
pub use rewrap::{EncryptionStatus, KeyUse, PolicyUse, RewrapState, RewrapStatus};
pub use targets::TargetPolicy;
pub use tokens::{IssuedToken, NewToken, TokenRefused, TokenView};
pub use validations::LastValidation;
pub use view::{Contents, CredentialView, Deleted, ListView, PageView, ValidationResult};

use crate::budget::Client;
use crate::fields::Fields;
use crate::keys::{KeyError, Keyring};
use crate::plugins::{Registry, VerifierPlugin};
use crate::secret::Secret;
use crate::store::{Store, StoreError};

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 256;
pub const MAX_TARGETS: usize = 1000;

/// The settings key an operator's policy choice is recorded under.
const POLICY_SETTING: &str = "active_policy";

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub targets: TargetPolicy,
    /// Credentials verified at once by one batch validation.
    pub verify_concurrency: usize,
    /// The encryption policy new secrets are sealed with.
    pub policy: String,
    /// Rejected secrets one caller may send to one target (see `guesses`).
    pub guesses: GuessLimits,
}

pub struct Service {
    plugins: ArcSwap<Registry>,
    store: Arc<dyn Store>,
    keys: Arc<Keyring>,
    policy: RwLock<String>,
    settings: ServiceSettings,
    rewrap: rewrap::Rewrap,
    source: Option<plugins::PluginSource>,
    reloading: tokio::sync::Mutex<()>,
    /// Held shared from sealing a secret until its row commits, and
    /// exclusively while keys are retired: a key cannot be retired between
    /// a writer taking it and its row showing that it uses it. Shared
    /// guards are owned, so the write can take its guard along (see
    /// `store_holding`).
    sealing: Arc<tokio::sync::RwLock<()>>,
    tokens: RwLock<tokens::Tokens>,
    audit: Arc<crate::audit::Audit>,
    /// Set when the store is shared with other servers.
    cluster: Option<Cluster>,
    /// When tokens were last reloaded for an unknown one (µs).
    token_reload_us: std::sync::atomic::AtomicI64,
    /// Set while the policy the cluster chose is not loaded here: this
    /// server then seals with the one it has and leaves rewrapping to the
    /// servers that can reach the cluster's target.
    policy_missing: std::sync::atomic::AtomicBool,
    /// Keys a row has opened under since the start, their check values
    /// recorded (see `keys::binding`).
    confirmed_keys: std::sync::Mutex<std::collections::HashSet<u32>>,
    /// See `list::large_lists`.
    large_lists: crate::budget::Budget,
    /// The operator's known_hosts as last read, and where it is read from.
    known_hosts: ArcSwap<crate::capabilities::KnownHosts>,
    known_hosts_file: Option<std::path::PathBuf>,
    /// See `guesses`.
    guesses: guesses::Guesses,
    /// Where this server listens (see [`Service::serving_on`]).
    listening: std::sync::OnceLock<Vec<std::net::SocketAddr>>,
}

/// A create request: obshell's `CreateCredentialParam`.
pub struct CreateRequest {
    pub target_type: String,
    pub name: String,
    pub description: String,
    /// The whole body, where the verifier's property field is found.
    pub body: Fields,
}

/// An update request: obshell's `UpdateCredentialParam` (a full replace).
pub struct UpdateRequest {
    pub name: String,
    pub description: String,
    pub body: Fields,
    /// Learn the targets' host keys afresh rather than hold a new secret to
    /// their pins (a host's key really changed); only with a new secret.
    pub forget_host_keys: bool,
}

pub struct ValidateRequest {
    pub target_type: String,
    pub body: Fields,
}

impl Service {
    pub fn new(
        plugins: Registry,
        store: Arc<dyn Store>,
        keys: Arc<Keyring>,
        settings: ServiceSettings,
    ) -> Result<Self, Error> {
        let active = Self::chosen_policy(store.as_ref(), &settings.policy)?;
        let tokens = tokens::Tokens::load(tokens::load_all(store.as_ref())?);
        if plugins.policy(&active).is_none() {
            return Err(Error::Unavailable(format!(
                "encryption policy '{active}' is not loaded"
            )));
        }
        let wrong_secrets = guesses::Guesses::new(settings.guesses);
        Ok(Self {
            plugins: ArcSwap::from_pointee(plugins),
            store,
            keys,
            policy: RwLock::new(active),
            settings,
            rewrap: rewrap::Rewrap::new(),
            source: None,
            reloading: tokio::sync::Mutex::new(()),
            sealing: Arc::new(tokio::sync::RwLock::new(())),
            tokens: RwLock::new(tokens),
            audit: Arc::new(crate::audit::Audit::disabled()),
            cluster: None,
            token_reload_us: std::sync::atomic::AtomicI64::new(0),
            policy_missing: std::sync::atomic::AtomicBool::new(false),
            confirmed_keys: Default::default(),
            large_lists: list::large_lists(),
            known_hosts: ArcSwap::default(),
            known_hosts_file: None,
            guesses: wrong_secrets,
            listening: Default::default(),
        })
    }

    /// Presets pins (and refuses revoked keys) from the operator's
    /// known_hosts at `path`, read now and again on
    /// [`Self::reload_known_hosts`].
    pub fn with_known_hosts_file(mut self, path: std::path::PathBuf) -> std::io::Result<Self> {
        let known = crate::capabilities::KnownHosts::load(&path)?;
        if known.unreadable() > 0 {
            tracing::warn!(path = %path.display(), lines = known.unreadable(),
                "known_hosts has lines that are neither comments nor entries; they are skipped");
        }
        self.known_hosts = ArcSwap::from_pointee(known);
        self.known_hosts_file = Some(path);
        Ok(self)
    }

    /// Reads known_hosts again (on SIGHUP), so a key revoked there is
    /// refused without a restart; a file that cannot be read, or has a line
    /// that is neither a comment nor an entry, leaves the pins as they were.
    pub fn reload_known_hosts(&self) -> std::io::Result<()> {
        let Some(path) = &self.known_hosts_file else {
            return Ok(());
        };
        let known = crate::capabilities::KnownHosts::load(path)?;
        // A file caught half written would drop pins and revocations.
        if known.unreadable() > 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} has {} unreadable lines",
                    path.display(),
                    known.unreadable()
                ),
            ));
        }
        let (entries, revoked) = known.counts();
        self.audit_event(
            "known_hosts.reloaded",
            serde_json::json!({ "entries": entries, "revoked": revoked }),
        );
        self.known_hosts.store(Arc::new(known));
        Ok(())
    }

    /// Records the server's own operations in this audit log.
    pub fn with_audit(mut self, audit: Arc<crate::audit::Audit>) -> Self {
        self.audit = audit;
        self
    }

    pub fn audit(&self) -> &Arc<crate::audit::Audit> {
        &self.audit
    }

    fn audit_event(&self, name: &str, details: serde_json::Value) {
        self.audit.event(name, details);
    }

    fn audit_hash(&self, value: &str) -> String {
        self.audit.hash(value)
    }

    /// The policy chosen through the API wins over the configured one, until
    /// the configuration names a different policy than it did at that time.
    fn chosen_policy(store: &dyn Store, configured: &str) -> Result<String, Error> {
        Ok(policy_from_setting(
            store.setting(POLICY_SETTING)?.as_deref(),
            configured,
        ))
    }

    pub fn plugins(&self) -> Arc<Registry> {
        self.plugins.load_full()
    }

    fn verifier(
        &self,
        registry: &Registry,
        target_type: &str,
    ) -> Result<Arc<VerifierPlugin>, Error> {
        registry
            .verifier(target_type)
            .cloned()
            .ok_or_else(|| Error::TargetTypeNotSupported {
                requested: target_type.to_string(),
                installed: registry
                    .target_types()
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            })
    }

    /// The request's property, as the verifier reads it, within the allowed
    /// targets.
    async fn normalize(
        &self,
        verifier: &VerifierPlugin,
        body: &Fields,
        purpose: crate::plugins::Purpose,
        stored: Option<&str>,
        client: &Client,
    ) -> Result<crate::plugins::Normalized, Error> {
        let property = body.raw(&verifier.info.property_field);
        let normalized = verifier
            .normalize_for(client, &property, purpose, stored)
            .await?
            .map_err(Error::refused)?;
        self.settings.targets.check(&normalized.targets)?;
        if let Some(own) = normalized.targets.iter().find(|t| self.is_own_listener(t)) {
            let own = std::net::SocketAddr::new(own.ip, own.port);
            return Err(Error::OwnListener(own.to_string()));
        }
        Ok(normalized)
    }

    /// Records where this server listens: no credential may point at it.
    /// A verifier lends its targets to its plugin, which could otherwise
    /// speak HTTP to this server's own API from inside it (with every
    /// scope, on loopback without a password).
    pub fn serving_on(&self, addrs: Vec<std::net::SocketAddr>) {
        // Once, at start: the listeners do not change while it serves.
        let _ = self.listening.set(addrs);
    }

    /// Whether `target` is one of this server's own listeners: its own
    /// address, or, for a listener bound to every address, any address of
    /// this machine. (Another loopback address with the same port is
    /// another socket.)
    fn is_own_listener(&self, target: &crate::plugins::Target) -> bool {
        let ip = target.ip.to_canonical();
        self.listening.get().into_iter().flatten().any(|own| {
            let own_ip = own.ip().to_canonical();
            own.port() == target.port
                && (own_ip == ip || (own_ip.is_unspecified() && is_this_machine(ip)))
        })
    }

    /// Whether a stored target may be dialled today.
    fn may_dial(&self, target: &crate::plugins::Target) -> bool {
        self.settings.targets.permits(target) && !self.is_own_listener(target)
    }

    /// A new credential id: from memory when the store has one there,
    /// else from the blocking pool.
    async fn reserve_id(&self) -> Result<u64, Error> {
        match self.store.reserve_id_at_hand() {
            Some(id) => Ok(id),
            None => self.store(|s| s.reserve_id()).await,
        }
    }

    /// Key `id` of the keyring. One not in memory (on a shared keyring,
    /// made by another server since this one last looked) is looked up on
    /// the blocking pool, never on an async worker: a slow database would
    /// stall every request that worker serves.
    async fn key(&self, id: u32) -> Result<Secret, KeyError> {
        if let Some(key) = self.keys.cached(id) {
            return Ok(key);
        }
        let keys = self.keys.clone();
        tokio::task::spawn_blocking(move || keys.get(id))
            .await
            .map_err(|e| KeyError::Store(format!("keyring task failed: {e}")))?
    }

    /// Runs keyring work off the async threads (a shared keyring reads and
    /// writes the database; a file keyring writes its file).
    async fn keyring<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Keyring) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let keys = self.keys.clone();
        tokio::task::spawn_blocking(move || f(&keys))
            .await
            .map_err(|e| Error::Store(format!("the key task failed: {e}")))
    }

    /// Runs a store call off the async threads (redb commits wait on disk).
    async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Error> {
        self.store_holding((), f).await
    }

    /// As `store`, holding `guard` until the write is over. A write on the
    /// blocking pool goes on when the request that started it is dropped
    /// (its client gone, its time up): a guard left with the request would
    /// be released before the row commits.
    async fn store_holding<T: Send + 'static, G: Send + 'static>(
        &self,
        guard: G,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.store.clone();
        let keys = self.keys.clone();
        holding(guard, move || {
            let written = f(store.as_ref());
            if let Err(StoreError::KeyRetired) = &written {
                // Another server retired the key this one still sealed
                // with: the keyring is read again now, so the retry seals
                // under the current key instead of failing the same way
                // until the next heartbeat.
                if let Err(e) = keys.refresh() {
                    tracing::warn!("cannot refresh the shared keyring: {e}");
                }
            }
            written
        })
        .await
        .map_err(|e| Error::Store(format!("storage task failed: {e}")))?
        .map_err(Error::from)
    }
}

/// Runs `f` on the blocking pool and drops `guard` once it returns.
fn holding<G: Send + 'static, T: Send + 'static>(
    guard: G,
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(guard);
        out
    })
}

/// The policy chosen through the API wins over the configured one, until
/// the configuration names a different policy than it did at that time.
fn policy_from_setting(setting: Option<&str>, configured: &str) -> String {
    let Some(text) = setting else {
        return configured.to_string();
    };
    let chosen: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    match (chosen["name"].as_str(), chosen["config_was"].as_str()) {
        (Some(name), Some(was)) if was == configured => name.to_string(),
        _ => configured.to_string(),
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(Error::IllegalArgument(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), Error> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::IllegalArgument(format!(
            "description is longer than {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(())
}

/// Whether `ip` reaches this machine: a loopback address, or one of its
/// interfaces' (one a socket can be bound to). Asked of the kernel each
/// time, as addresses come and go while the server runs; only for a
/// target on the port of a listener bound to every address, so rarely.
/// Where binding to any address is allowed (`ip_nonlocal_bind`), every
/// address on that port counts as this machine's and is refused.
fn is_this_machine(ip: std::net::IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request that started a write is dropped while the write runs:
    /// the guard stays held until the write is over, so a key cannot be
    /// retired under a row that is still to commit.
    #[tokio::test]
    async fn a_write_keeps_its_guard_when_its_request_is_dropped() {
        let lock = Arc::new(tokio::sync::RwLock::new(()));
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let guard = lock.clone().read_owned().await;
        let request = tokio::spawn(holding(guard, move || finished.recv().unwrap()));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        request.abort();
        let _ = request.await;
        assert!(lock.try_write().is_err(), "released before the write ended");
        finish.send(()).unwrap();
        let retired = tokio::time::timeout(std::time::Duration::from_secs(5), lock.write()).await;
        assert!(retired.is_ok(), "never released");
    }
}
