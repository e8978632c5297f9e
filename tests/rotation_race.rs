//! Keys and policies change under writers: no row may ever be committed
//! under a key that is retired meanwhile, and rows of the largest size must
//! not wedge the rewrap.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_ssh::{self, FakeSsh};
use support::server::{Options, Server, rewrap_settled};

fn body(name: &str, addr: std::net::SocketAddr, passphrase: &str) -> Value {
    json!({ "target_type": "HOST", "name": name, "ssh_credential_property": {
        "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
        "username": fake_ssh::USER, "type": "PASSWORD", "passphrase": passphrase } })
}

async fn settle_and_check(server: &Server) -> Value {
    // Once the rotations stop, the rewrap finishes by itself with every row
    // under the last key (`rewrap_settled` waits for that, or a failure):
    // a rotation that came as a run passed its last batch must not be lost.
    let status = rewrap_settled(server).await;
    assert_ne!(status["rewrap"]["state"], "failed", "{status}");
    // Then a last rotation-free rewrap: it must finish with no row left
    // behind.
    let (code, resumed) = server
        .post("/api/v1/security/encryption/rewrap", json!({}))
        .await;
    assert_eq!(code, 200, "{resumed}");
    let status = rewrap_settled(server).await;
    let state = &status["rewrap"];
    assert!(
        state["state"] != "failed" && state["error"].is_null(),
        "{state}"
    );
    let current = &status["current_key_id"];
    for key in status["keys"].as_array().unwrap() {
        if key["id"] != *current {
            assert_eq!(key["rows"], 0, "rows left under old key {}", key["id"]);
        }
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_rotations_and_swaps_never_land_under_a_retired_key() {
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(40_000, 64)).await;
    let server = Arc::new(Server::start(Options::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    // The race is run for a number of writes, not for a time: on a slow
    // machine it takes longer, it is not weaker.
    const WRITES: u64 = 2_000;
    const ROTATIONS: usize = 100;
    let give_up = Instant::now() + Duration::from_secs(600);

    // Writers: each owns some addresses; creates, then updates with a new
    // passphrase (a fresh seal) over and over.
    let mut writers = Vec::new();
    for w in 0..4usize {
        let (server, stop, writes) = (server.clone(), stop.clone(), writes.clone());
        let addrs: Vec<_> = fake.addrs.iter().copied().skip(w * 16).take(16).collect();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for (i, addr) in addrs.iter().enumerate() {
                let (status, envelope) = server
                    .post(
                        "/api/v1/security/credential",
                        body(&format!("w{w}-{i}"), *addr, fake_ssh::PASSWORD),
                    )
                    .await;
                assert_eq!(status, 200, "{envelope}");
                ids.push(envelope["data"]["credential_id"].as_u64().unwrap());
                writes.fetch_add(1, Ordering::Relaxed);
            }
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let i = n % ids.len();
                let (status, envelope) = server
                    .patch(
                        &format!("/api/v1/security/credential/{}", ids[i]),
                        body(&format!("w{w}-{i}"), addrs[i], fake_ssh::PASSWORD),
                    )
                    .await;
                assert_eq!(status, 200, "{envelope}");
                writes.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            ids
        }));
    }
    // Rotations and policy swaps in a loop.
    let mut rotations = 0;
    let policies = ["chacha20-poly1305", "aes-256-gcm"];
    while writes.load(Ordering::Relaxed) < WRITES || rotations < ROTATIONS {
        assert!(Instant::now() < give_up, "the writers stalled");
        let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
        assert_eq!(status, 200, "{envelope}");
        rotations += 1;
        if rotations % 3 == 0 {
            let policy = policies[(rotations / 3) % 2];
            let (status, envelope) = server
                .put(
                    "/api/v1/security/encryption/policy",
                    json!({ "policy": policy }),
                )
                .await;
            assert_eq!(status, 200, "{envelope}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut ids = Vec::new();
    for writer in writers {
        ids.extend(writer.await.unwrap());
    }
    let writes = writes.load(Ordering::Relaxed);
    settle_and_check(&server).await;
    server.every_row_opens(&ids).await;
    eprintln!("{writes} writes against {rotations} rotations: every row opens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_the_largest_size_do_not_wedge_the_rewrap() {
    const ROWS: u32 = 300;
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(41_000, ROWS)).await;
    let server = Arc::new(Server::start(Options::default()));
    let long = fake_ssh::long_password();
    let ids: Vec<u64> = {
        use futures::StreamExt;
        let bodies: Vec<Value> = fake
            .addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| body(&format!("big-{i:03}"), *addr, &long))
            .collect();
        futures::stream::iter(bodies)
            .map(|b| {
                let server = server.clone();
                async move {
                    let (status, envelope) = server.post("/api/v1/security/credential", b).await;
                    assert_eq!(status, 200, "{envelope}");
                    envelope["data"]["credential_id"].as_u64().unwrap()
                }
            })
            .buffered(16)
            .collect()
            .await
    };
    // A rotation, a policy swap, and obshell's key replacement, which
    // answers only when every row is rewrapped.
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{envelope}");
    settle_and_check(&server).await;
    server.swap_policy("chacha20-poly1305").await;
    let status = settle_and_check(&server).await;
    assert_eq!(status["active_policy"], "chacha20-poly1305");
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let (code, envelope) = server
        .put(
            "/api/v1/security/credential/encrypt-secret-key",
            json!({ "aes_key": key }),
        )
        .await;
    assert_eq!(code, 200, "{envelope}");
    settle_and_check(&server).await;
    server.every_row_opens(&ids).await;
}

/// Two updates of one credential at once: the one that commits second was
/// decided on the row as it was before the first (here: keep the stored
/// secret, proven on the targets it read), so it is refused, not written
/// over the first. Before, it won silently: the first update was undone and
/// its new secret was left to go wherever the second's targets said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_decided_on_a_row_changed_meanwhile_is_refused() {
    // Each login waits a second, so both updates are proving at once.
    let fake = FakeSsh::start_with_latency(
        &fake_ssh::loopback_ips(41_000, 1),
        Duration::from_millis(1_000),
    )
    .await;
    let addr = fake.addrs[0];
    let server = Arc::new(Server::start(Options::default()));
    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            body("first", addr, fake_ssh::PASSWORD),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let path = format!(
        "/api/v1/security/credential/{}",
        created["data"]["credential_id"]
    );

    let replace = {
        let (server, path) = (server.clone(), path.clone());
        tokio::spawn(async move {
            server
                .patch(&path, body("replaced", addr, &fake_ssh::long_password()))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keep = server.patch(&path, body("kept", addr, "")).await;
    let replace = replace.await.unwrap();
    assert_eq!(replace.0, 200, "{}", replace.1);
    assert_eq!(
        (keep.0, support::server::err_code(&keep.1)),
        (409, "Credential.Changed"),
        "{}",
        keep.1
    );
    let (status, now) = server.get(&path).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["data"]["name"], "replaced", "{now}");
    // A later update, decided on the row as it is, goes through.
    let (status, envelope) = server.patch(&path, body("kept", addr, "")).await;
    assert_eq!(status, 200, "{envelope}");
}

/// A batch validation that read a credential before an update moved it
/// keeps no verdict on it: the update's own proof, of the row as it is now,
/// stays the last validation shown. Before, the batch's verdict on the old
/// targets was written over it when the batch ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_validation_does_not_overwrite_a_newer_update_s_proof() {
    let quick = FakeSsh::start_with_latency(
        &fake_ssh::loopback_ips(41_100, 2),
        Duration::from_millis(1_000),
    )
    .await;
    // A credential slower than the update, so the batch ends after it.
    let slow = FakeSsh::start_with_latency(
        &fake_ssh::loopback_ips(41_200, 1),
        Duration::from_millis(2_500),
    )
    .await;
    let (old, new) = (quick.addrs[0], quick.addrs[1]);
    let server = Arc::new(Server::start(Options::default()));
    let mut ids = Vec::new();
    for (name, addr) in [("moves", old), ("slow", slow.addrs[0])] {
        let (status, created) = server
            .post(
                "/api/v1/security/credential",
                body(name, addr, fake_ssh::PASSWORD),
            )
            .await;
        assert_eq!(status, 200, "{created}");
        ids.push(created["data"]["credential_id"].as_u64().unwrap());
    }
    let batch = {
        let (server, ids) = (server.clone(), ids.clone());
        tokio::spawn(async move {
            server
                .post(
                    "/api/v1/security/credentials/validate",
                    json!({ "credential_id_list": [ids[1], ids[0]] }),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, moved) = server
        .patch(
            &format!("/api/v1/security/credential/{}", ids[0]),
            body("moves", new, fake_ssh::PASSWORD),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let (status, answered) = batch.await.unwrap();
    assert_eq!(status, 200, "{answered}");
    let (status, last) = server
        .get(&format!(
            "/api/v1/security/credentials/validations?credential_id_list={}",
            ids[0]
        ))
        .await;
    assert_eq!(status, 200, "{last}");
    let shown = &last["data"]["contents"][0];
    assert_eq!(
        shown["details"][0]["target"]["port"],
        new.port(),
        "the last validation shown is of the old targets: {last}"
    );
}
