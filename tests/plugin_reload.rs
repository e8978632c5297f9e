//! A target type the server has never heard of, added by dropping a `.wasm`
//! into its plugin directory while it serves, and taken away again.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::mariadb::{self, MariaDb};
use support::server::{Options, Server, err_code, message, rewrap_settled};
use support::sshd::{self, Sshd};

fn ob_body(name: &str, db: &MariaDb) -> Value {
    json!({
        "target_type": "OB",
        "name": name,
        "ob_credential_property": {
            "targets": [{ "ip": "127.0.0.1", "port": db.addr.port() }],
            "username": mariadb::USER,
            "passphrase": mariadb::PASSWORD,
        }
    })
}

/// A server's options with `dir` as its plugin directory.
fn with_plugin_dir(dir: &std::path::Path) -> Options {
    Options {
        args: vec!["--plugin-dir".into(), dir.display().to_string()],
        ..Default::default()
    }
}

fn host_body(name: &str, sshd: &Sshd) -> Value {
    json!({
        "target_type": "HOST",
        "name": name,
        "ssh_credential_property": {
            "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
            "username": sshd::USER, "type": "PASSWORD", "passphrase": sshd::PASSWORD,
        }
    })
}

fn ob_wasm() -> std::path::PathBuf {
    credhost::plugins::embedded::build_dir().join("ob_verifier.wasm")
}

async fn target_types(server: &Server) -> Vec<String> {
    let (status, envelope) = server.get("/api/v1/plugins").await;
    assert_eq!(status, 200, "{envelope}");
    envelope["data"]["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["target_type"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_in_a_verifier_use_it_and_take_it_away() {
    let sshd = Sshd::start();
    let db = MariaDb::start();
    let plugin_dir = tempfile::tempdir().unwrap();
    let server = Server::start(with_plugin_dir(plugin_dir.path()));

    let (status, plugins) = server.get("/api/v1/plugins").await;
    assert_eq!(status, 200);
    let listed = plugins["data"]["plugins"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "one verifier, two policies: {plugins}");
    let host = listed.iter().find(|p| p["target_type"] == "HOST").unwrap();
    assert_eq!(host["source"]["kind"], "embedded");
    assert_eq!(host["wit"], "credhost:plugin@0.3.0");
    assert_eq!(host["sha256"].as_str().unwrap().len(), 64);
    assert!(host["limits"]["deadline_ms"].as_u64().unwrap() > 0);

    let (status, refused) = server
        .post("/api/v1/security/credential", ob_body("ob", &db))
        .await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.TargetType.NotSupported")
    );
    let (status, created) = server
        .post("/api/v1/security/credential", host_body("host", &sshd))
        .await;
    assert_eq!(status, 200, "{created}");
    let host_id = created["data"]["credential_id"].as_u64().unwrap();

    // Drop the component in, and a broken file beside it.
    std::fs::copy(ob_wasm(), plugin_dir.path().join("ob_verifier.wasm")).unwrap();
    std::fs::write(plugin_dir.path().join("broken.wasm"), b"not a component").unwrap();
    let (status, reloaded) = server.post("/api/v1/plugins/reload", json!({})).await;
    assert_eq!(status, 200, "{reloaded}");
    let failures = reloaded["data"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{reloaded}");
    assert!(
        failures[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("broken.wasm")
    );
    let ob = reloaded["data"]["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["target_type"] == "OB")
        .cloned()
        .unwrap();
    assert_eq!(ob["source"]["kind"], "directory");
    assert_eq!(ob["name"], "ob-verifier");
    // The audit log says which code came, by its SHA-256, and from where.
    // (Events are written beside the request, not before its answer.)
    let mut audit = String::new();
    for _ in 0..100 {
        audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
        if audit.contains("plugins.reloaded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reloaded_line = audit
        .lines()
        .rev()
        .find(|l| l.contains("plugins.reloaded"))
        .unwrap_or_else(|| panic!("no reload in the audit log: {audit}"));
    assert!(
        reloaded_line.contains("verifier OB")
            && reloaded_line.contains(ob["sha256"].as_str().unwrap()),
        "{reloaded_line}"
    );
    assert!(
        !reloaded_line.contains("verifier HOST"),
        "HOST did not change: {reloaded_line}"
    );

    // OB credentials live next to HOST ones; the same ip is fine across types.
    let (status, created) = server
        .post("/api/v1/security/credential", ob_body("ob", &db))
        .await;
    assert_eq!(status, 200, "{created}");
    let ob_id = created["data"]["credential_id"].as_u64().unwrap();
    assert_eq!(
        created["data"]["ob_secret"],
        json!({ "targets": [{ "ip": "127.0.0.1", "port": db.addr.port() }], "username": mariadb::USER })
    );
    assert!(!created.to_string().contains(mariadb::PASSWORD));
    let mut wrong = ob_body("ob-wrong", &db);
    wrong["ob_credential_property"]["passphrase"] = json!("nope");
    wrong["ob_credential_property"]["targets"][0]["ip"] = json!("127.0.0.2");
    let (status, refused) = server
        .post("/api/v1/security/credential/validate", wrong)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        refused["data"]["details"][0]["reason"], "REFUSED",
        "{refused}"
    );
    let (_, got) = server
        .get(&format!("/api/v1/security/credential/{ob_id}"))
        .await;
    assert_eq!(got["data"]["target_type"], "OB");
    let (_, list) = server
        .get(&format!(
            "/api/v1/security/credentials?key_word={}",
            mariadb::USER
        ))
        .await;
    assert_eq!(list["data"]["page"]["total_elements"], 1);
    let (_, list) = server
        .get("/api/v1/security/credentials?target_type=ob")
        .await;
    assert_eq!(list["data"]["page"]["total_elements"], 1);
    let (status, checked) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": [host_id, ob_id] }),
        )
        .await;
    assert_eq!(status, 200, "{checked}");
    for result in checked["data"]["contents"].as_array().unwrap() {
        assert_eq!(result["succeeded_count"], 1, "{result}");
    }

    // Take it away with SIGHUP: OB is refused, stored OB rows stay readable.
    std::fs::remove_file(plugin_dir.path().join("ob_verifier.wasm")).unwrap();
    server.hangup();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while target_types(&server).await.contains(&"OB".to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, refused) = server
        .post("/api/v1/security/credential", ob_body("ob2", &db))
        .await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.TargetType.NotSupported")
    );
    let (status, got) = server
        .get(&format!("/api/v1/security/credential/{ob_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["data"]["ob_secret"]["username"], mariadb::USER);
    let (_, list) = server.get("/api/v1/security/credentials").await;
    assert_eq!(list["data"]["page"]["total_elements"], 2);
    let (_, checked) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": [ob_id] }),
        )
        .await;
    assert_eq!(
        checked["data"]["contents"][0]["details"][0]["reason"], "UNSUPPORTED",
        "{checked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_because_of_a_reload() {
    let sshd = Sshd::start();
    let plugin_dir = tempfile::tempdir().unwrap();
    std::fs::copy(ob_wasm(), plugin_dir.path().join("ob_verifier.wasm")).unwrap();
    let server = std::sync::Arc::new(Server::start(with_plugin_dir(plugin_dir.path())));
    let (status, created) = server
        .post("/api/v1/security/credential", host_body("host", &sshd))
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();

    let load = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..60 {
                let answer = match i % 3 {
                    0 => server.get(&format!("/api/v1/security/credential/{id}")).await,
                    1 => server.post("/api/v1/security/credentials/validate", json!({ "credential_id_list": [id] })).await,
                    _ => {
                        server
                            .post(
                                "/api/v1/security/credential/validate",
                                json!({ "target_type": "OB", "ob_credential_property": {
                                    "targets": [{ "ip": "127.0.0.1", "port": support::closed_port() }],
                                    "username": "u", "passphrase": "p" } }),
                            )
                            .await
                    }
                };
                answers.push(answer);
            }
            answers
        })
    };
    for _ in 0..8 {
        let (status, envelope) = server.post("/api/v1/plugins/reload", json!({})).await;
        assert_eq!(status, 200, "{envelope}");
    }
    for (status, envelope) in load.await.unwrap() {
        assert_eq!(status, 200, "{envelope}");
        if let Some(contents) = envelope["data"]["contents"].as_array() {
            assert_eq!(contents[0]["succeeded_count"], 1, "{envelope}");
        }
    }
}

/// Rows a rewrap could not move stay sealed by their policy, and only it
/// opens them: a reload without that policy is refused, and nothing
/// changes, until the rows are moved or the policy is back. (The rewrap
/// here is toward a policy whose ciphertexts do not open, so none is
/// stored.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_a_policy_rows_are_still_sealed_by() {
    let sshd = Sshd::start();
    let plugin_dir = support::plugin_dir(&["leaky_policy", "forgetful_policy"]);
    let leaky = plugin_dir.path().join("leaky_policy.wasm");
    let server = Server::start(with_plugin_dir(plugin_dir.path()));
    server.swap_policy("leaky").await;
    let (status, created) = server
        .post("/api/v1/security/credential", host_body("kept", &sshd))
        .await;
    assert_eq!(status, 200, "{created}");
    let policy = "/api/v1/security/encryption/policy";
    let (status, envelope) = server.put(policy, json!({ "policy": "forgetful" })).await;
    assert_eq!(status, 200, "{envelope}");
    let settled = rewrap_settled(&server).await;
    assert_eq!(settled["rewrap"]["state"], "failed", "{settled}");

    let copy = std::fs::read(&leaky).unwrap();
    std::fs::remove_file(&leaky).unwrap();
    let (status, envelope) = server.post("/api/v1/plugins/reload", json!({})).await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(err_code(&envelope), "Common.IllegalArgument");
    let said = message(&envelope);
    assert!(
        said.contains("'leaky'") && said.contains("1 stored credential"),
        "{said}"
    );
    let (_, plugins) = server.get("/api/v1/plugins").await;
    assert!(plugins.to_string().contains("leaky"), "{plugins}");

    std::fs::write(&leaky, copy).unwrap();
    let (status, envelope) = server.post("/api/v1/plugins/reload", json!({})).await;
    assert_eq!(status, 200, "{envelope}");
}

/// A policy whose ciphertexts do not open (`forgetful` seals everything to
/// one constant) is never handed the only copy of a secret: the server
/// opens each ciphertext before it stores it. A new credential is refused
/// with nothing stored, and the rewrap toward it stops with every row as
/// it was: the credential made before still proves itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_whose_ciphertexts_do_not_open_is_never_handed_a_secret() {
    let sshd = Sshd::start();
    let plugin_dir = support::plugin_dir(&["forgetful_policy"]);
    let server = Server::start(with_plugin_dir(plugin_dir.path()));
    let (status, created) = server
        .post("/api/v1/security/credential", host_body("before", &sshd))
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let policy = "/api/v1/security/encryption/policy";
    let (status, envelope) = server.put(policy, json!({ "policy": "forgetful" })).await;
    assert_eq!(status, 200, "{envelope}");
    let settled = rewrap_settled(&server).await;
    assert_eq!(settled["rewrap"]["state"], "failed", "{settled}");
    assert!(
        settled
            .to_string()
            .contains("does not open to what it sealed"),
        "{settled}"
    );
    assert_eq!(server.validate_stored(id).await["reason"], "OK");

    // Its host free again (obshell keeps one credential per host).
    let (status, deleted) = server
        .delete(&format!("/api/v1/security/credential/{id}"), None)
        .await;
    assert_eq!(status, 200, "{deleted}");
    let (status, refused) = server
        .post("/api/v1/security/credential", host_body("after", &sshd))
        .await;
    assert_eq!(status, 500, "{refused}");
    assert_eq!(err_code(&refused), "Credential.EncryptFailed");
    assert!(
        message(&refused).contains("does not open to what it sealed"),
        "{refused}"
    );
    let (_, list) = server.get("/api/v1/security/credentials").await;
    assert_eq!(list["data"]["page"]["total_elements"], 0, "{list}");
}

/// A hangup that comes while the server starts (logrotate's, say, while
/// the plugins compile) does not stop it: its default is to end the
/// process, and the server took it only once it had started.
#[test]
fn a_hangup_while_the_server_starts_does_not_stop_it() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Past the start of the process, before its plugins are compiled (a
    // fresh data directory has no compiled ones).
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: a plain syscall on a child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let exited = child.try_wait().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        line.starts_with("credhost listening on "),
        "{line:?}, {exited:?}"
    );
}
