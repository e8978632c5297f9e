//! The plugins built into the binary (by `build.rs`, from `plugins/`).

pub struct Embedded {
    pub file: &'static str,
    pub bytes: &'static [u8],
}

pub const DEFAULTS: [Embedded; 3] = [
    Embedded {
        file: "ssh_verifier.wasm",
        bytes: include_bytes!(concat!(env!("CREDHOST_PLUGIN_OUT"), "/ssh_verifier.wasm")),
    },
    Embedded {
        file: "aes_gcm_policy.wasm",
        bytes: include_bytes!(concat!(env!("CREDHOST_PLUGIN_OUT"), "/aes_gcm_policy.wasm")),
    },
    Embedded {
        file: "chacha20_policy.wasm",
        bytes: include_bytes!(concat!(
            env!("CREDHOST_PLUGIN_OUT"),
            "/chacha20_policy.wasm"
        )),
    },
];

/// Where the build put every component of `plugins/`, test fixtures included.
pub fn build_dir() -> std::path::PathBuf {
    env!("CREDHOST_PLUGIN_OUT").into()
}
