//! The third-party OB verifier (examples/ob-verifier), loaded from a plugin
//! directory, against a real MariaDB server on loopback.

mod support;

use credhost::budget::Client;
use credhost::capabilities::HostKeys;
use credhost::plugins::{Purpose, Reason, Registry, Target};
use credhost::secret::Secret;
use serde_json::json;
use support::mariadb::{self, MariaDb};

async fn registry() -> (Registry, tempfile::TempDir) {
    let dir = support::plugin_dir(&["ob_verifier"]);
    let runtime = support::runtime(support::quick_ssh()).await;
    let registry = support::registry(&runtime, Some(dir.path()), &[]).await;
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
    (registry, dir)
}

async fn verify(registry: &Registry, targets: &[Target], password: &str) -> Vec<(Reason, String)> {
    let plugin = registry.verifier("OB").expect("the plugin serves OB");
    let property = json!({
        "targets": targets.iter().map(|t| json!({ "ip": t.ip.to_string(), "port": t.port })).collect::<Vec<_>>(),
        "username": mariadb::USER,
        "passphrase": password,
    });
    let normalized = plugin
        .normalize(&property.to_string(), Purpose::Validate, None)
        .await
        .unwrap()
        .unwrap();
    plugin
        .verify(
            &normalized.public,
            &Secret::new(password.as_bytes().to_vec()),
            &normalized.targets,
            &HostKeys::learn(Vec::new()),
            &Client::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.reason, d.message))
        .collect()
}

#[tokio::test]
async fn logs_in_to_mariadb_and_tells_failures_apart() {
    let db = MariaDb::start();
    let (registry, _dir) = registry().await;
    let plugin = registry.verifier("OB").unwrap();
    assert_eq!(plugin.info.property_field, "ob_credential_property");
    assert_eq!(plugin.info.public_field, "ob_secret");

    let server = Target {
        ip: db.addr.ip(),
        port: db.addr.port(),
    };
    let closed = Target {
        ip: "127.0.0.1".parse().unwrap(),
        port: support::closed_port(),
    };
    let right = verify(&registry, &[server], mariadb::PASSWORD).await;
    assert_eq!(right[0].0, Reason::Ok, "{right:?}");
    let wrong = verify(&registry, &[server], "not-the-password").await;
    assert_eq!(wrong[0].0, Reason::AuthFailed, "{wrong:?}");
    assert!(wrong[0].1.contains("1045"), "{wrong:?}");
    let refused = verify(&registry, &[closed], mariadb::PASSWORD).await;
    assert_eq!(refused[0].0, Reason::Refused, "{refused:?}");
    // An SSH server is not a MySQL server.
    let sshd = support::sshd::Sshd::start();
    let other = verify(
        &registry,
        &[Target {
            ip: sshd.addr.ip(),
            port: sshd.addr.port(),
        }],
        "x",
    )
    .await;
    assert_eq!(other[0].0, Reason::ProtocolError, "{other:?}");
}

#[tokio::test]
async fn normalizes_its_property() {
    let (registry, _dir) = registry().await;
    let plugin = registry.verifier("OB").unwrap();
    let n = plugin
        .normalize(
            r#"{"targets":[{"ip":"::ffff:192.0.2.11"}],"username":"root@sys","passphrase":"p"}"#,
            Purpose::Create,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&n.public).unwrap(),
        json!({ "targets": [{ "ip": "192.0.2.11", "port": 2881 }], "username": "root@sys" })
    );
    for (property, code) in [
        (
            r#"{"targets":[],"username":"u","passphrase":""}"#,
            "Common.IllegalArgument",
        ),
        (
            r#"{"targets":[{"ip":"x"}],"username":"u","passphrase":""}"#,
            "Common.InvalidIp",
        ),
        (
            r#"{"targets":[{"ip":"192.0.2.1","port":70000}],"username":"u","passphrase":""}"#,
            "Credential.SSH.InvalidPort",
        ),
        (
            r#"{"targets":[{"ip":"192.0.2.1"}],"passphrase":""}"#,
            "Common.BindJsonFailed",
        ),
        ("null", "Common.BindJsonFailed"),
    ] {
        let refusal = plugin
            .normalize(property, Purpose::Create, None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            refusal.code.obshell(),
            code,
            "{property}: {}",
            refusal.message
        );
    }
}
