//! A credhost verifier for target type `__TARGET_TYPE__`. It proves a
//! credential by opening a TCP connection to the target; replace
//! `verify_target` with your protocol's login (examples/ob-verifier speaks
//! MySQL's). The host calls it once per target, all targets at once.

use std::net::{IpAddr, SocketAddr, TcpStream};

use credhost_plugin_sdk::{
    Descriptor, Names, Normalized, Property, Purpose, Reason, Refusal, Target, Verdict, Verifier,
    endpoints, failed, max_bytes, max_chars, ok, secret, show,
};
use serde::{Deserialize, Serialize};

const NAMES: Names = Names {
    field: "__FIELD___credential_property",
    go_struct: "__TYPE_CAMEL__CredentialProperty",
};

/// What responses show, and what `verify_target` gets back: never the secret.
#[derive(Serialize, Deserialize)]
struct Public {
    targets: Vec<Endpoint>,
    username: String,
}

#[derive(Serialize, Deserialize)]
struct Endpoint {
    ip: String,
    port: u16,
}

struct Plugin;

impl Verifier for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            target_type: "__TARGET_TYPE__".into(),
            property_field: NAMES.field.into(),
            public_field: "__FIELD___secret".into(),
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            property_schema: r#"{"type": "object", "required": ["targets", "username", "passphrase"],
                "properties": {
                  "targets": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["ip", "port"],
                              "properties": {"ip": {"type": "string"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535}}}},
                  "username": {"type": "string", "minLength": 1, "maxLength": 256},
                  "passphrase": {"type": "string", "maxLength": 4096, "writeOnly": true}}}"#
                .into(),
            public_schema: r#"{"type": "object", "properties": {"targets": {"type": "array"}, "username": {"type": "string"}}}"#
                .into(),
            validation_failed_code: "Credential.__TARGET_TYPE__.ValidationFailed".into(),
            validation_failed_message: "__TARGET_TYPE__ connection validation failed".into(),
        }
    }

    fn normalize(property: &str, purpose: Purpose, _stored: Option<&str>) -> Result<Normalized, Refusal> {
        let property = Property::parse(property, NAMES, purpose)?;
        let targets = property.targets()?;
        let username = property.string("username")?;
        let passphrase = property.nullable_string("passphrase")?;
        property.require(&[
            ("Targets", targets.is_none()),
            ("Username", username.as_deref().is_none_or(str::is_empty)),
            ("Passphrase", passphrase.is_none()),
        ])?;
        // No default port: 0 (absent) is refused as out of range.
        let targets = endpoints(&targets.unwrap_or_default(), 0, "port")?;
        let username = username.unwrap_or_default();
        max_chars("username", &username, 256)?;
        let passphrase = passphrase.unwrap_or_default();
        max_bytes("passphrase", passphrase.as_bytes(), 4096)?;
        let public = Public {
            targets: targets.iter().map(|t| Endpoint { ip: t.ip.clone(), port: t.port }).collect(),
            username: username.clone(),
        };
        Ok(Normalized {
            public: serde_json::to_string(&public).expect("plain data serialises"),
            secret: secret(passphrase.as_bytes(), purpose),
            targets,
            search_terms: vec![username],
        })
    }

    fn verify_target(_public: &str, _secret: &[u8], target: &Target) -> Verdict {
        let Ok(ip) = target.ip.parse::<IpAddr>() else {
            return failed(Reason::Other, "not an IP");
        };
        match TcpStream::connect(SocketAddr::new(ip, target.port)) {
            Ok(_) => ok(),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                failed(Reason::Refused, format!("{}: {e}", show(target)))
            }
            Err(e) => failed(Reason::Unreachable, format!("{}: {e}", show(target))),
        }
    }
}

credhost_plugin_sdk::export_verifier!(Plugin);
