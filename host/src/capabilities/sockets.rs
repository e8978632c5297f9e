//! WASI (p2) for plugins: random and clocks always; TCP sockets only to the
//! endpoints of the call's grant, checked on every connect (no name
//! lookups, no listening).

use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use super::Grant;

pub fn link(linkers: &mut super::Linkers) -> wasmtime::Result<()> {
    for linker in [
        &mut linkers.verifier_v0_1,
        &mut linkers.verifier_v0_2,
        &mut linkers.verifier_v0_3,
        &mut linkers.policy_v0_1,
        &mut linkers.policy_v0_2,
        &mut linkers.policy_v0_3,
    ] {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
    }
    Ok(())
}

/// The WASI context of one call.
pub fn context(grant: &Grant) -> WasiCtx {
    let mut wasi = WasiCtxBuilder::new();
    if !grant.is_empty() {
        wasi.allow_tcp(true).socket_addr_check(grant.socket_check());
    }
    wasi.build()
}
