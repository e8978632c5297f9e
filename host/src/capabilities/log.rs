//! Plugin log lines, into the host's `tracing` under the target `plugin`.

/// How much of one plugin log line is kept.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

pub fn emit(plugin: &str, level: Level, message: &str) {
    let mut end = message.len().min(MAX_LINE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let message = &message[..end];
    match level {
        Level::Trace => tracing::trace!(target: "plugin", plugin, "{message:?}"),
        Level::Debug => tracing::debug!(target: "plugin", plugin, "{message:?}"),
        Level::Info => tracing::info!(target: "plugin", plugin, "{message:?}"),
        Level::Warn => tracing::warn!(target: "plugin", plugin, "{message:?}"),
        Level::Error => tracing::error!(target: "plugin", plugin, "{message:?}"),
    }
}

// ---- The `log` interface of each contract version (both worlds share it) ----

use crate::plugins::bindings::{v0_1, v0_2, v0_3};
use crate::plugins::state::CallState;

pub fn link(linkers: &mut super::Linkers) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    for linker in [&mut linkers.verifier_v0_1, &mut linkers.policy_v0_1] {
        v0_1::verifier::credhost::plugin::log::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
        v0_1::verifier::credhost::plugin::types::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
    }
    for linker in [&mut linkers.verifier_v0_2, &mut linkers.policy_v0_2] {
        v0_2::verifier::credhost::plugin::log::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
        v0_2::verifier::credhost::plugin::types::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
    }
    for linker in [&mut linkers.verifier_v0_3, &mut linkers.policy_v0_3] {
        v0_3::verifier::credhost::plugin::log::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
        v0_3::verifier::credhost::plugin::types::add_to_linker::<_, HasSelf<CallState>>(
            linker,
            |s| s,
        )?;
    }
    Ok(())
}

macro_rules! log_host {
    ($version:ident) => {
        impl $version::verifier::credhost::plugin::types::Host for CallState {}

        impl $version::verifier::credhost::plugin::log::Host for CallState {
            fn emit(
                &mut self,
                level: $version::verifier::credhost::plugin::log::Level,
                message: String,
            ) {
                use $version::verifier::credhost::plugin::log::Level as L;
                let level = match level {
                    L::Trace => Level::Trace,
                    L::Debug => Level::Debug,
                    L::Info => Level::Info,
                    L::Warn => Level::Warn,
                    L::Error => Level::Error,
                };
                emit(&self.plugin, level, &message);
            }
        }
    };
}

log_host!(v0_1);
log_host!(v0_2);
log_host!(v0_3);
