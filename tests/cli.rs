//! The `credhost` client commands against the real server: each one's
//! output for people and for scripts, its exit status, and where it keeps
//! the login.

mod support;

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use support::fake_ssh::{self, FakeSsh};
use support::server::{Options, Server, populate};
use support::sshd::{self, Sshd};

/// The CLI, with a home of its own (so the login file is the test's).
fn cli(home: &Path, server: &Server, token: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_credhost"));
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("CREDHOST_URL", &server.base)
        .env("CREDHOST_TOKEN", token)
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", stdout(output)))
}

#[tokio::test]
async fn credentials_from_create_to_delete() {
    let home = tempfile::tempdir().unwrap();
    let sshd = Sshd::start();
    let doomed = Sshd::start_on("127.0.0.2");
    let server = Server::start(Options::default());
    let token = server.token("cli", "write");
    let target = format!("127.0.0.1:{}", sshd.addr.port());

    let out = cli(home.path(), &server, &token)
        .args([
            "credential",
            "create",
            "--name",
            // A right-to-left mark: shown escaped, kept as it is.
            "web\u{200f}",
            "--description",
            "web tier",
        ])
        .args([
            "--target",
            &target,
            "--username",
            sshd::USER,
            "--passphrase-stdin",
        ])
        .write_stdin(format!("{}\n", sshd::PASSWORD))
        .assert()
        .success()
        .get_output()
        .clone();
    let shown = stdout(&out);
    assert!(
        shown.contains("web tier") && shown.contains(&target),
        "{shown}"
    );
    assert!(
        shown.contains("SHA256:"),
        "the pinned host key is shown: {shown}"
    );
    assert!(!shown.contains(sshd::PASSWORD));

    // The first credential, as the CLI reads it.
    let first = || {
        json_of(
            cli(home.path(), &server, &token)
                .args(["-o", "json", "credential", "get", "1"])
                .assert()
                .success()
                .get_output(),
        )
    };

    let got = first();
    assert_eq!(got["name"], "web\u{200f}");
    assert_eq!(got["ssh_secret"]["username"], sshd::USER);

    // Update keeps the passphrase unless asked: validation still passes.
    cli(home.path(), &server, &token)
        .args(["credential", "update", "1", "--description", "renamed tier"])
        .assert()
        .success();
    let out = cli(home.path(), &server, &token)
        .args(["credential", "validate", "1"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        stdout(&out).contains("1 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
    let got = first();
    assert_eq!(got["name"], "web\u{200f}", "the update rewrote the name");

    // A second credential whose host goes away: validate --all fails,
    // with a summary by reason.
    cli(home.path(), &server, &token)
        .args(["credential", "create", "--name", "db"])
        .args(["--target", &doomed.addr.to_string()])
        .args(["--username", sshd::USER, "--passphrase-stdin"])
        .write_stdin(sshd::PASSWORD)
        .assert()
        .success();
    drop(doomed);
    let out = cli(home.path(), &server, &token)
        .args(["credential", "validate", "--all"])
        .assert()
        .failure()
        .get_output()
        .clone();
    let shown = stdout(&out);
    assert!(
        shown.contains("2 credentials validated: 1 passed, 1 failed"),
        "{shown}"
    );
    assert!(shown.contains("REFUSED"), "{shown}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 of 2 credentials failed"),
        "{out:?}"
    );

    let listed = json_of(
        cli(home.path(), &server, &token)
            .args(["-o", "json", "credential", "list", "--search", "renamed"])
            .assert()
            .success()
            .get_output(),
    );
    assert_eq!(
        listed.as_array().unwrap().len(),
        0,
        "key_word searches names, ips, usernames"
    );
    let listed = json_of(
        cli(home.path(), &server, &token)
            .args(["-o", "json", "credential", "list", "--sort", "name"])
            .assert()
            .success()
            .get_output(),
    );
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db", "web\u{200f}"]);

    cli(home.path(), &server, &token)
        .args(["credential", "delete", "1", "2"])
        .assert()
        .success();
    cli(home.path(), &server, &token)
        .args(["credential", "delete", "1"])
        .assert()
        .failure();
    cli(home.path(), &server, &token)
        .args(["credential", "get", "1"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("Credential.NotFound"));
    // The passphrase never goes on the command line: there is no flag for it.
    cli(home.path(), &server, &token)
        .args(["credential", "create", "--name", "x", "--target", &target])
        .args(["--username", "u", "--passphrase", "p"])
        .assert()
        .failure();
}

/// A key credential from a key file, its passphrase from stdin; a secret
/// in `--set` (which other local users read in the process list) is refused,
/// however its key is spelled.
#[tokio::test]
async fn keys_come_from_files_and_secrets_never_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let key = sshd::ClientKey::generate("ed25519", "key-pass-4471", false);
    let sshd = Sshd::start_with_keys(std::slice::from_ref(&key.public_line));
    let server = Server::start(Options::default());
    let token = server.token("cli", "write");
    let target = format!("127.0.0.1:{}", sshd.addr.port());
    let key_file = home.path().join("id_ed25519");
    std::fs::write(&key_file, &key.private).unwrap();

    let created = json_of(
        cli(home.path(), &server, &token)
            .args(["-o", "json", "credential", "create", "--name", "by-key"])
            .args(["--target", &target, "--username", sshd::USER])
            .arg("--private-key-file")
            .arg(&key_file)
            .arg("--passphrase-stdin")
            .write_stdin("key-pass-4471\n")
            .assert()
            .success()
            .get_output(),
    );
    assert_eq!(created["ssh_secret"]["type"], "PUBLIC_KEY", "{created}");
    assert_eq!(
        created["ssh_secret"]["key_fingerprint"], key.fingerprint,
        "{created}"
    );
    // Renamed, the stored key kept; then the key given again, from its file.
    let id = created["credential_id"].to_string();
    cli(home.path(), &server, &token)
        .args(["credential", "update", &id, "--name", "renamed"])
        .assert()
        .success();
    let updated = json_of(
        cli(home.path(), &server, &token)
            .args(["-o", "json", "credential", "update", &id])
            .arg("--private-key-file")
            .arg(&key_file)
            .arg("--passphrase-stdin")
            .write_stdin("key-pass-4471\n")
            .assert()
            .success()
            .get_output(),
    );
    assert_eq!(updated["name"], "renamed", "{updated}");
    assert_eq!(
        updated["ssh_secret"]["key_fingerprint"], key.fingerprint,
        "{updated}"
    );
    // Host keys learned afresh take the secret again; without it, refused.
    cli(home.path(), &server, &token)
        .args(["credential", "update", &id, "--forget-host-keys"])
        .arg("--private-key-file")
        .arg(&key_file)
        .arg("--passphrase-stdin")
        .write_stdin("key-pass-4471\n")
        .assert()
        .success();
    cli(home.path(), &server, &token)
        .args(["credential", "update", &id, "--forget-host-keys"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "forget_host_keys needs the passphrase",
        ));

    for set in [
        "private_key=-----BEGIN",
        "PassPhrase=hunter2",
        "passphrase=hunter2",
    ] {
        cli(home.path(), &server, &token)
            .args(["credential", "create", "--name", "x", "--target", &target])
            .args(["--username", "u", "--passphrase-stdin", "--set", set])
            .write_stdin("p\n")
            .assert()
            .failure()
            .stderr(predicates::str::contains("never goes on the command line"));
        cli(home.path(), &server, &token)
            .args(["credential", "update", "1", "--set", set])
            .assert()
            .failure()
            .stderr(predicates::str::contains("never goes on the command line"));
    }
}

#[tokio::test]
async fn lists_page_through_everything() {
    let home = tempfile::tempdir().unwrap();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(52_000, 230)).await;
    let server = Server::start(Options::default());
    populate(&server, &fake.addrs, "many", 16).await;
    let token = server.token("reader", "read");
    let listed = json_of(
        cli(home.path(), &server, &token)
            .args(["-o", "json", "credential", "list"])
            .assert()
            .success()
            .get_output(),
    );
    let ids: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["credential_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=230).collect::<Vec<_>>());
    // A read token may list, not validate.
    cli(home.path(), &server, &token)
        .args(["credential", "validate", "--all"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("InsufficientScope"));
}

#[tokio::test]
async fn keys_policy_plugins_and_status() {
    let home = tempfile::tempdir().unwrap();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(53_000, 40)).await;
    let server = Server::start(Options::default());
    populate(&server, &fake.addrs, "k", 8).await;
    let token = server.token("admin", "admin");
    let out = cli(home.path(), &server, &token)
        .args(["keys", "rotate", "--wait"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stdout(&out).contains("(key 2)"), "{}", stdout(&out));
    let status = json_of(
        cli(home.path(), &server, &token)
            .args(["-o", "json", "policy", "set", "chacha20-poly1305", "--wait"])
            .assert()
            .success()
            .get_output(),
    );
    assert_eq!(status["active_policy"], "chacha20-poly1305");
    let rows: Vec<(String, u64)> = status["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(rows.contains(&("chacha20-poly1305".into(), 40)), "{rows:?}");
    let out = cli(home.path(), &server, &token)
        .args(["encryption", "status"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stdout(&out).contains("retired"), "{}", stdout(&out));
    let out = cli(home.path(), &server, &token)
        .args(["plugins", "list"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stdout(&out).contains("ssh-verifier"), "{}", stdout(&out));
    cli(home.path(), &server, &token)
        .args(["plugins", "reload"])
        .assert()
        .success();
}

#[tokio::test]
async fn login_tokens_and_failures() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(Options::default());
    let admin = server.token("admin", "admin");
    // Login saves the URL and token, 0600; later commands need neither.
    let mut login = Command::new(env!("CARGO_BIN_EXE_credhost"));
    login
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .args(["login", &server.base, "--token-stdin"])
        .write_stdin(format!("{admin}\n"))
        .assert()
        .success()
        .stdout(predicates::str::contains("as admin (scope admin)"));
    let saved = home.path().join("config/credhost/login.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut bare = Command::new(env!("CARGO_BIN_EXE_credhost"));
    bare.env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("CREDHOST_URL")
        .env_remove("CREDHOST_TOKEN");
    let out = bare
        .args([
            "token", "create", "--name", "ci", "--scope", "validate", "--ttl", "1h",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let ci = stdout(&out).lines().last().unwrap().to_string();
    assert!(ci.starts_with("credhost_"), "{ci}");
    let listed = json_of(
        cli(home.path(), &server, &admin)
            .args(["-o", "json", "token", "list"])
            .assert()
            .success()
            .get_output(),
    );
    let ci_record = listed["contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap()
        .clone();
    assert_eq!(ci_record["scope"], "validate");
    assert!(ci_record["expires_at"].is_string());
    assert!(
        !listed
            .to_string()
            .contains(ci.splitn(3, '_').nth(2).unwrap())
    );
    cli(home.path(), &server, &admin)
        .args(["token", "revoke", ci_record["id"].as_str().unwrap()])
        .assert()
        .success()
        .stdout(predicates::str::contains("revoked"));
    cli(home.path(), &server, &ci)
        .args(["credential", "list"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("Token.Invalid"));
    // No server anywhere: a clear error.
    let empty = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_credhost"))
        .env("HOME", empty.path())
        .env("XDG_CONFIG_HOME", empty.path().join("config"))
        .env_remove("CREDHOST_URL")
        .args(["credential", "list"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("credhost login"));
    // An unreachable one too.
    let mut gone = cli(home.path(), &server, &admin);
    gone.env(
        "CREDHOST_URL",
        format!("http://127.0.0.1:{}", support::closed_port()),
    )
    .args(["credential", "list"])
    .assert()
    .failure()
    .stderr(predicates::str::contains("cannot reach"));
    // Completions for shells.
    Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicates::str::contains("credential"));
    // Every command has --help.
    for command in [
        vec!["credential", "create"],
        vec!["keys", "rotate"],
        vec!["token", "create"],
        vec!["audit", "verify"],
    ] {
        Command::new(env!("CARGO_BIN_EXE_credhost"))
            .args(&command)
            .arg("--help")
            .assert()
            .success()
            .stdout(predicates::str::contains("Usage"));
    }
}

/// A server that answers with a redirect does not get the token sent on:
/// the CLI follows no redirect.
#[test]
fn a_redirect_is_not_followed_with_the_token() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let redirector = TcpListener::bind("127.0.0.1:0").unwrap();
    let location = format!("http://{}/api/v1/tokens", elsewhere.local_addr().unwrap());
    let redirector_addr = redirector.local_addr().unwrap();
    let answering = std::thread::spawn(move || {
        let (mut stream, _) = redirector.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).unwrap();
        let answer = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(answer.as_bytes()).unwrap();
    });
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_credhost"))
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("CREDHOST_TOKEN", "credhost_secret_token_value")
        .env("CREDHOST_URL", format!("http://{redirector_addr}"))
        .args(["token", "list"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(!out.status.success());
    answering.join().unwrap();
    assert!(
        elsewhere.accept().is_err(),
        "the request went on to the redirect's target"
    );
}

/// A name, description or username is anyone's with write access: printed
/// in a table, its escape sequences (clear a line, set the clipboard) or
/// direction overrides reach the terminal as text, never as commands.
#[tokio::test]
async fn what_others_wrote_cannot_command_the_terminal() {
    let home = tempfile::tempdir().unwrap();
    let fake = FakeSsh::start(&fake_ssh::loopback_ips(66_000, 1)).await;
    let server = Server::start(Options::default());
    let addr = fake.addrs[0];
    let hostile = "web\u{1b}[1A\u{1b}[2K\u{1b}]52;c;aGk=\u{7}\u{202e}";
    let (status, envelope) = server
        .post(
            "/api/v1/security/credential",
            serde_json::json!({ "target_type": "HOST", "name": hostile, "description": hostile,
                "ssh_credential_property": {
                    "targets": [{ "ip": addr.ip().to_string(), "port": addr.port() }],
                    "username": fake_ssh::USER, "type": "PASSWORD",
                    "passphrase": fake_ssh::PASSWORD } }),
        )
        .await;
    assert_eq!(status, 200, "{envelope}");
    let id = envelope["data"]["credential_id"].to_string();
    let token = server.token("reader", "read");
    for args in [vec!["credential", "list"], vec!["credential", "get", &id]] {
        let out = cli(home.path(), &server, &token)
            .args(&args)
            .assert()
            .success()
            .get_output()
            .clone();
        let shown = stdout(&out);
        assert!(shown.contains("web\\u{1b}[1A"), "{shown}");
        assert!(
            !shown.contains(['\u{1b}', '\u{7}', '\u{202e}']),
            "{shown:?}"
        );
    }
    // JSON for scripts keeps the text as it is, escaped by JSON itself.
    let out = cli(home.path(), &server, &token)
        .args(["-o", "json", "credential", "get", &id])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        !stdout(&out).contains(['\u{1b}', '\u{7}', '\u{202e}']),
        "{:?}",
        stdout(&out)
    );
    assert_eq!(json_of(&out)["name"], hostile);
}

/// A proxy named in the environment gets nothing: plain HTTP goes to this
/// machine only, and a proxy would carry it, token and all, elsewhere.
#[tokio::test]
async fn a_proxy_in_the_environment_is_not_used() {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let server = Server::start(Options::default());
    let token = server.token("reader", "read");
    let home = tempfile::tempdir().unwrap();
    cli(home.path(), &server, &token)
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args(["credential", "list"])
        .assert()
        .success();
    assert!(
        proxy.accept().is_err(),
        "the request went through the proxy"
    );
}

/// A database password in a store URL would be on the command line, which
/// every user of the machine may read (`ps`): refused before anything is
/// dialled, without repeating it.
#[test]
fn a_password_in_a_store_url_is_refused() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("mysql://app:Hunter-2291@127.0.0.1:{port}/credhost");
    let out = Command::new(env!("CARGO_BIN_EXE_credhost"))
        .args(["store", "migrate", &url])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .failure()
        .get_output()
        .clone();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("holds a password"), "{said}");
    assert!(!said.contains("Hunter-2291"), "{said}");
}
