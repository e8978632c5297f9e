//! Putting the server together: store, keys, plugins, service, router.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use std::time::Duration;

use crate::api::FrontDoor;
use crate::api::auth::{Authenticator, LocalSocket};
use crate::api::guard::Guard;
use crate::audit::Audit;
use crate::keys::{Kek, KeyStore, Keyring, TransportKey};
use crate::local_socket::LocalListener;
use crate::plugins::{PrecompileCache, Registry, Runtime};
use crate::secret::Secret;
use crate::service::{Cluster, PluginSource, Service, ServiceSettings, TargetPolicy};
use crate::store::mysql::{RowMac, StoreOptions};
use crate::store::{Coordination, MysqlStore, RedbStore, Store};

/// A shared database, and the key-encryption key its keys are wrapped by.
struct Shared {
    store: Arc<MysqlStore>,
    kek: Kek,
}

const KEK_CHECK: &str = "kek_check";
/// What the key that authenticates rows is derived for.
pub const ROW_MAC: &str = "row integrity";
const TRANSPORT_KEY: &str = "transport_rsa";

impl Shared {
    fn open(config: &Config, options: &StoreOptions) -> anyhow::Result<Self> {
        let url = crate::store::mysql::redacted(options.url);
        // Rows are authenticated, but their contents (names, targets) and
        // the database password cross this link: in clear only on loopback.
        options.check_transport(config.store_allow_plaintext)?;
        let store = Arc::new(
            MysqlStore::open(options).with_context(|| format!("cannot open the store {url}"))?,
        );
        let fresh = store.load_keys()?.current.is_none();
        let kek = Kek::load(&config.kek_path(), fresh)?;
        store.set_integrity_key(RowMac::new(kek.derive(ROW_MAC)));
        // A server holding another key-encryption key is told so at once,
        // before it fails on every row.
        let check = kek.check_value();
        let stored = store.blob_or_insert(KEK_CHECK, &mut || check.clone().into_bytes())?;
        if stored != check.as_bytes() {
            anyhow::bail!(
                "the key-encryption key ({}) is not the one the keys in {url} are wrapped with: \
                 every server of a cluster needs the same one",
                config.kek_path().display()
            );
        }
        tracing::info!(store = %url, "using the shared store");
        Ok(Self { store, kek })
    }

    /// The RSA key pair every server shares, so a client may send each
    /// request to any of them.
    fn transport_key(&self, bits: usize) -> anyhow::Result<TransportKey> {
        let wrapped = match self.store.blob(TRANSPORT_KEY)? {
            Some(wrapped) => wrapped,
            None => {
                let der = TransportKey::generate_der(bits)
                    .map_err(|e| anyhow::anyhow!("cannot make the RSA key pair: {e}"))?;
                let mine = self.kek.wrap(TRANSPORT_KEY, &der);
                self.store
                    .blob_or_insert(TRANSPORT_KEY, &mut || mine.clone())?
            }
        };
        let der = self.kek.unwrap(TRANSPORT_KEY, &wrapped)?;
        TransportKey::from_der(der.expose())
            .map_err(|e| anyhow::anyhow!("the shared RSA key is unreadable: {e}"))
    }
}

async fn build(config: &Config, addr: String) -> anyhow::Result<(Arc<Service>, Option<Shared>)> {
    crate::data_dir::prepare(&config.data_dir)?;
    let cache_key = crate::data_dir::secret_file(&config.data_dir.join("cache.key"))
        .context("cannot open the plugin cache key")?;
    let shared = match config.shared_store() {
        Some(options) => Some(Shared::open(config, &options)?),
        None => None,
    };
    let (store, keys): (Arc<dyn Store>, Keyring) = match &shared {
        Some(shared) => {
            let keys = Keyring::shared(shared.store.clone(), shared.kek.clone())
                .context("cannot open the shared keyring")?;
            check_shared_keyring(shared.store.as_ref(), &keys).await?;
            (shared.store.clone(), keys)
        }
        None => {
            let store =
                RedbStore::open(&config.database_path()).context("cannot open the database")?;
            let sealed = store.sealing_counts()?;
            let keys = Keyring::from_env_or_file(&config.key_path(), sealed.is_empty())
                .context("cannot open the keyring")?;
            crate::keys::binding::check(&store, &keys, &sealed)
                .context("the keyring does not go with the database")?;
            (Arc::new(store), keys)
        }
    };
    let runtime = Runtime::new(
        config.engine,
        PrecompileCache::new(config.cache_dir(), cache_key),
        config.ssh.clone(),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
    let registry = Registry::load(&runtime, config.plugin_dir.as_deref(), &config.plugins)
        .await
        .context("cannot load the plugins")?;
    let source = PluginSource {
        runtime,
        dir: config.plugin_dir.clone(),
        overrides: config.plugins.clone(),
    };
    let mut service = Service::new(
        registry,
        store,
        Arc::new(keys),
        ServiceSettings {
            targets: TargetPolicy {
                allow: config.allow_targets.clone(),
            },
            verify_concurrency: config.verify_concurrency,
            policy: config.policy.clone(),
            guesses: crate::service::GuessLimits {
                burst: config.rejected_secret_burst,
                per_hour: config.rejected_secrets_per_hour,
            },
        },
    )?
    .with_plugin_source(source)
    .with_audit(Arc::new(open_audit(config)?));
    if let Some(path) = &config.ssh.known_hosts {
        service = service
            .with_known_hosts_file(path.clone())
            .with_context(|| format!("cannot read known_hosts {}", path.display()))?;
    }
    if let Some(shared) = &shared {
        service = service.with_cluster(Cluster::new(
            shared.store.clone(),
            config.cluster.advertise.clone().unwrap_or(addr),
            Duration::from_millis(config.cluster.heartbeat_ms.max(50)),
            Duration::from_millis(config.cluster.lease_ms.max(500)),
        ));
    }
    Ok((Arc::new(service), shared))
}

/// The shared keyring held to the rows, as a key file is (see
/// `keys::binding`): rows sealed under a key the database's keyring lacks
/// mean its keys were changed, as when a newer key is taken out to bring
/// back an older one, which then seals every new secret. A server that
/// runs already refuses that by what it saw; one that starts sees only the
/// database, and this. The rows are read before the keyring, a few times:
/// another server may be rotating meanwhile.
async fn check_shared_keyring(store: &dyn Store, keys: &Keyring) -> anyhow::Result<()> {
    use crate::keys::binding::{Mismatch, check};
    let mut tries = 0;
    loop {
        let sealed = store.sealing_counts()?;
        keys.refresh().context("cannot read the shared keyring")?;
        match check(store, keys, &sealed) {
            Ok(()) => return Ok(()),
            // Another server rotated between the refresh and the check.
            Err(Mismatch::Absent { .. } | Mismatch::Behind { .. }) if tries < 3 => tries += 1,
            Err(e) => {
                return Err(e).context(
                    "the shared keyring does not go with the database's rows (were its keys changed?)",
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn open_audit(config: &Config) -> anyhow::Result<Audit> {
    if !config.audit.enabled {
        return Ok(Audit::disabled());
    }
    let key = crate::data_dir::secret_file(&config.data_dir.join("audit.key"))
        .context("cannot open the audit key")?;
    let path = config.audit_path();
    Audit::open(&config.audit, path.clone(), &key)
        .with_context(|| format!("cannot open the audit log {}", path.display()))
}

/// SIGHUP reloads the plugin directory, as `POST /api/v1/plugins/reload`
/// does, and reopens the audit log (after logrotate moved it).
fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    service: Arc<Service>,
    certificate: Option<Arc<crate::tls::Certificate>>,
) -> anyhow::Result<()> {
    // Whether the last reload of each took: a renewal that failed leaves
    // the old certificate served until it expires, which a log line alone
    // may not bring to anyone's attention.
    let took = |what: &'static str, ok: bool| {
        metrics::gauge!("credhost_reload_ok", "what" => what).set(f64::from(u8::from(ok)));
    };
    for what in ["known_hosts", "plugins"]
        .into_iter()
        .chain(certificate.is_some().then_some("tls"))
    {
        took(what, true);
    }
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            service.audit().reopen();
            if let Some(certificate) = &certificate {
                let reloaded = certificate.reload();
                match &reloaded {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate read again"),
                    Err(e) => tracing::error!(
                        "SIGHUP: TLS certificate not read again, the served one stays: {e:#}"
                    ),
                }
                took("tls", reloaded.is_ok());
            }
            let known_hosts = service.reload_known_hosts();
            if let Err(e) = &known_hosts {
                tracing::error!(
                    "SIGHUP: known_hosts not read again, the pins stay as they were: {e}"
                );
            }
            took("known_hosts", known_hosts.is_ok());
            match service.reload_plugins().await {
                Ok(view) => {
                    tracing::info!(failures = view.failures.len(), "SIGHUP: plugins reloaded");
                    took("plugins", true);
                }
                Err(e) => {
                    tracing::error!("SIGHUP: plugin reload refused: {e}");
                    took("plugins", false);
                }
            }
        }
    });
    Ok(())
}

/// Serves the API on `listener`, behind TLS when it is configured.
/// The caps every listener of the API shares (see `connections::Caps`).
#[derive(Clone)]
struct ApiCaps {
    connections: crate::connections::Caps,
    handshakes: crate::connections::Caps,
}

fn serve_api(
    listener: TcpListener,
    certificate: Option<&Arc<crate::tls::Certificate>>,
    router: axum::Router,
    limits: crate::connections::ConnectionLimits,
    caps: ApiCaps,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<futures::future::BoxFuture<'static, ()>> {
    use futures::FutureExt as _;
    let connections = caps.connections;
    Ok(match certificate {
        Some(certificate) => {
            let listener =
                crate::tls::TlsListener::new(listener, certificate.clone(), caps.handshakes)?;
            crate::connections::serve(listener, router, limits, connections, until).boxed()
        }
        None => crate::connections::serve(listener, router, limits, connections, until).boxed(),
    })
}

fn announce(scheme: &str, addr: std::net::SocketAddr, config: &Config) {
    tracing::info!(%addr, scheme, password = config.password.is_some(), "credhost ready");
    // Tests and scripts that asked for port 0 read the real one here.
    println!("credhost listening on {scheme}://{addr}");
}

/// Refuses the configurations that expose the API to the network without
/// protecting it, and warns about the weaker ones it allows.
fn check_exposure(config: &Config) -> anyhow::Result<()> {
    let loopback = config.listen.ip().is_loopback();
    let tls = config.tls_cert.is_some() && config.tls_key.is_some();
    if config.password.is_none() && !loopback && !config.allow_remote_without_password {
        anyhow::bail!(
            "refusing to listen on {} without a password: set one (config file or CREDHOST_PASSWORD) \
             or pass --allow-remote-without-password",
            config.listen
        );
    }
    if config.password.is_some() && !tls {
        if !loopback && !config.allow_password_over_plain_http {
            anyhow::bail!(
                "refusing to serve a password over plain HTTP on {}: whoever sees one request can \
                 forge others. Serve HTTPS (--tls-cert, --tls-key), listen on loopback, or pass \
                 --allow-password-over-plain-http to accept that risk",
                config.listen
            );
        }
        tracing::warn!(
            listen = %config.listen,
            "the API password is served over plain HTTP: anyone who can see this traffic can \
             forge requests; use --tls-cert and --tls-key"
        );
    }
    Ok(())
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Taken before anything slow: a hangup's default is to end the
    // process, and logrotate's may come while the plugins compile. One
    // that comes before the reloads start is acted on as they do.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    check_exposure(config)?;
    crate::metrics::install();
    // The socket first: a local client that comes while the plugins load
    // waits in the backlog instead of finding the database locked.
    crate::data_dir::prepare(&config.data_dir)?;
    let local = LocalListener::bind(&config.socket_path())
        .with_context(|| format!("cannot listen on {}", config.socket_path().display()))?;
    let (listener, twin) = crate::listeners::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (service, shared) = build(config, addr.to_string()).await?;
    // The database is this server's now: no other writes key files here.
    crate::data_dir::remove_leftovers(&config.data_dir);
    // Carries on with a rewrap a crash or stop interrupted (a no-op if none).
    service.start_rewrap();
    service.start_cluster();
    let certificate = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::Certificate::load(cert, key)?),
        _ => None,
    };
    reload_on_sighup(hangups, service.clone(), certificate.clone())?;
    let key = match &shared {
        Some(shared) => shared.transport_key(config.rsa_bits)?,
        None => TransportKey::open_or_create(&config.rsa_key_path(), config.rsa_bits)?,
    };
    let tls = config.tls_cert.is_some() && config.tls_key.is_some();
    let limits = config.http.client_limits();
    if limits.failure_burst < limits.in_flight {
        tracing::warn!(
            auth_failure_burst = limits.failure_burst,
            auth_in_flight_per_client = limits.in_flight,
            "an address has no more headers being authenticated at once than failures it may \
             still make: auth_failure_burst bounds it below auth_in_flight_per_client"
        );
    }
    if config.password.is_some() {
        service.close_open_mode();
    }
    let mut auth = Authenticator::new(
        key,
        config.password.clone().map(|p| Secret::new(p.into_bytes())),
        Duration::from_secs(config.auth_horizon_secs),
        limits,
    )
    .with_tokens(service.clone(), tls, config.allow_tokens_over_plain_http)
    .with_pace(config.http.pace_limits());
    match &shared {
        Some(shared) => auth = auth.with_shared_replay(shared.store.clone()),
        // Without a password no header needs guarding against replay.
        None if config.password.is_some() => {
            let journal = config.data_dir.join("replay.journal");
            auth = auth
                .with_replay_journal(&journal)
                .with_context(|| format!("cannot open {}", journal.display()))?;
        }
        None => {}
    }
    let auth = Arc::new(auth);
    let journal = auth.clone();
    let door = FrontDoor {
        guard: Guard {
            names: config.http.server_names.clone(),
            origins: config.http.allowed_origins.clone(),
            tls,
        },
        request_timeout: Duration::from_secs(config.http.request_timeout_secs.max(1)),
        changes: Default::default(),
    };
    // The metrics listener speaks plain HTTP whatever the API does.
    let metrics_guard = Guard {
        tls: false,
        ..door.guard.clone()
    };
    let changes = door.changes.clone();
    let router = crate::api::router(service.clone(), auth, door, addr);
    let limits = config.http.connection_limits();

    // One signal stops every listener.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut listening = vec![listener.local_addr()?];
    listening.extend(twin.as_ref().map(TcpListener::local_addr).transpose()?);
    let mut side = Vec::new();
    side.push(tokio::spawn(crate::connections::serve(
        local,
        router.clone().layer(axum::Extension(LocalSocket)),
        limits,
        crate::connections::Caps::new(limits.max, limits.per_client),
        until_stopped(),
    )));
    if let Some(metrics_addr) = config.metrics_listen {
        let metrics = TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
        tracing::info!(addr = %metrics.local_addr()?, "metrics served without authentication");
        listening.push(metrics.local_addr()?);
        side.push(tokio::spawn(crate::connections::serve(
            metrics,
            crate::api::metrics_router(service.clone(), metrics_guard),
            limits,
            crate::connections::Caps::new(limits.max, limits.per_client),
            until_stopped(),
        )));
    }
    service.serving_on(listening);
    let caps = ApiCaps {
        connections: crate::connections::Caps::new(limits.max, limits.per_client),
        handshakes: crate::tls::TlsListener::handshake_caps(),
    };
    if let Some(twin) = twin {
        tracing::info!(addr = %twin.local_addr()?, "also listening on the other loopback address");
        side.push(tokio::spawn(serve_api(
            twin,
            certificate.as_ref(),
            router.clone(),
            limits,
            caps.clone(),
            until_stopped(),
        )?));
    }
    let api = serve_api(
        listener,
        certificate.as_ref(),
        router,
        limits,
        caps,
        until_stopped(),
    )?;
    announce(if tls { "https" } else { "http" }, addr, config);
    api.await;
    for task in side {
        let _ = task.await;
    }
    // Changes whose clients left run on their own: they end before the
    // journal and the audit log are written out.
    if !changes.drained(Duration::from_secs(30)).await {
        tracing::warn!("changes still running after 30 s; stopping anyway");
    }
    // Requests have finished: what they accepted must outlive the process.
    let flushed =
        tokio::task::spawn_blocking(move || journal.flush_replay_journal(Duration::from_secs(5)))
            .await;
    if !matches!(flushed, Ok(true)) {
        tracing::warn!("the replay journal was not written out before stopping");
    }
    let _ = std::fs::remove_file(config.socket_path());
    tracing::info!("credhost stopped");
    Ok(())
}
