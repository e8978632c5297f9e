//! The server run as a service user (the test account), the way it is
//! deployed: what is that user's own is taken, and what is another user's
//! is refused. A server run as root cannot tell root's files from its own,
//! so only a run as another user checks the owner rules whole. The tests
//! themselves run as root (as `tests/run` does), to make other users' files.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};

use serde_json::json;
use support::server::{Options, Server, as_user, refused_at_start};

/// Someone who is neither root nor the service user.
const NOBODY: u32 = 65534;

fn service_uid() -> u32 {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests make files of other users: run them as root, as tests/run does"
    );
    let name = std::ffi::CString::new(support::sshd::USER).unwrap();
    // SAFETY: getpwnam returns static storage or null, read at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !entry.is_null(),
        "tests/run creates {}",
        support::sshd::USER
    );
    unsafe { (*entry).pw_uid }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory of `owner`'s with `mode`, in `parent`.
fn dir_of(parent: &Path, name: &str, owner: u32, mode: u32) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    chown(&dir, Some(owner), None).unwrap();
    chmod(&dir, mode);
    dir
}

/// A settings file of `owner`'s with `mode`, holding `text`.
fn settings(path: &Path, text: &str, owner: u32, mode: u32) -> PathBuf {
    std::fs::write(path, text).unwrap();
    chown(path, Some(owner), None).unwrap();
    chmod(path, mode);
    path.to_path_buf()
}

/// What `credhost serve` as `uid`, with `data` and `config`, printed as it
/// refused to start.
fn refused_as(uid: u32, data: &Path, config: &Path, what: &str) -> String {
    let binary = std::fs::File::open(env!("CARGO_BIN_EXE_credhost")).unwrap();
    refused_at_start(
        as_user(&binary, uid)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--config")
            .arg(config),
        what,
    )
}

/// The service user's own directory and settings: the server starts, serves
/// and audits, and what it makes is that user's and private.
#[tokio::test]
async fn a_service_users_own_files_are_taken() {
    let uid = service_uid();
    let server = Server::start(Options {
        run_as: Some(uid),
        config: Some("[audit]\n".into()),
        ..Default::default()
    });
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{envelope}\n{}", server.log_text());
    for (path, mode) in [
        (server.data_dir.clone(), 0o700),
        (server.data_dir.join("keys.json"), 0o600),
        (server.data_dir.join("credhost.redb"), 0o600),
        (server.data_dir.join("audit.log"), 0o600),
    ] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), uid, "{}", path.display());
        assert_eq!(meta.mode() & 0o7777, mode, "{}", path.display());
    }
}

/// The settings file decides the password: the service user's own, or
/// root's (readable by all when an orchestrator mounts it), is taken;
/// another user's, one in another user's directory, or the service user's
/// own readable by others while it holds a password, is refused.
#[test]
fn settings_and_data_of_other_users_are_refused() {
    let uid = service_uid();
    let top = tempfile::tempdir().unwrap();
    chmod(top.path(), 0o755);
    let home = dir_of(top.path(), "home", uid, 0o700);
    let data = home.join("data");
    let password = "password = \"Service-user-pw-5521\"\n";

    let theirs = settings(&home.join("theirs.toml"), "", NOBODY, 0o644);
    let said = refused_as(uid, &data, &theirs, "another user's settings");
    assert!(
        said.contains(&format!(
            "owned by uid {NOBODY}, neither this server's user ({uid}) nor root"
        )),
        "{said}"
    );

    let shown = settings(&home.join("shown.toml"), password, uid, 0o640);
    let said = refused_as(uid, &data, &shown, "a password others may read");
    assert!(said.contains("others may read it"), "{said}");
    assert!(!said.contains("Service-user-pw-5521"), "{said}");

    // Their directory: they could swap the file for one without a password.
    let lent = dir_of(top.path(), "lent", NOBODY, 0o755);
    let inside = settings(&lent.join("credhost.toml"), "", uid, 0o600);
    let said = refused_as(uid, &data, &inside, "settings in another user's directory");
    assert!(said.contains(&format!("{}", lent.display())), "{said}");

    // A data directory that is root's is not the service user's either.
    let roots = dir_of(top.path(), "roots", 0, 0o755);
    let own = settings(&home.join("own.toml"), "", uid, 0o600);
    let said = refused_as(uid, &roots, &own, "root's data directory");
    assert!(said.contains("owned by uid 0"), "{said}");

    // Root's settings, readable by all, holding the password: taken, with
    // a warning.
    let mounted = settings(&top.path().join("mounted.toml"), password, 0, 0o644);
    let binary = std::fs::File::open(env!("CARGO_BIN_EXE_credhost")).unwrap();
    let mut child = as_user(&binary, uid)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&mounted)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        line.starts_with("credhost listening on "),
        "{line:?}\n{stderr}"
    );
    assert!(stderr.contains("readable by others"), "{stderr}");
}

/// An audit log in a directory another user owns, even one the service user
/// may write (world-writable and sticky, as /tmp is): that user could have
/// made the file first, and read what it says. Changes are refused, and no
/// file is made there.
#[tokio::test]
async fn an_audit_log_in_another_users_directory_is_not_written() {
    let uid = service_uid();
    let top = tempfile::tempdir().unwrap();
    chmod(top.path(), 0o755);
    let shared = dir_of(top.path(), "shared", NOBODY, 0o1777);
    let server = Server::start(Options {
        run_as: Some(uid),
        config: Some(format!("[audit]\npath = {:?}\n", shared.join("audit.log"))),
        ..Default::default()
    });
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 503, "{envelope}");
    assert_eq!(support::server::err_code(&envelope), "Audit.Unavailable");
    assert!(!shared.join("audit.log").exists());
    assert!(
        server
            .log_text()
            .contains(&format!("owned by uid {NOBODY}")),
        "{}",
        server.log_text()
    );
}
