//! The credential API end to end: the real `credhost` binary, a real OpenSSH
//! server on loopback, plain HTTP.

mod support;

use serde_json::{Value, json};
use support::server::{Options, Server, err_code, message};
use support::sshd::{PASSWORD, Sshd, USER};

fn property(sshd: &Sshd, passphrase: &str) -> Value {
    json!({
        "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }],
        "username": USER,
        "type": "PASSWORD",
        "passphrase": passphrase,
    })
}

fn create_body(name: &str, sshd: &Sshd) -> Value {
    json!({
        "target_type": "HOST",
        "name": name,
        "description": "web tier",
        "ssh_credential_property": property(sshd, PASSWORD),
    })
}

const CREDENTIAL: &str = "/api/v1/security/credential";
const CREDENTIALS: &str = "/api/v1/security/credentials";

#[tokio::test]
async fn create_get_update_validate_delete() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());

    let (status, created) = server.post(CREDENTIAL, create_body("web", &sshd)).await;
    assert_eq!(status, 200, "{created}");
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "successful",
            "timestamp",
            "duration",
            "status",
            "traceId",
            "data"
        ]
    );
    let data = &created["data"];
    let fields: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "credential_id",
            "name",
            "target_type",
            "description",
            "ssh_secret",
            "create_time",
            "update_time"
        ]
    );
    assert_eq!(data["name"], "web");
    assert_eq!(data["target_type"], "HOST");
    assert_eq!(data["description"], "web tier");
    // obshell's fields, and the host key the password was proven against.
    assert_eq!(
        data["ssh_secret"],
        json!({ "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }], "username": USER, "type": "PASSWORD",
                "host_keys": [{ "ip": "127.0.0.1", "port": sshd.addr.port(), "key_type": "ssh-ed25519",
                                "fingerprint": sshd.fingerprint() }] })
    );
    assert!(!created.to_string().contains(PASSWORD));
    let id = data["credential_id"].as_u64().unwrap();

    let (status, got) = server.get(&format!("{CREDENTIAL}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["data"], *data);
    // obshell accepts `+5` and `007` as ids.
    let (status, _) = server.get(&format!("{CREDENTIAL}/+{id}")).await;
    assert_eq!(status, 200);

    // An empty passphrase keeps the stored one, which must still log in.
    let mut patch =
        json!({ "name": "web-renamed", "ssh_credential_property": property(&sshd, "") });
    let (status, updated) = server
        .patch(&format!("{CREDENTIAL}/{id}"), patch.clone())
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["name"], "web-renamed");
    assert_eq!(
        updated["data"]["description"], "",
        "PATCH is a full replace"
    );
    assert_eq!(updated["data"]["create_time"], data["create_time"]);

    // A wrong new passphrase is refused, naming the target, and nothing changes.
    patch["ssh_credential_property"]["passphrase"] = json!("wrong-password");
    let (status, refused) = server.patch(&format!("{CREDENTIAL}/{id}"), patch).await;
    assert_eq!(status, 400);
    assert_eq!(err_code(&refused), "Credential.SSH.ValidationFailed");
    assert!(
        message(&refused).contains(&format!("127.0.0.1:{}", sshd.addr.port())),
        "{refused}"
    );
    assert!(message(&refused).contains("AUTH_FAILED"), "{refused}");

    let (status, batch) = server
        .post(
            &format!("{CREDENTIALS}/validate"),
            json!({ "credential_id_list": [id, id] }),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    let contents = batch["data"]["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 1, "duplicates are checked once");
    assert_eq!(contents[0]["credential_id"], id);
    assert_eq!(contents[0]["succeeded_count"], 1);
    assert_eq!(contents[0]["failed_count"], 0);
    assert_eq!(contents[0]["details"][0]["connection_result"], "SUCCESS");
    assert_eq!(contents[0]["details"][0]["message"], "");

    let (status, deleted) = server.delete(&format!("{CREDENTIAL}/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(deleted.get("data").is_none(), "{deleted}");
    let (status, missing) = server.get(&format!("{CREDENTIAL}/{id}")).await;
    assert_eq!((status, err_code(&missing)), (404, "Credential.NotFound"));
    assert_eq!(message(&missing), "Credential not found");
    // obshell binds an update's body before it looks the id up: a body it
    // cannot bind is 400 for a missing id too; one it can, 404.
    let mut unbindable = create_body("gone", &sshd);
    unbindable["ssh_credential_property"]
        .as_object_mut()
        .unwrap()
        .remove("passphrase");
    let (status, refused) = server
        .patch(&format!("{CREDENTIAL}/{id}"), unbindable)
        .await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Common.BindJsonFailed"),
        "{refused}"
    );
    let (status, missing) = server
        .patch(&format!("{CREDENTIAL}/{id}"), create_body("gone", &sshd))
        .await;
    assert_eq!(
        (status, err_code(&missing)),
        (404, "Credential.NotFound"),
        "{missing}"
    );
}

#[tokio::test]
async fn validate_reports_each_target_and_stores_nothing() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let closed = support::closed_port();
    let body = json!({
        "target_type": "HOST",
        "ssh_credential_property": {
            "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() }, { "ip": "127.0.0.1", "port": closed }],
            "username": USER, "type": "PASSWORD", "passphrase": PASSWORD,
        }
    });
    let (status, result) = server.post(&format!("{CREDENTIAL}/validate"), body).await;
    assert_eq!(status, 200, "{result}");
    let data = &result["data"];
    assert!(data.get("credential_id").is_none());
    assert_eq!(
        (
            data["succeeded_count"].as_u64(),
            data["failed_count"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(data["details"][0]["connection_result"], "SUCCESS");
    assert_eq!(data["details"][1]["connection_result"], "CONNECT_FAILED");
    assert_eq!(data["details"][1]["reason"], "REFUSED");
    assert_eq!(
        data["details"][1]["target"],
        json!({ "ip": "127.0.0.1", "port": closed })
    );
    let (_, list) = server.get(CREDENTIALS).await;
    assert_eq!(list["data"]["page"]["total_elements"], 0);
}

/// A validate refused for want of a plugin instance (503) sent its secret
/// nowhere, not even to its other targets, so it costs none of the
/// caller's allowance of rejected secrets: a busy server does not turn
/// into THROTTLED for the caller's own hosts.
#[tokio::test]
async fn a_request_refused_as_busy_costs_no_guess() {
    let sshd = Sshd::start();
    let silent = support::SilentListener::start();
    // One verification at a time per client, refused after 200 ms.
    let server = Server::start(Options {
        config: Some(
            "rejected_secret_burst = 2\nrejected_secrets_per_hour = 60\n\
             [engine]\nmax_instances = 4\nquick_instances = 2\n\
             verify_instances_per_client = 1\nqueue_wait_ms = 200\n\
             [ssh]\nhandshake_timeout_ms = 1500\n"
                .into(),
        ),
        ..Default::default()
    });
    let validate_with = |port: u16, passphrase: &str| {
        json!({ "target_type": "HOST", "ssh_credential_property": {
            "targets": [{ "ip": "127.0.0.1", "port": port }],
            "username": USER, "type": "PASSWORD", "passphrase": passphrase } })
    };
    let validate = |port: u16| validate_with(port, PASSWORD);
    let path = format!("{CREDENTIAL}/validate");
    // The caller's one instance waits on a host that never answers
    // (holding one of its two tokens for 127.0.0.1 meanwhile).
    let held = server.post(&path, validate(silent.addr.port()));
    // Each refused request has a second target, which would wait for an
    // instance of its own were the request not refused before any call.
    let mut two_targets = validate(support::closed_port());
    two_targets["ssh_credential_property"]["targets"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "ip": "127.0.0.1", "port": sshd.addr.port() }));
    let busy = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(server.post(&path, two_targets.clone()).await);
        }
        answers
    };
    let ((status, timed_out), answers) = tokio::join!(held, busy);
    assert_eq!(status, 200, "{timed_out}");
    assert_eq!(timed_out["data"]["details"][0]["reason"], "TIMEOUT");
    for (status, answer) in &answers {
        assert_eq!(*status, 503, "{answers:?}");
        assert_eq!(err_code(answer), "Common.Unavailable", "{answer}");
    }
    assert!(!sshd.log().contains("password for"), "{}", sshd.log());
    // Nothing was spent: the caller still has both tokens, so two wrong
    // secrets reach the host, and a third is held.
    for (guess, reason) in [
        ("guess-1", "AUTH_FAILED"),
        ("guess-2", "AUTH_FAILED"),
        ("guess-3", "THROTTLED"),
    ] {
        let (status, answer) = server
            .post(&path, validate_with(sshd.addr.port(), guess))
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"]["details"][0]["reason"], reason, "{answer}");
    }
}

/// credhost is no password guesser: once a host judged a caller's secrets
/// wrong `rejected_secret_burst` times, the caller's requests do not reach
/// it (not even with a right secret, nor the stored one) until a token is
/// regained; nothing else is counted.
#[tokio::test]
async fn a_caller_guessing_passwords_is_held_off_the_target() {
    let sshd = Sshd::start();
    let server = Server::start(Options {
        config: Some("rejected_secret_burst = 3\nrejected_secrets_per_hour = 60\n".into()),
        ..Default::default()
    });
    let (status, created) = server.post(CREDENTIAL, create_body("web", &sshd)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let closed = support::closed_port();
    let validate = |passphrase: &str| {
        json!({ "target_type": "HOST", "ssh_credential_property": {
            "targets": [{ "ip": "127.0.0.1", "port": sshd.addr.port() },
                        { "ip": "127.0.0.2", "port": closed }],
            "username": USER, "type": "PASSWORD", "passphrase": passphrase } })
    };
    let attempts = || {
        sshd.log()
            .lines()
            .filter(|l| l.contains("password for"))
            .count()
    };
    // Successes and unreachable targets cost nothing.
    for _ in 0..4 {
        let (status, result) = server
            .post(&format!("{CREDENTIAL}/validate"), validate(PASSWORD))
            .await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["data"]["details"][0]["reason"], "OK", "{result}");
        assert_eq!(result["data"]["details"][1]["reason"], "REFUSED");
    }
    for guess in ["guess-1", "guess-2", "guess-3"] {
        let (_, result) = server
            .post(&format!("{CREDENTIAL}/validate"), validate(guess))
            .await;
        assert_eq!(
            result["data"]["details"][0]["reason"], "AUTH_FAILED",
            "{result}"
        );
    }
    let tried = attempts();
    let (status, result) = server
        .post(&format!("{CREDENTIAL}/validate"), validate(PASSWORD))
        .await;
    assert_eq!(status, 200, "{result}");
    let held = &result["data"]["details"][0];
    assert_eq!(held["reason"], "THROTTLED", "{result}");
    assert_eq!(held["connection_result"], "CONNECT_FAILED");
    assert!(
        held["message"]
            .as_str()
            .unwrap()
            .contains("judged wrong too often"),
        "{result}"
    );
    // The other address is another host: still tried.
    assert_eq!(result["data"]["details"][1]["reason"], "REFUSED");
    // An update with a new passphrase is held the same way, and changes nothing.
    let mut update = json!({ "ssh_credential_property": property(&sshd, PASSWORD) });
    update["name"] = json!("renamed");
    let (status, refused) = server.patch(&format!("{CREDENTIAL}/{id}"), update).await;
    assert_eq!(status, 400, "{refused}");
    assert!(message(&refused).contains("THROTTLED"), "{refused}");
    // So is one that keeps the stored passphrase but tries it as another user.
    let mut other_user = property(&sshd, "");
    other_user["username"] = json!("root");
    let (status, refused) = server
        .patch(
            &format!("{CREDENTIAL}/{id}"),
            json!({ "name": "web", "ssh_credential_property": other_user }),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(message(&refused).contains("THROTTLED"), "{refused}");
    assert_eq!(attempts(), tried, "{}", sshd.log());
    // Nor does a batch validation of the stored secret reach it now.
    assert_eq!(server.validate_stored(id).await["reason"], "THROTTLED");
    assert_eq!(attempts(), tried, "{}", sshd.log());
    let (_, got) = server.get(&format!("{CREDENTIAL}/{id}")).await;
    assert_eq!(got["data"]["name"], "web");
}

#[tokio::test]
async fn create_refuses_a_wrong_password_and_writes_nothing() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let mut body = create_body("db", &sshd);
    body["ssh_credential_property"]["passphrase"] = json!("nope-nope");
    let (status, refused) = server.post(CREDENTIAL, body).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.SSH.ValidationFailed")
    );
    assert!(message(&refused).contains("AUTH_FAILED"));
    assert!(!message(&refused).contains("nope-nope"));
    let (_, list) = server.get(CREDENTIALS).await;
    assert_eq!(list["data"]["page"]["total_elements"], 0);
    assert_eq!(list["data"]["contents"], json!([]));
}

#[tokio::test]
async fn keys_bind_in_the_order_sent_repeated_ones_included() {
    // obshell reads a body's keys in order and the last spelling of a field
    // wins, even over a spelling that appeared twice before it; a later
    // `null` leaves a string or a number as it was. The same holds inside
    // the property, which reaches the plugin as sent.
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let port = sshd.addr.port();
    let body = format!(
        r#"{{"target_type":"HOST","name":"first","Name":"second","name":"web",
            "ssh_credential_property":{{"targets":[{{"ip":"127.0.0.1","port":{port},"Port":null}}],
              "username":"nobody","USERNAME":"nobody-else","username":"{USER}","UserName":null,
              "type":"PASSWORD","passphrase":"{PASSWORD}"}}}}"#
    );
    let response = server
        .client()
        .post(format!("{}{CREDENTIAL}", server.base))
        .body(body)
        .send()
        .await
        .unwrap();
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["status"], 200, "{created}");
    assert_eq!(created["data"]["name"], "web");
    assert_eq!(created["data"]["ssh_secret"]["username"], USER);
}

#[tokio::test]
async fn uniqueness_of_names_and_hosts() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let (status, first) = server.post(CREDENTIAL, create_body("Prod", &sshd)).await;
    assert_eq!(status, 200, "{first}");

    // Names are compared case-folded and without trailing spaces.
    let mut body = create_body("prod  ", &sshd);
    body["ssh_credential_property"]["targets"][0]["ip"] = json!("127.0.0.2");
    let (status, refused) = server.post(CREDENTIAL, body).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.Name.AlreadyExists")
    );
    assert_eq!(message(&refused), "Credential name prod   already exists");

    // The same host under another port is the same host.
    let mut body = create_body("other", &sshd);
    body["ssh_credential_property"]["targets"][0]["port"] = json!(2);
    let (status, refused) = server.post(CREDENTIAL, body).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.Host.AlreadyExists")
    );
    assert_eq!(message(&refused), "Host 127.0.0.1 already has a credential");

    // So is a host named twice in one request.
    let body = json!({
        "target_type": "HOST", "name": "twice",
        "ssh_credential_property": {
            "targets": [{ "ip": "127.0.0.9", "port": 1 }, { "ip": "127.0.0.9", "port": 2 }],
            "username": "u", "type": "PASSWORD", "passphrase": "p",
        }
    });
    let (status, refused) = server.post(CREDENTIAL, body).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.Host.AlreadyExists")
    );
}

#[tokio::test]
async fn exactly_one_of_concurrent_identical_creates_wins() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let attempts = (0..8).map(|_| server.post(CREDENTIAL, create_body("race", &sshd)));
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(won, 1, "{results:?}");
    for (status, envelope) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400);
        assert!(
            [
                "Credential.Name.AlreadyExists",
                "Credential.Host.AlreadyExists"
            ]
            .contains(&err_code(envelope)),
            "{envelope}"
        );
    }
    let (_, list) = server.get(CREDENTIALS).await;
    assert_eq!(list["data"]["page"]["total_elements"], 1);
}

#[tokio::test]
async fn every_error_code_of_create() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({}),
            "Common.BindJsonFailed",
            "CreateCredentialParam.TargetType",
        ),
        (
            json!({ "target_type": "HOST" }),
            "Common.BindJsonFailed",
            "CreateCredentialParam.Name",
        ),
        (
            json!({ "target_type": "ORACLE", "name": "x" }),
            "Credential.TargetType.NotSupported",
            "installed target types: HOST",
        ),
        (
            json!({ "target_type": "host", "name": "x" }),
            "Credential.TargetType.NotSupported",
            "'host'",
        ),
        (
            json!({ "target_type": "HOST", "name": "x" }),
            "Common.BindJsonFailed",
            "SshCredentialProperty.Targets",
        ),
        (
            json!({ "target_type": "HOST", "name": "x", "ssh_credential_property": { "targets": [], "username": "u", "type": "PASSWORD", "passphrase": "" } }),
            "Common.IllegalArgument",
            "Illegal argument: targets list cannot be empty",
        ),
        (
            json!({ "target_type": "HOST", "name": "x", "ssh_credential_property": { "targets": [{ "ip": "db.local" }], "username": "u", "type": "PASSWORD", "passphrase": "" } }),
            "Common.InvalidIp",
            "'db.local' is not a valid IP address",
        ),
        (
            json!({ "target_type": "HOST", "name": "x", "ssh_credential_property": { "targets": [{ "ip": "fe80::1%eth0" }], "username": "u", "type": "PASSWORD", "passphrase": "" } }),
            "Common.InvalidIp",
            "'fe80::1%eth0' is not a valid IP address",
        ),
        (
            json!({ "target_type": "HOST", "name": "x", "ssh_credential_property": { "targets": [{ "ip": "127.0.0.1", "port": 65536 }], "username": "u", "type": "PASSWORD", "passphrase": "" } }),
            "Credential.SSH.InvalidPort",
            "The SSH port '65536' is invalid, must be in [1, 65535]",
        ),
        (
            json!({ "target_type": "HOST", "name": "x", "ssh_credential_property": { "targets": [{ "ip": "127.0.0.1" }], "username": "u", "type": "KEY", "passphrase": "" } }),
            "Credential.AuthType.NotSupported",
            "currently only supports PASSWORD",
        ),
        (
            json!({ "target_type": "HOST", "name": "n".repeat(65), "ssh_credential_property": property(&sshd, PASSWORD) }),
            "Common.IllegalArgument",
            "name is longer than 64 characters",
        ),
        (
            json!({ "target_type": "HOST", "name": "x", "description": "d".repeat(257), "ssh_credential_property": property(&sshd, PASSWORD) }),
            "Common.IllegalArgument",
            "description is longer than 256 characters",
        ),
        // Type errors name the Go struct that declares the field, then the
        // path from the top, as Go words them.
        (
            json!({ "target_type": "HOST", "name": 5 }),
            "Common.BindJsonFailed",
            "Bind JSON failed: json: cannot unmarshal number into Go struct field \
             CreateCredentialParam.name of type string",
        ),
        (
            json!({ "target_type": "HOST", "name": "x", "ssh_credential_property": { "targets": [{ "ip": "127.0.0.1", "port": "22" }], "username": "u", "type": "PASSWORD", "passphrase": "" } }),
            "Common.BindJsonFailed",
            "Bind JSON failed: json: cannot unmarshal string into Go struct field \
             Target.ssh_credential_property.targets.port of type int",
        ),
        // Go binds `null` to a struct by leaving it empty: the required
        // fields are then missing.
        (
            json!(null),
            "Common.BindJsonFailed",
            "Bind JSON failed: Key: 'CreateCredentialParam.TargetType' Error:Field validation \
             for 'TargetType' failed on the 'required' tag",
        ),
        (
            json!(5),
            "Common.BindJsonFailed",
            "Bind JSON failed: json: cannot unmarshal number into Go value of type \
             param.CreateCredentialParam",
        ),
    ];
    for (body, code, text) in cases {
        let (status, envelope) = server.post(CREDENTIAL, body.clone()).await;
        assert_eq!(status, 400, "{body} → {envelope}");
        assert_eq!(err_code(&envelope), code, "{body} → {envelope}");
        assert!(message(&envelope).contains(text), "{body} → {envelope}");
    }
    // Not JSON at all.
    let response = server
        .client()
        .post(format!("{}{CREDENTIAL}", server.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(err_code(&envelope), "Common.BindJsonFailed");
    // Numbers as Go reads them: judged only where a field converts one, and
    // quoted back as sent. A port of -0 is 0, the default port (closed here).
    let raw = |port: &str| {
        format!(
            r#"{{"target_type":"HOST","name":"n{}","ssh_credential_property":{{"big":1e400,
            "targets":[{{"ip":"127.0.0.1","port":{port}}}],"username":"u","type":"PASSWORD",
            "passphrase":"p"}}}}"#,
            port.len()
        )
    };
    for (port, status, wanted) in [
        (
            "2.20e+1",
            400,
            "cannot unmarshal number 2.20e+1 into Go struct field \
             Target.ssh_credential_property.targets.port of type int",
        ),
        ("-0", 400, "dial tcp 127.0.0.1:22"),
    ] {
        let response = server
            .client()
            .post(format!("{}{CREDENTIAL}", server.base))
            .body(raw(port))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        let envelope: Value = response.json().await.unwrap();
        assert!(envelope.to_string().contains(wanted), "{port}: {envelope}");
    }
    // A client's text in a refusal cannot forge a line of the log: the
    // message is logged quoted, its line breaks escaped.
    let forged = "2026-01-01T00:00:00Z  INFO credhost: forged";
    let mut body = create_body("forger", &sshd);
    body["ssh_credential_property"]["targets"][0]["ip"] = format!("x\n{forged}").into();
    let (status, envelope) = server.post(CREDENTIAL, body).await;
    assert_eq!((status, err_code(&envelope)), (400, "Common.InvalidIp"));
    let log = server.log_text();
    assert!(
        log.contains("INFO credhost: forged"),
        "the refusal is logged"
    );
    assert!(!log.lines().any(|l| l.starts_with(forged)), "{log}");
    // Too large.
    let huge = json!({ "target_type": "HOST", "name": "x", "description": "d".repeat(1 << 20) });
    let (status, envelope) = server.post(CREDENTIAL, huge).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.IllegalArgument")
    );
}

#[tokio::test]
async fn routes_ids_and_the_trace_header() {
    let server = Server::start(Options::default());
    for path in [
        "/api/v1/security/credential/abc",
        "/api/v1/security/credential/validate",
        "/api/v1/security/credential/1.5",
        // Escapes of bytes that are not UTF-8 (axum answered them in plain
        // text, outside the envelope).
        "/api/v1/security/credential/%FF",
        "/api/v1/security/credential/%C0%AF",
        "/api/v1/security/credential/%ED%A0%80",
    ] {
        let (status, envelope) = server.get(path).await;
        assert_eq!(
            (status, err_code(&envelope)),
            (400, "Common.IllegalArgument"),
            "{path}"
        );
        assert_eq!(
            message(&envelope),
            "Illegal argument: invalid credential id"
        );
    }
    let (status, envelope) = server
        .call(reqwest::Method::DELETE, "/api/v1/tokens/%FF", None)
        .await;
    assert_eq!(
        (status, err_code(&envelope)),
        (404, "Token.NotFound"),
        "{envelope}"
    );
    // The console's files too: a name that does not decode is no file.
    let (status, envelope) = server.get("/console/%FF").await;
    assert_eq!(status, 404, "{envelope}");
    assert_eq!(envelope["successful"], false, "{envelope}");
    for id in ["0", "-3", "9223372036854775807"] {
        let (status, envelope) = server.get(&format!("{CREDENTIAL}/{id}")).await;
        assert_eq!(
            (status, err_code(&envelope)),
            (404, "Credential.NotFound"),
            "{id}"
        );
        let (status, _) = server.delete(&format!("{CREDENTIAL}/{id}"), None).await;
        assert_eq!(status, 404);
        let (status, _) = server
            .patch(&format!("{CREDENTIAL}/{id}"), json!({ "name": "x" }))
            .await;
        assert_eq!(status, 404);
    }
    let (status, envelope) = server.patch(&format!("{CREDENTIAL}/1"), json!({})).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.BindJsonFailed")
    );
    for (method, path) in [
        (reqwest::Method::POST, "/api/v1/security/credential/5"),
        (reqwest::Method::PUT, CREDENTIALS),
        (reqwest::Method::GET, "/api/v1/nothing"),
    ] {
        let (status, envelope) = server.call(method, path, None).await;
        assert_eq!(
            (status, err_code(&envelope)),
            (404, "Common.NotFound"),
            "{path}"
        );
        assert_eq!(message(&envelope), "Element not found: 404 not found");
    }
    let response = server
        .client()
        .get(format!("{}{CREDENTIALS}", server.base))
        .header("X-OBSHELL-Trace-ID", "trace-me-123")
        .send()
        .await
        .unwrap();
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["traceId"], "trace-me-123");
    let (_, envelope) = server.get(CREDENTIALS).await;
    assert_eq!(envelope["traceId"].as_str().unwrap().len(), 16);
}

/// `GET /credentials/validations` shows the latest proof of each credential:
/// a create's, a batch validation's, and an update's, each kept in the same
/// write as what it proved.
#[tokio::test]
async fn the_last_validation_follows_creates_validations_and_updates() {
    let (first, second) = (Sshd::start(), Sshd::start());
    let server = Server::start(Options::default());
    let (status, created) = server.post(CREDENTIAL, create_body("moves", &first)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    let last = async || {
        let (status, answer) = server
            .get(&format!(
                "{CREDENTIALS}/validations?credential_id_list={id},424242"
            ))
            .await;
        assert_eq!(status, 200, "{answer}");
        let contents = answer["data"]["contents"].as_array().unwrap().clone();
        assert_eq!(contents.len(), 1, "only stored credentials: {answer}");
        contents[0].clone()
    };
    let shown = last().await;
    assert_eq!(shown["credential_id"], id);
    assert_eq!(shown["succeeded_count"], 1);
    assert_eq!(shown["details"][0]["target"]["port"], first.addr.port());

    let (status, _) = server
        .post(
            &format!("{CREDENTIALS}/validate"),
            json!({ "credential_id_list": [id] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        last().await["details"][0]["target"]["port"],
        first.addr.port()
    );

    // Moved to the second server with the password sent again: the update's
    // proof, at the new target, replaces the validation at the old one.
    let (status, updated) = server
        .patch(
            &format!("{CREDENTIAL}/{id}"),
            json!({ "name": "moves", "ssh_credential_property": property(&second, PASSWORD) }),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let shown = last().await;
    assert_eq!(shown["details"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["details"][0]["target"]["port"], second.addr.port());
    assert_eq!(shown["details"][0]["connection_result"], "SUCCESS");
    assert!(!shown.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn batch_endpoints() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let (_, a) = server.post(CREDENTIAL, create_body("a", &sshd)).await;
    let a = a["data"]["credential_id"].as_u64().unwrap();

    let (status, envelope) = server
        .delete(CREDENTIALS, Some(json!({ "credential_id_list": [] })))
        .await;
    assert_eq!(
        (status, message(&envelope)),
        (400, "Illegal argument: credential id list is empty")
    );
    let (status, envelope) = server.delete(CREDENTIALS, Some(json!({}))).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.BindJsonFailed")
    );
    // A megabyte of ids is counted, not copied, and refused by its count.
    let zeros = vec![0; 400_000];
    let (status, envelope) = server
        .delete(CREDENTIALS, Some(json!({ "credential_id_list": zeros })))
        .await;
    assert_eq!(status, 400, "{envelope}");
    assert!(
        message(&envelope).contains("holds 400000 ids"),
        "{envelope}"
    );
    // So is a megabyte of keys, by theirs.
    let keys: serde_json::Map<String, Value> = (0..50_000)
        .map(|i| (format!("k{i}"), Value::from(0)))
        .collect();
    let (status, envelope) = server.delete(CREDENTIALS, Some(Value::Object(keys))).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.BindJsonFailed")
    );
    assert!(
        message(&envelope).contains("more than 1024 keys"),
        "{envelope}"
    );
    // Go's `[]int`, named in its struct.
    let (status, envelope) = server
        .delete(CREDENTIALS, Some(json!({ "credential_id_list": [a, "x"] })))
        .await;
    assert_eq!(
        (status, message(&envelope)),
        (
            400,
            "Bind JSON failed: json: cannot unmarshal string into Go struct field \
             BatchDeleteCredentialParam.credential_id_list of type int"
        )
    );
    let (status, envelope) = server
        .post(
            &format!("{CREDENTIALS}/validate"),
            json!({ "credential_id_list": [] }),
        )
        .await;
    assert_eq!(
        (status, &envelope["data"]),
        (200, &json!({ "contents": [] }))
    );
    let (status, envelope) = server
        .post(
            &format!("{CREDENTIALS}/validate"),
            json!({ "credential_id_list": [a, 777, 778] }),
        )
        .await;
    assert_eq!((status, err_code(&envelope)), (404, "Credential.NotFound"));
    assert_eq!(message(&envelope), "Credential not found: 777, 778");
    // A negative id is named as sent, not as its magnitude (which may be a
    // credential that exists).
    let (status, envelope) = server
        .post(
            &format!("{CREDENTIALS}/validate"),
            json!({ "credential_id_list": [-(a as i64)] }),
        )
        .await;
    assert_eq!((status, err_code(&envelope)), (404, "Credential.NotFound"));
    assert_eq!(message(&envelope), format!("Credential not found: -{a}"));
    let (status, envelope) = server
        .post(
            &format!("{CREDENTIALS}/validate"),
            json!({ "credential_id_list": ["x"] }),
        )
        .await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.BindJsonFailed")
    );

    let (status, envelope) = server
        .delete(
            CREDENTIALS,
            Some(json!({ "credential_id_list": [a, 999, -(a as i64)] })),
        )
        .await;
    assert_eq!(status, 200, "{envelope}");
    assert_eq!(
        envelope["data"],
        json!({ "deleted": [a], "not_found": [-(a as i64), 999] })
    );
    let (status, _) = server.get(&format!("{CREDENTIAL}/{a}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn key_endpoint_checks_its_input() {
    let server = Server::start(Options::default());
    let path = "/api/v1/security/credential/encrypt-secret-key";
    let (status, envelope) = server.put(path, json!({})).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.BindJsonFailed")
    );
    let (status, envelope) = server.put(path, json!({ "aes_key": "***" })).await;
    assert_eq!(
        (status, message(&envelope)),
        (400, "Illegal argument: invalid base64 key")
    );
    let (status, envelope) = server.put(path, json!({ "aes_key": "AAECAwQ=" })).await;
    assert_eq!(
        (status, message(&envelope)),
        (
            400,
            "Illegal argument: invalid aes key length, must be 32 bytes"
        )
    );
    let (status, envelope) = server.get(path).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.IllegalArgument")
    );
    // A key sent again (a retry after a timeout) is not added again.
    use base64::Engine as _;
    let key = json!({ "aes_key": base64::engine::general_purpose::STANDARD.encode([3u8; 32]) });
    for _ in 0..2 {
        let (status, envelope) = server.put(path, key.clone()).await;
        assert_eq!(status, 200, "{envelope}");
    }
    let (_, encryption) = server.get("/api/v1/security/encryption").await;
    assert_eq!(encryption["data"]["current_key_id"], 2, "{encryption}");
}

#[tokio::test]
async fn the_allow_list_applies_to_create_update_and_validate() {
    let sshd = Sshd::start();
    let server = Server::start(Options {
        args: vec!["--allow-target".into(), "127.0.0.1/32".into()],
        ..Default::default()
    });
    let mut body = create_body("in", &sshd);
    let (status, created) = server.post(CREDENTIAL, body.clone()).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();

    body["ssh_credential_property"]["targets"] =
        json!([{ "ip": "127.0.0.2", "port": sshd.addr.port() }]);
    body["name"] = json!("out");
    let (status, refused) = server.post(CREDENTIAL, body.clone()).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.Host.NotAllowed")
    );
    assert_eq!(
        message(&refused),
        "Host 127.0.0.2 is not in the allowed target ranges"
    );
    let (status, refused) = server
        .post(&format!("{CREDENTIAL}/validate"), body.clone())
        .await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.Host.NotAllowed")
    );
    let (status, refused) = server.patch(&format!("{CREDENTIAL}/{id}"), body).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.Host.NotAllowed")
    );
}

/// `body`, whose target at `ip` is where `server` listens, posted to
/// `path`: refused before anything is dialled.
async fn refused_as_the_server_itself(server: &Server, path: &str, body: &Value, ip: &str) {
    let (status, refused) = server.post(path, body.clone()).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.Host.NotAllowed"),
        "{ip}: {refused}"
    );
    assert!(
        message(&refused).contains("this server itself"),
        "{refused}"
    );
}

/// A verifier lends its plugin the credential's targets: one pointing at
/// this server would let the plugin speak HTTP to its own API from inside
/// it (with every scope, on loopback without a password). Refused, however
/// the address is spelt, before anything is dialled.
#[tokio::test]
async fn a_credential_cannot_point_at_the_server_itself() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
        let mut body = create_body("self", &sshd);
        body["ssh_credential_property"]["targets"] = json!([{ "ip": ip, "port": port }]);
        for path in [CREDENTIAL.to_string(), format!("{CREDENTIAL}/validate")] {
            refused_as_the_server_itself(&server, &path, &body, ip).await;
        }
    }
    // Another loopback address with the same port is another socket, and
    // another host's: dialled as any target is.
    let other = std::net::TcpListener::bind(("127.0.0.2", port)).unwrap();
    let mut body = create_body("other", &sshd);
    body["ssh_credential_property"]["targets"] = json!([{ "ip": "127.0.0.2", "port": port }]);
    let (status, refused) = server.post(CREDENTIAL, body).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.SSH.ValidationFailed"),
        "{refused}"
    );
    drop(other);
}

/// A body past the cap is refused whole, named for what it is; one cut off
/// is not taken for a long one.
#[tokio::test]
async fn a_change_with_a_body_past_the_cap_is_refused() {
    let server = Server::start(Options::default());
    let body = format!("{{\"name\":\"{}\"}}", "x".repeat(1 << 20));
    let response = server
        .client()
        .post(format!("{}{CREDENTIAL}", server.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(err_code(&refused), "Common.IllegalArgument", "{refused}");
    assert_eq!(
        message(&refused),
        "Illegal argument: request body is larger than 1048576 bytes",
        "{refused}"
    );
}

/// A server bound to every address answers on each of its machine's
/// addresses, not only on loopback: a credential cannot point at any of
/// them. The server runs in a network namespace of the test's own, where
/// its machine's addresses are loopback and the one address of its link.
#[tokio::test]
async fn a_server_on_every_address_cannot_be_pointed_at_on_any() {
    let sshd = Sshd::start();
    let ns = support::netns::Netns::create();
    let mut server = Server::start(Options {
        listen: Some("0.0.0.0:0".into()),
        args: vec!["--allow-remote-without-password".into()],
        netns: Some(ns.name.clone()),
        ..Default::default()
    });
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    server.base = format!("http://{}:{port}", ns.ns_ip);
    let mut body = create_body("self", &sshd);
    for ip in [ns.ns_ip.as_str(), "127.0.0.1", "127.0.0.53", "::1"] {
        body["ssh_credential_property"]["targets"] = json!([{ "ip": ip, "port": port }]);
        refused_as_the_server_itself(&server, CREDENTIAL, &body, ip).await;
    }
    // The other end of the link is another machine's: dialled as any
    // target is (nothing answers there on that port).
    body["ssh_credential_property"]["targets"] = json!([{ "ip": ns.host_ip, "port": port }]);
    let (status, refused) = server.post(CREDENTIAL, body).await;
    assert_eq!(
        (status, err_code(&refused)),
        (400, "Credential.SSH.ValidationFailed"),
        "{refused}"
    );
}

/// Through a NAT64 gateway, `64:ff9b::a9fe:a9fe` is 169.254.169.254 (a
/// cloud's metadata service): a list that allows IPv6 widely does not let
/// in the IPv4 hosts it does not name. Refused before anything is dialled.
#[tokio::test]
async fn a_nat64_address_is_held_to_the_ipv4_list() {
    let sshd = Sshd::start();
    let server = Server::start(Options {
        args: ["--allow-target", "127.0.0.0/8", "--allow-target", "::/0"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    let mut body = create_body("metadata", &sshd);
    body["ssh_credential_property"]["targets"] =
        json!([{ "ip": "64:ff9b::a9fe:a9fe", "port": 22 }]);
    for path in [CREDENTIAL.to_string(), format!("{CREDENTIAL}/validate")] {
        let (status, refused) = server.post(&path, body.clone()).await;
        assert_eq!(
            (status, err_code(&refused)),
            (400, "Credential.Host.NotAllowed"),
            "{path}: {refused}"
        );
    }
}

/// `0.0.0.0` and `::` name no host, and dialling them reaches this
/// machine: they are refused as targets, list or no list.
#[tokio::test]
async fn a_target_that_names_no_one_host_is_refused() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    for ip in ["0.0.0.0", "::"] {
        let mut body = create_body("nowhere", &sshd);
        body["ssh_credential_property"]["targets"] =
            json!([{ "ip": ip, "port": sshd.addr.port() }]);
        let (status, refused) = server.post(CREDENTIAL, body).await;
        assert_eq!(
            (status, err_code(&refused)),
            (400, "Credential.Host.NotAllowed"),
            "{ip}: {refused}"
        );
    }
}

/// A list narrowed after credentials were stored holds for them too: a
/// batch validation dials none of their targets outside it, and says so
/// per target.
#[tokio::test]
async fn a_narrowed_allow_list_holds_for_stored_credentials() {
    let sshd = Sshd::start();
    let mut server = Server::start(Options::default());
    let (status, created) = server.post(CREDENTIAL, create_body("stored", &sshd)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["credential_id"].as_u64().unwrap();
    server.restart_with_args(&["--allow-target", "127.0.0.2/32"]);
    let detail = server.validate_stored(id).await;
    assert_eq!(detail["reason"], "NOT_GRANTED", "{detail}");
    assert_eq!(detail["connection_result"], "CONNECT_FAILED");
    server.restart_with_args(&[]);
    let detail = server.validate_stored(id).await;
    assert_eq!(detail["reason"], "OK", "{detail}");
}

#[tokio::test]
async fn serves_an_openapi_document_of_every_endpoint() {
    let server = Server::start(Options::default());
    let document: Value = server
        .client()
        .get(format!("{}/api/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = &document["paths"];
    for (path, method) in [
        ("/api/v1/security/credential", "post"),
        ("/api/v1/security/credential/{id}", "get"),
        ("/api/v1/security/credential/{id}", "patch"),
        ("/api/v1/security/credential/{id}", "delete"),
        ("/api/v1/security/credential/validate", "post"),
        ("/api/v1/security/credential/encrypt-secret-key", "put"),
        ("/api/v1/security/credentials", "get"),
        ("/api/v1/security/credentials", "delete"),
        ("/api/v1/security/credentials/validate", "post"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
}

/// A keyring supplied through the environment cannot grow: adding a key is
/// refused for good (not 503 with `Retry-After`, which a client retries
/// forever), and a keyring that does not read is reported without its text,
/// which holds the keys.
#[tokio::test]
async fn a_keyring_from_the_environment_is_read_only_and_never_quoted() {
    const MATERIAL: &str = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";
    let keyring =
        json!({ "current": 1, "keys": [{ "id": 1, "created_us": 0, "material": MATERIAL }] });
    let server = Server::start(Options {
        envs: vec![("CREDHOST_KEYRING".into(), keyring.to_string())],
        ..Default::default()
    });
    let (status, envelope) = server.post("/api/v1/security/keys/rotate", json!({})).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.IllegalArgument"),
        "{envelope}"
    );
    assert!(message(&envelope).contains("read-only"), "{envelope}");
    assert!(!envelope.to_string().contains(MATERIAL));

    // The material where the id goes: serde_json's message would quote it.
    let mixed_up =
        json!({ "current": 1, "keys": [{ "id": MATERIAL, "created_us": 0, "material": "" }] });
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("CREDHOST_KEYRING", mixed_up.to_string())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unreadable at line 1"), "{stderr}");
    assert!(!stderr.contains(&MATERIAL[..16]), "{stderr}");
}
