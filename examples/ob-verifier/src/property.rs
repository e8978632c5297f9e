//! `ob_credential_property`: `{targets: [{ip, port}], username, passphrase}`,
//! read with obshell's binding rules (through the SDK).

use credhost_plugin_sdk::{
    Names, Normalized, Property, Purpose, Refusal, endpoints, max_bytes, max_chars, secret,
};
use serde::{Deserialize, Serialize};

const NAMES: Names = Names {
    field: "ob_credential_property",
    go_struct: "ObCredentialProperty",
};
/// OceanBase's SQL port.
const DEFAULT_PORT: u16 = 2881;

#[derive(Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

/// What responses show under `ob_secret`, and what `verify-target` gets back.
#[derive(Serialize, Deserialize)]
pub struct Public {
    pub targets: Vec<Endpoint>,
    pub username: String,
}

impl Public {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

pub fn normalize(text: &str, purpose: Purpose) -> Result<Normalized, Refusal> {
    let property = Property::parse(text, NAMES, purpose)?;
    let targets = property.targets()?;
    let username = property.string("username")?;
    let passphrase = property.nullable_string("passphrase")?;
    property.require(&[
        ("Targets", targets.is_none()),
        ("Username", username.as_deref().is_none_or(str::is_empty)),
        ("Passphrase", passphrase.is_none()),
    ])?;
    let targets = endpoints(&targets.unwrap_or_default(), DEFAULT_PORT, "port")?;
    let username = username.unwrap_or_default();
    max_chars("username", &username, 256)?;
    let passphrase = passphrase.unwrap_or_default();
    max_bytes("passphrase", passphrase.as_bytes(), 4096)?;
    let public = Public {
        targets: targets
            .iter()
            .map(|t| Endpoint {
                ip: t.ip.clone(),
                port: t.port,
            })
            .collect(),
        username: username.clone(),
    };
    Ok(Normalized {
        public: serde_json::to_string(&public).expect("plain data serialises"),
        secret: secret(passphrase.as_bytes(), purpose),
        targets,
        search_terms: vec![username],
    })
}
