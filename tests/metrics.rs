//! `/metrics` against the real binary: each series moves when its event
//! happens, and `--metrics-listen` serves it without authentication while
//! the API itself needs the password.

mod support;

use std::time::Duration;

use serde_json::json;
use support::server::{Options, Server};
use support::sshd::{self, ClientKey, Sshd};
use support::{SilentListener, closed_port, free_port};

const PASSWORD: &str = "Metrics-api-pw-1";

/// The value of the series `name` whose labels include `labels`; 0 if absent.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn each_series_moves_when_its_event_happens() {
    let sshd = Sshd::start();
    let silent = [SilentListener::start(), SilentListener::start()];
    let plugins = support::plugin_dir(&["hostile_verifier"]);
    let metrics_port = free_port();
    let server = Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), PASSWORD.into())],
        args: vec![
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--plugin-dir".into(),
            plugins.path().display().to_string(),
        ],
        // One SSH login at a time, a short wait for it: the second of two
        // hanging logins is turned away.
        config: Some(
            "[ssh]\nmax_concurrent = 1\nmax_concurrent_per_client = 1\nqueue_wait_ms = 200\n\
             handshake_timeout_ms = 1500\n"
                .into(),
        ),
        ..Default::default()
    });
    let metrics_url = format!("http://127.0.0.1:{metrics_port}");
    // The API needs the password; the metrics listener does not.
    let (status, _) = server.get("/api/v1/security/credentials").await;
    assert_eq!(status, 400);
    // A page that rebound its own name to the listener's address reads
    // nothing: the metrics listener checks `Host` as the API does.
    let rebound = reqwest::Client::new()
        .get(format!("{metrics_url}/metrics"))
        .header("host", format!("rebind.example:{metrics_port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let before = scrape(&metrics_url).await;
    assert_eq!(
        value(&before, "credhost_build_info", &[("version", "0.1.0")]),
        1.0
    );
    let token = server.token("metrics", "admin");
    let call = |method: reqwest::Method, path: &'static str, body: Option<serde_json::Value>| {
        server.call_as(&token, method, path, body)
    };

    let (status, _) = call(reqwest::Method::GET, "/api/v1/security/credentials", None).await;
    assert_eq!(status, 200);
    // As the obshell SDK lists: everything, in a place for large lists.
    let (status, _) = call(
        reqwest::Method::GET,
        "/api/v1/security/credentials?page=1&page_size=9223372036854775807",
        None,
    )
    .await;
    assert_eq!(status, 200);
    // So does a search, which scans every row, a page deep into the
    // table, which skips every row before it, and a filter by type, which
    // gathers every row of the type.
    for path in [
        "/api/v1/security/credentials?key_word=web",
        "/api/v1/security/credentials?page=200&page_size=10",
        "/api/v1/security/credentials?target_type=HOST",
    ] {
        let (status, _) = call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200);
    }
    let host = |port: u16, passphrase: &str| {
        json!({ "targets": [{ "ip": "127.0.0.1", "port": port }],
                "username": sshd::USER, "type": "PASSWORD", "passphrase": passphrase })
    };
    let (status, _) = call(
        reqwest::Method::POST,
        "/api/v1/security/credential/validate",
        Some(json!({ "target_type": "HOST", "ssh_credential_property": host(closed_port(), "x") })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, created) = call(
        reqwest::Method::POST,
        "/api/v1/security/credential",
        Some(json!({ "target_type": "HOST", "name": "web",
                     "ssh_credential_property": host(sshd.addr.port(), sshd::PASSWORD) })),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    // An RSA key: read in the key-reading pool, signed in the signing pool.
    let rsa = ClientKey::generate("rsa", "", false);
    let keyed = Sshd::start_with_keys(std::slice::from_ref(&rsa.public_line));
    let (status, checked) = call(
        reqwest::Method::POST,
        "/api/v1/security/credential/validate",
        Some(json!({ "target_type": "HOST", "ssh_credential_property": {
            "targets": [{ "ip": "127.0.0.1", "port": keyed.addr.port() }],
            "username": sshd::USER, "type": "PUBLIC_KEY", "private_key": rsa.private } })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(checked["data"]["succeeded_count"], 1, "{checked}");
    // Two logins to a listener that never answers, one slot: one waits
    // past its bound.
    let two = json!({ "target_type": "HOST", "ssh_credential_property": {
        "targets": [{ "ip": "127.0.0.1", "port": silent[0].addr.port() },
                    { "ip": "127.0.0.1", "port": silent[1].addr.port() }],
        "username": "u", "type": "PASSWORD", "passphrase": "p" } });
    let (status, _) = call(
        reqwest::Method::POST,
        "/api/v1/security/credential/validate",
        Some(two),
    )
    .await;
    assert_eq!(status, 200);
    // A plugin that panics.
    let (status, _) = call(
        reqwest::Method::POST,
        "/api/v1/security/credential/validate",
        Some(json!({ "target_type": "HOSTILE", "hostile_property": { "mode": "panic" } })),
    )
    .await;
    assert_eq!(status, 500);
    // Failed authentications of two kinds.
    let bogus = format!("credhost_{}_{}", "0".repeat(16), "A".repeat(43));
    let (status, _) = server
        .call_as(&bogus, reqwest::Method::GET, "/api/v1/plugins", None)
        .await;
    assert_eq!(status, 401);
    let reader = server.token("reader", "read");
    let (status, _) = server
        .call_as(
            &reader,
            reqwest::Method::POST,
            "/api/v1/security/keys/rotate",
            None,
        )
        .await;
    assert_eq!(status, 403);
    // A rotation re-seals the stored row and retires key 1.
    let (status, _) = call(reqwest::Method::POST, "/api/v1/security/keys/rotate", None).await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let text = scrape(&metrics_url).await;
        if value(&text, "credhost_keys", &[("state", "retired")]) >= 1.0 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let list = [
        ("route", "/api/v1/security/credentials"),
        ("method", "GET"),
        ("status", "200"),
    ];
    // Five lists: a page of ten, everything, a search, a deep page, a type.
    assert_eq!(moved("credhost_http_requests_total", &list), 5.0);
    assert_eq!(
        moved("credhost_http_request_duration_seconds_count", &list[..2]),
        5.0
    );
    assert!(moved("credhost_http_request_duration_seconds_bucket", &list[..2]) > 0.0);
    assert_eq!(
        moved(
            "credhost_verifications_total",
            &[("target_type", "HOST"), ("reason", "REFUSED")]
        ),
        1.0
    );
    assert!(
        moved(
            "credhost_verifications_total",
            &[("target_type", "HOST"), ("reason", "OK")]
        ) >= 1.0
    );
    assert!(
        moved(
            "credhost_plugin_call_duration_seconds_count",
            &[("plugin", "ssh-verifier"), ("export", "verify-target")]
        ) >= 3.0
    );
    assert!(
        moved(
            "credhost_plugin_call_duration_seconds_count",
            &[("plugin", "aes-256-gcm"), ("export", "seal")]
        ) >= 1.0
    );
    assert_eq!(
        moved(
            "credhost_plugin_traps_total",
            &[("plugin", "hostile-verifier"), ("kind", "trap")]
        ),
        1.0
    );
    assert_eq!(
        moved("credhost_pool_wait_seconds_count", &[("pool", "list")]),
        4.0
    );
    assert!(moved("credhost_pool_wait_seconds_count", &[("pool", "quick")]) >= 1.0);
    assert!(moved("credhost_pool_wait_seconds_count", &[("pool", "verify")]) >= 1.0);
    assert!(moved("credhost_pool_wait_seconds_count", &[("pool", "key_read")]) >= 1.0);
    assert!(moved("credhost_pool_wait_seconds_count", &[("pool", "key_sign")]) >= 1.0);
    assert_eq!(
        moved("credhost_pool_rejections_total", &[("pool", "ssh")]),
        1.0
    );
    assert_eq!(
        moved("credhost_auth_failures_total", &[("kind", "token_unknown")]),
        1.0
    );
    assert_eq!(
        moved("credhost_auth_failures_total", &[("kind", "scope")]),
        1.0
    );
    assert_eq!(
        moved(
            "credhost_auth_failures_total",
            &[("kind", "header_missing")]
        ),
        0.0,
        "the first refusal came before the first scrape"
    );
    assert!(
        value(&after, "credhost_rewrap_rows_done", &[]) >= 1.0,
        "{after}"
    );
    assert_eq!(value(&after, "credhost_rewrap_rows_remaining", &[]), 0.0);
    assert_eq!(value(&after, "credhost_keys", &[("state", "current")]), 1.0);
    assert_eq!(value(&after, "credhost_audit_healthy", &[]), 1.0);
    // The same series are behind the API, for a `read` token.
    let (status, text) = server
        .call_as(&reader, reqwest::Method::GET, "/metrics", None)
        .await;
    assert_eq!(status, 200);
    assert!(
        text.as_str()
            .unwrap()
            .contains("credhost_http_requests_total")
    );
}

/// A method is any token a client likes: a thousand made-up ones, sent
/// without credentials, add no series of their own (they are counted as
/// `OTHER`), and none is copied into the log or the audit log.
#[tokio::test]
async fn made_up_methods_add_no_series() {
    let server = Server::start(Options::default());
    let client = reqwest::Client::new();
    let marker = "ZQXMETHOD";
    for i in 0..1_000 {
        let method = reqwest::Method::from_bytes(format!("{marker}{i:04}").as_bytes()).unwrap();
        let response = client
            .request(
                method,
                format!("{}/api/v1/security/credentials", server.base),
            )
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let text = scrape(&server.base).await;
    assert!(!text.contains(marker), "a made-up method became a label");
    assert!(
        value(
            &text,
            "credhost_http_requests_total",
            &[("method", "OTHER")]
        ) >= 1_000.0,
        "{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("credhost_http_requests_total{"))
        .count();
    assert!(series < 50, "{series} series");
    assert!(!server.log_text().contains(marker));
    // The audit log has them all, by the name they are counted under.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let audit = loop {
        let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
        if audit.matches("\"OTHER\"").count() >= 1_000 || std::time::Instant::now() > deadline {
            break audit;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(audit.matches("\"OTHER\"").count() >= 1_000);
    assert!(!audit.contains(marker));
}
