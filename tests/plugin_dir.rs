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
