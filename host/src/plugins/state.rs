//! What one plugin call's `Store` holds, and the host side of the imports.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::verifier::credhost::plugin::{log, ssh, types};
use crate::capabilities::{self, Grant, Outcome, SshClient};

pub struct CallState {
    pub plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    grant: Grant,
    ssh: Option<SshClient>,
}

impl CallState {
    pub fn new(plugin: Arc<str>, memory_bytes: u64, grant: Grant, ssh: Option<SshClient>) -> Self {
        let mut wasi = WasiCtx::builder();
        if !grant.is_empty() {
            wasi.allow_tcp(true).socket_addr_check(grant.socket_check());
        }
        Self {
            plugin,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_bytes),
            grant,
            ssh,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
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

impl types::Host for CallState {}

impl log::Host for CallState {
    fn emit(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => capabilities::log::Level::Trace,
            log::Level::Debug => capabilities::log::Level::Debug,
            log::Level::Info => capabilities::log::Level::Info,
            log::Level::Warn => capabilities::log::Level::Warn,
            log::Level::Error => capabilities::log::Level::Error,
        };
        capabilities::log::emit(&self.plugin, level, &message);
    }
}

impl ssh::Host for CallState {
    async fn password_login(
        &mut self,
        targets: Vec<types::Target>,
        username: String,
        password: String,
    ) -> Vec<ssh::LoginResult> {
        let addrs: Vec<Option<SocketAddr>> = targets
            .iter()
            .map(|t| {
                t.ip.parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, t.port))
            })
            .collect();
        // An unparseable ip can never be in the grant; map it to an address
        // that is refused without being dialled.
        let dialable: Vec<SocketAddr> = addrs
            .iter()
            .map(|a| a.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))))
            .collect();
        let results = match &self.ssh {
            Some(client) => {
                client
                    .login_all(&self.grant, &dialable, &username, &password)
                    .await
            }
            None => Vec::new(),
        };
        targets
            .into_iter()
            .enumerate()
            .map(|(i, target)| match results.get(i) {
                Some(r) => ssh::LoginResult {
                    target,
                    outcome: outcome(r.outcome),
                    message: r.message.clone(),
                },
                None => ssh::LoginResult {
                    target,
                    outcome: ssh::Outcome::NotGranted,
                    message: "ssh is not lent to this plugin".into(),
                },
            })
            .collect()
    }
}

fn outcome(outcome: Outcome) -> ssh::Outcome {
    match outcome {
        Outcome::Success => ssh::Outcome::Success,
        Outcome::AuthFailed => ssh::Outcome::AuthFailed,
        Outcome::Refused => ssh::Outcome::Refused,
        Outcome::Unreachable => ssh::Outcome::Unreachable,
        Outcome::Timeout => ssh::Outcome::Timeout,
        Outcome::ProtocolError => ssh::Outcome::ProtocolError,
        Outcome::NotGranted => ssh::Outcome::NotGranted,
    }
}
