//! The web console in a real browser: Debian's Chromium, driven by
//! Playwright (`tests/console/drive.py`, installed into `.venv` by
//! `tests/run`), against the real binary and a real sshd listening on 25
//! loopback addresses. Screenshots of every page land in
//! `target/console-screenshots/`; axe-core checks each view.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::server::{Options, Server};
use support::sshd::{self, Sshd};

#[test]
fn an_operator_drives_the_console() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let python = root.join(".venv/bin/python");
    let axe = root.join(".venv/node/node_modules/axe-core/axe.min.js");
    for (what, path) in [("Playwright's Python", &python), ("axe-core", &axe)] {
        assert!(
            path.exists(),
            "{what} is missing at {}: run tests/run",
            path.display()
        );
    }
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: run tests/run, which installs it"
    );
    let ips: Vec<String> = (10..35).map(|i| format!("127.0.0.{i}")).collect();
    let sshds: Vec<Sshd> = ips.chunks(16).map(Sshd::start_on_many).collect();
    let targets: Vec<String> = sshds
        .iter()
        .zip(ips.chunks(16))
        .flat_map(|(sshd, ips)| {
            ips.iter()
                .map(move |ip| format!("{ip}:{}", sshd.addr.port()))
        })
        .collect();
    let doomed = Sshd::start_on("127.0.0.40");
    let plugins = tempfile::tempdir().unwrap();
    let server = Server::start(Options {
        // console.test: a name the browser maps to loopback, for a page
        // that is not a secure context (see `insecure_origin`).
        args: vec![
            "--plugin-dir".into(),
            plugins.path().display().to_string(),
            "--server-name".into(),
            "console.test".into(),
        ],
        // With a password the console asks for a token.
        envs: vec![("CREDHOST_PASSWORD".into(), "console-test-pw-4c1e".into())],
        ..Default::default()
    });
    let token = server.token("console", "admin");
    let shots: PathBuf = root.join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new(&python)
        .arg(root.join("tests/console/drive.py"))
        .env("CONSOLE_URL", &server.base)
        .env("CONSOLE_TOKEN", &token)
        .env("SSH_TARGETS", targets.join(","))
        .env("SSH_USER", sshd::USER)
        .env("SSH_PASSWORD", sshd::PASSWORD)
        .env("DOOMED", doomed.addr.to_string())
        .env("DOOMED_PID", doomed.pid().to_string())
        .env("PLUGIN_DIR", plugins.path())
        .env(
            "OB_WASM",
            credhost::plugins::embedded::build_dir().join("ob_verifier.wasm"),
        )
        .env("SCREENSHOTS", &shots)
        .env("AXE", &axe)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{said}\n--- server log ---\n{}",
        server.log_text()
    );
    assert!(said.contains("every step passed"), "{said}");
    for shot in [
        "01-sign-in",
        "06-validated-after-reload",
        "07-rotated",
        "09-ob-form",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).exists(),
            "no screenshot {shot}"
        );
    }
}
