//! The data directory is private: created 0700 with every file 0600, the
//! server refuses to start when it or a key file is open to others, and a
//! compiled plugin in its cache is loaded only if this server wrote it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::server::{Options, Server};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

/// Starts the binary on `dir` and returns what it printed when it refused.
fn refusal(dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(!output.status.success(), "it started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn created_private_refused_when_open_and_the_cache_is_authenticated() {
    let mut server = Server::start(Options::default());
    let dir = server.data_dir().to_path_buf();
    let (status, _) = server.get("/api/v1/plugins").await;
    assert_eq!(status, 200);
    assert_eq!(mode(&dir), 0o700);
    let mut files = Vec::new();
    walk(&dir, &mut files);
    assert!(files.iter().any(|f| f.ends_with("credhost.redb")));
    assert!(files.iter().any(|f| f.ends_with("keys.json")));
    assert!(files.iter().any(|f| f.ends_with("rsa_key.der")));
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "cwasm"))
    );
    for file in &files {
        let expected = if file.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(file), expected, "{}", file.display());
    }
    server.stop();

    // A directory others may write to, then a key file others may read.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let said = refusal(&dir);
    assert!(said.contains("chmod 700"), "{said}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Each key file others may read: the keyring, the audit log's key, and
    // a key-encryption key copied in with the usual umask.
    let kek = dir.join("kek.key");
    std::fs::write(&kek, "not used by a server without a shared store").unwrap();
    for (name, open) in [
        ("keys.json", 0o644),
        ("audit.key", 0o640),
        ("kek.key", 0o644),
    ] {
        let file = dir.join(name);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(open)).unwrap();
        let said = refusal(&dir);
        assert!(said.contains("chmod 600") && said.contains(name), "{said}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::remove_file(&kek).unwrap();

    // A cache entry altered by someone else is not loaded: it is compiled
    // again and rewritten, and the server serves.
    let entry = files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "cwasm"))
        .unwrap()
        .clone();
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    server.restart();
    let (status, _) = server.get("/api/v1/plugins").await;
    assert_eq!(status, 200);
    assert!(
        server.log_text().contains("failed authentication"),
        "{}",
        server.log_text()
    );
    assert_ne!(
        std::fs::read(&entry).unwrap(),
        bytes,
        "the entry was rewritten"
    );
    assert_eq!(mode(&entry), 0o600);
}
