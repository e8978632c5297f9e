//! Contract versions against the real binary: a committed 0.1 verifier, a
//! 0.1 policy and a 0.2 verifier (each built when its version was current)
//! work beside 0.3 plugins; a component of a version the host does not
//! speak is refused by name; and the host holds typed plugins to the
//! contract's promises and fans their targets out itself.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::server::{Options, Server, err_code, message};
use support::sshd::{self, ClientKey, Sshd};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn built(name: &str) -> std::path::PathBuf {
    credhost::plugins::embedded::build_dir().join(name)
}

fn plugin_dir(files: &[std::path::PathBuf]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        std::fs::copy(file, dir.path().join(file.file_name().unwrap())).unwrap();
    }
    dir
}

fn with_plugins(dir: &Path) -> Options {
    Options {
        args: vec!["--plugin-dir".into(), dir.display().to_string()],
        ..Default::default()
    }
}

fn plugin<'a>(plugins: &'a Value, name: &str) -> &'a Value {
    let plugins = if plugins.get("data").is_some() {
        &plugins["data"]
    } else {
        plugins
    };
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not loaded: {plugins}"))
}

fn host_body(name: &str, sshd: &Sshd, passphrase: &str) -> Value {
    json!({ "target_type": "HOST", "name": name, "ssh_credential_property": {
        "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
        "username": sshd::USER, "type": "PASSWORD", "passphrase": passphrase } })
}

/// Creates `web` on `sshd` with the right password: it must be proven.
async fn create_web(server: &Server, sshd: &Sshd) -> Value {
    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            host_body("web", sshd, sshd::PASSWORD),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    created
}

#[tokio::test]
async fn a_0_1_verifier_works_beside_newer_plugins() {
    let sshd = Sshd::start();
    let dir = plugin_dir(&[fixture("ssh-verifier-0.1.wasm"), built("ob_verifier.wasm")]);
    let server = Server::start(with_plugins(dir.path()));
    let (_, plugins) = server.get("/api/v1/plugins").await;
    let host = plugin(&plugins, "ssh-verifier");
    assert_eq!(host["wit"], "credhost:plugin@0.1.0", "{plugins}");
    assert_eq!(host["version"], "0.1.0");
    assert_eq!(
        plugin(&plugins, "ob-verifier")["wit"],
        "credhost:plugin@0.3.0"
    );
    assert_eq!(
        plugin(&plugins, "aes-256-gcm")["wit"],
        "credhost:plugin@0.2.0"
    );

    // HOST through the 0.1 plugin, against a real sshd.
    let created = create_web(&server, &sshd).await;
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let (_, validated) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": [id] }),
        )
        .await;
    let detail = &validated["data"]["contents"][0]["details"][0];
    assert_eq!(detail["connection_result"], "SUCCESS", "{validated}");
    let other = Sshd::start_on("127.0.0.2");
    let mut wrong = host_body("bad", &other, "wrong");
    wrong["ssh_credential_property"]["targets"][0]["ip"] = "127.0.0.2".into();
    let (status, refused) = server.post("/api/v1/security/credential", wrong).await;
    assert_eq!(status, 400, "{refused}");
    // A 0.1 plugin names no code of its own: the generic one.
    assert_eq!(err_code(&refused), "Credential.ValidationFailed");

    // OB through the 0.3 plugin: two targets, fanned out by the host, each
    // with its own verdict in order.
    let closed = [support::closed_port(), support::closed_port()];
    let (status, ob) = server
        .post(
            "/api/v1/security/credential/validate",
            json!({ "target_type": "OB", "ob_credential_property": {
                "targets": [{ "ip": "127.0.0.1", "port": closed[0] },
                            { "ip": "127.0.0.1", "port": closed[1] }],
                "username": "root", "passphrase": "p" } }),
        )
        .await;
    assert_eq!(status, 200, "{ob}");
    let details = ob["data"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    for (detail, port) in details.iter().zip(closed) {
        assert_eq!(detail["target"]["port"], port);
        assert_eq!(detail["reason"], "REFUSED", "{ob}");
        assert_eq!(detail["connection_result"], "CONNECT_FAILED");
    }
}

#[tokio::test]
async fn a_0_1_policy_opens_what_the_0_2_one_sealed() {
    let sshd = Sshd::start();
    let dir = plugin_dir(&[]);
    let server = Server::start(with_plugins(dir.path()));
    let created = create_web(&server, &sshd).await;
    let id = created["data"]["credential_id"].as_u64().unwrap();
    // The 0.1 build of the same policy replaces the embedded 0.2 one.
    std::fs::copy(
        fixture("aes-gcm-policy-0.1.wasm"),
        dir.path().join("aes-gcm-policy-0.1.wasm"),
    )
    .unwrap();
    let (status, reloaded) = server.post("/api/v1/plugins/reload", json!({})).await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(
        plugin(&reloaded, "aes-256-gcm")["wit"],
        "credhost:plugin@0.1.0"
    );
    let (_, validated) = server
        .post(
            "/api/v1/security/credentials/validate",
            json!({ "credential_id_list": [id] }),
        )
        .await;
    assert_eq!(
        validated["data"]["contents"][0]["details"][0]["connection_result"], "SUCCESS",
        "{validated}"
    );
}

/// The 0.2 SSH verifier logs in through its imports (0.3 asks instead),
/// against a real sshd: a key read and proven, a key that cannot be read
/// with the passphrase sent, a wrong and a right password.
#[tokio::test]
async fn a_0_2_verifier_logs_in_through_its_imports() {
    let key = ClientKey::generate("ed25519", "pass-0-2", false);
    let sshd = Sshd::start_with_keys(std::slice::from_ref(&key.public_line));
    let dir = plugin_dir(&[fixture("ssh-verifier-0.2.wasm")]);
    let server = Server::start(with_plugins(dir.path()));
    let (_, plugins) = server.get("/api/v1/plugins").await;
    let host = plugin(&plugins, "ssh-verifier");
    assert_eq!(host["wit"], "credhost:plugin@0.2.0", "{plugins}");
    assert_eq!(host["source"]["kind"], "directory", "{plugins}");

    let (status, created) = server
        .post(
            "/api/v1/security/credential/validate",
            json!({ "target_type": "HOST", "ssh_credential_property": {
                "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
                "username": sshd::USER, "type": "PUBLIC_KEY",
                "private_key": key.private, "passphrase": "pass-0-2" } }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let detail = &created["data"]["details"][0];
    assert_eq!(detail["connection_result"], "SUCCESS", "{created}");

    let (status, refused) = server
        .post(
            "/api/v1/security/credential",
            json!({ "target_type": "HOST", "name": "k", "ssh_credential_property": {
                "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
                "username": sshd::USER, "type": "PUBLIC_KEY",
                "private_key": key.private, "passphrase": "wrong" } }),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        message(&refused).contains("the private key cannot be read"),
        "{refused}"
    );

    let (status, created) = server
        .post(
            "/api/v1/security/credential",
            host_body("web", &sshd, "wrong password"),
        )
        .await;
    assert_eq!(status, 400, "{created}");
    assert_eq!(err_code(&created), "Credential.SSH.ValidationFailed");
    assert!(message(&created).contains("AUTH_FAILED"), "{created}");
    create_web(&server, &sshd).await;
}

#[tokio::test]
async fn an_unknown_version_is_refused_by_name() {
    let future = built("future_verifier.wasm");
    let out = Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["plugin", "check"])
        .arg(&future)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("credhost:plugin/verification@0.9.0") && said.contains("0.1, 0.2 and 0.3"),
        "{said}"
    );
    // In a plugin directory: listed as a failure, the rest loads.
    let dir = plugin_dir(&[future]);
    let server = Server::start(with_plugins(dir.path()));
    let (_, plugins) = server.get("/api/v1/plugins").await;
    let failures = plugins["data"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{plugins}");
    assert!(
        failures[0]["error"].as_str().unwrap().contains("0.9"),
        "{plugins}"
    );
    assert!(plugin(&plugins, "ssh-verifier")["wit"] == "credhost:plugin@0.3.0");
}

#[tokio::test]
async fn broken_promises_are_contract_errors_and_targets_fan_out() {
    let dir = plugin_dir(&[built("contract_breaker.wasm")]);
    let server = Server::start(Options {
        config: Some("[plugins.contract-breaker]\ndeadline_ms = 400\n".into()),
        ..with_plugins(dir.path())
    });
    let validate =
        |mode: &str| json!({ "target_type": "BREAKER", "breaker_property": { "mode": mode } });
    let validated = async |mode: &str| {
        server
            .post("/api/v1/security/credential/validate", validate(mode))
            .await
    };
    for (mode, said) in [
        ("array-public", "not a JSON object"),
        ("keep", "keep for the secret"),
        ("no-targets", "no targets"),
        ("bad-ip", "not an IP"),
        ("ask-forever", "asked more than 4 times in one call"),
    ] {
        let (status, envelope) = validated(mode).await;
        assert_eq!(status, 500, "{mode}: {envelope}");
        assert_eq!(err_code(&envelope), "Plugin.Failed");
        assert!(
            message(&envelope).contains("broke the contract") && message(&envelope).contains(said),
            "{mode}: {envelope}"
        );
    }
    // What a call returns counts its lists' elements, not only their bytes:
    // 600,000 empty strings are 4.8 MB to lift, over the 4 MiB cap.
    let (status, envelope) = validated("empty-terms").await;
    assert_eq!(status, 500, "{envelope}");
    assert!(
        message(&envelope).contains("more than its limit of 4194304"),
        "{envelope}"
    );
    // A verdict's message is kept to its first KiB, cut between letters.
    let (status, envelope) = validated("long-message").await;
    assert_eq!(status, 200, "{envelope}");
    for detail in envelope["data"]["details"].as_array().unwrap() {
        assert_eq!(
            detail["message"],
            format!("{}…", "é".repeat(512)),
            "{envelope}"
        );
    }
    // All the calls of one verification share one log budget: 20 targets
    // logging 200 lines each put 1,000 lines in the log, not 100 per call.
    let (status, envelope) = validated("log-flood").await;
    assert_eq!(status, 200, "{envelope}");
    let log = server.log_text();
    let flooded: Vec<&str> = log.lines().filter(|l| l.contains("flood line")).collect();
    assert_eq!(flooded.len(), 1_000, "{} lines logged", flooded.len());
    // And each call keeps to its own 100 within that.
    let mut per_target = std::collections::HashMap::<&str, usize>::new();
    for line in &flooded {
        let port = line
            .split("flood line ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        *per_target.entry(port).or_default() += 1;
    }
    assert!(per_target.values().all(|n| *n <= 100), "{per_target:?}");
    assert!(
        log.contains("logged more than 1000 lines or 262144 bytes in one verification"),
        "{log}"
    );
    // A plugin that quotes the secret it was given (here, in its verdicts)
    // has it blanked, in the answer, the log and a stored validation; and a
    // refusal, like a verdict, is kept to its first KiB.
    const ECHOED: &str = "Echoed-secret-9931";
    let echo = json!({ "mode": "echo-secret", "secret": ECHOED });
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential/validate",
            json!({ "target_type": "BREAKER", "breaker_property": echo }),
        )
        .await;
    assert_eq!(status, 200, "{envelope}");
    assert_eq!(
        envelope["data"]["details"][1]["message"], "****** was refused, ******!",
        "{envelope}"
    );
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            json!({ "target_type": "BREAKER", "name": "echo", "breaker_property": echo }),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");
    assert!(!envelope.to_string().contains(ECHOED), "{envelope}");
    assert!(!server.log_text().contains(ECHOED), "the log quotes it");
    let (status, envelope) = validated("long-refusal").await;
    assert_eq!(status, 400, "{envelope}");
    assert!(message(&envelope).len() < 1_100, "{envelope}");
    assert!(message(&envelope).ends_with('…'), "{envelope}");
    // A refusal that quotes a field the verifier's schema marks secret
    // (`writeOnly`), sent in another case: masked, in the answer and the
    // log it is refused in.
    const REFUSED_SECRET: &str = "Refused-secret-5170";
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential/validate",
            json!({ "target_type": "BREAKER", "breaker_property":
                    { "mode": "echo-refusal", "Passphrase": REFUSED_SECRET } }),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");
    assert!(
        message(&envelope).ends_with("the passphrase ****** is wrong"),
        "{envelope}"
    );
    assert!(
        !server.log_text().contains(REFUSED_SECRET),
        "the log quotes it"
    );
    // Each round of these is well within the deadline; together they are
    // not, and the deadline is the call's.
    let (status, envelope) = validated("slow-asks").await;
    assert_eq!(status, 500, "{envelope}");
    assert_eq!(
        message(&envelope),
        "plugin contract-breaker did not finish within its 400ms deadline"
    );
    // Well behaved: one verdict per target, the connection result derived
    // by the host from the reason.
    let (status, envelope) = validated("fine").await;
    assert_eq!(status, 200, "{envelope}");
    let details = &envelope["data"]["details"];
    assert_eq!(details[0]["reason"], "OK");
    assert_eq!(details[0]["connection_result"], "SUCCESS");
    assert_eq!(details[1]["reason"], "REFUSED");
    assert_eq!(details[1]["connection_result"], "CONNECT_FAILED");
    assert_eq!(details[1]["message"], "port 2 says no");
    // Four asks are answered; five in one verify-target fail that target.
    let (status, envelope) = validated("ask-four").await;
    assert_eq!(status, 200, "{envelope}");
    let (status, envelope) = validated("verify-ask-forever").await;
    assert_eq!(status, 200, "{envelope}");
    for detail in envelope["data"]["details"].as_array().unwrap() {
        assert_eq!(detail["reason"], "OTHER", "{envelope}");
        let message = detail["message"].as_str().unwrap();
        assert!(message.contains("asked more than 4 times"), "{envelope}");
    }
    // Asks are answered with no more than the call itself may do: no login
    // while checking input, and none from the call for one target to
    // another target of the same credential, with a password or a key (a
    // key that cannot be read is refused as not granted, not read). Nothing
    // reaches the listener either way.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for mode in ["login-in-normalize", "login-elsewhere", "key-elsewhere"] {
        let body = json!({ "target_type": "BREAKER",
            "breaker_property": { "mode": mode, "port": port } });
        let (_, envelope) = server
            .post("/api/v1/security/credential/validate", body)
            .await;
        assert!(
            envelope.to_string().contains("NotGranted"),
            "{mode}: {envelope}"
        );
        if mode != "login-in-normalize" {
            // The first target's call asked; the listener's own call
            // answered without a login.
            let details = &envelope["data"]["details"];
            assert_eq!(details[0]["message"], "Outcome::NotGranted", "{envelope}");
            assert_eq!(details[1]["target"]["port"], port, "{envelope}");
            assert_eq!(details[1]["message"], format!("port {port} says no"));
        }
        assert_eq!(
            listener.accept().map(drop).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "{mode}: a connection reached the listener"
        );
    }
    // A failed create is answered with the verifier's own code.
    let mut create = validate("fine");
    create["name"] = "b".into();
    let (status, envelope) = server.post("/api/v1/security/credential", create).await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(err_code(&envelope), "Credential.Breaker.ValidationFailed");
    assert!(
        message(&envelope).starts_with("breaker validation failed: 127.0.0.2:2 REFUSED"),
        "{envelope}"
    );
}
