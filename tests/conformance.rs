//! Schemathesis (installed into `.venv` by `tests/run`) against the real
//! binary and the OpenAPI document it serves: generated requests for every
//! operation, and no 5xx, no status, content type or body that the document
//! does not allow, no answer slower than the limit. Targets are fenced to
//! loopback so nothing it generates is ever dialled elsewhere.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::server::{Options, Server};

#[test]
fn the_served_openapi_document_holds_for_generated_requests() {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run tests/run, which installs it",
        bin.display()
    );
    let server = Server::start(Options {
        args: ["--allow-target", "127.0.0.0/8", "--allow-target", "::1/128"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    let reports = tempfile::tempdir().unwrap();
    let output = Command::new(&bin)
        .current_dir(reports.path())
        .args(["run", &format!("{}/api/v1/openapi.json", server.base)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--max-response-time",
            "30",
            "--phases",
            "coverage,fuzzing",
            "--generation-deterministic",
            "--no-color",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every operation of the document was tried (those that take JSON).
    let total = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .and_then(|s| s.split_once('/'))
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    assert_eq!(total.0, total.1, "{stdout}");
    assert!(total.0.parse::<u32>().unwrap() >= 24, "{stdout}");
    assert!(stdout.contains(&format!("Tested: {}", total.0)), "{stdout}");
    assert!(
        !server.log_text().contains("panicked"),
        "{}",
        server.log_text()
    );
}
