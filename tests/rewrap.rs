//! Key rotation and policy swap while clients read and write; kills in the
//! middle of a rewrap; a corrupted row stops the rewrap without harm.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Value, json};
use support::fake_ssh::{self, FakeSsh};
use support::server::{Options, Server, populate, rewrap_settled};
use support::sshd::{self, Sshd};

const ROWS: u32 = 2000;

fn rows_of(status: &Value, field: &str, name: &Value) -> u64 {
    status[field]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[if field == "keys" { "id" } else { "name" }] == *name)
        .map(|p| p["rows"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_and_swap_while_clients_read_and_write() {
    let sshd = Sshd::start();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(20_000, ROWS + 200)).await;
    let server = Arc::new(Server::start(Options::default()));
    let mut ids = populate(&server, &fake.addrs[..ROWS as usize], "bulk", 16).await;
    let (status, real) = server
        .post(
            "/api/v1/security/credential",
            json!({ "target_type": "HOST", "name": "real", "ssh_credential_property": {
                "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
                "username": sshd::USER, "type": "PASSWORD", "passphrase": sshd::PASSWORD } }),
        )
        .await;
    assert_eq!(status, 200, "{real}");
    ids.push(real["data"]["credential_id"].as_u64().unwrap());

    // A client that keeps reading and writing until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let client = {
        let (server, stop, failures, ids) =
            (server.clone(), stop.clone(), failures.clone(), ids.clone());
        let spare: Vec<_> = fake.addrs[ROWS as usize..].to_vec();
        tokio::spawn(async move {
            let mut created = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let id = ids[i * 7 % ids.len()];
                let (status, _) = server
                    .get(&format!("/api/v1/security/credential/{id}"))
                    .await;
                if status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                if i.is_multiple_of(5) && created.len() < spare.len() {
                    let new = populate(
                        &server,
                        &spare[created.len()..created.len() + 1],
                        &format!("live{i}"),
                        1,
                    )
                    .await;
                    created.extend(new);
                }
                i += 1;
            }
            created
        })
    };

    let (status, rotated) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["data"]["key_id"], 2);
    let swapped = server.swap_policy("chacha20-poly1305").await;
    assert_eq!(swapped["active_policy"], "chacha20-poly1305");
    // obshell's call answers only once every row is under its key.
    let key = base64_key(9);
    let (status, envelope) = server
        .put(
            "/api/v1/security/credential/encrypt-secret-key",
            json!({ "aes_key": key }),
        )
        .await;
    assert_eq!(status, 200, "{envelope}");

    stop.store(true, Ordering::Relaxed);
    let created = client.await.unwrap();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "reads failed during the rewrap"
    );
    assert!(!created.is_empty());
    ids.extend(created);

    let status = rewrap_settled(&server).await;
    assert_eq!(status["rewrap"]["state"], "idle", "{status}");
    assert_eq!(status["current_key_id"], 3);
    let total = ids.len() as u64;
    assert_eq!(rows_of(&status, "keys", &json!(3)), total, "{status}");
    assert_eq!(
        rows_of(&status, "policies", &json!("chacha20-poly1305")),
        total
    );
    assert_eq!(rows_of(&status, "policies", &json!("aes-256-gcm")), 0);
    for key in status["keys"].as_array().unwrap() {
        if key["id"] != 3 {
            assert_eq!(key["retired"], true, "{key}");
            assert_eq!(key["rows"], 0);
        }
    }
    server.every_row_opens(&ids).await;
}

fn base64_key(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_rewrap_then_it_resumes() {
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(30_000, ROWS)).await;
    let mut server = Server::start(Options::default());
    let ids = populate(&server, &fake.addrs, "kill", 16).await;
    let mut caught_running = 0;
    for delay_ms in [0u64, 15, 40, 80] {
        let (status, _) = server.post("/api/v1/security/keys/rotate", json!({})).await;
        assert_eq!(status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let (_, before) = server.get("/api/v1/security/encryption").await;
        if before["data"]["rewrap"]["state"] == "running" {
            caught_running += 1;
        }
        server.crash_and_restart();
        // Every row opens right after the restart, whatever the rewrap did.
        let (status, envelope) = server
            .post(
                "/api/v1/security/credentials/validate",
                json!({ "credential_id_list": &ids[..50] }),
            )
            .await;
        assert_eq!(status, 200, "{envelope}");
    }
    assert!(caught_running > 0, "no kill landed while a rewrap ran");
    let status = rewrap_settled(&server).await;
    assert_eq!(status["rewrap"]["state"], "idle", "{status}");
    let current = status["current_key_id"].clone();
    assert_eq!(current, 5);
    assert_eq!(rows_of(&status, "keys", &current), ROWS as u64, "{status}");
    server.every_row_opens(&ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_row_stops_the_rewrap_and_harms_nothing() {
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(40_000, 300)).await;
    let mut server = Server::start(Options::default());
    let ids = populate(&server, &fake.addrs, "corrupt", 16).await;
    let victim = ids[150];

    // Flip one byte of one row's ciphertext, with the server down.
    server.stop();
    {
        use credhost::store::{RedbStore, SecretWrite, Store};
        let store = RedbStore::open(&server.data_dir().join("credhost.redb")).unwrap();
        let record = store.get(victim).unwrap().unwrap();
        let mut sealed = record.secret.clone();
        let last = sealed.ciphertext.len() - 1;
        sealed.ciphertext[last] ^= 0x40;
        store
            .update(record, SecretWrite::Replace(sealed), None)
            .unwrap();
    }
    server.restart();

    let (status, envelope) = server
        .put(
            "/api/v1/security/credential/encrypt-secret-key",
            json!({ "aes_key": base64_key(3) }),
        )
        .await;
    assert_eq!(status, 500, "{envelope}");
    assert_eq!(envelope["error"]["errCode"], "Credential.Rewrap.Failed");
    let message = envelope["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("credential {victim} ")),
        "{message}"
    );
    // The key itself took effect, and the answer says so.
    assert!(
        message.contains("is current and seals new secrets"),
        "{message}"
    );

    let status = rewrap_settled(&server).await;
    assert_eq!(status["rewrap"]["state"], "failed");
    // The old key still opens every other row; the victim reports itself.
    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != victim).collect();
    server.every_row_opens(&others).await;
    let (_, envelope) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": [victim] }),
        )
        .await;
    let detail = &envelope["data"]["contents"][0]["details"][0];
    assert_eq!(detail["reason"], "SECRET_UNREADABLE", "{envelope}");
    assert_eq!(
        rows_of(&status, "keys", &json!(1)) + rows_of(&status, "keys", &json!(2)),
        ids.len() as u64
    );

    // Once the row is gone, the rewrap finishes and key 1 retires.
    let (status, _) = server
        .delete(&format!("/api/v1/security/credential/{victim}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .post("/api/v1/security/encryption/rewrap", json!({}))
        .await;
    assert_eq!(status, 200);
    let status = rewrap_settled(&server).await;
    assert_eq!(status["rewrap"]["state"], "idle", "{status}");
    assert_eq!(rows_of(&status, "keys", &json!(2)), ids.len() as u64 - 1);
    assert_eq!(status["keys"][0]["retired"], true, "{status}");
    server.every_row_opens(&others).await;
}
