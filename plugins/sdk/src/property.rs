//! Reading a property as obshell (Go's `encoding/json` and gin's binding)
//! reads it: keys matched case-insensitively, the last match wins, `null`
//! is the same as absent, a value of the wrong JSON type is a bind error
//! worded as Go words it, and `required` violations are reported together.

use serde_json::{Map, Value};

use crate::{Purpose, Refusal, Secret};

/// How a property is named in messages: its JSON field
/// (`ssh_credential_property`) and its Go struct (`SshCredentialProperty`).
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub field: &'static str,
    pub go_struct: &'static str,
}

/// A property as sent, for reading field by field.
pub struct Property {
    names: Names,
    purpose: Purpose,
    object: Map<String, Value>,
}

/// A target as sent, before any rule is applied (`port` 0: absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawTarget {
    pub ip: String,
    pub port: i64,
}

fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

fn mismatch(value: &Value, field: &str, go_type: &str) -> Refusal {
    Refusal::bind(format!(
        "json: cannot unmarshal {} into Go struct field {field} of type {go_type}",
        kind_of(value)
    ))
}

/// Go's `encoding/json`: case-insensitive keys, the last match wins.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
        .next_back()
}

impl Property {
    /// Parses the property's JSON (`null` is an empty property).
    pub fn parse(text: &str, names: Names, purpose: Purpose) -> Result<Self, Refusal> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Refusal::bind(format!("invalid property JSON: {e}")))?;
        let object = match value {
            Value::Null => Map::new(),
            Value::Object(object) => object,
            other => {
                return Err(mismatch(
                    &other,
                    names.field,
                    &format!("param.{}", names.go_struct),
                ));
            }
        };
        Ok(Self {
            names,
            purpose,
            object,
        })
    }

    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// A string field; `None` when absent or `null`.
    pub fn string(&self, name: &str) -> Result<Option<String>, Refusal> {
        match field(&self.object, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(mismatch(
                other,
                &format!("{}.{name}", self.names.field),
                "string",
            )),
        }
    }

    /// The `targets` list; `None` when absent or `null`.
    pub fn targets(&self) -> Result<Option<Vec<RawTarget>>, Refusal> {
        let at = format!("{}.targets", self.names.field);
        match field(&self.object, "targets") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| self.target(item))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(mismatch(other, &at, "[]param.Target")),
        }
    }

    fn target(&self, value: &Value) -> Result<RawTarget, Refusal> {
        let at = format!("{}.targets", self.names.field);
        let object = match value {
            Value::Null => return Ok(RawTarget::default()),
            Value::Object(object) => object,
            other => return Err(mismatch(other, &at, "param.Target")),
        };
        let ip = match field(object, "ip") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(ip)) => ip.clone(),
            Some(other) => return Err(mismatch(other, &format!("Target.{at}.ip"), "string")),
        };
        let port = match field(object, "port") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                mismatch(
                    &Value::Number(n.clone()),
                    &format!("Target.{at}.port"),
                    "int",
                )
            })?,
            Some(other) => return Err(mismatch(other, &format!("Target.{at}.port"), "int")),
        };
        Ok(RawTarget { ip, port })
    }

    /// gin's `required` checks, all violations at once in the order given:
    /// `(GoField, is_missing)`, e.g. `("Username", username.is_empty())`.
    pub fn require(&self, checks: &[(&str, bool)]) -> Result<(), Refusal> {
        let param = match self.purpose {
            Purpose::Create => "CreateCredentialParam",
            Purpose::Update => "UpdateCredentialParam",
            Purpose::Validate => "ValidateCredentialParam",
        };
        let lines: Vec<String> = checks
            .iter()
            .filter(|(_, missing)| *missing)
            .map(|(go_field, _)| {
                format!(
                    "Key: '{param}.{}.{go_field}' Error:Field validation for '{go_field}' failed on the 'required' tag",
                    self.names.go_struct
                )
            })
            .collect();
        if lines.is_empty() {
            Ok(())
        } else {
            Err(Refusal::bind(lines.join("\n")))
        }
    }
}

/// At most `limit` characters.
pub fn max_chars(name: &str, value: &str, limit: usize) -> Result<(), Refusal> {
    if value.chars().count() > limit {
        return Err(Refusal::illegal(format!(
            "{name} is longer than {limit} characters"
        )));
    }
    Ok(())
}

/// At most `limit` bytes.
pub fn max_bytes(name: &str, value: &[u8], limit: usize) -> Result<(), Refusal> {
    if value.len() > limit {
        return Err(Refusal::illegal(format!(
            "{name} is longer than {limit} bytes"
        )));
    }
    Ok(())
}

/// obshell's rule for the secret: an empty one on update keeps the stored
/// secret; anything else replaces it.
pub fn secret(bytes: &[u8], purpose: Purpose) -> Secret {
    match (purpose, bytes.is_empty()) {
        (Purpose::Update, true) => Secret::Keep,
        _ => Secret::Replace(bytes.to_vec()),
    }
}
