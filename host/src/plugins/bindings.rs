//! Host bindings of every contract version the host speaks (`wit/0.1.0`,
//! `wit/0.2.0`, `wit/0.3.0`), each with its two worlds. A plugin is linked against the
//! version it exports; `contract` tells which.

pub mod v0_1 {
    pub mod verifier {
        wasmtime::component::bindgen!({
            world: "verifier",
            path: "../wit/0.1.0",
            imports: {
                "credhost:plugin/ssh.password-login": async | trappable,
            },
            exports: { default: async },
        });
    }

    pub mod policy {
        wasmtime::component::bindgen!({
            world: "encryption-policy",
            path: "../wit/0.1.0",
            with: {
                "credhost:plugin/log": super::verifier::credhost::plugin::log,
            },
            exports: { default: async },
        });
    }
}

pub mod v0_2 {
    pub mod verifier {
        wasmtime::component::bindgen!({
            world: "verifier",
            path: "../wit/0.2.0",
            imports: {
                "credhost:plugin/ssh.password-login": async,
                "credhost:plugin/ssh.key-login": async,
                "credhost:plugin/ssh.key-fingerprint": async,
            },
            exports: { default: async },
        });
    }

    pub mod policy {
        wasmtime::component::bindgen!({
            world: "encryption-policy",
            path: "../wit/0.2.0",
            with: {
                "credhost:plugin/log": super::verifier::credhost::plugin::log,
            },
            exports: { default: async },
        });
    }
}

pub mod v0_3 {
    pub mod verifier {
        wasmtime::component::bindgen!({
            world: "verifier",
            path: "../wit/0.3.0",
            exports: { default: async },
        });
    }

    pub mod policy {
        wasmtime::component::bindgen!({
            world: "encryption-policy",
            path: "../wit/0.3.0",
            with: {
                "credhost:plugin/log": super::verifier::credhost::plugin::log,
            },
            exports: { default: async },
        });
    }
}
