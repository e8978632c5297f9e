//! The audit log against the real binary: each request and operation is
//! one record with the right fields and nothing secret; `credhost audit
//! verify` catches a line altered, removed or moved, also across rotated
//! and reopened files; and when the log cannot be written (a full disk,
//! here /dev/full) changes are refused with nothing stored while reads go
//! on.

mod support;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use credhost::client::Client;
use reqwest::Method;
use serde_json::{Value, json};
use support::server::{Options, Server, err_code};
use support::sshd::{self, Sshd};

const PASSWORD: &str = "Audit-api-pw-4417";

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn credhost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(args)
        .output()
        .unwrap()
}

fn verify(files: &[PathBuf], data_dir: &Path) -> (bool, String) {
    let mut args = vec!["audit".to_string(), "verify".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.push("--data-dir".into());
    args.push(data_dir.display().to_string());
    let out = Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(&args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits until the writer thread has written the records of what was asked.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn each_request_and_operation_is_one_record_without_secrets() {
    let sshd = Sshd::start();
    let server = Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), PASSWORD.into())],
        ..Default::default()
    });
    let token = server.token("ops", "admin");
    let (status, created) = server
        .call_as(
            &token,
            Method::POST,
            "/api/v1/security/credential",
            Some(json!({ "target_type": "HOST", "name": "web",
                "ssh_credential_property": {
                    "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
                    "username": sshd::USER, "type": "PASSWORD", "passphrase": sshd::PASSWORD } })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let wrong = Client::connect(&server.base, "not-the-password")
        .await
        .unwrap();
    let (status, refused) = wrong
        .call(Method::GET, "/api/v1/security/credentials", None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    let right = Client::connect(&server.base, PASSWORD).await.unwrap();
    let (status, rotated) = right
        .call(
            Method::POST,
            "/api/v1/security/keys/rotate",
            Some(&json!({})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{rotated}");
    settle().await;

    let log = server.data_dir().join("audit.log");
    let all = records(&log);
    let of = |trace: &Value, kind: &str| -> Vec<Value> {
        all.iter()
            .filter(|r| r["trace_id"] == *trace && r["type"] == kind)
            .cloned()
            .collect()
    };
    // The create: one record before the change, one of its outcome.
    let done = of(&created["traceId"], "request");
    assert_eq!(done.len(), 1, "{all:?}");
    let create = &done[0];
    assert_eq!(create["method"], "POST");
    assert_eq!(create["route"], "/api/v1/security/credential");
    assert_eq!(create["status"], 200);
    assert_eq!(create["credential_ids"], json!([id]));
    assert_eq!(create["principal"]["kind"], "token");
    assert_eq!(create["principal"]["name"], "ops");
    assert_eq!(create["client"], "127.0.0.1");
    assert!(create["duration_ms"].as_f64().unwrap() > 0.0);
    let begun = of(&created["traceId"], "request.begin");
    assert_eq!(begun.len(), 1);
    // The two records of one request share the server's id for it.
    assert_eq!(begun[0]["request_id"], create["request_id"]);
    // A change that names its credential in the path names it before it
    // is made, and once after.
    let (status, deleted) = server
        .call_as(
            &token,
            Method::DELETE,
            &format!("/api/v1/security/credential/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    settle().await;
    let all = records(&log);
    let of_delete = |kind: &str| -> Vec<Value> {
        all.iter()
            .filter(|r| r["trace_id"] == deleted["traceId"] && r["type"] == kind)
            .cloned()
            .collect()
    };
    assert_eq!(of_delete("request.begin")[0]["credential_ids"], json!([id]));
    assert_eq!(of_delete("request")[0]["credential_ids"], json!([id]));
    // The token id is written as its HMAC, which `audit hash` reproduces.
    let token_id = token.split('_').nth(1).unwrap();
    let out = credhost(&[
        "audit",
        "hash",
        token_id,
        "--data-dir",
        &server.data_dir().display().to_string(),
    ]);
    let hashed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(create["principal"]["id"], hashed.trim());
    assert!(hashed.starts_with("hmac-sha256:"));

    // The failed authentication.
    let failed = of(&refused["traceId"], "request");
    assert_eq!(failed.len(), 1, "{all:?}");
    assert_eq!(failed[0]["status"], 401);
    assert_eq!(
        failed[0]["error_code"],
        "Security.Authentication.IncorrectOceanbasePassword"
    );
    assert_eq!(failed[0]["principal"]["kind"], "unauthenticated");
    assert!(of(&refused["traceId"], "request.begin").is_empty());

    // The rotation: its request, and the server's own event.
    let rotation = of(&rotated["traceId"], "request");
    assert_eq!(rotation.len(), 1);
    assert_eq!(rotation[0]["principal"]["kind"], "v2-password");
    assert!(
        rotation[0]["header_keys"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    let events: Vec<&Value> = all
        .iter()
        .filter(|r| r["event"] == "keys.rotated")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["key_id"], rotated["data"]["key_id"]);

    // Nothing secret: the SSH password, the API password, the token's
    // secret, key material.
    let text = std::fs::read_to_string(&log).unwrap();
    let keyring: Value =
        serde_json::from_slice(&std::fs::read(server.data_dir().join("keys.json")).unwrap())
            .unwrap();
    let mut secrets = vec![
        sshd::PASSWORD.to_string(),
        PASSWORD.to_string(),
        token.splitn(3, '_').nth(2).unwrap().to_string(),
        token_id.to_string(),
    ];
    for key in keyring["keys"].as_array().unwrap() {
        if let Some(material) = key["material"].as_str().filter(|m| !m.is_empty()) {
            secrets.push(material.to_string());
        }
    }
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} is in the audit log"
        );
    }
    let raw = std::fs::read(server.data_dir().join("audit.key")).unwrap();
    assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(&raw)));
    assert!(!text.contains(&hex::encode(&raw)));
    let (ok, said) = verify(&[log], server.data_dir());
    assert!(ok, "{said}");
}

/// A client chooses its trace id (`X-OBSHELL-Trace-ID`, as obshell
/// allows) and may reuse another request's: its records keep the trace id
/// it sent, and still each request has an id of its own.
#[tokio::test]
async fn a_reused_trace_id_does_not_merge_requests_in_the_log() {
    let server = Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), PASSWORD.into())],
        ..Default::default()
    });
    let (reader, writer) = (
        server.token("reader", "read"),
        server.token("writer", "write"),
    );
    let url = |path: &str| format!("{}{path}", server.base);
    let shared = "trace-of-someone-else";
    let mut answered_ids = Vec::new();
    for (token, method, path) in [
        (&reader, Method::GET, "/api/v1/security/credentials"),
        (
            &writer,
            Method::DELETE,
            "/api/v1/security/credential/424242",
        ),
    ] {
        let response = server
            .client()
            .request(method, url(path))
            .bearer_auth(token)
            .header("X-OBSHELL-Trace-ID", shared)
            .send()
            .await
            .unwrap();
        // No answer of the API is kept in a browser's cache.
        assert_eq!(response.headers()["cache-control"], "no-store");
        answered_ids.push(
            response.headers()["x-credhost-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        let envelope: Value = response.json().await.unwrap();
        assert_eq!(envelope["traceId"], shared, "{envelope}");
    }
    settle().await;
    let all = records(&server.data_dir().join("audit.log"));
    let with = |kind: &str, route: &str| -> Vec<&Value> {
        all.iter()
            .filter(|r| r["trace_id"] == shared && r["type"] == kind && r["route"] == route)
            .collect()
    };
    let read = with("request", "/api/v1/security/credentials");
    let begun = with("request.begin", "/api/v1/security/credential/{id}");
    let deleted = with("request", "/api/v1/security/credential/{id}");
    assert_eq!(
        (read.len(), begun.len(), deleted.len()),
        (1, 1, 1),
        "{all:?}"
    );
    let id = |r: &Value| r["request_id"].as_str().unwrap().to_string();
    assert_eq!(id(begun[0]), id(deleted[0]));
    assert_ne!(id(read[0]), id(deleted[0]));
    // Each answer named its own request's id.
    assert_eq!(answered_ids, [id(read[0]), id(deleted[0])]);
    for r in [read[0], deleted[0]] {
        assert!(
            id(r).len() == 32 && id(r).bytes().all(|b| b.is_ascii_hexdigit()),
            "{r}"
        );
    }
}

#[tokio::test]
async fn verify_names_the_line_that_was_altered_removed_or_moved() {
    let server = Server::start(Options::default());
    for _ in 0..5 {
        assert_eq!(server.get("/api/v1/security/credentials").await.0, 200);
    }
    settle().await;
    let log = server.data_dir().join("audit.log");
    let (ok, said) = verify(std::slice::from_ref(&log), server.data_dir());
    assert!(ok, "{said}");
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(lines.len() >= 6);
    let dir = tempfile::tempdir().unwrap();
    let tampered = dir.path().join("audit.log");
    let write = |lines: &[String]| std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();

    let mut altered = lines.clone();
    altered[3] = altered[3].replace("\"status\":200", "\"status\":201");
    assert_ne!(altered[3], lines[3]);
    write(&altered);
    let (ok, said) = verify(std::slice::from_ref(&tampered), server.data_dir());
    assert!(!ok && said.contains(":4:"), "{said}");

    let mut removed = lines.clone();
    removed.remove(2);
    write(&removed);
    let (ok, said) = verify(std::slice::from_ref(&tampered), server.data_dir());
    assert!(!ok && said.contains(":3:"), "{said}");

    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    write(&swapped);
    let (ok, said) = verify(std::slice::from_ref(&tampered), server.data_dir());
    assert!(!ok && said.contains(":3:"), "{said}");

    // Another installation's key does not vouch for it.
    write(&lines);
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("audit.key"), [9u8; 32]).unwrap();
    let (ok, _) = verify(std::slice::from_ref(&tampered), other.path());
    assert!(!ok);
}

#[tokio::test]
async fn rotated_and_reopened_files_verify_as_one_chain() {
    let server = Server::start(Options {
        config: Some("[audit]\nmax_bytes = 4096\nkeep = 50\n".into()),
        ..Default::default()
    });
    for _ in 0..40 {
        assert_eq!(server.get("/api/v1/security/credentials").await.0, 200);
    }
    settle().await;
    // logrotate's way: move the file, then SIGHUP.
    let dir = server.data_dir().to_path_buf();
    std::fs::rename(dir.join("audit.log"), dir.join("audit.log.moved")).unwrap();
    server.hangup();
    settle().await;
    for _ in 0..5 {
        assert_eq!(server.get("/api/v1/security/credentials").await.0, 200);
    }
    settle().await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit.log")
        })
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    // In any order.
    files.reverse();
    let (ok, said) = verify(&files, &dir);
    assert!(ok, "{said}");
    assert!(said.contains(&format!("{} file(s)", files.len())), "{said}");
    assert!(!said.contains("note:"), "{said}");
    // Without the oldest file the rest still verify, and the report says
    // where the set starts: what came before cannot be checked.
    let oldest = files
        .iter()
        .filter_map(|f| {
            let n = f.extension()?.to_str()?.parse::<usize>().ok()?;
            Some((n, f.clone()))
        })
        .max()
        .unwrap()
        .1;
    let without_oldest: Vec<PathBuf> = files.iter().filter(|f| **f != oldest).cloned().collect();
    let (ok, said) = verify(&without_oldest, &dir);
    assert!(ok, "{said}");
    assert!(said.contains("note: the log began before seq"), "{said}");
    // A whole file taken out of the middle shows. `audit.log.1` always has
    // older and newer pieces around it (`.2` before it or the moved file,
    // the moved file or `audit.log` after it); `.2` may be the oldest file,
    // and the oldest can be missing by design (`keep`).
    let middle = files
        .iter()
        .position(|f| f.ends_with("audit.log.1"))
        .unwrap();
    files.remove(middle);
    let (ok, said) = verify(&files, &dir);
    assert!(!ok && said.contains("missing"), "{said}");
}

/// An audit log kept in a directory others may write could be made by
/// them first (and read, or cut, by them after): it is not written there,
/// and changes are refused as when it cannot be written.
#[tokio::test]
async fn an_audit_log_where_others_may_write_is_not_written() {
    use std::os::unix::fs::PermissionsExt;
    let logs = tempfile::tempdir().unwrap();
    let open = logs.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = Server::start(Options {
        config: Some(format!("[audit]\npath = {:?}\n", open.join("audit.log"))),
        ..Default::default()
    });
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 503, "{envelope}");
    assert_eq!(err_code(&envelope), "Audit.Unavailable");
    assert!(!open.join("audit.log").exists());
    // Its owner's alone, the same log is written, and its file kept private.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(open.join("audit.log"), "").unwrap();
    std::fs::set_permissions(
        open.join("audit.log"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let server = Server::start(Options {
        config: Some(format!("[audit]\npath = {:?}\n", open.join("audit.log"))),
        ..Default::default()
    });
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 200, "{envelope}");
    let mode = std::fs::metadata(open.join("audit.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_full_disk_refuses_changes_and_keeps_reads() {
    let sshd = Sshd::start();
    let server = Server::start(Options {
        config: Some("[audit]\npath = \"/dev/full\"\n".into()),
        ..Default::default()
    });
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            json!({ "target_type": "HOST", "name": "web",
                "ssh_credential_property": {
                    "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
                    "username": sshd::USER, "type": "PASSWORD", "passphrase": sshd::PASSWORD } }),
        )
        .await;
    assert_eq!(status, 503, "{envelope}");
    assert_eq!(err_code(&envelope), "Audit.Unavailable");
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(status, 503, "{envelope}");
    // Nothing was stored or changed; reads go on.
    let (status, list) = server.get("/api/v1/security/credentials").await;
    assert_eq!(status, 200);
    assert_eq!(list["data"]["page"]["total_elements"], 0, "{list}");
    let (_, encryption) = server.get("/api/v1/security/encryption").await;
    assert_eq!(encryption["data"]["current_key_id"], 1, "{encryption}");
    // And the failure shows.
    let metrics = server
        .client()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("credhost_audit_healthy 0"), "{metrics}");
    let failures: f64 = metrics
        .lines()
        .find(|l| l.starts_with("credhost_audit_failures_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(failures >= 2.0, "{metrics}");
    assert!(
        server
            .log_text()
            .contains("the audit log cannot be written"),
        "{}",
        server.log_text()
    );
}

/// Sends `n` GETs of `url`, then, after the second an allowance takes to
/// give back a record, one more. Returns each status, and the whole seconds
/// the `n` took (a slow machine regains a record for each).
async fn flood_then_one(client: &reqwest::Client, url: &str, n: usize) -> (Vec<u16>, usize) {
    let started = std::time::Instant::now();
    let mut statuses = Vec::with_capacity(n + 1);
    for _ in 0..n {
        statuses.push(client.get(url).send().await.unwrap().status().as_u16());
    }
    let regained = started.elapsed().as_secs() as usize;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    statuses.push(client.get(url).send().await.unwrap().status().as_u16());
    settle().await;
    (statuses, regained)
}

/// How many of `records` there are, and how many requests they say went
/// without one.
fn recorded_and_unrecorded(records: &[Value]) -> (u64, u64) {
    let unrecorded = records
        .iter()
        .filter_map(|r| r["unrecorded_before"].as_u64())
        .sum();
    (records.len() as u64, unrecorded)
}

/// Requests nobody authenticated are recorded within an allowance per
/// client: a flood of them adds a burst of records, then one a second, and
/// the next record says how many went unrecorded. The log cannot be
/// rotated away by anyone who reaches the port, and the chain still
/// verifies.
#[tokio::test]
async fn a_flood_without_credentials_cannot_rotate_the_log_away() {
    let server = Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), PASSWORD.into())],
        ..Default::default()
    });
    let client = reqwest::Client::new();
    let flood = 500;
    let url = format!("{}/api/v1/security/credentials", server.base);
    let (statuses, regained) = flood_then_one(&client, &url, flood).await;
    assert!(
        statuses.iter().all(|s| (400..500).contains(s)),
        "{statuses:?}"
    );
    let log = server.data_dir().join("audit.log");
    let unauthenticated: Vec<Value> = records(&log)
        .into_iter()
        .filter(|r| r["principal"]["kind"] == "unauthenticated")
        .collect();
    assert!(
        (60..=63 + regained).contains(&unauthenticated.len()),
        "{} records",
        unauthenticated.len()
    );
    let (recorded, unrecorded) = recorded_and_unrecorded(&unauthenticated);
    assert_eq!(recorded + unrecorded, flood as u64 + 1);
    // A public route, which anyone may call, is held to the same allowance
    // (this client spent it above): its flood adds no record, and the next
    // record counts it.
    let before = records(&log).len();
    let url = format!("{}/api/v1/info", server.base);
    let (_, regained) = flood_then_one(&client, &url, 300).await;
    let added = records(&log).split_off(before);
    assert!(added.len() <= 2 + regained, "{} records added", added.len());
    assert!(added.iter().all(|r| r["route"] == "/api/v1/info"));
    let (recorded, unrecorded) = recorded_and_unrecorded(&added);
    assert_eq!(recorded + unrecorded, 301);
    // A password guess still gets its record: refusals by authentication
    // have an allowance the junk above did not spend.
    let (status, _) = Client::connect(&server.base, "not-the-password")
        .await
        .unwrap()
        .call(Method::GET, "/api/v1/security/credentials", None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    settle().await;
    let last = records(&log).pop().unwrap();
    assert_eq!(
        last["error_code"], "Security.Authentication.IncorrectOceanbasePassword",
        "{last}"
    );
    let (ok, said) = verify(&[log], server.data_dir());
    assert!(ok, "{said}");
}

/// Junk from many addresses (each within its own allowance) spends the
/// allowance of all clients for such requests, but not the one for refused
/// credentials: a password guesser's attempts are still recorded while
/// others flood. Both kinds shared one allowance of all clients, so junk
/// from a dozen addresses kept the guesses out of the log.
#[tokio::test]
async fn junk_from_many_addresses_does_not_keep_password_guesses_out_of_the_log() {
    let server = Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), PASSWORD.into())],
        ..Default::default()
    });
    let url = format!("{}/api/v1/info", server.base);
    let junk = (1..=15u8).map(|n| {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 1, n]))
            .build()
            .unwrap();
        let url = url.clone();
        async move {
            for _ in 0..60 {
                client.get(&url).send().await.unwrap();
            }
        }
    });
    futures::future::join_all(junk).await;
    let guesser = Client::connect(&server.base, "not-the-password")
        .await
        .unwrap();
    for _ in 0..10 {
        let (status, _) = guesser
            .call(Method::GET, "/api/v1/security/credentials", None)
            .await
            .unwrap();
        assert_eq!(status, 401);
    }
    settle().await;
    let records = records(&server.data_dir().join("audit.log"));
    let guesses = records
        .iter()
        .filter(|r| r["error_code"] == "Security.Authentication.IncorrectOceanbasePassword")
        .count();
    assert_eq!(guesses, 10, "{} records", records.len());
}

/// A caller with a token (or the password) is held to a rate: past it, a
/// 429 with `Retry-After` and nothing done, and its refused requests are
/// recorded within the allowance of requests nobody answers for, so a
/// stolen read token cannot fill the audit log at the server's full speed
/// and rotate the older records away. Other callers are not slowed.
#[tokio::test]
async fn a_token_past_its_rate_is_refused_and_cannot_flood_the_log() {
    let server = Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), PASSWORD.into())],
        config: Some("[http]\nrequests_per_second = 2\nrequest_burst = 20\n".into()),
        ..Default::default()
    });
    let bearer = |token: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {token}").parse().unwrap();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let flooder = bearer(&server.token("flooder", "read"));
    let other = bearer(&server.token("other", "read"));
    let url = format!("{}/api/v1/security/credentials", server.base);
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses.push(flooder.get(&url).send().await.unwrap().status().as_u16());
    }
    let took = started.elapsed().as_secs() as usize;
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!((20..=22 + 2 * took).contains(&served), "{statuses:?}");
    assert!(statuses.iter().all(|s| [200, 429].contains(s)));
    let refused = flooder.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let envelope: Value = refused.json().await.unwrap();
    assert_eq!(err_code(&envelope), "Common.TooManyRequests");
    assert_eq!(other.get(&url).send().await.unwrap().status(), 200);
    // After the second the allowance takes to give back a record, a refused
    // request says how many went without one.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let mut more = 0;
    while flooder.get(&url).send().await.unwrap().status() == 200 {
        more += 1;
        assert!(more < 10, "the rate does not hold");
    }
    settle().await;
    let flooder_records: Vec<Value> = records(&server.data_dir().join("audit.log"))
        .into_iter()
        .filter(|r| r["principal"]["name"] == "flooder")
        .collect();
    let of = |status: u16| -> Vec<Value> {
        flooder_records
            .iter()
            .filter(|r| r["status"] == status)
            .cloned()
            .collect()
    };
    // Every request that was served is recorded…
    assert_eq!(of(200).len(), served + more);
    // …and the refused ones within the allowance, with the rest counted.
    let throttled = statuses.len() - served + 2;
    let (recorded, unrecorded) = recorded_and_unrecorded(&of(429));
    assert!(recorded <= 63 + took as u64, "{recorded} refusals recorded");
    assert_eq!(recorded + unrecorded, throttled as u64);
}

/// A token made while the server is stopped is recorded in the server's
/// own audit log, wherever its settings put it, carrying its chain on; not
/// in a stray log of its own in the data directory.
#[tokio::test]
async fn a_token_made_offline_is_recorded_where_the_server_records() {
    let elsewhere = tempfile::tempdir().unwrap();
    let log = elsewhere.path().join("audit.log");
    let mut server = Server::start(Options {
        config: Some(format!("[audit]\npath = \"{}\"\n", log.display())),
        ..Default::default()
    });
    assert_eq!(server.get("/api/v1/security/credentials").await.0, 200);
    settle().await;
    server.stop();
    let data = server.data_dir().to_path_buf();
    let config = data.parent().unwrap().join("credhost.toml");
    let create = |name: &str, config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(["token", "create", "--name", name, "--scope", "read"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(config)
            .output()
            .unwrap()
    };
    let out = create("offline", &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.join("audit.log").exists());
    let last = records(&log).pop().unwrap();
    assert_eq!(last["event"], "token.created", "{last}");
    let (ok, said) = verify(&[log], &data);
    assert!(ok, "{said}");
    // Another server's settings are refused, not written to.
    let other = elsewhere.path().join("other.toml");
    std::fs::write(&other, "data_dir = \"/nonexistent/other-server\"\n").unwrap();
    let out = create("stray", &other);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("data directory"),
        "{said}"
    );
}

/// What a start with its audit log at `logs/audit.log`, made by `plant`
/// into another name of a file of the server's (its KEK, say), printed as
/// it was refused; and that file, which carrying the chain on would cut
/// after its last line break, untouched.
fn start_refused_with_audit_log_planted(
    dir: &Path,
    plant: fn(&Path, &Path) -> std::io::Result<()>,
    what: &str,
) -> String {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let victim = dir.join("kek.key");
    std::fs::write(&victim, "no line break at the end").unwrap();
    plant(&victim, &logs.join("audit.log")).unwrap();
    let config = dir.join("credhost.toml");
    std::fs::write(
        &config,
        format!("[audit]\npath = {:?}\n", logs.join("audit.log")),
    )
    .unwrap();
    let said = support::server::refused_at_start(
        Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data")),
        what,
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "no line break at the end"
    );
    said
}

/// An audit path outside the data directory, in a directory someone else
/// can write, made a link to one of the server's own files: the server
/// refuses to start.
#[test]
fn an_audit_path_that_is_a_link_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let said = start_refused_with_audit_log_planted(
        dir.path(),
        |victim, log| std::os::unix::fs::symlink(victim, log),
        "an audit path that is a link",
    );
    assert!(said.contains("symbolic link"), "{said}");
}

/// The same with a hard link: another name of one of the server's files.
/// And a pipe of another user's in the log's place, which would hand that
/// user every line: the log is not written to it.
#[tokio::test]
async fn an_audit_path_with_another_name_or_another_users_pipe_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let said = start_refused_with_audit_log_planted(
        dir.path(),
        |victim, log| std::fs::hard_link(victim, log),
        "an audit path with another name",
    );
    assert!(said.contains("hard links"), "{said}");

    // Only root can give a pipe to another user, so only root's runs make
    // one; as anyone else, the pipe is the server's own and is written.
    let pipe = dir.path().join("logs").join("pipe");
    let name = std::ffi::CString::new(pipe.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a plain syscall on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o666) }, 0);
    let theirs = unsafe { libc::geteuid() } == 0;
    if theirs {
        std::os::unix::fs::chown(&pipe, Some(65534), Some(65534)).unwrap();
    }
    // Whoever holds the other end, reading what comes.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&pipe)
        .unwrap();
    let server = Server::start(Options {
        config: Some(format!("[audit]\npath = {pipe:?}\n")),
        ..Default::default()
    });
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    let mut heard = Vec::new();
    let _ = std::io::Read::read_to_end(&mut &reader, &mut heard);
    if theirs {
        assert_eq!(status, 503, "{envelope}");
        assert_eq!(err_code(&envelope), "Audit.Unavailable");
        assert!(heard.is_empty(), "{}", String::from_utf8_lossy(&heard));
        assert!(
            server.log_text().contains("owned by uid 65534"),
            "{}",
            server.log_text()
        );
    } else {
        assert_eq!(status, 200, "{envelope}");
        assert!(!heard.is_empty());
    }
}

/// A change whose client goes away before the answer (or whose deadline
/// passes) still runs to its end, and its outcome is recorded with the ids
/// it touched: dropped midway it could stop between a write and what
/// follows it, leaving a change in the database with no record of which
/// credential it was. Here the client leaves while the target (an SSH
/// server that takes three seconds to speak) is being proven.
#[tokio::test]
async fn a_change_whose_client_leaves_runs_to_its_end_and_is_recorded() {
    use support::fake_ssh::{self, FakeSsh};
    let target = FakeSsh::start_with_latency(
        &fake_ssh::loopback_ips(4711, 1),
        std::time::Duration::from_secs(3),
    )
    .await;
    let server = Server::start(Options::default());
    let body = json!({ "target_type": "HOST", "name": "left-behind",
        "ssh_credential_property": {
            "targets": [{ "ip": target.addrs[0].ip().to_string(), "port": target.addrs[0].port() }],
            "username": fake_ssh::USER, "type": "PASSWORD", "passphrase": fake_ssh::PASSWORD } })
    .to_string();
    // The request whole, then gone once the change has begun.
    let addr = server.base.strip_prefix("http://").unwrap().to_string();
    let mut client = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut client,
        format!(
            "POST /api/v1/security/credential HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let begun = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(server.data_dir().join("audit.log"))
        .unwrap()
        .contains("\"request.begin\"")
    {
        assert!(std::time::Instant::now() < begun, "the change never began");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Then a moment for the change to get under way (its target takes 3 s
    // to speak): dropped before, it would not have started at all.
    std::thread::sleep(std::time::Duration::from_secs(1));
    drop(client);
    let log = server.data_dir().join("audit.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let finished = loop {
        let found = records(&log)
            .into_iter()
            .find(|r| r["type"] == "request.finished");
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no outcome recorded: {:?}",
            std::fs::read_to_string(&log)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(finished["status"], 200, "{finished}");
    let (status, list) = server.get("/api/v1/security/credentials").await;
    assert_eq!(status, 200);
    let stored = &list["data"]["contents"][0];
    assert_eq!(stored["name"], "left-behind", "{list}");
    assert_eq!(finished["credential_ids"], json!([stored["credential_id"]]));
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains(fake_ssh::PASSWORD)
    );
}
