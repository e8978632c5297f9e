//! Shared by every plugin: the engine, the linkers of both worlds, the
//! precompile cache, the SSH client, and the rules of one sandboxed call.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, Trap, UpdateDeadline};

use super::cache::PrecompileCache;
use super::engine::{EngineSettings, PluginEngine};
use super::error::PluginError;
use super::interfaces::Empty;
use super::limits::Limits;
use super::state::CallState;
use super::types::Scrubber;
use crate::budget::{Budget, Client, Slot};
use crate::capabilities::ssh::Lent;
use crate::capabilities::{Grant, Linkers, SshClient, SshSettings, log};

pub struct Runtime {
    engine: PluginEngine,
    pub(super) linkers: Linkers,
    pub(super) cache: PrecompileCache,
    ssh: SshClient,
    // The pool has a fixed number of instance slots, split in two budgets:
    // a verification may hold its slot for its whole deadline (a minute,
    // waiting on the network), so it must never take the slots that
    // sealing, opening and checking input need.
    verify_slots: Budget,
    quick_slots: Budget,
}

/// A plugin's name as metrics label it, with the duration histogram of each
/// of its exports registered once: looking a labelled metric up on every
/// call costs a noticeable part of a small call.
pub(super) struct CallLabel {
    plugin: Arc<str>,
    durations: Vec<(&'static str, metrics::Histogram)>,
}

impl CallLabel {
    pub(super) fn new(plugin: &str, exports: &[&'static str]) -> Self {
        let plugin: Arc<str> = Arc::from(plugin);
        let durations = exports
            .iter()
            .map(|export| {
                let histogram = metrics::histogram!("credhost_plugin_call_duration_seconds",
                    "plugin" => plugin.to_string(), "export" => *export);
                (*export, histogram)
            })
            .collect();
        Self { plugin, durations }
    }

    fn duration(&self, export: &'static str) -> metrics::Histogram {
        self.durations
            .iter()
            .find(|(name, _)| *name == export)
            .map(|(_, histogram)| histogram.clone())
            .unwrap_or_else(|| {
                metrics::histogram!("credhost_plugin_call_duration_seconds",
                    "plugin" => self.plugin.to_string(), "export" => export)
            })
    }
}

/// Which budget a call draws on, and what it may reach.
#[derive(Clone)]
pub(super) enum Work {
    /// A short call with no network for `client` (describe, normalize,
    /// seal, open): a key it reads counts against that client's share.
    Quick(Client),
    /// A verification for `client`, allowed to reach `grant`. A `patient`
    /// call (a further target of a credential whose first one got in) waits
    /// for an instance as long as its deadline allows, not just the queue
    /// bound: its request was admitted already.
    Verify {
        grant: Grant,
        client: Client,
        patient: bool,
    },
    /// A round of a call whose slot is held already (see
    /// [`Runtime::admit`]): a 0.3 call holds one slot through all its
    /// rounds and the work it asks for, as a 0.2 call holds it while it
    /// waits on an import.
    Admitted(Arc<Work>),
}

/// A slot of a call's budget, held by a call of several rounds (none for
/// work admitted already).
pub(super) struct Admission {
    _slot: Option<Slot>,
}

impl Runtime {
    pub fn new(
        settings: EngineSettings,
        cache: PrecompileCache,
        ssh: SshSettings,
    ) -> wasmtime::Result<Arc<Self>> {
        let engine = PluginEngine::new(settings)?;
        let linkers = Linkers::new(engine.engine())?;

        let (verify, quick) = settings.split();
        let wait = Duration::from_millis(settings.queue_wait_ms);
        Ok(Arc::new(Self {
            engine,
            linkers,
            cache,
            ssh: SshClient::new(ssh),
            verify_slots: Budget::new(
                "verify",
                "plugin instance for verification",
                verify,
                settings.verify_share(verify),
                wait,
            ),
            quick_slots: Budget::new(
                "quick",
                "plugin instance",
                quick,
                EngineSettings::quick_share(quick),
                wait,
            ),
        }))
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        self.engine.engine()
    }

    /// What a call of `work` may have done for it, outside its instance:
    /// the host answers a plugin's asks (contract 0.3) with exactly what
    /// the call itself would have been lent.
    pub(super) fn lend(&self, work: &Work) -> Lent {
        let (grant, client, ssh) = self.lent_to(work.clone());
        Lent::new(ssh, grant, client)
    }

    /// The budget `work` draws on, its client, and whether it waits as long
    /// as its deadline allows.
    fn budget_of<'w>(&self, work: &'w Work) -> (&Budget, &'w Client, bool) {
        match work {
            Work::Quick(client) => (&self.quick_slots, client, false),
            Work::Verify {
                client, patient, ..
            } => (&self.verify_slots, client, *patient),
            Work::Admitted(work) => self.budget_of(work),
        }
    }

    /// A slot for `work`, held until the admission is dropped; calls of
    /// `Work::Admitted(work)` then take none of their own, and admitting
    /// such work again takes nothing.
    pub(super) async fn admit(
        &self,
        work: &Work,
        limits: &Limits,
    ) -> Result<Admission, PluginError> {
        if let Work::Admitted(_) = work {
            return Ok(Admission { _slot: None });
        }
        let (budget, client, patient) = self.budget_of(work);
        let slot = if patient {
            budget.acquire_within(client, limits.deadline()).await
        } else {
            budget.acquire(client).await
        };
        slot.map(|slot| Admission { _slot: Some(slot) })
            .map_err(PluginError::Busy)
    }

    /// What the store of a call of `work` holds: its grant, its client,
    /// and the SSH client if it may log in.
    fn lent_to(&self, work: Work) -> (Grant, Client, Option<SshClient>) {
        match work {
            Work::Quick(client) => (Grant::none(), client, None),
            Work::Verify { grant, client, .. } => (grant, client, Some(self.ssh.clone())),
            Work::Admitted(work) => self.lent_to(Arc::unwrap_or_clone(work)),
        }
    }

    /// One sandboxed call, the same for every export of every world: a slot
    /// from the call's budget, a fresh store with the memory cap and the
    /// deadline armed, `run` (which instantiates and calls), the outcome
    /// named precisely, and the answer's size checked against the cap.
    /// What the call logged outside a verification is logged as it ends,
    /// masked by what `mask` makes of its input and its answer (made only
    /// if it logged).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn call<T>(
        &self,
        label: &CallLabel,
        export: &'static str,
        limits: &Limits,
        work: Work,
        mask: &(dyn Fn(Option<&T>) -> Scrubber + Sync),
        run: impl AsyncFnOnce(&mut Store<CallState>) -> wasmtime::Result<T>,
        size: impl FnOnce(&T) -> usize,
    ) -> Result<T, PluginError> {
        let _admission = self.admit(&work, limits).await?;
        let (grant, client, ssh) = self.lent_to(work);
        let started = std::time::Instant::now();
        let plugin = &label.plugin;
        let state = CallState::new(plugin.clone(), limits.memory_bytes, grant, client, ssh);
        let mut store = Store::new(self.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Wasm runs inside the task's poll and gives the thread back only
        // when it returns: a plugin that spins would hold a worker of the
        // whole server until its deadline. So it yields at every epoch
        // tick, and is stopped at the first tick past its deadline.
        let until = started + limits.deadline();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if std::time::Instant::now() < until {
                UpdateDeadline::Yield(1)
            } else {
                UpdateDeadline::Interrupt
            })
        });
        let outcome = bounded(limits, run(&mut store)).await;
        let held = store.data_mut().log.take_held();
        if !held.is_empty() {
            let answer = outcome.as_ref().and_then(|o| o.as_ref().ok());
            log::flush(plugin, held, &mask(answer));
        }
        let result = conclude(&store, limits, outcome)
            .and_then(|value| check_output(plugin, limits, size(&value)).map(|()| value));
        label
            .duration(export)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            metrics::counter!("credhost_plugin_traps_total",
                "plugin" => plugin.to_string(), "kind" => e.kind())
            .increment(1);
        }
        result
    }
}

/// Turns what a call ended with into the call's result. `outcome` is `None`
/// when the wall-clock deadline passed while the plugin waited on the host.
fn conclude<T>(
    store: &Store<CallState>,
    limits: &Limits,
    outcome: Option<wasmtime::Result<T>>,
) -> Result<T, PluginError> {
    let error = match outcome {
        Some(Ok(value)) => return Ok(value),
        None => {
            return Err(PluginError::Deadline {
                plugin: store.data().plugin.to_string(),
                limit: limits.deadline(),
            });
        }
        Some(Err(error)) => error,
    };
    let plugin = store.data().plugin.to_string();
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

fn check_output(plugin: &str, limits: &Limits, size: usize) -> Result<(), PluginError> {
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
async fn bounded<T>(
    limits: &Limits,
    fut: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> Option<wasmtime::Result<T>> {
    // A little slack so the epoch trap, which names the cause precisely,
    // usually fires first for plugins that spin.
    tokio::time::timeout(limits.deadline() + Duration::from_millis(50), fut)
        .await
        .ok()
}

/// A component's nullary export `run`, called exactly as plugins are called
/// (a fresh store from an `InstancePre`, the quick budget, the limits): what
/// a call costs before a plugin does any work, for the benchmarks.
#[doc(hidden)]
pub struct EmptyCall {
    runtime: Arc<Runtime>,
    label: CallLabel,
    pre: wasmtime::component::InstancePre<CallState>,
    /// `None` for a component without `run`, only instantiated.
    run: Option<Empty>,
}

#[doc(hidden)]
impl EmptyCall {
    pub fn load(runtime: Arc<Runtime>, bytes: &[u8]) -> wasmtime::Result<Self> {
        let component = wasmtime::component::Component::new(runtime.engine(), bytes)?;
        let pre = runtime.linkers.verifier_v0_2.instantiate_pre(&component)?;
        Ok(Self {
            runtime,
            label: CallLabel::new("empty", &["run", "instantiate"]),
            run: Empty::find(&pre).ok(),
            pre,
        })
    }

    pub async fn call(&self) -> Result<(), PluginError> {
        let pre = &self.pre;
        let run = self.run.as_ref().ok_or_else(|| PluginError::Contract {
            plugin: "empty".into(),
            reason: "the component exports no `run`".into(),
        })?;
        self.runtime
            .call(
                &self.label,
                "run",
                &Limits::POLICY,
                Work::Quick(Client::server()),
                &Scrubber::for_nothing,
                async |store| {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    run.call_run(store, &instance).await
                },
                |_| 0,
            )
            .await
    }

    /// Only the instantiation, of any component this linker accepts.
    pub async fn instantiate(&self) -> Result<(), PluginError> {
        let pre = &self.pre;
        self.runtime
            .call(
                &self.label,
                "instantiate",
                &Limits::POLICY,
                Work::Quick(Client::server()),
                &Scrubber::for_nothing,
                async |store| pre.instantiate_async(&mut *store).await.map(drop),
                |_| 0,
            )
            .await
    }
}
