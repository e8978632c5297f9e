//! Putting the server together: store, keys, plugins, service, router.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::keys::Keyring;
use crate::plugins::{PrecompileCache, Registry, Runtime};
use crate::service::{Service, ServiceSettings, TargetPolicy};
use crate::store::RedbStore;

pub async fn build(config: &Config) -> anyhow::Result<Arc<Service>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let store = RedbStore::open(&config.database_path()).context("cannot open the database")?;
    let keys = Keyring::open(&config.key_path()).context("cannot open the key file")?;
    let runtime = Runtime::new(
        config.engine.into(),
        PrecompileCache::new(Some(config.cache_dir())),
        config.ssh.clone(),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
    let registry = Registry::load(&runtime, config.plugin_dir.as_deref(), &config.plugins)
        .await
        .context("cannot load the plugins")?;
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
    )?;
    Ok(Arc::new(service))
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = build(config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "credhost ready");
    // Tests and scripts that asked for port 0 read the real one here.
    println!("credhost listening on http://{addr}");
    axum::serve(listener, crate::api::router(service))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("credhost stopped");
    Ok(())
}
