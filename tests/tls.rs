//! HTTPS when a certificate and key are configured (rustls).

mod support;

use std::process::Command;

use support::server::{Options, Server, refused_at_start};

/// A self-signed certificate for 127.0.0.1 and its key, in `dir`.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
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
    (cert, key)
}

/// A CA, and a certificate for 127.0.0.1 it signed, with its key, in
/// `dir`: (CA, certificate, key).
fn signed_certificate(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed by tests/run");
        assert!(status.success(), "openssl {args:?}");
    };
    #[rustfmt::skip]
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=credhost test CA", "-keyout", "ca.key", "-out", "ca.pem"]);
    #[rustfmt::skip]
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "key.pem", "-out", "server.csr"]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    #[rustfmt::skip]
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "server.ext", "-out", "cert.pem"]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

fn tls_server(cert: &std::path::Path, key: &std::path::Path) -> Server {
    Server::start(Options {
        args: vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        ..Default::default()
    })
}

#[test]
fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    // A key others may replace is refused, as any key file outside the data
    // directory is (the tests run as root, whose keys others may read, as
    // orchestrators mount them).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let said = refused_at_start(
        Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--data-dir")
            .arg(data.path()),
        "a TLS key writable by others",
    );
    assert!(
        said.contains("TLS private key") && said.contains("666"),
        "{said}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = tls_server(&cert, &key);
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

/// Whether curl, trusting only `ca`, gets the server's info.
fn trusted_with(server: &Server, ca: &std::path::Path) -> bool {
    Command::new("curl")
        .args(["-s", "-f", "-m", "5", "--cacert"])
        .arg(ca)
        .arg(format!("{}/api/v1/info", server.base))
        .output()
        .expect("curl is installed by tests/run")
        .status
        .success()
}

/// A renewed certificate is served after SIGHUP, without a restart; files
/// that do not make a certificate and its key leave the served one.
#[test]
fn a_renewed_certificate_is_served_after_a_hangup() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cert, key) = certificate(first.path());
    let (renewed_cert, renewed_key) = certificate(second.path());
    let metrics_port = support::free_port();
    let server = Server::start(Options {
        args: vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics_port}"),
        ],
        ..Default::default()
    });
    // Whether the last reload of the certificate took, for alerting.
    let tls_reload_ok = || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("credhost_reload_ok{what=\"tls\"}"))
            .unwrap_or_else(|| panic!("no credhost_reload_ok for tls: {text}"))
            .to_string();
        line.ends_with(" 1")
    };
    assert!(tls_reload_ok());
    assert!(trusted_with(&server, &cert));
    assert!(!trusted_with(&server, &renewed_cert));

    // A key that is not the certificate's: refused, the old one stays.
    let original = first.path().join("original.pem");
    std::fs::copy(&cert, &original).unwrap();
    std::fs::copy(&renewed_cert, &cert).unwrap();
    server.hangup();
    let refused = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        server.log_text().contains("TLS certificate not read again")
    });
    assert!(refused, "{}", server.log_text());
    assert!(trusted_with(&server, &original));
    assert!(!trusted_with(&server, &renewed_cert));
    assert!(!tls_reload_ok(), "a failed reload shows in the metrics");

    std::fs::copy(&renewed_key, &key).unwrap();
    server.hangup();
    let renewed = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        trusted_with(&server, &renewed_cert)
    });
    assert!(renewed, "{}", server.log_text());
    assert!(tls_reload_ok());
}

/// The CLI speaks HTTPS to a server whose certificate chains to the CA it
/// is given (or its login saved), and to no other; over http:// it talks
/// to this machine only, and it follows no redirect.
#[test]
fn the_cli_trusts_the_ca_it_is_given_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = signed_certificate(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (stranger, _, _) = signed_certificate(other.path());
    let server = tls_server(&cert, &key);
    let admin = server.token("admin", "admin");
    let home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_credhost"))
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("CREDHOST_TOKEN", &admin)
            .env_remove("CREDHOST_URL")
            .env_remove("CREDHOST_CA_FILE")
            .args(args)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), said)
    };
    let trusted = ca.display().to_string();
    let list = |ca: &str| {
        let mut args = vec!["--url", server.base.as_str(), "credential", "list"];
        if !ca.is_empty() {
            args.extend(["--ca-file", ca]);
        }
        cli(&args)
    };
    let (ok, said) = list(&trusted);
    assert!(ok, "{said}");
    for ca in ["", &stranger.display().to_string()] {
        let (ok, said) = list(ca);
        assert!(!ok && said.contains("cannot reach"), "{said}");
    }
    // A login made with the CA keeps it for later commands.
    let out = Command::new(env!("CARGO_BIN_EXE_credhost"))
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        // Relative to where it runs: the login keeps the full path.
        .current_dir(dir.path())
        .args([
            "login",
            &server.base,
            "--token-stdin",
            "--ca-file",
            "ca.pem",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{admin}\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, said) = cli(&["credential", "list"]);
    assert!(ok, "{said}");
    // Plain HTTP to the TLS port gets no answer it takes. (Plain HTTP
    // beyond this machine is refused before anything is sent: a unit test
    // of the URL check, since a test here dials loopback only.)
    let plain = server.base.replace("https://", "http://");
    let (ok, said) = cli(&["--url", &plain, "credential", "list"]);
    assert!(!ok, "{said}");
}

/// One client that opens hundreds of connections and never starts its
/// handshake holds a few handshake places, not all of them: another
/// client's request still gets through while they wait.
#[tokio::test]
async fn one_client_cannot_take_every_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let server = tls_server(&cert, &key);
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(stream) = socket
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
        {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 256, "{} connections", idle.len());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "--cacert"])
        .arg(&cert)
        .arg(format!("{}/api/v1/info", server.base))
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no answer while one client held its handshakes open"));
    assert_eq!(body["data"]["identity"], "CLUSTER AGENT", "{body}");
    // Each connection turned away is counted by the cap that did it.
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "--cacert"])
        .arg(&cert)
        .arg(format!("{}/metrics", server.base))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&out.stdout);
    let refused: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("credhost_connections_refused_total{cap=\"handshakes_per_client\"}")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(refused >= 200.0, "{metrics}");
    drop(idle);
}
