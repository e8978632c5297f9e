//! Putting the server together: store, keys, plugins, service, router.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use std::time::Duration;

use crate::api::FrontDoor;
use crate::api::auth::Authenticator;
use crate::api::guard::Guard;
use crate::keys::{Keyring, TransportKey};
use crate::plugins::{PrecompileCache, Registry, Runtime};
use crate::secret::Secret;
use crate::service::{PluginSource, Service, ServiceSettings, TargetPolicy};
use crate::store::RedbStore;

pub async fn build(config: &Config) -> anyhow::Result<Arc<Service>> {
    crate::data_dir::prepare(&config.data_dir)?;
    let cache_key = crate::data_dir::secret_file(&config.data_dir.join("cache.key"))
        .context("cannot open the plugin cache key")?;
    let store = RedbStore::open(&config.database_path()).context("cannot open the database")?;
    let keys = Keyring::from_env_or_file(&config.key_path()).context("cannot open the keyring")?;
    let runtime = Runtime::new(
        config.engine.into(),
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
    let service = Service::new(
        registry,
        Arc::new(store),
        Arc::new(keys),
        ServiceSettings {
            targets: TargetPolicy {
                allow: config.allow_targets.clone(),
            },
            verify_concurrency: config.verify_concurrency,
            policy: config.policy.clone(),
        },
    )?
    .with_plugin_source(source);
    Ok(Arc::new(service))
}

/// SIGHUP reloads the plugin directory, as `POST /api/v1/plugins/reload` does.
fn reload_on_sighup(service: Arc<Service>) -> anyhow::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match service.reload_plugins().await {
                Ok(view) => {
                    tracing::info!(failures = view.failures.len(), "SIGHUP: plugins reloaded")
                }
                Err(e) => tracing::error!("SIGHUP: plugin reload refused: {e}"),
            }
        }
    });
    Ok(())
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
    let tls = config.tls_cert.is_some();
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
    check_exposure(config)?;
    let service = build(config).await?;
    // Carries on with a rewrap a crash or stop interrupted (a no-op if none).
    service.start_rewrap();
    reload_on_sighup(service.clone())?;
    let key = TransportKey::open_or_create(&config.rsa_key_path(), config.rsa_bits)?;
    let auth = Arc::new(Authenticator::new(
        key,
        config.password.clone().map(|p| Secret::new(p.into_bytes())),
        Duration::from_secs(config.auth_horizon_secs),
        config.http.client_limits(),
    ));
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let tls = config.tls_cert.is_some() && config.tls_key.is_some();
    let door = FrontDoor {
        guard: Guard {
            names: config.http.server_names.clone(),
            origins: config.http.allowed_origins.clone(),
            tls,
        },
        request_timeout: Duration::from_secs(config.http.request_timeout_secs.max(1)),
    };
    let router = crate::api::router(service, auth, door, addr);
    let limits = config.http.connection_limits();
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let listener = crate::tls::TlsListener::new(listener, cert, key)?;
            announce("https", addr, config);
            crate::connections::serve(listener, router, limits, shutdown).await;
        }
        _ => {
            announce("http", addr, config);
            crate::connections::serve(listener, router, limits, shutdown).await;
        }
    }
    tracing::info!("credhost stopped");
    Ok(())
}
