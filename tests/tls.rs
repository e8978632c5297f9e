//! HTTPS when a certificate and key are configured (rustls).

mod support;

use std::process::Command;

use support::server::{Options, Server};

#[test]
fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed by tests/run");
    assert!(status.success());
    let server = Server::start(Options {
        args: vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        ..Default::default()
    });
    assert!(server.base.starts_with("https://"), "{}", server.base);

    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&cert)
        .arg(format!("{}/api/v1/info", server.base))
        .output()
        .expect("curl is installed by tests/run");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["data"]["identity"], "CLUSTER AGENT", "{body}");

    // Plain HTTP to the TLS port gets no API answer.
    let plain = server.base.replace("https://", "http://");
    let out = Command::new("curl")
        .args(["-s", "-m", "5"])
        .arg(format!("{plain}/api/v1/info"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("CLUSTER AGENT"));
}
