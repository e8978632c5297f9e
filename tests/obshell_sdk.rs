//! The official obshell Python SDK (PyPI `obshell` 0.0.9, installed into
//! `.venv` by `tests/run`) drives all nine credential methods against the real
//! binary and a real sshd, with a password and without one.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::server::{Options, Server};
use support::sshd::{self, Sshd};

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/run, which installs the obshell SDK into it",
        python.display()
    );
    python
}

fn drive(server: &Server, password: &str, sshd: &Sshd) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/drive.py");
    let addr = server.base.strip_prefix("http://").unwrap();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let output = Command::new(python())
        .arg(script)
        .args([
            host,
            port,
            password,
            &sshd.addr.port().to_string(),
            sshd::USER,
            sshd::PASSWORD,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK run failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    assert!(
        stdout.contains("all nine credential methods behaved"),
        "{stdout}"
    );
    assert!(
        !server.log_text().contains(sshd::PASSWORD),
        "the SSH password reached the log"
    );
}

#[test]
fn the_sdk_works_with_a_password() {
    let sshd = Sshd::start();
    let server = Server::start(Options {
        envs: vec![("CREDHOST_PASSWORD".into(), "Sdk-pass-123".into())],
        ..Default::default()
    });
    drive(&server, "Sdk-pass-123", &sshd);
}

#[test]
fn the_sdk_works_without_a_password() {
    let sshd = Sshd::start();
    let server = Server::start(Options::default());
    drive(&server, "", &sshd);
}
