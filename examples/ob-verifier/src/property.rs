//! `ob_credential_property`: `{targets: [{ip, port}], username, passphrase}`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// OceanBase's SQL port.
const DEFAULT_PORT: i64 = 2881;

#[derive(Deserialize)]
struct Raw {
    targets: Option<Vec<RawTarget>>,
    username: Option<String>,
    passphrase: Option<String>,
}

#[derive(Deserialize)]
struct RawTarget {
    #[serde(default)]
    ip: String,
    port: Option<i64>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

/// What responses show under `ob_secret`, and what `verify` gets back.
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

pub struct Property {
    pub targets: Vec<Endpoint>,
    pub username: String,
    pub passphrase: String,
}

impl Property {
    pub fn public_json(&self) -> String {
        serde_json::to_string(&Public {
            targets: self.targets.clone(),
            username: self.username.clone(),
        })
        .expect("plain data serialises")
    }
}

type Refused = (&'static str, String);

pub fn parse(text: &str) -> Result<Property, Refused> {
    let raw: Option<Raw> = serde_json::from_str(text).map_err(|e| {
        (
            "Common.BindJsonFailed",
            format!("Bind JSON failed: ob_credential_property: {e}"),
        )
    })?;
    let raw = raw.ok_or((
        "Common.BindJsonFailed",
        "Bind JSON failed: ob_credential_property is required".to_string(),
    ))?;
    let mut missing = Vec::new();
    if raw.targets.is_none() {
        missing.push("targets");
    }
    if raw.username.as_deref().is_none_or(str::is_empty) {
        missing.push("username");
    }
    if raw.passphrase.is_none() {
        missing.push("passphrase");
    }
    if !missing.is_empty() {
        return Err((
            "Common.BindJsonFailed",
            format!(
                "Bind JSON failed: ob_credential_property needs {}",
                missing.join(", ")
            ),
        ));
    }
    let targets = raw.targets.unwrap_or_default();
    if targets.is_empty() {
        return Err((
            "Common.IllegalArgument",
            "Illegal argument: targets list cannot be empty".into(),
        ));
    }
    let targets = targets
        .into_iter()
        .map(|t| {
            let ip: IpAddr = t.ip.parse().map_err(|_| {
                (
                    "Common.InvalidIp",
                    format!("'{}' is not a valid IP address", t.ip),
                )
            })?;
            let port = match t.port.unwrap_or(0) {
                0 => DEFAULT_PORT,
                p => p,
            };
            let port = u16::try_from(port).ok().filter(|p| *p != 0).ok_or((
                "Common.IllegalArgument",
                format!("Illegal argument: the port '{port}' is invalid, must be in [1, 65535]"),
            ))?;
            Ok(Endpoint {
                ip: ip.to_canonical().to_string(),
                port,
            })
        })
        .collect::<Result<Vec<_>, Refused>>()?;
    let username = raw.username.unwrap_or_default();
    if username.chars().count() > 256 {
        return Err((
            "Common.IllegalArgument",
            "Illegal argument: username is longer than 256 characters".into(),
        ));
    }
    let passphrase = raw.passphrase.unwrap_or_default();
    if passphrase.len() > 4096 {
        return Err((
            "Common.IllegalArgument",
            "Illegal argument: passphrase is longer than 4096 bytes".into(),
        ));
    }
    Ok(Property {
        targets,
        username,
        passphrase,
    })
}
