//! What one plugin call's `Store` holds. The host side of each import is
//! in its capability's module (`capabilities/`).

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::budget::Client;
use crate::capabilities::{Grant, SshClient, sockets};

pub struct CallState {
    pub plugin: Arc<str>,
    /// Built when the plugin first uses WASI: plugins that import none
    /// (the embedded ones) do not pay for it on every call.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub limiter: Limiter,
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
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_bytes),
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
    pub memory_exceeded: bool,
}

impl Limiter {
    fn new(memory_bytes: u64) -> Self {
        Self {
            memory_bytes,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_bytes {
            self.memory_exceeded = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.memory_bytes);
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
