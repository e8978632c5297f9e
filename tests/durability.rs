//! What was acknowledged survives `kill -9`, and no secret is ever written in
//! clear: not in the database file, not in the log, not in a response.

mod support;

use futures::StreamExt;
use serde_json::{Value, json};
use support::fake_ssh::{self, FakeSsh};
use support::server::{Options, Server};
use support::sshd::{self, Sshd};

const BURST: u32 = 60;

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn acknowledged_creates_survive_kill_9_and_stay_decryptable() {
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(1000, BURST + 1)).await;
    let mut server = Server::start(Options::default());
    let bodies: Vec<Value> = fake
        .addrs
        .iter()
        .take(BURST as usize)
        .enumerate()
        .map(|(i, addr)| {
            json!({
                "target_type": "HOST",
                "name": format!("burst-{i}"),
                "ssh_credential_property": {
                    "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
                    "username": fake_ssh::USER, "type": "PASSWORD", "passphrase": fake_ssh::PASSWORD,
                }
            })
        })
        .collect();
    let acknowledged: Vec<u64> = futures::stream::iter(bodies)
        .map(|b| {
            let server = &server;
            async move { server.post("/api/v1/security/credential", b).await }
        })
        .buffer_unordered(12)
        .filter_map(|(status, envelope)| async move {
            (status == 200).then(|| envelope["data"]["credential_id"].as_u64().unwrap())
        })
        .collect()
        .await;
    assert_eq!(acknowledged.len() as u32, BURST);

    server.crash_and_restart();

    let (status, listed) = server
        .get("/api/v1/security/credentials?page_size=1000")
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["page"]["total_elements"], BURST);
    let (status, checked) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": acknowledged }),
        )
        .await;
    assert_eq!(status, 200, "{checked}");
    for result in checked["data"]["contents"].as_array().unwrap() {
        assert_eq!(result["succeeded_count"], 1, "{result}");
    }
    // New ids never reuse old ones after the crash.
    let max = acknowledged.iter().max().unwrap();
    let addr = fake.addrs[BURST as usize];
    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            json!({
                "target_type": "HOST", "name": "after",
                "ssh_credential_property": {
                    "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
                    "username": fake_ssh::USER, "type": "PASSWORD", "passphrase": fake_ssh::PASSWORD,
                }
            }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert!(created["data"]["credential_id"].as_u64().unwrap() > *max);

    let database = std::fs::read(server.data_dir().join("credhost.redb")).unwrap();
    assert!(
        !contains(&database, fake_ssh::PASSWORD),
        "the passphrase is in the database file in clear"
    );
    assert!(!contains(server.log_text().as_bytes(), fake_ssh::PASSWORD));
}

#[tokio::test]
async fn secrets_stay_out_of_files_logs_and_answers() {
    let sshd = Sshd::start();
    let server = Server::start(Options {
        envs: vec![("CREDHOST_LOG".into(), "debug".into())],
        ..Default::default()
    });
    let property = |passphrase: &str| {
        json!({
            "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
            "username": sshd::USER, "type": "PASSWORD", "passphrase": passphrase,
        })
    };
    let mut answers = String::new();
    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            json!({ "target_type": "HOST", "name": "s", "ssh_credential_property": property(sshd::PASSWORD) }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    answers.push_str(&created.to_string());
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let wrong = "Wr0ng-but-secret-9931";
    for (status, envelope) in [
        server.patch(&format!("/api/v1/security/credential/{id}"), json!({ "name": "s", "ssh_credential_property": property(wrong) })).await,
        server.post("/api/v1/security/credential/validate", json!({ "target_type": "HOST", "ssh_credential_property": property(wrong) })).await,
        server.post("/api/v1/security/credential", json!({ "target_type": "HOST", "name": "t", "ssh_credential_property": property(wrong) })).await,
        server.get(&format!("/api/v1/security/credential/{id}")).await,
        server.get("/api/v1/security/credentials").await,
        server.post("/api/v1/security/credentials/validate", json!({ "credential_id_list": [id] })).await,
    ] {
        assert!(status == 200 || status == 400);
        answers.push_str(&envelope.to_string());
    }
    for secret in [sshd::PASSWORD, wrong] {
        assert!(!answers.contains(secret), "a response carries a passphrase");
        assert!(
            !server.log_text().contains(secret),
            "the log carries a passphrase"
        );
        let database = std::fs::read(server.data_dir().join("credhost.redb")).unwrap();
        assert!(
            !contains(&database, secret),
            "the database file carries a passphrase in clear"
        );
    }
    assert!(
        server.log_text().contains("credential created"),
        "the log was not written at all"
    );
}

/// The server refuses to start on a keyring that does not hold, as they
/// were, the keys its database's rows were sealed under: a key file lost
/// (and none made anew), another database's key file, a stale keyring in
/// `CREDHOST_KEYRING`. It used to make a new key file and start: the old
/// rows no longer opened, and new ones were sealed under a new key 1 that
/// the old keyring, brought back, could not open.
#[tokio::test]
async fn a_keyring_that_is_not_the_database_s_is_refused_at_start() {
    use support::server::refused_at_start;
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(2000, 1)).await;
    let addr = fake.addrs[0];
    let mut server = Server::start(Options::default());
    let body = json!({ "target_type": "HOST", "name": "kept",
        "ssh_credential_property": {
            "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
            "username": fake_ssh::USER, "type": "PASSWORD", "passphrase": fake_ssh::PASSWORD } });
    let (status, created) = server.post("/api/v1/security/credential", body).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    server.stop();

    let data = server.data_dir().to_path_buf();
    let keys = data.join("keys.json");
    let own = std::fs::read(&keys).unwrap();
    let start = |keyring: Option<&[u8]>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data);
        if let Some(keyring) = keyring {
            command.env(
                "CREDHOST_KEYRING",
                String::from_utf8_lossy(keyring).as_ref(),
            );
        }
        command
    };

    std::fs::remove_file(&keys).unwrap();
    let put_back = |bytes: &[u8]| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&keys, bytes).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let said = refused_at_start(&mut start(None), "without its key file");
    assert!(said.contains("is missing"), "{said}");
    assert!(!keys.exists(), "a new key file was made");

    let mut other = Server::start(Options::default());
    other.stop();
    let foreign = std::fs::read(other.data_dir().join("keys.json")).unwrap();
    put_back(&foreign);
    let said = refused_at_start(&mut start(None), "on another database's key file");
    assert!(
        said.contains("key 1 of the keyring is not the key 1 that sealed 1 credential"),
        "{said}"
    );
    let said = refused_at_start(&mut start(Some(&foreign)), "on another keyring");
    assert!(said.contains("not this database's keyring"), "{said}");

    // Its own key file back: it starts; after a rotation, the keyring
    // from before it is stale.
    put_back(&own);
    server.restart();
    let (status, rotated) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let settled = support::server::rewrap_settled(&server).await;
    assert_eq!(settled["current_key_id"], 2, "{settled}");
    server.every_row_opens(&[id]).await;
    server.stop();
    let said = refused_at_start(&mut start(Some(&own)), "on a stale keyring");
    assert!(
        said.contains("sealed under key 2, which the keyring does not hold"),
        "{said}"
    );
    server.restart();
    server.every_row_opens(&[id]).await;
}
