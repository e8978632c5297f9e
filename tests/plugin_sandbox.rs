//! Hostile plugins are contained: each misbehaviour is a clean error within
//! its limit, and the runtime keeps serving other calls.

mod support;

use credhost::budget::Client;
use credhost::capabilities::HostKeys;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use credhost::plugins::{LimitsOverride, PluginError, Purpose, Registry, Target};
use support::ms;

const LIMITS: LimitsOverride = LimitsOverride {
    deadline_ms: Some(300),
    memory_bytes: Some(32 << 20),
    output_bytes: Some(1 << 20),
};

async fn hostile() -> (Registry, tempfile::TempDir) {
    let dir = support::plugin_dir(&["hostile_verifier"]);
    let runtime = support::runtime(support::quick_ssh()).await;
    let registry =
        support::registry(&runtime, Some(dir.path()), &[("hostile-verifier", LIMITS)]).await;
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
    (registry, dir)
}

async fn normalize_mode(registry: &Registry, mode: &str) -> Result<(), PluginError> {
    let plugin = registry
        .verifier("HOSTILE")
        .expect("the fixture serves HOSTILE");
    plugin
        .normalize(&format!(r#"{{"mode":"{mode}"}}"#), Purpose::Validate, None)
        .await
        .map(|r| {
            r.expect("the fixture never refuses");
        })
}

#[tokio::test]
async fn an_infinite_loop_hits_the_deadline_and_the_next_call_works() {
    let (registry, _dir) = hostile().await;
    let started = Instant::now();
    let error = normalize_mode(&registry, "loop").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, PluginError::Deadline { .. }), "{error}");
    assert!(took < ms(2_000), "the loop ran {took:?}, limit 300 ms");
    normalize_mode(&registry, "ok").await.unwrap();
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let (registry, _dir) = hostile().await;
    let error = normalize_mode(&registry, "memory").await.unwrap_err();
    assert!(
        matches!(error, PluginError::Memory { limit, .. } if limit == 32 << 20),
        "{error}"
    );
    normalize_mode(&registry, "ok").await.unwrap();
}

#[tokio::test]
async fn a_panic_is_a_trap_of_that_call_only() {
    let (registry, _dir) = hostile().await;
    let error = normalize_mode(&registry, "panic").await.unwrap_err();
    assert!(matches!(error, PluginError::Trap { .. }), "{error}");
    normalize_mode(&registry, "ok").await.unwrap();
}

#[tokio::test]
async fn an_oversized_return_is_refused() {
    let (registry, _dir) = hostile().await;
    let error = normalize_mode(&registry, "oversize").await.unwrap_err();
    assert!(
        matches!(error, PluginError::Output { size, limit, .. } if size > limit && limit == 1 << 20),
        "{error}"
    );
    normalize_mode(&registry, "ok").await.unwrap();
}

#[tokio::test]
async fn a_spinning_plugin_does_not_hold_up_the_others() {
    let (registry, _dir) = hostile().await;
    let (spun, quick) = tokio::join!(normalize_mode(&registry, "loop"), async {
        tokio::time::sleep(ms(20)).await;
        let started = Instant::now();
        for _ in 0..20 {
            normalize_mode(&registry, "ok").await.unwrap();
        }
        started.elapsed()
    });
    assert!(matches!(spun, Err(PluginError::Deadline { .. })));
    assert!(
        quick < ms(2_000),
        "20 calls beside a spinning one took {quick:?}"
    );
}

/// The fixture's `verify` of `public`, granted `grant`.
async fn verify(
    registry: &Registry,
    public: serde_json::Value,
    grant: &[Target],
) -> Result<Vec<credhost::plugins::Detail>, PluginError> {
    registry
        .verifier("HOSTILE")
        .unwrap()
        .verify(
            &public.to_string(),
            &credhost::secret::Secret::new(Vec::new()),
            grant,
            &HostKeys::learn(Vec::new()),
            &Client::default(),
        )
        .await
}

/// What the fixture's `verify` reported.
async fn verify_messages(
    registry: &Registry,
    public: serde_json::Value,
    grant: &[Target],
) -> Vec<String> {
    let details = verify(registry, public, grant).await.unwrap();
    details.into_iter().map(|d| d.message).collect()
}

/// How the fixture's `verify` failed.
async fn verify_error(
    registry: &Registry,
    public: serde_json::Value,
    grant: &[Target],
) -> PluginError {
    verify(registry, public, grant).await.unwrap_err()
}

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[tokio::test]
async fn a_socket_outside_the_grant_is_refused_without_a_packet() {
    let (registry, _dir) = hostile().await;
    let (listener, addr) = listener();
    let other = Target {
        ip: "127.0.0.1".parse().unwrap(),
        port: support::closed_port(),
    };
    let messages = verify_messages(
        &registry,
        serde_json::json!({ "connect": addr.to_string() }),
        &[other],
    )
    .await;
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].starts_with("refused by the sandbox"),
        "{messages:?}"
    );
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the listener outside the grant saw a connection"
    );

    // The same address, granted, connects: the check is what refused it.
    let granted = Target {
        ip: addr.ip(),
        port: addr.port(),
    };
    let messages = verify_messages(
        &registry,
        serde_json::json!({ "connect": addr.to_string() }),
        &[granted],
    )
    .await;
    assert_eq!(messages, vec!["connected".to_string()]);
}

/// One call holds a bounded number of WASI resources (each socket a file
/// descriptor of the server's), however many connections its targets take:
/// past them, the call traps.
#[tokio::test]
async fn a_call_holds_a_bounded_number_of_sockets() {
    let (registry, _dir) = hostile().await;
    // Enough targets that eight connections to each are more than the
    // table's entries.
    let listeners: Vec<_> = (0..credhost::plugins::MAX_RESOURCES / 2)
        .map(|_| listener())
        .collect();
    let granted: Vec<Target> = listeners
        .iter()
        .map(|(_, addr)| Target {
            ip: addr.ip(),
            port: addr.port(),
        })
        .collect();
    let addresses: Vec<String> = listeners.iter().map(|(_, a)| a.to_string()).collect();
    let public = serde_json::json!({ "connect-many": addresses });
    let error = verify_error(&registry, public, &granted).await;
    assert!(
        matches!(&error, PluginError::Trap { reason, .. } if reason.contains("resource table has no free keys")),
        "{error}"
    );
    // Fewer connections reached the listeners than the table has entries.
    let mut accepted = 0;
    for (listener, _) in &listeners {
        while listener.accept().is_ok() {
            accepted += 1;
        }
    }
    assert!(
        (1..credhost::plugins::MAX_RESOURCES).contains(&accepted),
        "{accepted} connections"
    );
}

/// A verification tries its secret once per target, however often its
/// plugin was handed the target (a 0.1 plugin gets a request's targets as
/// sent, copies and all) or dials it: at most eight connections of its own
/// to each, and one login through the `ssh` capability. Otherwise one
/// token of the guess limit would buy a thousand logins.
#[tokio::test]
async fn a_verification_reaches_each_target_only_so_often() {
    let (registry, _dir) = hostile().await;
    let (listener, addr) = listener();
    let granted = Target {
        ip: addr.ip(),
        port: addr.port(),
    };
    let public = serde_json::json!({ "connect-many": addr.to_string() });
    let messages = verify_messages(&registry, public, &[granted]).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].starts_with("held 8: "), "{messages:?}");
    let mut accepted = 0;
    while listener.accept().is_ok() {
        accepted += 1;
    }
    assert_eq!(accepted, 8);

    // Three logins to one target in one call: the first is made (and
    // refused, nothing listens), the copies are not.
    let closed = support::closed_port();
    let public = serde_json::json!({ "ssh": { "ip": "127.0.0.1", "port": closed }, "times": 3 });
    let target = Target {
        ip: "127.0.0.1".parse().unwrap(),
        port: closed,
    };
    let messages = verify_messages(&registry, public, &[target, target, target]).await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].starts_with("Outcome::Refused"), "{messages:?}");
    for copy in &messages[1..] {
        assert!(
            copy.starts_with("Outcome::NotGranted")
                && copy.contains("logged in to this target already"),
            "{messages:?}"
        );
    }

    // A list longer than any credential's targets is the plugin making the
    // host hold a login for each entry: the call traps.
    let public = serde_json::json!({ "ssh": { "ip": "127.0.0.1", "port": closed }, "times": 1001 });
    let error = verify_error(&registry, public, &[target]).await;
    assert!(
        matches!(&error, PluginError::Trap { reason, .. } if reason.contains("a credential has at most 1000")),
        "{error}"
    );
}

#[tokio::test]
async fn ssh_to_a_target_outside_the_grant_is_refused_without_a_packet() {
    let (registry, _dir) = hostile().await;
    let (listener, addr) = listener();
    let public = serde_json::json!({ "ssh": { "ip": "127.0.0.1", "port": addr.port() } });
    let other = Target {
        ip: "127.0.0.1".parse().unwrap(),
        port: support::closed_port(),
    };
    let messages = verify_messages(&registry, public, &[other]).await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("NotGranted"), "{messages:?}");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

/// Against the real binary: a plugin that writes the secret it was given
/// into a log line, and into a verdict that breaks the contract, gets it
/// masked in both: neither the server's log nor the error answered holds it.
#[tokio::test]
async fn a_plugin_quoting_its_secret_leaks_it_nowhere() {
    use support::server::{Options, Server};
    const SECRET: &str = "Quoted-Secret-8841";

    let dir = support::plugin_dir(&["hostile_verifier"]);
    let server = Server::start(Options {
        args: vec!["--plugin-dir".into(), dir.path().display().to_string()],
        ..Default::default()
    });
    let echo = serde_json::json!({ "target_type": "HOSTILE",
        "hostile_property": { "echo": true, "secret": SECRET } });
    let (status, envelope) = server
        .post("/api/v1/security/credential/validate", echo)
        .await;
    assert_eq!(status, 500, "{envelope}");
    let message = envelope["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("connection-result \"******\""),
        "{envelope}"
    );
    assert!(!envelope.to_string().contains(SECRET), "{envelope}");
    let log = server.log_text();
    assert!(log.contains("the secret is ******"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

/// Whether `text` holds `n` hex digits in a row: a 32-byte key, printed.
fn has_hex_run(text: &str, n: usize) -> bool {
    text.as_bytes()
        .split(|b| !b.is_ascii_hexdigit())
        .any(|run| run.len() >= n)
}

/// Against the real binary: plugins that log or quote what they were handed
/// outside a verification (a property to `normalize`, a key and plaintext
/// to `seal`, a key to `open` and what it opened) leak it nowhere. Their
/// lines are logged as the call ends, the secret masked: a property's
/// `writeOnly` fields (any case, and as JSON quotes them: a key's line
/// breaks), every string of a 0.1 plugin's property (its schema names
/// none; a password holding the username is masked whole), a policy's key
/// and plaintexts; so are a policy's refusals.
#[tokio::test]
async fn plugins_logging_their_input_leak_it_nowhere() {
    use support::server::{Options, Server, err_code, message};
    // What must show nowhere, whole or in part.
    const ANSWERED: &str = "Answered-Breaker-3309";
    const SECRETS: [&str; 8] = [
        "Breaker-Line-5521",
        "Breaker-Quote-5522",
        "Hostile-7730",
        "refuse-seal-Leaky-4419",
        "refuse-open-Leaky-8812",
        "Opened-Leaky-6650",
        "trap-open-Leaky-5120",
        ANSWERED,
    ];

    let dir = support::plugin_dir(&[
        "contract_breaker",
        "hostile_verifier",
        "instant_verifier",
        "leaky_policy",
    ]);
    let server = Server::start(Options {
        args: vec!["--plugin-dir".into(), dir.path().display().to_string()],
        ..Default::default()
    });
    let mut answers = Vec::new();
    let multi_line = format!("{}\n{}\"\\", SECRETS[0], SECRETS[1]);
    // Longer than the host keeps of a line until it is masked: the line is
    // cut inside the secret, which is then never found whole.
    let long: String = (0..10_000).map(|i| format!("L{i:04}")).collect();
    for body in [
        serde_json::json!({ "target_type": "BREAKER",
            "breaker_property": { "mode": "log-property", "PassPhrase": multi_line } }),
        serde_json::json!({ "target_type": "BREAKER",
            "breaker_property": { "mode": "log-property", "PassPhrase": long } }),
        // The secret it answers is its own, derived from the property's.
        serde_json::json!({ "target_type": "BREAKER",
            "breaker_property": { "mode": "log-answer", "Passphrase": ANSWERED.chars().rev().collect::<String>() } }),
        serde_json::json!({ "target_type": "HOSTILE",
            "hostile_property": { "mode": "log-input", "user": "admin",
                "secret": format!("admin@{}", SECRETS[2]) } }),
    ] {
        let (_, envelope) = server
            .post("/api/v1/security/credential/validate", body)
            .await;
        answers.push(envelope);
    }

    server.swap_policy("leaky").await;
    // One credential per address and type: each its own.
    let instant = |name: &str, passphrase: &str| {
        serde_json::json!({ "name": name, "target_type": "INSTANT",
            "instant_credential_property": { "targets": [{ "ip": format!("127.0.9.{}", name.len()) }],
                "username": "u", "passphrase": passphrase } })
    };
    let (status, refused) = server
        .post("/api/v1/security/credential", instant("a", SECRETS[3]))
        .await;
    assert_eq!(status, 500, "{refused}");
    assert_eq!(err_code(&refused), "Credential.EncryptFailed");
    let said = message(&refused);
    assert!(
        said.contains("will not seal ****** with key ******"),
        "{said}"
    );
    answers.push(refused.clone());
    let mut ids = Vec::new();
    for (name, passphrase) in [
        ("bb", SECRETS[4]),
        ("ccc", SECRETS[5]),
        ("dddd", SECRETS[6]),
    ] {
        let (status, created) = server
            .post("/api/v1/security/credential", instant(name, passphrase))
            .await;
        assert_eq!(status, 200, "{created}");
        ids.push(created["data"]["credential_id"].clone());
    }
    let trapping = ids.pop().unwrap();
    // The policy refuses and traps only on ciphertexts five seconds old:
    // the server opened each as it sealed it.
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    let (_, validated) = server
        .post(
            "/api/v1/security/credentials/validate",
            serde_json::json!({ "credential_id_list": ids }),
        )
        .await;
    assert!(
        validated
            .to_string()
            .contains("will not open with key ******"),
        "{validated}"
    );
    answers.push(validated);
    // A call that traps after logging what it opened: what that was is
    // not known, and its lines go whole.
    let (_, trapped) = server
        .post(
            "/api/v1/security/credentials/validate",
            serde_json::json!({ "credential_id_list": [trapping] }),
        )
        .await;
    assert!(trapped.to_string().contains("trap"), "{trapped}");
    answers.push(trapped);

    let log = server.log_text();
    for said in [
        "normalizing",
        "answering ******",
        "sealing ****** with key ******",
        "opening with key ******",
        "opened ******",
    ] {
        assert!(log.contains(said), "{said:?} is not in the log:\n{log}");
    }
    // The policy's own lines only: the log names plugins by their SHA-256.
    let policy_lines = log.lines().filter(|l| l.contains("with key"));
    for text in answers
        .iter()
        .map(|a| a.to_string())
        .chain(policy_lines.map(str::to_owned))
    {
        assert!(!has_hex_run(&text, 64), "a key in {text}");
    }
    for text in answers.iter().map(|a| a.to_string()).chain([log]) {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(!text.contains(&long[..20]), "the long secret in {text}");
    }
}

/// Against the real binary: more spinning plugin calls than the server has
/// threads, and it still answers. Wasm runs inside a task's poll; a call
/// that never yielded would hold its thread until its deadline, and these
/// would hold them all.
#[tokio::test]
async fn spinning_plugins_leave_the_server_answering() {
    use support::server::{Options, Server};

    let dir = support::plugin_dir(&["hostile_verifier"]);
    let server = std::sync::Arc::new(Server::start(Options {
        args: vec!["--plugin-dir".into(), dir.path().display().to_string()],
        config: Some("[plugins.hostile-verifier]\ndeadline_ms = 4000\n".into()),
        ..Default::default()
    }));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spin =
        serde_json::json!({ "target_type": "HOSTILE", "hostile_property": { "mode": "loop" } });
    let spinning: Vec<_> = (0..threads * 2)
        .map(|_| {
            let (server, spin) = (server.clone(), spin.clone());
            tokio::spawn(async move {
                server
                    .post("/api/v1/security/credential/validate", spin)
                    .await
            })
        })
        .collect();
    // Long enough for every one of them to be spinning.
    tokio::time::sleep(ms(500)).await;
    let (status, envelope) = server.get("/api/v1/security/credentials").await;
    assert_eq!(status, 200, "{envelope}");
    assert!(
        spinning.iter().all(|call| !call.is_finished()),
        "the server answered only once the spinning calls had ended"
    );
    for call in spinning {
        let (status, envelope) = call.await.unwrap();
        assert_eq!(status, 500, "{envelope}");
        assert_eq!(
            envelope["error"]["message"],
            "plugin hostile-verifier did not finish within its 4s deadline",
        );
    }
}

/// Sealing and opening count against the requesting client's share of the
/// quick instances, as its `normalize` does: a client that holds its whole
/// share cannot seal on the server's, and another client still can.
#[tokio::test]
async fn a_seal_counts_against_its_client() {
    use credhost::plugins::{EngineSettings, SealError};
    use credhost::secret::Secret;

    // 4 quick instances, 3 of them per client; a short wait for one.
    let settings = EngineSettings {
        quick_instances: 4,
        queue_wait_ms: 300,
        ..EngineSettings::default()
    };
    let dir = support::plugin_dir(&["hostile_verifier"]);
    let runtime = support::runtime_with(settings, support::quick_ssh()).await;
    let spin = LimitsOverride {
        deadline_ms: Some(3_000),
        ..LIMITS
    };
    let registry =
        support::registry(&runtime, Some(dir.path()), &[("hostile-verifier", spin)]).await;
    let hostile = registry.verifier("HOSTILE").unwrap();
    let policy = registry.policy("aes-256-gcm").unwrap();
    let (greedy, other) = (Client::new("greedy"), Client::new("other"));
    let key = Secret::new(vec![7; 32]);
    let secret = Secret::new(b"a secret".to_vec());

    let spinning = async {
        let calls = (0..3)
            .map(|_| hostile.normalize_for(&greedy, r#"{"mode":"loop"}"#, Purpose::Validate, None));
        futures::future::join_all(calls).await
    };
    let seals = async {
        // Every one of its spinning calls holds a slot by now.
        tokio::time::sleep(ms(300)).await;
        let greedy = policy.seal(&greedy, &key, &secret, b"aad").await;
        let other = policy.seal(&other, &key, &secret, b"aad").await;
        (greedy, other)
    };
    let (spun, (greedy, other)) = tokio::join!(spinning, seals);
    assert!(
        matches!(greedy, Err(SealError::Plugin(PluginError::Busy(_)))),
        "the greedy client sealed beyond its share: {greedy:?}"
    );
    assert!(other.is_ok(), "{other:?}");
    for call in spun {
        assert!(matches!(call, Err(PluginError::Deadline { .. })));
    }
}

/// Against the real binary: a plugin that logs without end gets its call's
/// budget of lines in the server's log, then one line saying the rest are
/// dropped.
#[tokio::test]
async fn a_plugin_cannot_flood_the_server_log() {
    use support::server::{Options, Server};

    let dir = support::plugin_dir(&["hostile_verifier"]);
    let server = Server::start(Options {
        args: vec!["--plugin-dir".into(), dir.path().display().to_string()],
        ..Default::default()
    });
    let flood = serde_json::json!({ "target_type": "HOSTILE",
        "hostile_property": { "mode": "log-flood" } });
    for _ in 0..2 {
        // Its verify answers for no target (a 0.1 contract error): only
        // what normalize logged matters here.
        server
            .post("/api/v1/security/credential/validate", flood.clone())
            .await;
    }
    let log = server.log_text();
    let lines = log.lines().filter(|l| l.contains("flood line")).count();
    let dropped = log
        .lines()
        .filter(|l| l.contains("lines are dropped"))
        .count();
    // Each call: its first 100 lines, and one notice.
    assert_eq!(
        (lines, dropped),
        (200, 2),
        "{lines} lines logged, {dropped} notices"
    );
}

/// An update of an id that is not there is bound by the verifier whose
/// property it holds, as obshell binds before it looks the id up: a body
/// of another target type is not taken for a broken HOST one.
#[tokio::test]
async fn an_update_of_a_missing_id_is_bound_by_its_own_verifier() {
    use support::server::{Options, Server, err_code};
    let dir = support::plugin_dir(&["instant_verifier"]);
    let server = Server::start(Options {
        args: vec!["--plugin-dir".into(), dir.path().display().to_string()],
        ..Default::default()
    });
    let body = |property: serde_json::Value| serde_json::json!({ "name": "gone", "instant_credential_property": property });
    let whole = body(serde_json::json!({ "targets": [{ "ip": "127.0.0.1" }],
        "username": "u", "passphrase": "p" }));
    let (status, envelope) = server.patch("/api/v1/security/credential/999", whole).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (404, "Credential.NotFound"),
        "{envelope}"
    );
    let unbound =
        body(serde_json::json!({ "targets": [{ "ip": "127.0.0.1" }], "passphrase": "p" }));
    let (status, envelope) = server
        .patch("/api/v1/security/credential/999", unbound)
        .await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.BindJsonFailed"),
        "{envelope}"
    );
}
