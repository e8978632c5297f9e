//! obshell's "API hybrid encryption" against the real binary, through the
//! project's own client: what must pass, and every way it must not.

mod support;

use credhost::client::{Client, Sealed, encrypt_body, encrypt_header};
use reqwest::Method;
use serde_json::{Value, json};
use support::server::{Options, Server, err_code};

const PASSWORD: &str = "Api-pass-8821";
const LIST: &str = "/api/v1/security/credentials";

/// These tests fail on purpose many times from one address: the limit on
/// failures per address is raised out of their way (tests/front_door.rs
/// tries the limit itself).
fn with_password() -> Server {
    Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), PASSWORD.into())],
        config: Some("[http]\nauth_failure_burst = 1000\n".into()),
        ..Default::default()
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn code(envelope: &Value) -> Option<i64> {
    envelope["error"]["code"].as_i64()
}

#[tokio::test]
async fn info_and_secret_need_no_auth() {
    let server = with_password();
    let (status, info) = server.get("/api/v1/info").await;
    assert_eq!(status, 200);
    assert_eq!(info["data"]["identity"], "CLUSTER AGENT");
    assert_eq!(info["data"]["supportedAuth"], json!(["v2"]));
    assert_eq!(info["data"]["security"], false);
    assert!(
        info["data"]["version"]
            .as_str()
            .unwrap()
            .starts_with("4.3.1.0")
    );
    let (status, secret) = server.get("/api/v1/secret").await;
    assert_eq!(status, 200);
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    use rsa::traits::PublicKeyParts;
    assert_eq!(client.public_key().size(), 256, "a 2048-bit key by default");
    assert!(secret["data"]["public_key"].as_str().unwrap().len() > 300);

    // The key is generated once and kept, 0600, outside the database.
    use std::os::unix::fs::PermissionsExt;
    let key_file = server.data_dir().join("rsa_key.der");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn the_right_password_works_for_every_kind_of_request() {
    let server = with_password();
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();
    let (status, envelope) = client
        .call(Method::GET, &format!("{LIST}?page=1&page_size=5"), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{envelope}");
    // A body is decrypted: this one is refused by the service, not by auth.
    let (status, envelope) = client
        .call(
            Method::DELETE,
            LIST,
            Some(&json!({ "credential_id_list": [] })),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Common.IllegalArgument")
    );
    // The SDK's 53-byte chunks work as well as whole blocks.
    let sdk_like = Client::connect(&server.base, PASSWORD)
        .await
        .unwrap()
        .with_chunk(53);
    let (status, _) = sdk_like.call(Method::GET, LIST, None).await.unwrap();
    assert_eq!(status, 200);
    // Header keys as the web console sends them.
    let claims = client.claims(LIST);
    let header = json!({ "Auth": PASSWORD, "Ts": claims.ts, "Uri": LIST, "Keys": "" });
    let sealed = Sealed {
        header: encrypt_header(client.public_key(), header.to_string().as_bytes(), 245),
        body: None,
    };
    let (status, envelope) = client.send(Method::GET, LIST, &sealed).await.unwrap();
    assert_eq!(status, 200, "{envelope}");
}

#[tokio::test]
async fn refusals() {
    let server = with_password();
    let client = Client::connect(&server.base, PASSWORD).await.unwrap();

    // No header at all.
    let (status, envelope) = server.get(LIST).await;
    assert_eq!(
        (status, err_code(&envelope)),
        (400, "Request.Header.NotFound")
    );

    // Wrong password.
    let wrong = Client::connect(&server.base, "not-it").await.unwrap();
    let (status, envelope) = wrong.call(Method::GET, LIST, None).await.unwrap();
    assert_eq!(
        (status, err_code(&envelope), code(&envelope)),
        (
            401,
            "Security.Authentication.IncorrectOceanbasePassword",
            Some(10008)
        )
    );
    assert!(!envelope.to_string().contains("not-it"));

    // Expired, too far ahead, not a number.
    for (ts, expected) in [
        ((now() - 5).to_string(), "Security.Authentication.Expired"),
        (
            (now() + 7200).to_string(),
            "Security.Authentication.Timestamp.Invalid",
        ),
        (
            "soon".to_string(),
            "Security.Authentication.Timestamp.Invalid",
        ),
    ] {
        let mut claims = client.claims(LIST);
        claims.ts = ts;
        let (status, envelope) = client
            .send(Method::GET, LIST, &client.seal(&claims, None))
            .await
            .unwrap();
        assert_eq!((status, err_code(&envelope)), (401, expected));
    }

    // The header names another target.
    let claims = client.claims("/api/v1/security/credential/1");
    let (status, envelope) = client
        .send(Method::GET, LIST, &client.seal(&claims, None))
        .await
        .unwrap();
    assert_eq!(
        (status, err_code(&envelope)),
        (401, "Security.Authentication.Header.UriMismatch")
    );
    let claims = client.claims(LIST);
    let (status, _) = client
        .send(
            Method::GET,
            &format!("{LIST}?page=2"),
            &client.seal(&claims, None),
        )
        .await
        .unwrap();
    assert_eq!(status, 401, "the query is part of the target");

    // Replay: the same header twice.
    let claims = client.claims(LIST);
    let sealed = client.seal(&claims, None);
    let (status, _) = client.send(Method::GET, LIST, &sealed).await.unwrap();
    assert_eq!(status, 200);
    let (status, envelope) = client.send(Method::GET, LIST, &sealed).await.unwrap();
    assert_eq!(
        (status, err_code(&envelope)),
        (401, "Security.Authentication.Replayed")
    );

    // Garbage headers: not Base64, not whole blocks, not JSON, another key.
    let other = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .unwrap()
        .to_public_key();
    let json_header =
        json!({ "auth": PASSWORD, "ts": (now() + 60).to_string(), "uri": LIST }).to_string();
    for header in [
        "%%%not-base64%%%".to_string(),
        "AAAA".to_string(),
        encrypt_header(client.public_key(), b"not json", 245),
        encrypt_header(client.public_key(), br#"{"auth": 5}"#, 245),
        encrypt_header(&other, json_header.as_bytes(), 245),
    ] {
        let sealed = Sealed { header, body: None };
        let (status, envelope) = client.send(Method::GET, LIST, &sealed).await.unwrap();
        assert_eq!(
            (status, err_code(&envelope), code(&envelope)),
            (401, "Security.Authentication.Header.DecryptFailed", Some(1))
        );
    }

    // Bodies: garbage, truncated, wrong key length, plaintext.
    let body = br#"{"credential_id_list":[1]}"#;
    let claims = client.claims(LIST);
    let good = encrypt_body(&claims.keys, body);
    let cases: Vec<(Option<&str>, String, &str)> = vec![
        (
            None,
            "@@@ not base64 @@@".into(),
            "Request.Body.Decrypt.Failed",
        ),
        (
            None,
            good[..good.len() - 8].to_string(),
            "Request.Body.Decrypt.AES.ContentLength.Invalid",
        ),
        (
            Some("AAECAwQFBgcICQoLDA0ODw=="),
            good.clone(),
            "Request.Body.Decrypt.AES.KeyAndIv.Invalid",
        ),
        (
            None,
            String::from_utf8(body.to_vec()).unwrap(),
            "Request.Body.Decrypt.Failed",
        ),
    ];
    for (keys, sent, expected) in cases {
        let claims = client.claims(LIST);
        let mut header = json!({ "auth": PASSWORD, "ts": claims.ts, "uri": LIST, "keys": base64_of(&claims.keys) });
        if let Some(keys) = keys {
            header["keys"] = json!(keys);
        }
        let sealed = Sealed {
            header: encrypt_header(client.public_key(), header.to_string().as_bytes(), 245),
            body: Some(sent),
        };
        let (status, envelope) = client.send(Method::DELETE, LIST, &sealed).await.unwrap();
        assert_eq!(status, 400, "{envelope}");
        assert_eq!(err_code(&envelope), expected, "{envelope}");
    }
    // A body under another request's key is bad padding or garbage JSON, never a 500.
    let claims = client.claims(LIST);
    let mut other_keys = claims.keys;
    other_keys[0] ^= 1;
    let sealed = Sealed {
        header: client.seal(&claims, None).header,
        body: Some(encrypt_body(&other_keys, body)),
    };
    let (status, _) = client.send(Method::DELETE, LIST, &sealed).await.unwrap();
    assert_eq!(status, 400);
    assert!(server.log_text().lines().all(|l| !l.contains("panicked")));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn without_a_password_plain_and_empty_auth_requests_pass() {
    let server = Server::start(Options::default());
    let (status, _) = server.get(LIST).await;
    assert_eq!(status, 200);
    let client = Client::connect(&server.base, "").await.unwrap();
    let (status, envelope) = client.call(Method::GET, LIST, None).await.unwrap();
    assert_eq!(status, 200, "{envelope}");
    let wrong = Client::connect(&server.base, "something").await.unwrap();
    let (status, _) = wrong.call(Method::GET, LIST, None).await.unwrap();
    assert_eq!(status, 401, "a password the server does not have is wrong");
}

#[test]
fn refuses_a_non_loopback_listener_without_a_password() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .env_remove("CREDHOST_PASSWORD")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without a password"), "{stderr}");
}
