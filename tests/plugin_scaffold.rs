//! A plugin author's path: `scripts/new-plugin` (behind `just new-plugin`),
//! a wasm32-wasip2 build, `credhost plugin check`.

use std::path::Path;
use std::process::Command;

fn credhost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn a_new_plugin_builds_and_passes_the_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(root.join("scripts/new-plugin"))
        .args(["redis-verifier"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let crate_dir = dir.path().join("redis-verifier");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("credhost-plugin-sdk") && manifest.contains("plugins/sdk"),
        "the scaffold is written on the SDK: {manifest}"
    );

    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(&crate_dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold"));
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
    ] {
        build.env_remove(var);
    }
    assert!(
        build.status().unwrap().success(),
        "the scaffold does not build"
    );

    let wasm = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scaffold/wasm32-wasip2/release/redis_verifier.wasm");
    let out = credhost(&["plugin", "check", wasm.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["kind"], "verifier");
    assert_eq!(summary["target_type"], "REDIS");
    assert_eq!(summary["property_field"], "redis_credential_property");
    assert_eq!(summary["wit"], "credhost:plugin@0.3.0");
    assert_eq!(
        summary["validation_failed_code"],
        "Credential.REDIS.ValidationFailed"
    );
    assert_eq!(summary["property_schema"]["type"], "object");

    // Not a component: refused with a reason.
    let out = credhost(&["plugin", "check", root.join("Cargo.toml").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a usable credhost plugin"));
}
