//! Host bindings for the two worlds of `wit/plugin.wit`.

pub mod verifier {
    wasmtime::component::bindgen!({
        world: "verifier",
        path: "../wit",
        imports: {
            "credhost:plugin/ssh.password-login": async,
            default: tracing,
        },
        exports: { default: async },
    });
}

pub mod policy {
    wasmtime::component::bindgen!({
        world: "encryption-policy",
        path: "../wit",
        with: {
            "credhost:plugin/log": super::verifier::credhost::plugin::log,
        },
        exports: { default: async },
    });
}
