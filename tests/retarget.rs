//! A stored secret is never sent to a target it was not proven on: an
//! update that adds targets while keeping the stored passphrase is refused
//! before anything is dialled.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use support::server::{Options, Server, err_code, message};
use support::sshd::{self, Sshd};

/// A loopback listener that counts the connections it accepts.
fn recording_listener(ip: &str) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn new_targets_need_the_passphrase_and_nothing_is_dialled() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let own = json!({ "ip": "127.0.0.1", "port": sshd.addr.port() });
    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            json!({ "target_type": "HOST", "name": "web", "ssh_credential_property": {
                "targets": [own], "username": sshd::USER, "type": "PASSWORD",
                "passphrase": sshd::PASSWORD } }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let path = format!("/api/v1/security/credential/{id}");

    let (trap, accepted) = recording_listener("127.0.0.77");
    let retarget = json!({ "name": "web", "ssh_credential_property": {
        "targets": [own, { "ip": trap.ip().to_string(), "port": trap.port() }],
        "username": sshd::USER, "type": "PASSWORD", "passphrase": "" } });
    let (status, envelope) = server.patch(&path, retarget).await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(err_code(&envelope), "Credential.Targets.SecretRequired");
    assert!(message(&envelope).contains(&trap.to_string()), "{envelope}");
    assert!(message(&envelope).contains("send the passphrase"));
    // Moving the credential to the new address alone is refused too.
    let moved = json!({ "name": "web", "ssh_credential_property": {
        "targets": [{ "ip": trap.ip().to_string(), "port": trap.port() }],
        "username": sshd::USER, "type": "PASSWORD", "passphrase": "" } });
    let (status, envelope) = server.patch(&path, moved).await;
    assert_eq!(status, 400, "{envelope}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the new address was dialled"
    );

    // Other changes with the stored passphrase work as in obshell.
    let renamed = json!({ "name": "web-2", "description": "renamed", "ssh_credential_property": {
        "targets": [own], "username": sshd::USER, "type": "PASSWORD", "passphrase": "" } });
    let (status, envelope) = server.patch(&path, renamed).await;
    assert_eq!(status, 200, "{envelope}");
    assert_eq!(envelope["data"]["name"], "web-2");
    let (_, stored) = server.get(&path).await;
    assert_eq!(stored["data"]["name"], "web-2");

    // With the passphrase sent, the new target is tried (and here fails,
    // as it is no SSH server): the caller proves it, not the store.
    let with_secret = json!({ "name": "web-2", "ssh_credential_property": {
        "targets": [own, { "ip": trap.ip().to_string(), "port": trap.port() }],
        "username": sshd::USER, "type": "PASSWORD", "passphrase": sshd::PASSWORD } });
    let (status, envelope) = server.patch(&path, with_secret).await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(err_code(&envelope), "Credential.SSH.ValidationFailed");
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}
