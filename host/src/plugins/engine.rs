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

#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Plugin instances alive at once (each call has one).
    pub max_instances: u32,
    /// The largest memory any plugin may be configured to use.
    pub max_memory_bytes: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: 256,
            max_memory_bytes: 256 << 20,
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
        pool.total_component_instances(settings.max_instances)
            // A Rust component is a handful of core instances around one memory.
            .total_core_instances(settings.max_instances * 8)
            .total_memories(settings.max_instances * 2)
            .total_tables(settings.max_instances * 4)
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

    /// Epoch ticks that cover `deadline`, rounded up.
    pub fn ticks(deadline: Duration) -> u64 {
        (deadline.as_micros() / TICK.as_micros()) as u64 + 1
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
