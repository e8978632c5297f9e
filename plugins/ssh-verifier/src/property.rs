//! obshell's `ssh_credential_property`: decoding with obshell's binding rules
//! (keys matched case-insensitively, last one wins, `required` checks reported
//! together) and its executor rules (targets, IP, port, type), in its order.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::credhost::plugin::types::Target as SshTarget;
use crate::exports::credhost::plugin::verification::{Purpose, Target};

const DEFAULT_PORT: i64 = 22;
const MAX_USERNAME_CHARS: usize = 256;
const MAX_PASSPHRASE_BYTES: usize = 4096;

/// A refused property: an obshell error code and its message.
#[derive(Debug)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn illegal(what: impl std::fmt::Display) -> Self {
        Self {
            code: "Common.IllegalArgument",
            message: format!("Illegal argument: {what}"),
        }
    }

    fn bind(what: impl std::fmt::Display) -> Self {
        Self {
            code: "Common.BindJsonFailed",
            message: format!("Bind JSON failed: {what}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

impl Endpoint {
    pub fn to_wit(&self) -> Target {
        Target {
            ip: self.ip.clone(),
            port: self.port,
        }
    }

    pub fn to_ssh(&self) -> SshTarget {
        SshTarget {
            ip: self.ip.clone(),
            port: self.port,
        }
    }
}

/// The public part, as shown under `ssh_secret` and handed back to `verify`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Public {
    pub targets: Vec<Endpoint>,
    pub username: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl Public {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// A property that passed every check.
#[derive(Debug)]
pub struct Property {
    pub targets: Vec<Endpoint>,
    pub username: String,
    pub kind: String,
    pub passphrase: String,
}

impl Property {
    pub fn public_json(&self) -> String {
        let public = Public {
            targets: self.targets.clone(),
            username: self.username.clone(),
            kind: self.kind.clone(),
        };
        serde_json::to_string(&public).expect("a plain struct always serialises")
    }
}

/// The property as decoded, before any rule is applied. `None` is obshell's
/// zero value: absent or `null`.
#[derive(Default)]
struct Raw {
    targets: Option<Vec<RawTarget>>,
    username: Option<String>,
    kind: Option<String>,
    passphrase: Option<String>,
}

#[derive(Default)]
struct RawTarget {
    ip: String,
    port: i64,
}

pub fn parse(text: &str, purpose: Purpose) -> Result<Property, Refusal> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Refusal::bind(format!("invalid property JSON: {e}")))?;
    let raw = decode(&value)?;
    check_required(&raw, purpose)?;
    let targets = raw.targets.unwrap_or_default();
    if targets.is_empty() {
        return Err(Refusal::illegal("targets list cannot be empty"));
    }
    let targets = targets
        .into_iter()
        .map(check_target)
        .collect::<Result<Vec<_>, _>>()?;
    let username = raw.username.unwrap_or_default();
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(Refusal::illegal(format!(
            "username is longer than {MAX_USERNAME_CHARS} characters"
        )));
    }
    let kind = raw.kind.unwrap_or_default();
    if kind != "PASSWORD" {
        return Err(Refusal {
            code: "Credential.AuthType.NotSupported",
            message: "Unsupported authentication type, currently only supports PASSWORD".into(),
        });
    }
    let passphrase = raw.passphrase.unwrap_or_default();
    if passphrase.len() > MAX_PASSPHRASE_BYTES {
        return Err(Refusal::illegal(format!(
            "passphrase is longer than {MAX_PASSPHRASE_BYTES} bytes"
        )));
    }
    Ok(Property {
        targets,
        username,
        kind,
        passphrase,
    })
}

fn check_target(raw: RawTarget) -> Result<Endpoint, Refusal> {
    let ip: IpAddr = raw.ip.parse().map_err(|_| Refusal {
        code: "Common.InvalidIp",
        message: format!("'{}' is not a valid IP address", raw.ip),
    })?;
    let port = if raw.port == 0 {
        DEFAULT_PORT
    } else {
        raw.port
    };
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(Refusal {
            code: "Credential.SSH.InvalidPort",
            message: format!("The SSH port '{port}' is invalid, must be in [1, 65535]"),
        })?;
    // One host, one spelling: `::ffff:10.0.0.1` is `10.0.0.1`, `FE80::1` is `fe80::1`.
    Ok(Endpoint {
        ip: ip.to_canonical().to_string(),
        port,
    })
}

/// obshell's `required` rules, all violations together, in declaration order.
fn check_required(raw: &Raw, purpose: Purpose) -> Result<(), Refusal> {
    let param = match purpose {
        Purpose::Create => "CreateCredentialParam",
        Purpose::Update => "UpdateCredentialParam",
        Purpose::Validate => "ValidateCredentialParam",
    };
    let missing = [
        ("Targets", raw.targets.is_none()),
        (
            "Username",
            raw.username.as_deref().is_none_or(str::is_empty),
        ),
        ("Type", raw.kind.as_deref().is_none_or(str::is_empty)),
        ("Passphrase", raw.passphrase.is_none()),
    ];
    let lines: Vec<String> = missing
        .iter()
        .filter(|(_, is_missing)| *is_missing)
        .map(|(field, _)| {
            format!(
                "Key: '{param}.SshCredentialProperty.{field}' Error:Field validation for '{field}' failed on the 'required' tag"
            )
        })
        .collect();
    if lines.is_empty() {
        Ok(())
    } else {
        Err(Refusal::bind(lines.join("\n")))
    }
}

fn decode(value: &Value) -> Result<Raw, Refusal> {
    let object = match value {
        Value::Null => return Ok(Raw::default()),
        Value::Object(object) => object,
        other => {
            return Err(mismatch(
                other,
                "ssh_credential_property",
                "param.SshCredentialProperty",
            ));
        }
    };
    let mut raw = Raw::default();
    if let Some(targets) = field(object, "targets") {
        raw.targets = match targets {
            Value::Null => None,
            Value::Array(items) => Some(items.iter().map(decode_target).collect::<Result<_, _>>()?),
            other => {
                return Err(mismatch(
                    other,
                    "ssh_credential_property.targets",
                    "[]param.Target",
                ));
            }
        };
    }
    raw.username = string_field(object, "username")?;
    raw.kind = string_field(object, "type")?;
    raw.passphrase = string_field(object, "passphrase")?;
    Ok(raw)
}

fn decode_target(value: &Value) -> Result<RawTarget, Refusal> {
    let object = match value {
        Value::Null => return Ok(RawTarget::default()),
        Value::Object(object) => object,
        other => {
            return Err(mismatch(
                other,
                "ssh_credential_property.targets",
                "param.Target",
            ));
        }
    };
    let ip = match field(object, "ip") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(ip)) => ip.clone(),
        Some(other) => {
            return Err(mismatch(
                other,
                "Target.ssh_credential_property.targets.ip",
                "string",
            ));
        }
    };
    let port = match field(object, "port") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            mismatch(
                &Value::Number(n.clone()),
                "Target.ssh_credential_property.targets.port",
                "int",
            )
        })?,
        Some(other) => {
            return Err(mismatch(
                other,
                "Target.ssh_credential_property.targets.port",
                "int",
            ));
        }
    };
    Ok(RawTarget { ip, port })
}

fn string_field(object: &Map<String, Value>, name: &str) -> Result<Option<String>, Refusal> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(mismatch(
            other,
            &format!("ssh_credential_property.{name}"),
            "string",
        )),
    }
}

/// obshell (Go's encoding/json) matches keys case-insensitively and the last
/// matching key wins.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
        .next_back()
}

fn mismatch(value: &Value, field: &str, go_type: &str) -> Refusal {
    let kind = match value {
        Value::Null => "null".to_string(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    };
    Refusal::bind(format!(
        "json: cannot unmarshal {kind} into Go struct field {field} of type {go_type}"
    ))
}
