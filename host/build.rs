//! Builds the plugins workspace (`../plugins`) for `wasm32-wasip2`, so the
//! default plugins are embedded in the binary and the test fixtures are at
//! hand, with nothing but `cargo build`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// The outer build's settings are for the host, not for wasm.
const OUTER_BUILD_VARS: [&str; 10] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
];

const EMBEDDED: [&str; 3] = ["ssh_verifier", "aes_gcm_policy", "chacha20_policy"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    let plugins = root.join("plugins");
    // Sources only: a `target` folder inside them must not trigger rebuilds.
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", plugins.join(file).display());
    }
    for group in [
        plugins.clone(),
        plugins.join("fixtures"),
        root.join("examples"),
    ] {
        for entry in std::fs::read_dir(&group).into_iter().flatten().flatten() {
            let dir = entry.path();
            if dir.join("Cargo.toml").exists() {
                // A file that does not exist (a workspace member's own
                // Cargo.lock) would make every build stale.
                for part in ["Cargo.toml", "Cargo.lock", "build.rs", "src"] {
                    let path = dir.join(part);
                    if path.exists() {
                        println!("cargo:rerun-if-changed={}", path.display());
                    }
                }
            }
        }
    }

    let cargo = plugin_cargo();

    // A target directory of its own: the outer build holds the lock on ours.
    let target_dir = root.join("target").join("plugins");
    build_wasm(&cargo, &plugins, &target_dir, true);
    // The third-party example stands alone (its own workspace); the tests
    // drop it into a running server's plugin directory.
    let example = root.join("examples").join("ob-verifier");
    build_wasm(&cargo, &example, &target_dir, false);

    let out = target_dir.join(TARGET).join("release");
    for name in EMBEDDED {
        let file = out.join(format!("{name}.wasm"));
        assert!(file.exists(), "{} was not built", file.display());
    }
    println!("cargo:rustc-env=CREDHOST_PLUGIN_OUT={}", out.display());
}

/// How to run cargo for the plugins. Normally the outer build's own cargo.
/// Under another rustup toolchain without the wasm target (the fuzz
/// targets build with `cargo +nightly`), the plugins are built with the
/// pinned toolchain instead, through rustup's proxy.
fn plugin_cargo() -> Command {
    if has_target() {
        return Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    }
    if env::var_os("RUSTUP_TOOLCHAIN").is_some() && add_target().is_err() {
        let mut cargo = Command::new("cargo");
        for var in ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTDOC"] {
            cargo.env_remove(var);
        }
        return cargo;
    }
    add_target().unwrap_or_else(|e| panic!("{e}"));
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn build_wasm(cargo: &Command, dir: &Path, target_dir: &Path, workspace: bool) {
    let mut build = Command::new(cargo.get_program());
    for (var, value) in cargo.get_envs() {
        match value {
            Some(value) => build.env(var, value),
            None => build.env_remove(var),
        };
    }
    build
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    if workspace {
        build.arg("--workspace");
    }
    for var in OUTER_BUILD_VARS {
        build.env_remove(var);
    }
    let status = build.status().expect("cannot run cargo to build plugins");
    assert!(
        status.success(),
        "building {} for {TARGET} failed",
        dir.display()
    );
}

/// Whether the outer toolchain has the wasm target.
fn has_target() -> bool {
    let sysroot = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    sysroot
        .as_deref()
        .is_some_and(|s| Path::new(s).join("lib/rustlib").join(TARGET).exists())
}

/// The toolchain file asks rustup for the target; this covers a rustup that
/// did not act on it.
fn add_target() -> Result<(), String> {
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => Err(format!(
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed"
        )),
    }
}
