//! SSH host-key pinning against a real sshd: the key a secret was proven
//! against is recorded, a stored secret is never sent to a server
//! presenting another (nor is the passphrase sent again), updating with the
//! passphrase and `forget_host_keys` re-pins, and keys from
//! the operator's known_hosts hold even on first contact.

mod support;

use serde_json::{Value, json};
use support::server::{Options, Server, err_code, message};
use support::sshd::{self, Sshd};

fn create_body(name: &str, sshd: &Sshd, passphrase: &str) -> Value {
    json!({ "target_type": "HOST", "name": name, "ssh_credential_property": {
        "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
        "username": sshd::USER, "type": "PASSWORD", "passphrase": passphrase } })
}

/// Creates a credential for `sshd` with its password; its id.
async fn created(server: &Server, name: &str, sshd: &Sshd) -> (u64, Value) {
    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            create_body(name, sshd, sshd::PASSWORD),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    (created["data"]["credential_id"].as_u64().unwrap(), created)
}

/// The type and Base64 blob of `sshd`'s host key, as known_hosts names it.
fn host_key(sshd: &Sshd) -> (String, String) {
    let line = sshd.host_key_line();
    let mut parts = line.split_whitespace().map(str::to_string);
    (parts.next().unwrap(), parts.next().unwrap())
}

fn mismatched(envelope: &Value) {
    assert!(
        message(envelope).contains("HOST_KEY_MISMATCH"),
        "{envelope}"
    );
}

fn password_attempts(sshd: &Sshd) -> usize {
    sshd.log()
        .lines()
        .filter(|l| l.contains("password for"))
        .count()
}

#[tokio::test]
async fn stored_secrets_go_only_to_the_pinned_host_key() {
    let mut sshd = Sshd::start();
    let server = Server::start(Options::default());
    let (id, created) = created(&server, "web", &sshd).await;
    let first = sshd.fingerprint();
    let pins = &created["data"]["ssh_secret"]["host_keys"];
    assert_eq!(pins[0]["fingerprint"], first.as_str(), "{created}");
    assert_eq!(pins[0]["key_type"], "ssh-ed25519");
    assert_eq!(pins[0]["port"], sshd.addr.port());
    let (_, got) = server
        .get(&format!("/api/v1/security/credential/{id}"))
        .await;
    assert_eq!(got["data"]["ssh_secret"]["host_keys"], *pins);
    assert!(!got.to_string().contains(sshd::PASSWORD));
    assert_eq!(
        server.validate_stored(id).await["connection_result"],
        "SUCCESS"
    );

    // The host is replaced behind the same address.
    sshd.replace_host_key();
    let second = sshd.fingerprint();
    assert_ne!(first, second);
    let attempts = password_attempts(&sshd);
    let detail = server.validate_stored(id).await;
    assert_eq!(detail["connection_result"], "CONNECT_FAILED", "{detail}");
    assert_eq!(detail["reason"], "HOST_KEY_MISMATCH", "{detail}");
    let said = detail["message"].as_str().unwrap();
    assert!(said.contains(&first) && said.contains(&second), "{said}");
    // An update keeping the stored passphrase is refused the same way.
    let keep = create_body("web", &sshd, "");
    let (status, envelope) = server
        .patch(&format!("/api/v1/security/credential/{id}"), keep.clone())
        .await;
    assert_eq!(status, 400, "{envelope}");
    mismatched(&envelope);

    // Nor does the passphrase sent again go there: whoever holds the
    // address now would have it.
    let path = format!("/api/v1/security/credential/{id}");
    let again = create_body("web", &sshd, sshd::PASSWORD);
    let (status, envelope) = server.patch(&path, again.clone()).await;
    assert_eq!(status, 400, "{envelope}");
    mismatched(&envelope);
    // Forgetting the pins takes the passphrase.
    let forget = format!("{path}?forget_host_keys=true");
    let (status, envelope) = server.patch(&forget, keep).await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(err_code(&envelope), "Common.IllegalArgument", "{envelope}");
    // Whatever it did, it did before any password went out.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        password_attempts(&sshd),
        attempts,
        "a password reached the new host: {}",
        sshd.log()
    );

    // Re-pinning: the operator says the key changed, with the passphrase.
    let (status, envelope) = server.patch(&forget, again).await;
    assert_eq!(status, 200, "{envelope}");
    assert_eq!(
        envelope["data"]["ssh_secret"]["host_keys"][0]["fingerprint"],
        second.as_str()
    );
    assert_eq!(
        server.validate_stored(id).await["connection_result"],
        "SUCCESS"
    );
    // The log does show password attempts when they happen.
    assert!(password_attempts(&sshd) > attempts, "{}", sshd.log());
}

/// A server whose `known_hosts` names `key_of`'s host key for `sshd`'s
/// address.
fn server_knowing(sshd: &Sshd, key_of: &Sshd, dir: &std::path::Path) -> Server {
    let (kind, blob) = host_key(key_of);
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {kind} {blob}\n", sshd.addr.port()),
    )
    .unwrap();
    Server::start(Options {
        config: Some(format!("[ssh]\nknown_hosts = \"{}\"\n", known.display())),
        ..Default::default()
    })
}

/// Whoever may write the operator's known_hosts chooses which key a
/// target must present, and so which server gets its passwords: a file
/// others may write is refused at start.
#[test]
fn a_known_hosts_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, "").unwrap();
    std::fs::set_permissions(&known, std::fs::Permissions::from_mode(0o666)).unwrap();
    let config = dir.path().join("credhost.toml");
    std::fs::write(
        &config,
        format!("[ssh]\nknown_hosts = \"{}\"\n", known.display()),
    )
    .unwrap();
    let said = support::server::refused_at_start(
        std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data")),
        "a known_hosts others may write",
    );
    assert!(said.contains("writable by no one else"), "{said}");
}

#[tokio::test]
async fn known_hosts_pins_hold_on_first_contact() {
    let sshd = Sshd::start();
    let other = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    // The operator's file names the other server's key for this address.
    let server = server_knowing(&sshd, &other, dir.path());
    let attempts = password_attempts(&sshd);
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            create_body("web", &sshd, sshd::PASSWORD),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(err_code(&envelope), "Credential.SSH.ValidationFailed");
    assert!(
        message(&envelope).contains("HOST_KEY_MISMATCH"),
        "{envelope}"
    );
    assert_eq!(password_attempts(&sshd), attempts);

    // With the right key in the file, the same create succeeds.
    let server = server_knowing(&sshd, &sshd, dir.path());
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            create_body("web", &sshd, sshd::PASSWORD),
        )
        .await;
    assert_eq!(status, 200, "{envelope}");
}

/// A host key the operator revokes in known_hosts (`@revoked`) is refused
/// from then on: for a stored secret pinned to it, and for a new one, and
/// no password goes to the server presenting it.
#[tokio::test]
async fn a_key_revoked_in_known_hosts_gets_no_secret() {
    let sshd = Sshd::start();
    let mut server = Server::start(Options::default());
    let (id, _) = created(&server, "web", &sshd).await;

    let dir = tempfile::tempdir().unwrap();
    let (kind, blob) = host_key(&sshd);
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, format!("@revoked * {kind} {blob}\n")).unwrap();
    let config = dir.path().join("credhost.toml");
    std::fs::write(
        &config,
        format!("[ssh]\nknown_hosts = \"{}\"\n", known.display()),
    )
    .unwrap();
    server.restart_with_args(&["--config", config.to_str().unwrap()]);
    let attempts = password_attempts(&sshd);

    let detail = server.validate_stored(id).await;
    assert_eq!(detail["reason"], "HOST_KEY_MISMATCH", "{detail}");
    assert!(
        detail["message"].as_str().unwrap().contains("revoked"),
        "{detail}"
    );
    // Nor is the key learnt anew for a secret sent now.
    let (status, _) = server
        .delete(&format!("/api/v1/security/credential/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            create_body("new", &sshd, sshd::PASSWORD),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");
    assert!(
        message(&envelope).contains("HOST_KEY_MISMATCH"),
        "{envelope}"
    );
    assert_eq!(password_attempts(&sshd), attempts);
}

/// known_hosts is read again on SIGHUP: a key revoked there while the
/// server runs is refused from then on, and the audit log says so.
#[tokio::test]
async fn a_key_revoked_while_the_server_runs_is_refused_after_a_hangup() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, "# nothing pinned yet\n").unwrap();
    let server = Server::start(Options {
        config: Some(format!("[ssh]\nknown_hosts = \"{}\"\n", known.display())),
        ..Default::default()
    });
    let (id, _) = created(&server, "web", &sshd).await;
    assert_eq!(server.validate_stored(id).await["reason"], "OK");

    let (kind, blob) = host_key(&sshd);
    std::fs::write(&known, format!("@revoked * {kind} {blob}\n")).unwrap();
    server.hangup();
    let log = server.data_dir().join("audit.log");
    let mut reloaded = false;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("known_hosts.reloaded") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reloaded, "no known_hosts.reloaded event");
    let attempts = password_attempts(&sshd);
    let detail = server.validate_stored(id).await;
    assert_eq!(detail["reason"], "HOST_KEY_MISMATCH", "{detail}");
    assert_eq!(password_attempts(&sshd), attempts);
}

/// A host key offered only with SHA-1 signatures (`ssh-rsa`) is not
/// trusted with a password: the handshake fails before any is sent. The
/// same kind of key offered with SHA-2 signatures (`rsa-sha2-256`) is.
#[tokio::test]
async fn a_host_key_signed_only_with_sha1_gets_no_password() {
    let server = Server::start(Options::default());
    let sha1 = Sshd::start_with_rsa_host_key("ssh-rsa");
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            create_body("sha1", &sha1, sshd::PASSWORD),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(err_code(&envelope), "Credential.SSH.ValidationFailed");
    assert!(message(&envelope).contains("PROTOCOL_ERROR"), "{envelope}");
    assert_eq!(password_attempts(&sha1), 0, "{}", sha1.log());

    let sha2 = Sshd::start_with_rsa_host_key("rsa-sha2-256");
    let (_, created) = created(&server, "sha2", &sha2).await;
    let pins = &created["data"]["ssh_secret"]["host_keys"];
    assert_eq!(pins[0]["key_type"], "ssh-rsa", "{created}");
    assert_eq!(pins[0]["fingerprint"], sha2.fingerprint().as_str());
}
