//! Shared by every plugin: the engine, the linkers of both worlds, the
//! precompile cache, the SSH client, and the rules of one sandboxed call.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, Trap};

use super::bindings::{policy, verifier};
use super::cache::PrecompileCache;
use super::engine::{EngineSettings, PluginEngine};
use super::error::PluginError;
use super::limits::Limits;
use super::state::CallState;
use crate::capabilities::{Grant, SshClient, SshSettings};

pub struct Runtime {
    engine: PluginEngine,
    pub(super) verifier_linker: Linker<CallState>,
    pub(super) policy_linker: Linker<CallState>,
    pub(super) cache: PrecompileCache,
    ssh: SshClient,
    // The pool has a fixed number of instance slots; a call waits for one
    // rather than failing when the pool is momentarily full.
    slots: Semaphore,
}

impl Runtime {
    pub fn new(
        settings: EngineSettings,
        cache: PrecompileCache,
        ssh: SshSettings,
    ) -> wasmtime::Result<Arc<Self>> {
        let engine = PluginEngine::new(settings)?;

        let mut verifier_linker = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut verifier_linker)?;
        verifier::Verifier::add_to_linker::<_, HasSelf<CallState>>(&mut verifier_linker, |s| s)?;

        let mut policy_linker = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut policy_linker)?;
        policy::EncryptionPolicy::add_to_linker::<_, HasSelf<CallState>>(
            &mut policy_linker,
            |s| s,
        )?;

        Ok(Arc::new(Self {
            engine,
            verifier_linker,
            policy_linker,
            cache,
            ssh: SshClient::new(ssh),
            slots: Semaphore::new(settings.max_instances as usize),
        }))
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        self.engine.engine()
    }

    /// A fresh store for one call, with its deadline armed, and the instance
    /// slot it will use.
    pub(super) async fn store(
        &self,
        plugin: &Arc<str>,
        limits: &Limits,
        grant: Grant,
        lend_ssh: bool,
    ) -> (Store<CallState>, SemaphorePermit<'_>) {
        let slot = self.slots.acquire().await.expect("never closed");
        let ssh = lend_ssh.then(|| self.ssh.clone());
        let state = CallState::new(plugin.clone(), limits.memory_bytes, grant, ssh);
        let mut store = Store::new(self.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(PluginEngine::ticks(limits.deadline()));
        store.epoch_deadline_trap();
        (store, slot)
    }
}

/// Turns what a call ended with into the call's result. `outcome` is `None`
/// when the wall-clock deadline passed while the plugin waited on the host.
pub(super) fn conclude<T>(
    store: &Store<CallState>,
    limits: &Limits,
    outcome: Option<wasmtime::Result<T>>,
) -> Result<T, PluginError> {
    let plugin = store.data().plugin.to_string();
    let error = match outcome {
        Some(Ok(value)) => return Ok(value),
        None => {
            return Err(PluginError::Deadline {
                plugin,
                limit: limits.deadline(),
            });
        }
        Some(Err(error)) => error,
    };
    if store.data().limiter.memory_exceeded {
        return Err(PluginError::Memory {
            plugin,
            limit: limits.memory_bytes,
        });
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Err(PluginError::Deadline {
            plugin,
            limit: limits.deadline(),
        }),
        Some(trap) => Err(PluginError::Trap {
            plugin,
            reason: trap.to_string(),
        }),
        None => Err(PluginError::Trap {
            plugin,
            reason: format!("{error:#}"),
        }),
    }
}

pub(super) fn check_output(plugin: &str, limits: &Limits, size: usize) -> Result<(), PluginError> {
    if size as u64 > limits.output_bytes {
        return Err(PluginError::Output {
            plugin: plugin.to_string(),
            size: size as u64,
            limit: limits.output_bytes,
        });
    }
    Ok(())
}

/// Runs `fut` under the call's wall-clock deadline.
pub(super) async fn bounded<T>(
    limits: &Limits,
    fut: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> Option<wasmtime::Result<T>> {
    // A little slack so the epoch trap, which names the cause precisely,
    // usually fires first for plugins that spin.
    tokio::time::timeout(limits.deadline() + Duration::from_millis(50), fut)
        .await
        .ok()
}
