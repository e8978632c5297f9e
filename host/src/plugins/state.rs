//! What one plugin call's `Store` holds. The host side of each import is
//! in its capability's module (`capabilities/`).

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::budget::Client;
use crate::capabilities::log::LogBudget;
use crate::capabilities::{Grant, SshClient, sockets};

/// WASI resources one call may hold at once.
pub const MAX_RESOURCES: usize = 64;

pub struct CallState {
    pub plugin: Arc<str>,
    /// Built when the plugin first uses WASI: plugins that import none
    /// (the embedded ones) do not pay for it on every call.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub limiter: Limiter,
    /// What is left of the call's log lines.
    pub(crate) log: LogBudget,
    pub(crate) grant: Grant,
    /// Whom the call is for: its SSH logins count against that client's share.
    pub(crate) client: Client,
    pub(crate) ssh: Option<SshClient>,
}

impl CallState {
    pub fn new(
        plugin: Arc<str>,
        memory_bytes: u64,
        grant: Grant,
        client: Client,
        ssh: Option<SshClient>,
    ) -> Self {
        Self {
            plugin,
            wasi: None,
            table: {
                // Each socket, stream and pollable of WASI is an entry: a
                // call holds a few at once; without a bound it could hold
                // a million (and a file descriptor for each socket).
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES);
                table
            },
            limiter: Limiter::new(memory_bytes),
            log: LogBudget::default(),
            grant,
            client,
            ssh,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let grant = &self.grant;
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| sockets::context(grant)),
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers that the cap was hit, so the trap that
/// follows is reported as what it is.
pub struct Limiter {
    memory_bytes: u64,
    /// Of every memory of the instance together: a component may have
    /// more than one, and the cap is the call's, not each memory's.
    in_use: u64,
    pub memory_exceeded: bool,
}

impl Limiter {
    fn new(memory_bytes: u64) -> Self {
        Self {
            memory_bytes,
            in_use: 0,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Each memory's first size comes through here too (from 0).
        let in_use = self.in_use - current as u64 + desired as u64;
        if in_use > self.memory_bytes {
            self.memory_exceeded = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.memory_bytes);
        }
        // Past its own maximum the memory does not grow, whatever is said.
        if maximum.is_none_or(|maximum| desired <= maximum) {
            self.in_use = in_use;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cap_is_the_instance_s_not_each_memory_s() {
        let mut limiter = Limiter::new(4 << 16);
        // Two memories of two pages each, created: the cap is reached.
        assert!(limiter.memory_growing(0, 2 << 16, None).unwrap());
        assert!(limiter.memory_growing(0, 2 << 16, None).unwrap());
        // Either growing by a page is over it, though each alone is not.
        assert!(limiter.memory_growing(2 << 16, 3 << 16, None).is_err());
        assert!(limiter.memory_exceeded);
        // Growth a memory's own maximum refuses takes nothing of the cap.
        let mut limiter = Limiter::new(4 << 16);
        assert!(limiter.memory_growing(0, 1 << 16, Some(1 << 16)).unwrap());
        assert!(
            limiter
                .memory_growing(1 << 16, 3 << 16, Some(1 << 16))
                .unwrap()
        );
        assert!(limiter.memory_growing(0, 3 << 16, None).unwrap());
    }
}
