//! The one wasmtime `Engine`: pooling allocator, epoch interruption driven by a
//! ticker thread, and only the features plugins need.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// One epoch tick: the granularity of every plugin deadline.
pub const TICK: Duration = Duration::from_millis(2);

/// Bytes of each pooled memory, table and stack kept resident between calls.
const KEEP_RESIDENT: usize = 1 << 20;

/// Core instances and tables one plugin instance may have: a Rust component
/// has at most three and two, one of another toolchain (a language's
/// runtime, WASI's adapter) some more.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const TABLES_PER_COMPONENT: u32 = 8;

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Plugin instances alive at once (each call has one).
    pub max_instances: u32,
    /// The largest memory any plugin may be configured to use.
    pub max_memory_bytes: u64,
    /// Of `max_instances`, how many only short calls without network may
    /// use (sealing, opening, checking input), so verifications that wait
    /// on the network never starve them.
    pub quick_instances: u32,
    /// Of the rest, how many one client's verifications may hold at once
    /// (0: three quarters, so one credential of 100 targets, each verified
    /// in an instance of its own, runs in one wave and others still get in).
    pub verify_instances_per_client: u32,
    /// How long a call waits for an instance before it is refused (503).
    pub queue_wait_ms: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: 256,
            max_memory_bytes: 256 << 20,
            quick_instances: 64,
            verify_instances_per_client: 0,
            queue_wait_ms: 5_000,
        }
    }
}

impl EngineSettings {
    /// Instances for verification and for quick calls; each gets at least one.
    pub fn split(&self) -> (usize, usize) {
        let total = self.max_instances.max(2) as usize;
        let quick = (self.quick_instances as usize).clamp(1, total - 1);
        (total - quick, quick)
    }

    /// One client's share of the quick instances: three quarters, so calls
    /// of one client that wait on its key reads (a `normalize` of a key
    /// credential) leave instances for everyone else's.
    pub fn quick_share(quick: usize) -> usize {
        (quick * 3).div_ceil(4)
    }

    pub fn verify_share(&self, verify: usize) -> usize {
        match self.verify_instances_per_client {
            0 => (verify * 3).div_ceil(4),
            n => n as usize,
        }
    }
}

pub struct PluginEngine {
    engine: Engine,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl PluginEngine {
    pub fn new(settings: EngineSettings) -> wasmtime::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(settings.max_instances.max(2))
            // A Rust component is a handful of core instances around one
            // memory. Each component is held to a share, and the pool
            // holds that share for every instance: otherwise one plugin of
            // many modules or tables, spinning in a few calls, would take
            // them all and every other call would fail.
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_core_instances(settings.max_instances * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(settings.max_instances * 2)
            .total_tables(settings.max_instances * TABLES_PER_COMPONENT)
            .total_stacks(settings.max_instances)
            .max_memories_per_component(2)
            .max_memory_size(settings.max_memory_bytes as usize)
            // Reusing a slot should not fault its pages in again: a plugin
            // call is short, so page faults would dominate it.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn({
                let engine = engine.clone();
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(Self {
            engine,
            stop,
            ticker: Some(ticker),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        Component, InstanceSection, Module, ModuleArg, ModuleSection, RefType, TableSection,
        TableType,
    };

    /// A component of `count` instances of a module, with one table each
    /// if `tables`.
    fn component_of(count: u32, tables: bool) -> Vec<u8> {
        let mut module = Module::new();
        if tables {
            let mut section = TableSection::new();
            section.table(TableType {
                element_type: RefType::FUNCREF,
                table64: false,
                minimum: 1,
                maximum: None,
                shared: false,
            });
            module.section(&section);
        }
        let mut instances = InstanceSection::new();
        for _ in 0..count {
            instances.instantiate(0, std::iter::empty::<(&str, ModuleArg)>());
        }
        let mut component = Component::new();
        component.section(&ModuleSection(&module));
        component.section(&instances);
        component.finish()
    }

    #[test]
    fn a_component_of_many_instances_cannot_take_the_pool() {
        let engine = PluginEngine::new(EngineSettings {
            max_instances: 4,
            ..Default::default()
        })
        .unwrap();
        let linker = wasmtime::component::Linker::<()>::new(engine.engine());
        let run = |count, tables| -> wasmtime::Result<()> {
            let component =
                wasmtime::component::Component::new(engine.engine(), component_of(count, tables))?;
            let mut store = wasmtime::Store::new(engine.engine(), ());
            store.set_epoch_deadline(1 << 40);
            linker.instantiate(&mut store, &component).map(drop)
        };
        run(TABLES_PER_COMPONENT, true).unwrap();
        let refused = run(TABLES_PER_COMPONENT + 1, true).unwrap_err();
        assert!(format!("{refused:#}").contains("tables"), "{refused:#}");
        run(CORE_INSTANCES_PER_COMPONENT, false).unwrap();
        let refused = run(CORE_INSTANCES_PER_COMPONENT + 1, false).unwrap_err();
        assert!(format!("{refused:#}").contains("instances"), "{refused:#}");
    }
}
