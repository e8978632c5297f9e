//! API tokens against the real binary: the first one made on the server's
//! machine with or without the server running, each scope allowed exactly
//! its routes, revocation and expiry at once, no token where it does not
//! belong, guessing slowed down, and tokens refused over plain HTTP from
//! beyond loopback (a client in a network namespace of the test's own).

mod support;

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};
use support::netns::Netns;
use support::server::{Options, Server, err_code};

fn forbidden(envelope: &Value) {
    assert_eq!(
        err_code(envelope),
        "Security.Token.InsufficientScope",
        "{envelope}"
    );
}

#[tokio::test]
async fn the_first_token_is_made_on_the_machine_with_or_without_the_server() {
    let mut server = Server::start(Options::default());
    // Running: over its socket in the data directory.
    let online = server.token("online", "admin");
    assert!(online.starts_with("credhost_"), "{online}");
    let (status, me) = server
        .call_as(&online, Method::GET, "/api/v1/tokens/self", None)
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["token"]["created_by"], "local");
    // Stopped (kill -9 leaves its socket behind): straight into its database.
    server.stop();
    let offline = server.token("offline", "read");
    server.restart();
    for token in [&online, &offline] {
        let (status, me) = server
            .call_as(token, Method::GET, "/api/v1/tokens/self", None)
            .await;
        assert_eq!(status, 200, "{me}");
    }
    let (_, list) = server
        .call_as(&online, Method::GET, "/api/v1/tokens", None)
        .await;
    let names: Vec<&str> = list["data"]["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["online", "offline"]);
    // Neither token's secret is in any answer, file or log line.
    // `credhost_<id>_<secret>`: the secret's base64url may hold `_` itself.
    let secret_of = |t: &str| t.splitn(3, '_').nth(2).unwrap().to_string();
    for token in [&online, &offline] {
        let secret = secret_of(token);
        assert!(!list.to_string().contains(&secret));
        for file in ["credhost.redb", "audit.log"] {
            let bytes = std::fs::read(server.data_dir().join(file)).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the token's secret is in {file}"
            );
        }
        assert!(!server.log_text().contains(&secret));
    }
}

#[tokio::test]
async fn each_scope_does_only_what_it_must() {
    let server = Server::start(Options::default());
    let closed = support::closed_port();
    let unstored = json!({ "target_type": "HOST", "ssh_credential_property": {
        "targets": [{ "ip": "127.0.0.1", "port": closed }],
        "username": "u", "type": "PASSWORD", "passphrase": "p" } });
    let mut create = unstored.clone();
    create["name"] = "c".into();
    // A write that gets past the scope check answers the service's 400.
    let requests: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (Method::GET, "/api/v1/security/credentials", None, "read"),
        (Method::GET, "/api/v1/security/encryption", None, "read"),
        (Method::GET, "/api/v1/plugins", None, "read"),
        (Method::GET, "/metrics", None, "read"),
        (
            Method::POST,
            "/api/v1/security/credential/validate",
            Some(unstored.clone()),
            "validate",
        ),
        (
            Method::POST,
            "/api/v1/security/credentials/validate",
            Some(json!({ "credential_id_list": [] })),
            "validate",
        ),
        (
            Method::POST,
            "/api/v1/security/credential",
            Some(create),
            "write",
        ),
        (
            Method::DELETE,
            "/api/v1/security/credentials",
            Some(json!({ "credential_id_list": [1] })),
            "write",
        ),
        (Method::POST, "/api/v1/security/keys/rotate", None, "admin"),
        (Method::GET, "/api/v1/tokens", None, "admin"),
        (Method::GET, "/api/v1/audit", None, "admin"),
        (Method::POST, "/api/v1/plugins/reload", None, "admin"),
    ];
    let order = ["read", "validate", "write", "admin"];
    for (rank, scope) in order.iter().enumerate() {
        let token = server.token(&format!("t-{scope}"), scope);
        for (method, path, body, needs) in &requests {
            let allowed = order.iter().position(|s| s == needs).unwrap() <= rank;
            let (status, envelope) = server
                .call_as(&token, method.clone(), path, body.clone())
                .await;
            if allowed {
                assert_ne!(status, 403, "{scope} {method} {path}: {envelope}");
                assert_ne!(status, 401, "{scope} {method} {path}: {envelope}");
            } else {
                assert_eq!(status, 403, "{scope} {method} {path}: {envelope}");
                forbidden(&envelope);
            }
        }
    }
    // A token cannot make a stronger one, and nobody can make one without a name.
    let writer = server.token("writer", "write");
    let (status, envelope) = server
        .call_as(
            &writer,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "x", "scope": "admin" })),
        )
        .await;
    assert_eq!(status, 403, "{envelope}");
    let admin = server.token("admin2", "admin");
    let (status, envelope) = server
        .call_as(
            &admin,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "", "scope": "read" })),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");
}

/// Revokes token `id` as `by`; the answer's envelope.
async fn revoke(server: &Server, by: &str, id: &str) -> Value {
    let (status, revoked) = server
        .call_as(by, Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(status, 200, "{revoked}");
    revoked
}

#[tokio::test]
async fn revocation_and_expiry_hold_at_once() {
    let server = Server::start(Options::default());
    let admin = server.token("admin", "admin");
    let (status, made) = server
        .call_as(
            &admin,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "ci", "scopes": ["read", "validate"] })),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["data"]["scope"], "validate");
    let ci = made["data"]["token"].as_str().unwrap().to_string();
    let id = made["data"]["id"].as_str().unwrap().to_string();
    let read = |token: String| {
        let server = &server;
        async move {
            server
                .call_as(&token, Method::GET, "/api/v1/security/credentials", None)
                .await
        }
    };
    assert_eq!(read(ci.clone()).await.0, 200);
    let revoked = revoke(&server, &admin, &id).await;
    assert_eq!(revoked["data"]["state"], "revoked");
    let (status, envelope) = read(ci).await;
    assert_eq!(status, 401, "{envelope}");
    assert_eq!(err_code(&envelope), "Security.Authentication.Token.Invalid");

    let (_, short) = server
        .call_as(
            &admin,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "short", "scope": "read", "ttl_secs": 1 })),
        )
        .await;
    let short = short["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(read(short.clone()).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, envelope) = read(short).await;
    assert_eq!(status, 401, "{envelope}");
    // An unknown token, and a real one with a flipped character, get the
    // same answer.
    let mut forged = admin.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let (status, a) = read(String::from_utf8(forged).unwrap()).await;
    let (_, b) = read("credhost_0000000000000000_".to_string() + &"A".repeat(43)).await;
    assert_eq!(status, 401);
    assert_eq!(a["error"], b["error"]);
}

/// Nor does a token outlive its maker's revocation: revoking a stolen admin
/// token revokes the tokens it made, and the ones they made, while tokens
/// made otherwise keep working.
#[tokio::test]
async fn revoking_a_token_revokes_the_tokens_it_made() {
    let server = Server::start(Options::default());
    let admin = server.token("admin", "admin");
    let bystander = server.token("bystander", "read");
    let make = |by: String, name: &'static str| {
        let server = &server;
        async move {
            let (status, made) = server
                .call_as(
                    &by,
                    Method::POST,
                    "/api/v1/tokens",
                    Some(json!({ "name": name, "scope": "admin" })),
                )
                .await;
            assert_eq!(status, 200, "{made}");
            let data = &made["data"];
            (
                data["token"].as_str().unwrap().to_string(),
                data["id"].as_str().unwrap().to_string(),
            )
        }
    };
    let (stolen, stolen_id) = make(admin.clone(), "stolen").await;
    let (child, child_id) = make(stolen.clone(), "child").await;
    let (grandchild, grandchild_id) = make(child.clone(), "grandchild").await;
    let status_of = |token: String| {
        let server = &server;
        async move {
            server
                .call_as(&token, Method::GET, "/api/v1/tokens/self", None)
                .await
                .0
        }
    };
    for token in [&stolen, &child, &grandchild, &bystander] {
        assert_eq!(status_of(token.clone()).await, 200);
    }
    revoke(&server, &admin, &stolen_id).await;
    for token in [&stolen, &child, &grandchild] {
        assert_eq!(status_of(token.clone()).await, 401);
    }
    assert_eq!(status_of(bystander).await, 200);
    assert_eq!(status_of(admin.clone()).await, 200);
    let (_, list) = server
        .call_as(&admin, Method::GET, "/api/v1/tokens", None)
        .await;
    for id in [&child_id, &grandchild_id] {
        let record = list["data"]["contents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == json!(id))
            .unwrap_or_else(|| panic!("{id} not listed: {list}"));
        assert_eq!(record["state"], "revoked", "{record}");
    }
}

/// An admin token that expires cannot outlive itself by making another
/// admin token without an end: what it makes expires when it does, at the
/// latest.
#[tokio::test]
async fn a_token_that_expires_makes_none_that_outlives_it() {
    let server = Server::start(Options::default());
    let admin = server.token("admin", "admin");
    let make = |by: String, body: Value| {
        let server = &server;
        async move {
            let (status, made) = server
                .call_as(&by, Method::POST, "/api/v1/tokens", Some(body))
                .await;
            assert_eq!(status, 200, "{made}");
            made["data"].clone()
        }
    };
    let contractor = make(
        admin.clone(),
        json!({ "name": "contractor", "scope": "admin", "ttl_secs": 2 }),
    )
    .await;
    let contractor = contractor["token"].as_str().unwrap().to_string();
    let forever = make(
        contractor.clone(),
        json!({ "name": "forever", "scope": "admin" }),
    )
    .await;
    let longer = make(
        contractor,
        json!({ "name": "longer", "scope": "admin", "ttl_secs": 86_400 }),
    )
    .await;
    for made in [&forever, &longer] {
        assert!(made["expires_at"].is_string(), "{made}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    for made in [forever, longer] {
        let token = made["token"].as_str().unwrap().to_string();
        let (status, envelope) = server
            .call_as(&token, Method::GET, "/api/v1/tokens", None)
            .await;
        assert_eq!(status, 401, "{envelope}");
    }
    // A token without an end still makes one without an end.
    let unbounded = make(admin, json!({ "name": "ops", "scope": "admin" })).await;
    assert!(unbounded["expires_at"].is_null(), "{unbounded}");
}

/// A lifetime that would end past the calendar's last year is refused, and
/// nothing is stored. On a server east of UTC such an expiry made the
/// server panic while writing the answer, after the token was stored: the
/// client never got its secret, and every list of tokens panicked after.
#[tokio::test]
async fn a_lifetime_past_the_calendar_is_refused_and_nothing_is_stored() {
    let server = Server::start(Options {
        // UTC+8, as the POSIX TZ spells it (no zone files needed).
        envs: vec![("TZ".into(), "CST-8".into())],
        ..Default::default()
    });
    let admin = server.token("admin", "admin");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Ends at 9999-12-31T20:00Z: the year 10000 at +08:00.
    let ttl = 253_402_286_400 - now;
    let (status, refused) = server
        .call_as(
            &admin,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "forever", "scope": "read", "ttl_secs": ttl })),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(err_code(&refused), "Common.IllegalArgument");
    let (status, list) = server
        .call_as(&admin, Method::GET, "/api/v1/tokens", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert!(!list.to_string().contains("forever"), "{list}");
}

#[tokio::test]
async fn guessing_tokens_is_slowed_down() {
    let server = Server::start(Options::default());
    let mut statuses = Vec::new();
    for i in 0..20 {
        let guess = format!("credhost_{i:016x}_{}", "x".repeat(43));
        statuses.push(
            server
                .call_as(&guess, Method::GET, "/api/v1/security/credentials", None)
                .await
                .0,
        );
    }
    assert_eq!(statuses[0], 401);
    assert!(statuses.contains(&429), "{statuses:?}");
    // Whoever guessed from this address locks out no one holding a good
    // token behind it.
    let good = server.token("good", "read");
    let (status, envelope) = server
        .call_as(&good, Method::GET, "/api/v1/security/credentials", None)
        .await;
    assert_eq!(status, 200, "{envelope}");
}

fn curl_in(ns: &Netns, token: &str, url: &str, extra: &[&str]) -> Value {
    let out = ns
        .command("curl")
        .args(["-s", "-m", "10", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("curl: {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn tokens_cross_the_network_only_over_tls() {
    let ns = Netns::create();
    let listen = format!("{}:0", ns.host_ip);
    let plain = Server::start(Options {
        listen: Some(listen.clone()),
        args: vec!["--allow-remote-without-password".into()],
        ..Default::default()
    });
    let token = plain.token("remote", "read");
    let url = format!("{}/api/v1/security/credentials", plain.base);
    let answer = curl_in(&ns, &token, &url, &[]);
    assert_eq!(answer["status"], 403, "{answer}");
    assert_eq!(
        answer["error"]["errCode"],
        "Security.Authentication.Token.InsecureTransport"
    );
    // Records of reads reach the file within milliseconds, not at once.
    let wanted = format!("\"client\":\"{}\"", ns.ns_ip);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !std::fs::read_to_string(plain.data_dir().join("audit.log"))
        .unwrap()
        .contains(&wanted)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the refusal is audited with the client's address"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(plain);

    // The operator accepted the risk: then it works.
    let open = Server::start(Options {
        listen: Some(listen.clone()),
        args: vec![
            "--allow-remote-without-password".into(),
            "--allow-tokens-over-plain-http".into(),
        ],
        ..Default::default()
    });
    let token = open.token("remote", "read");
    let answer = curl_in(
        &ns,
        &token,
        &format!("{}/api/v1/security/credentials", open.base),
        &[],
    );
    assert_eq!(answer["status"], 200, "{answer}");
    drop(open);

    // Over TLS it works without that flag.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={}", ns.host_ip)])
        .args(["-addext", &format!("subjectAltName=IP:{}", ns.host_ip)])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let tls = Server::start(Options {
        listen: Some(listen),
        args: vec![
            "--allow-remote-without-password".into(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        ..Default::default()
    });
    let token = tls.token("remote", "read");
    let answer = curl_in(
        &ns,
        &token,
        &format!("{}/api/v1/security/credentials", tls.base),
        &["--cacert", &cert.display().to_string()],
    );
    assert_eq!(answer["status"], 200, "{answer}");
}

/// A token made by `by` as `body` asks; its text and id.
async fn make_token(server: &Server, by: &str, body: Value) -> (String, String) {
    let (status, made) = server
        .call_as(by, Method::POST, "/api/v1/tokens", Some(body))
        .await;
    assert_eq!(status, 200, "{made}");
    let field = |name: &str| made["data"][name].as_str().unwrap().to_string();
    (field("token"), field("id"))
}

/// The status of `GET /api/v1/tokens/self` with `token`.
async fn who_am_i(server: &Server, token: &str) -> u16 {
    let (status, _) = server
        .call_as(token, Method::GET, "/api/v1/tokens/self", None)
        .await;
    status
}

/// A stolen admin token cannot make a line of tokens, each made by the one
/// before, longer than revocation follows: the line stops at 64 tokens, and
/// revoking its first made token revokes every token after it.
#[tokio::test]
async fn a_line_of_tokens_stops_where_revocation_still_reaches_its_end() {
    let server = Server::start(Options::default());
    let admin = server.token("admin", "admin");
    let make = |by: String| {
        let server = &server;
        async move {
            server
                .call_as(
                    &by,
                    Method::POST,
                    "/api/v1/tokens",
                    Some(json!({ "name": "next", "scope": "admin" })),
                )
                .await
        }
    };
    // The socket's token is the first of the line; 63 more follow it.
    let mut line: Vec<(String, String)> = Vec::new();
    let mut by = admin.clone();
    for _ in 0..63 {
        let (status, made) = make(by).await;
        assert_eq!(status, 200, "{made}");
        let data = &made["data"];
        let token = data["token"].as_str().unwrap().to_string();
        line.push((token.clone(), data["id"].as_str().unwrap().to_string()));
        by = token;
    }
    let (status, refused) = make(by.clone()).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(err_code(&refused), "Common.IllegalArgument", "{refused}");
    assert_eq!(who_am_i(&server, &by).await, 200);
    revoke(&server, &admin, &line[0].1).await;
    for (token, _) in [&line[1], &line[62]] {
        assert_eq!(who_am_i(&server, token).await, 401);
    }
    assert_eq!(who_am_i(&server, &admin).await, 200);
}

/// Without a password anyone who reaches the server may make a token, and
/// may plant one to keep: once the server has a password, tokens made so
/// (and those they made) are refused; one made on the server's socket stays.
#[tokio::test]
async fn tokens_made_without_a_password_are_refused_once_there_is_one() {
    let mut server = Server::start(Options::default());
    let local = server.token("local", "admin");
    let (status, made) = server
        .post(
            "/api/v1/tokens",
            json!({ "name": "planted", "scope": "admin" }),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    let planted = made["data"]["token"].as_str().unwrap().to_string();
    let planted_id = made["data"]["id"].as_str().unwrap().to_string();
    let (offspring, _) = make_token(
        &server,
        &planted,
        json!({ "name": "offspring", "scope": "read" }),
    )
    .await;
    for token in [&planted, &offspring, &local] {
        assert_eq!(who_am_i(&server, token).await, 200);
    }

    let config = server.data_dir().with_file_name("password.toml");
    std::fs::write(&config, "password = \"Closed-8841\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    server.restart_with_args(&["--config", config.to_str().unwrap()]);
    for token in [&planted, &offspring] {
        assert_eq!(who_am_i(&server, token).await, 401);
    }
    assert_eq!(who_am_i(&server, &local).await, 200);
    let (_, list) = server
        .call_as(&local, Method::GET, "/api/v1/tokens", None)
        .await;
    let record = list["data"]["contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(planted_id))
        .cloned()
        .unwrap_or_default();
    assert_eq!(record["state"], "revoked", "{list}");
    assert!(
        server
            .log_text()
            .contains("tokens made without a password are refused"),
        "{}",
        server.log_text()
    );
}

/// A token's name is the caller's text: it cannot write a line of its own
/// into the server's log.
#[tokio::test]
async fn a_token_s_name_cannot_forge_a_log_line() {
    let server = Server::start(Options::default());
    let admin = server.token("admin", "admin");
    let forged = "x\nFORGED-4471 INFO credhost: token revoked";
    let (_, id) = make_token(&server, &admin, json!({ "name": forged, "scope": "read" })).await;
    revoke(&server, &admin, &id).await;
    let log = server.log_text();
    assert!(log.contains("FORGED-4471"), "{log}");
    assert!(!log.lines().any(|line| line.starts_with("FORGED")), "{log}");
}

/// `token create --data-dir` trusts whatever answers on the socket in that
/// directory: in one others may write, anyone could answer, with a token of
/// theirs. Refused before the socket is tried.
#[test]
fn a_data_directory_others_may_write_is_not_asked_for_a_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let planted = std::os::unix::net::UnixListener::bind(open.join("credhost.sock")).unwrap();
    planted.set_nonblocking(true).unwrap();
    // `token create` in `dir`; what it said on stderr. The planted socket
    // never answers: a client that asked it would wait, until the timeout.
    let create_in = |dir: &std::path::Path| {
        let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(["token", "create", "--name", "x", "--scope", "admin"])
            .arg("--data-dir")
            .arg(dir)
            .timeout(std::time::Duration::from_secs(10))
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = create_in(&open);
    assert!(said.contains("not a credhost data directory"), "{said}");
    assert!(planted.accept().is_err(), "the planted socket was asked");
    // Root may ask the server of whichever user owns its directory (`sudo
    // credhost token create` for a service's account). Only root can make
    // a directory another user's, so only root's runs check this.
    if unsafe { libc::geteuid() } == 0 {
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let said = create_in(&theirs);
        assert!(said.contains("holds no credhost database"), "{said}");
    }
}
