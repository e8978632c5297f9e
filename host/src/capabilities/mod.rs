//! What the host lends a plugin for the duration of one call. Each
//! capability is one module owning its settings, its per-call state and its
//! wiring into the linkers of every contract version (`link`): adding one
//! touches its module and the list below.

pub mod grant;
pub mod host_keys;
mod key_signer;
pub mod log;
pub mod private_key;
pub mod sockets;
pub mod ssh;

pub use grant::Grant;
pub use host_keys::{HostKeys, KnownHosts};
pub use ssh::{LoginResult, Outcome, SshClient, SshSettings};

use wasmtime::component::Linker;

use crate::plugins::state::CallState;

/// One linker per world and contract version.
pub struct Linkers {
    pub verifier_v0_1: Linker<CallState>,
    pub verifier_v0_2: Linker<CallState>,
    pub verifier_v0_3: Linker<CallState>,
    pub policy_v0_1: Linker<CallState>,
    pub policy_v0_2: Linker<CallState>,
    pub policy_v0_3: Linker<CallState>,
}

impl Linkers {
    pub fn new(engine: &wasmtime::Engine) -> wasmtime::Result<Self> {
        let mut linkers = Self {
            verifier_v0_1: Linker::new(engine),
            verifier_v0_2: Linker::new(engine),
            verifier_v0_3: Linker::new(engine),
            policy_v0_1: Linker::new(engine),
            policy_v0_2: Linker::new(engine),
            policy_v0_3: Linker::new(engine),
        };
        sockets::link(&mut linkers)?;
        log::link(&mut linkers)?;
        ssh::link(&mut linkers)?;
        host_keys::link(&mut linkers)?;
        Ok(linkers)
    }
}
