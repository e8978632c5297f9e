//! The operator's plugin directory: a plugin there overrides the embedded one
//! of the same target type; a file that is not a plugin is reported, and the
//! others keep working.

mod support;

use credhost::plugins::{Purpose, Source};

#[tokio::test]
async fn a_plugin_in_the_directory_overrides_the_embedded_default() {
    let dir = support::plugin_dir(&["host_override"]);
    let runtime = support::runtime(support::quick_ssh()).await;
    let registry = support::registry(&runtime, Some(dir.path()), &[]).await;
    let host = registry.verifier("HOST").unwrap();
    assert_eq!(host.meta.name, "host-override");
    assert_eq!(host.meta.version, "9.9.9");
    assert!(matches!(&host.meta.source, Source::Directory(p) if p.ends_with("host_override.wasm")));
    let refusal = host
        .normalize("{}", Purpose::Create, None)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refusal.message, "Illegal argument: refused by the override");

    // Without the directory, the embedded one serves HOST.
    let embedded = support::registry(&runtime, None, &[]).await;
    assert_eq!(
        embedded.verifier("HOST").unwrap().meta.source,
        Source::Embedded
    );
}

#[tokio::test]
async fn a_broken_file_is_reported_and_the_rest_load() {
    let dir = support::plugin_dir(&["hostile_verifier"]);
    std::fs::write(dir.path().join("garbage.wasm"), b"\0asm not really").unwrap();
    let runtime = support::runtime(support::quick_ssh()).await;
    let registry = support::registry(&runtime, Some(dir.path()), &[]).await;
    assert_eq!(registry.failures().len(), 1);
    assert!(registry.failures()[0].file.ends_with("garbage.wasm"));
    assert_eq!(registry.target_types(), vec!["HOST", "HOSTILE"]);
    assert!(registry.policy("aes-256-gcm").is_some());
}

/// What may load from the directory: the directory and its files are this
/// user's (or root's) and no one else's to write, and a plugin is a regular
/// file of its own, read once. A link, a FIFO or a file others could change
/// is reported and skipped, and the rest load.
#[tokio::test]
async fn only_files_no_one_else_could_change_load() {
    use std::os::unix::fs::PermissionsExt;
    let dir = support::plugin_dir(&["hostile_verifier", "host_override"]);
    // A file holding what must never be shown (the precompile cache's key,
    // say), linked in under a plugin's name.
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("cache.key");
    std::fs::write(&secret, b"KEYBYTES-do-not-show").unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("linked.wasm")).unwrap();
    // A FIFO: reading it would wait for a writer forever.
    let fifo = std::ffi::CString::new(dir.path().join("fifo.wasm").to_str().unwrap()).unwrap();
    // SAFETY: a path that lives through the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    // A plugin anyone could replace.
    let shared = dir.path().join("host_override.wasm");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o666)).unwrap();

    let runtime = support::runtime(support::quick_ssh()).await;
    let registry = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        support::registry(&runtime, Some(dir.path()), &[]),
    )
    .await
    .expect("the FIFO was waited on");
    let failures: Vec<(String, String)> = registry
        .failures()
        .iter()
        .map(|f| {
            let name = f.file.file_name().unwrap().to_string_lossy().into_owned();
            (name, f.error.clone())
        })
        .collect();
    let said = |name: &str| {
        failures
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("{name} not reported: {failures:?}"))
    };
    assert!(
        said("linked.wasm").contains("symbolic link"),
        "{failures:?}"
    );
    assert!(
        said("fifo.wasm").contains("not a regular file"),
        "{failures:?}"
    );
    assert!(
        said("host_override.wasm").contains("writable by group or others"),
        "{failures:?}"
    );
    assert!(
        !format!("{failures:?}").contains("KEYBYTES"),
        "{failures:?}"
    );
    // The embedded HOST stays; the file that was fine loads.
    assert_eq!(
        registry.verifier("HOST").unwrap().meta.source,
        Source::Embedded
    );
    assert_eq!(registry.target_types(), vec!["HOST", "HOSTILE"]);

    // A directory others could write is not read at all: the server does
    // not start on it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--plugin-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the plugin directory is writable by group or others"),
        "{stderr}"
    );
}
