//! Verification never starves anyone else: a client that floods the server
//! with validates aimed at a target that never answers holds at most its
//! share of the verification budget, its extra requests are refused with a
//! 503 and `Retry-After` once their wait runs out, and meanwhile another
//! client creates a credential against a real sshd and its stored secret
//! is opened and used.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::SilentListener;
use support::server::{Options, Server};
use support::sshd::{self, Sshd};

const FLOOD: usize = 40;

fn host_property(addr: std::net::SocketAddr, passphrase: &str) -> Value {
    json!({ "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
            "username": sshd::USER, "type": "PASSWORD", "passphrase": passphrase })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_validates_starves_no_one_else() {
    let sshd = Sshd::start();
    let silent = SilentListener::start();
    // 12 instances for verification, 6 of them per client; waits of 1 s.
    // No allowance of rejected secrets: the flood's guesses would be held
    // off the target before they wait for a slot, and the slots are what
    // this tests.
    let server = Server::start(Options {
        config: Some(
            "rejected_secrets_per_hour = 0\n\
             [engine]\nmax_instances = 16\nquick_instances = 4\nqueue_wait_ms = 1000\n\
             verify_instances_per_client = 6\n\
             [ssh]\nhandshake_timeout_ms = 8000\nqueue_wait_ms = 1000\n"
                .into(),
        ),
        ..Default::default()
    });

    // The flood comes from another loopback address: another client.
    let attacker = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = format!("{}/api/v1/security/credential/validate", server.base);
    let flood: Vec<_> = (0..FLOOD)
        .map(|_| {
            let request = attacker.post(&url).body(
                json!({ "target_type": "HOST",
                        "ssh_credential_property": host_property(silent.addr, "guess") })
                .to_string(),
            );
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                let status = response.status().as_u16();
                let envelope: Value = response.json().await.unwrap();
                (status, retry_after, envelope)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Another client, meanwhile: a create needs a verification slot, a
    // policy call to seal, and later one to open the stored secret.
    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            json!({ "target_type": "HOST", "name": "victim",
                    "ssh_credential_property": host_property(sshd.addr, sshd::PASSWORD) }),
        )
        .await;
    assert_eq!(status, 200, "the flood starved a create: {created}");
    // It went through while the flood's own validates still held their
    // slots, not after them.
    assert!(
        flood.iter().any(|t| !t.is_finished()),
        "the create waited for the flood to end"
    );
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let (status, validated) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": [id] }),
        )
        .await;
    assert_eq!(status, 200, "{validated}");
    assert_eq!(
        validated["data"]["contents"][0]["details"][0]["connection_result"], "SUCCESS",
        "{validated}"
    );
    let (status, _) = server
        .get(&format!("/api/v1/security/credential/{id}"))
        .await;
    assert_eq!(status, 200);

    let mut refused = 0;
    let mut timed_out = 0;
    for task in flood {
        let (status, retry_after, envelope) = task.await.unwrap();
        assert_eq!(envelope["status"], status, "{envelope}");
        match status {
            503 => {
                assert_eq!(envelope["error"]["errCode"], "Common.Unavailable");
                assert_eq!(retry_after.as_deref(), Some("1"), "{envelope}");
                refused += 1;
            }
            200 => {
                let detail = &envelope["data"]["details"][0];
                assert_eq!(detail["reason"], "TIMEOUT", "{envelope}");
                timed_out += 1;
            }
            other => panic!("unexpected {other}: {envelope}"),
        }
    }
    // The flood held at most its share (6) of the slots at any time.
    assert!(
        timed_out <= 6 + 2,
        "{timed_out} validates of one client ran"
    );
    assert!(refused >= FLOOD - 8, "only {refused} refused");
    assert!(
        server.log_text().contains("the server is busy"),
        "the refusals are not logged"
    );
}
