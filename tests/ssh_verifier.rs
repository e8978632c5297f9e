//! The embedded HOST verifier: obshell's property rules, and logins against a
//! real OpenSSH server on loopback.

mod support;

use credhost::budget::Client;
use credhost::capabilities::HostKeys;
use std::time::Instant;

use credhost::plugins::{Detail, Purpose, Reason, Registry, SecretChange, Target};
use credhost::secret::Secret;
use serde_json::{Value, json};
use support::sshd::{PASSWORD, Sshd, USER};

async fn registry() -> Registry {
    let runtime = support::runtime(support::quick_ssh()).await;
    support::registry(&runtime, None, &[]).await
}

fn property(targets: Value) -> Value {
    json!({ "targets": targets, "username": "root", "type": "PASSWORD", "passphrase": "pw" })
}

/// The (code, message) a property is refused with, or the public part.
async fn normalize(
    registry: &Registry,
    property: &Value,
    purpose: Purpose,
) -> Result<Value, (String, String)> {
    let plugin = registry.verifier("HOST").expect("HOST is embedded");
    match plugin
        .normalize(&property.to_string(), purpose, None)
        .await
        .unwrap()
    {
        Ok(n) => Ok(serde_json::from_str(&n.public).expect("the public part is JSON")),
        Err(r) => Err((r.code.obshell().to_string(), r.message)),
    }
}

async fn refused(registry: &Registry, property: &Value) -> (String, String) {
    normalize(registry, property, Purpose::Create)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn describes_itself_as_host() {
    let registry = registry().await;
    let plugin = registry.verifier("HOST").unwrap();
    assert_eq!(plugin.info.property_field, "ssh_credential_property");
    assert_eq!(plugin.info.public_field, "ssh_secret");
    assert_eq!(plugin.meta.name, "ssh-verifier");
    assert_eq!(registry.target_types(), vec!["HOST"]);
}

#[tokio::test]
async fn canonicalises_ips_and_defaults_the_port() {
    let registry = registry().await;
    let public = normalize(
        &registry,
        &property(json!([
            { "ip": "192.0.2.1" },
            { "ip": "192.0.2.2", "port": 0 },
            { "ip": "192.0.2.3", "port": null },
            { "ip": "FE80::1", "port": 2222 },
            { "ip": "::ffff:192.0.2.9", "port": 65535 }
        ])),
        Purpose::Create,
    )
    .await
    .unwrap();
    assert_eq!(
        public,
        json!({
            "targets": [
                { "ip": "192.0.2.1", "port": 22 },
                { "ip": "192.0.2.2", "port": 22 },
                { "ip": "192.0.2.3", "port": 22 },
                { "ip": "fe80::1", "port": 2222 },
                { "ip": "192.0.2.9", "port": 65535 }
            ],
            "username": "root",
            "type": "PASSWORD"
        })
    );
}

#[tokio::test]
async fn refuses_invalid_ips_in_array_order() {
    let registry = registry().await;
    for ip in [
        "",
        "host.example",
        "192.0.2.0/8",
        "fe80::1%eth0",
        " 192.0.2.1",
        "192.0.2.01",
        "256.0.0.1",
        "1.2.3",
    ] {
        let (code, message) = refused(
            &registry,
            &property(json!([{ "ip": "192.0.2.1" }, { "ip": ip }])),
        )
        .await;
        assert_eq!(code, "Common.InvalidIp", "{ip:?}");
        assert_eq!(message, format!("'{ip}' is not a valid IP address"));
    }
    // The first bad target wins, ip before port.
    let (code, message) = refused(
        &registry,
        &property(json!([{ "ip": "x", "port": 70000 }, { "ip": "y" }])),
    )
    .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("Common.InvalidIp", "'x' is not a valid IP address")
    );
}

#[tokio::test]
async fn refuses_ports_outside_the_range() {
    let registry = registry().await;
    for port in [-1i64, 65536, 100_000] {
        let (code, message) = refused(
            &registry,
            &property(json!([{ "ip": "192.0.2.1", "port": port }])),
        )
        .await;
        assert_eq!(code, "Credential.SSH.InvalidPort");
        assert_eq!(
            message,
            format!("The SSH port '{port}' is invalid, must be in [1, 65535]")
        );
    }
    for port in [json!("22"), json!(22.5), json!(true)] {
        let (code, message) = refused(
            &registry,
            &property(json!([{ "ip": "192.0.2.1", "port": port }])),
        )
        .await;
        assert_eq!(code, "Common.BindJsonFailed", "{port}");
        assert!(message.contains("targets.port of type int"), "{message}");
    }
}

#[tokio::test]
async fn refuses_empty_targets_other_types_and_missing_fields() {
    let registry = registry().await;
    assert_eq!(
        refused(&registry, &property(json!([]))).await,
        (
            "Common.IllegalArgument".into(),
            "Illegal argument: targets list cannot be empty".into()
        )
    );
    let mut p = property(json!([{ "ip": "192.0.2.1" }]));
    p["type"] = json!("KEY");
    assert_eq!(
        refused(&registry, &p).await,
        (
            "Credential.AuthType.NotSupported".into(),
            "Unsupported authentication type, currently only supports PASSWORD and PUBLIC_KEY"
                .into()
        )
    );
    p["type"] = json!("password");
    assert_eq!(
        refused(&registry, &p).await.0,
        "Credential.AuthType.NotSupported"
    );

    let (code, message) = refused(
        &registry,
        &json!({ "targets": null, "username": "", "type": "PASSWORD" }),
    )
    .await;
    assert_eq!(code, "Common.BindJsonFailed");
    for field in ["Targets", "Username", "Passphrase"] {
        assert!(
            message.contains(&format!(
                "CreateCredentialParam.SshCredentialProperty.{field}'"
            )),
            "{message}"
        );
    }
    assert!(!message.contains("'Type'"), "{message}");
    let (code, _) = refused(&registry, &Value::Null).await;
    assert_eq!(code, "Common.BindJsonFailed");
}

#[tokio::test]
async fn matches_keys_case_insensitively_and_the_last_one_wins() {
    let registry = registry().await;
    let text = r#"{"TARGETS":[{"IP":"192.0.2.1","Port":2200}],"Username":"a","username":"b","Type":"PASSWORD","PASSPHRASE":"x"}"#;
    let plugin = registry.verifier("HOST").unwrap();
    let n = plugin
        .normalize(text, Purpose::Create, None)
        .await
        .unwrap()
        .unwrap();
    let public: Value = serde_json::from_str(&n.public).unwrap();
    assert_eq!(public["username"], "b");
    assert_eq!(
        public["targets"][0],
        json!({ "ip": "192.0.2.1", "port": 2200 })
    );
    assert_eq!(n.search_terms, vec!["b".to_string()]);
    assert_eq!(
        n.targets,
        vec![Target {
            ip: "192.0.2.1".parse().unwrap(),
            port: 2200
        }]
    );
}

#[tokio::test]
async fn an_empty_passphrase_keeps_the_secret_only_on_update() {
    let registry = registry().await;
    let plugin = registry.verifier("HOST").unwrap();
    let mut p = property(json!([{ "ip": "192.0.2.1" }]));
    p["passphrase"] = json!("");
    let text = p.to_string();
    let update = plugin
        .normalize(&text, Purpose::Update, None)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(update.secret, SecretChange::Keep));
    let create = plugin
        .normalize(&text, Purpose::Create, None)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(create.secret, SecretChange::Replace(s) if s.is_empty()));
    p["passphrase"] = json!("s3cret");
    let update = plugin
        .normalize(&p.to_string(), Purpose::Update, None)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(update.secret, SecretChange::Replace(s) if s.expose() == b"s3cret"));
    assert!(
        !update.public.to_string().contains("s3cret"),
        "the public part carries the secret"
    );
}

#[tokio::test]
async fn enforces_its_length_limits() {
    let registry = registry().await;
    let mut p = property(json!([{ "ip": "192.0.2.1" }]));
    p["username"] = json!("u".repeat(257));
    assert_eq!(refused(&registry, &p).await.0, "Common.IllegalArgument");
    p["username"] = json!("u".repeat(256));
    p["passphrase"] = json!("p".repeat(4097));
    assert_eq!(refused(&registry, &p).await.0, "Common.IllegalArgument");
}

/// Nesting near serde_json's limit (125 levels of its 127) is read, about
/// half the plugin's 64 KiB stack, and deeper is refused as obshell refuses
/// bad JSON: neither traps the plugin.
#[tokio::test]
async fn deep_nesting_is_read_or_refused_never_a_trap() {
    let registry = registry().await;
    // An array of an object of an array…, `depth` containers in all, in a
    // field the verifier does not read.
    let nested = |depth: usize| {
        let mut p = property(json!([{ "ip": "192.0.2.1" }]));
        p["extra"] = json!("here");
        let deep = format!(
            "{}1{}",
            "[{\"a\":".repeat(depth / 2),
            "}]".repeat(depth / 2)
        );
        p.to_string().replace("\"here\"", &deep)
    };
    let plugin = registry.verifier("HOST").unwrap();
    let deepest = nested(124);
    let answer = plugin.normalize(&deepest, Purpose::Create, None).await;
    assert!(matches!(answer, Ok(Ok(_))), "{:?}", answer.map(|a| a.err()));
    let too_deep = nested(400);
    let refusal = plugin
        .normalize(&too_deep, Purpose::Create, None)
        .await
        .expect("refused, not a trap")
        .unwrap_err();
    assert_eq!(refusal.code.obshell(), "Common.BindJsonFailed");
    assert!(
        refusal.message.contains("recursion limit"),
        "{}",
        refusal.message
    );
}

async fn verify(registry: &Registry, targets: &[Target], password: &str) -> Vec<Detail> {
    let plugin = registry.verifier("HOST").unwrap();
    let public = json!({
        "targets": targets.iter().map(|t| json!({ "ip": t.ip.to_string(), "port": t.port })).collect::<Vec<_>>(),
        "username": USER,
        "type": "PASSWORD",
    });
    plugin
        .verify(
            &public.to_string(),
            &Secret::new(password.as_bytes().to_vec()),
            targets,
            &HostKeys::learn(Vec::new()),
            &Client::default(),
        )
        .await
        .unwrap()
}

fn target(addr: std::net::SocketAddr) -> Target {
    Target {
        ip: addr.ip(),
        port: addr.port(),
    }
}

#[tokio::test]
async fn logs_in_to_a_real_sshd() {
    let sshd = Sshd::start();
    let registry = registry().await;
    let details = verify(&registry, &[target(sshd.addr)], PASSWORD).await;
    assert_eq!(details.len(), 1);
    assert_eq!(details[0].connection_result, "SUCCESS", "{details:?}");
    assert_eq!(details[0].reason, Reason::Ok);
    assert_eq!(details[0].message, "");
    assert_eq!(details[0].target.port, sshd.addr.port());
    // The login says goodbye before it hangs up.
    let said_goodbye = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        sshd.log().contains("Received disconnect")
    });
    assert!(said_goodbye, "{}", sshd.log());
}

#[tokio::test]
async fn a_wrong_password_is_authentication_failed() {
    let sshd = Sshd::start();
    let registry = registry().await;
    let details = verify(&registry, &[target(sshd.addr)], "not-the-password").await;
    assert_eq!(details[0].connection_result, "CONNECT_FAILED");
    assert_eq!(details[0].reason, Reason::AuthFailed, "{details:?}");
    assert!(!details[0].message.contains("not-the-password"));
}

#[tokio::test]
async fn a_closed_port_is_refused_and_a_silent_one_times_out() {
    let registry = registry().await;
    let closed = Target {
        ip: "127.0.0.1".parse().unwrap(),
        port: support::closed_port(),
    };
    let silent = support::SilentListener::start();
    let started = Instant::now();
    let details = verify(&registry, &[closed, target(silent.addr)], PASSWORD).await;
    let took = started.elapsed();
    assert_eq!(details[0].reason, Reason::Refused, "{details:?}");
    assert_eq!(details[0].connection_result, "CONNECT_FAILED");
    assert_eq!(details[1].reason, Reason::Timeout, "{details:?}");
    // quick_ssh() bounds the handshake at 1.5 s.
    assert!(
        took >= support::ms(1_400) && took < support::ms(4_000),
        "took {took:?}"
    );
}

#[tokio::test]
async fn mixed_targets_each_get_their_own_verdict_in_order() {
    let sshd = Sshd::start();
    let registry = registry().await;
    let closed = Target {
        ip: "127.0.0.1".parse().unwrap(),
        port: support::closed_port(),
    };
    let details = verify(&registry, &[closed, target(sshd.addr), closed], PASSWORD).await;
    let reasons: Vec<Reason> = details.iter().map(|d| d.reason).collect();
    assert_eq!(reasons, vec![Reason::Refused, Reason::Ok, Reason::Refused]);
}

/// One SSH binary packet before any key is agreed: no MAC, padded to 8.
fn ssh_packet(payload: &[u8]) -> Vec<u8> {
    let padding = 8 - (5 + payload.len()) % 8;
    let padding = if padding < 4 { padding + 8 } else { padding };
    let mut packet = ((1 + payload.len() + padding) as u32)
        .to_be_bytes()
        .to_vec();
    packet.push(padding as u8);
    packet.extend_from_slice(payload);
    packet.extend(std::iter::repeat_n(0, padding));
    packet
}

/// A server that says hello, then sends `SSH_MSG_IGNORE` every 200 ms and
/// never finishes the key exchange; it reports when its client hangs up.
async fn dripping_server() -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed, hung_up) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"SSH-2.0-Drip\r\n").await.unwrap();
        let ignore = ssh_packet(&[2, 0, 0, 0, 0]);
        let mut sink = [0u8; 4096];
        loop {
            tokio::select! {
                read = stream.read(&mut sink) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(support::ms(200)) => {
                    if stream.write_all(&ignore).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = closed.send(());
    });
    (addr, hung_up)
}

/// A target that keeps a handshake alive with a drip of packets gets its
/// timeout, and then its connection is closed: a login that has given up
/// holds no socket, however the server behaves.
#[tokio::test]
async fn a_server_that_drips_packets_is_timed_out_and_hung_up_on() {
    let registry = registry().await;
    let (addr, hung_up) = dripping_server().await;
    let details = verify(&registry, &[target(addr)], PASSWORD).await;
    assert_eq!(details[0].reason, Reason::Timeout, "{details:?}");
    tokio::time::timeout(support::ms(5_000), hung_up)
        .await
        .expect("the connection is closed once the login gave up")
        .unwrap();
}

/// What a target sends is never quoted back: a server whose algorithm
/// lists are made of guesses at the password must not learn, from which
/// guesses come back masked, which one was right; nor may it write text
/// into the answers and the stored verdicts.
#[tokio::test]
async fn what_a_target_sends_is_not_quoted_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let registry = registry().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let guesses = format!("guess-one,{PASSWORD},attacker-text");
    let kexinit = {
        let mut payload = vec![20];
        payload.extend_from_slice(&[7; 16]);
        for list in [guesses.as_str(), "ssh-ed25519", "aes128-ctr", "aes128-ctr"]
            .into_iter()
            .chain(["hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""])
        {
            payload.extend_from_slice(&(list.len() as u32).to_be_bytes());
            payload.extend_from_slice(list.as_bytes());
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        ssh_packet(&payload)
    };
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"SSH-2.0-Guesser\r\n").await.unwrap();
        stream.write_all(&kexinit).await.unwrap();
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let details = verify(&registry, &[target(addr)], PASSWORD).await;
    assert_eq!(details[0].reason, Reason::ProtocolError, "{details:?}");
    let message = &details[0].message;
    for sent in ["guess-one", "attacker-text", "******", PASSWORD] {
        assert!(!message.contains(sent), "{message:?} quotes {sent:?}");
    }
    assert!(message.contains("key exchange"), "{message:?}");
}
