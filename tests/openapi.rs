//! The OpenAPI document the real binary serves: every operation it names is
//! served, every method it does not name for a path is not, and it
//! describes the target types of the plugins loaded right now.

mod support;

use reqwest::Method;
use serde_json::Value;
use support::server::{Options, Server};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Whether the answer is the router's own "no such route".
fn no_route(envelope: &Value) -> bool {
    envelope["status"] == 404 && envelope["error"]["message"] == "Element not found: 404 not found"
        || envelope["error"]["errCode"] == "Common.IllegalArgument"
            && envelope["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("invalid credential id"))
}

async fn document(server: &Server) -> Value {
    let response = server
        .client()
        .get(format!("{}/api/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other() {
    let server = Server::start(Options::default());
    let doc = document(&server).await;
    assert_eq!(doc["openapi"].as_str().unwrap().chars().next(), Some('3'));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 21, "{:?}", paths.keys());
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path.replace("{id}", "1").replace("{file}", "app.js");
        for method in METHODS {
            let documented = item.get(method).is_some();
            let response = server
                .client()
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    format!("{}{concrete}", server.base),
                )
                .header("content-type", "application/json")
                .body(if method == "get" || method == "delete" {
                    String::new()
                } else {
                    "{}".to_string()
                })
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let envelope: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if documented {
                operations += 1;
                assert!(
                    !no_route(&envelope),
                    "{method} {path} is documented but not served: {text}"
                );
            } else {
                assert!(
                    no_route(&envelope),
                    "{method} {path} is served ({status}) but not documented: {text}"
                );
            }
        }
    }
    assert!(operations >= 25, "{operations} operations");
    // Every operation says what it answers, errors included.
    for (path, item) in paths {
        if path == "/" || path.starts_with("/console") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{method} {path}");
            if path != "/api/v1/openapi.json" {
                for status in ["400", "401", "403", "404", "500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_document_follows_the_loaded_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Options {
        args: vec!["--plugin-dir".into(), dir.path().display().to_string()],
        ..Default::default()
    });
    let doc = document(&server).await;
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateCredential"]["properties"];
    assert_eq!(
        create["ssh_credential_property"]["$ref"],
        "#/components/schemas/HOST.property"
    );
    assert!(create.get("ob_credential_property").is_none());
    assert_eq!(create["target_type"]["enum"], serde_json::json!(["HOST"]));
    let host = &schemas["HOST.property"];
    assert_eq!(host["properties"]["passphrase"]["writeOnly"], true);
    assert!(
        host["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .contains(&"PUBLIC_KEY".into())
    );
    assert!(
        schemas["HOST.public"]["properties"]
            .get("host_keys")
            .is_some()
    );
    assert_eq!(
        schemas["Credential"]["properties"]["ssh_secret"]["$ref"],
        "#/components/schemas/HOST.public"
    );

    // The OB plugin arrives: so does its schema.
    std::fs::copy(
        credhost::plugins::embedded::build_dir().join("ob_verifier.wasm"),
        dir.path().join("ob_verifier.wasm"),
    )
    .unwrap();
    let (status, _) = server
        .post("/api/v1/plugins/reload", serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    let doc = document(&server).await;
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateCredential"]["properties"];
    assert_eq!(
        create["ob_credential_property"]["$ref"],
        "#/components/schemas/OB.property"
    );
    assert_eq!(
        create["target_type"]["enum"],
        serde_json::json!(["HOST", "OB"])
    );
    assert_eq!(
        schemas["OB.property"]["properties"]["targets"]["items"]["properties"]["port"]["default"],
        2881
    );
    assert_eq!(
        schemas["Credential"]["properties"]["ob_secret"]["$ref"],
        "#/components/schemas/OB.public"
    );
}
