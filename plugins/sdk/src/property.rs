//! Reading a property as obshell (Go's `encoding/json` and gin's binding)
//! reads it: keys matched case-insensitively, the last match wins, `null`
//! is the same as absent, a value of the wrong JSON type is a bind error
//! worded as Go words it, and `required` violations are reported together.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use credhost_binding::{Kind, is_number_type, type_error};

use crate::json::Json;
use crate::{Purpose, Refusal, Secret};

/// How a property is named in messages: its JSON field
/// (`ssh_credential_property`) and its Go struct (`SshCredentialProperty`).
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub field: &'static str,
    pub go_struct: &'static str,
}

/// A property as sent, for reading field by field; it borrows from the
/// text it was parsed from.
pub struct Property<'a> {
    names: Names,
    purpose: Purpose,
    object: Vec<(Cow<'a, str>, Json<'a>)>,
}

/// A target as sent, before any rule is applied (`port` 0: absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawTarget {
    pub ip: String,
    pub port: i64,
}

fn mismatch(value: &Json, field: &str, go_type: &str) -> Refusal {
    // A number is written out only where Go quotes it: a number sent for a
    // string may be a passphrase.
    let text = match value {
        Json::Number(n) if is_number_type(go_type) => format!("{n}"),
        _ => String::new(),
    };
    let kind = match value {
        Json::Null => Kind::Null,
        Json::Bool(_) => Kind::Bool,
        Json::Number(_) => Kind::Number(&text),
        Json::String(_) => Kind::String,
        Json::Array(_) => Kind::Array,
        Json::Object(_) => Kind::Object,
    };
    Refusal::bind(type_error(kind, field, go_type))
}

impl<'a> Property<'a> {
    /// Parses the property's JSON (`null` is an empty property).
    pub fn parse(text: &'a str, names: Names, purpose: Purpose) -> Result<Self, Refusal> {
        let value: Json = serde_json::from_str(text)
            .map_err(|e| Refusal::bind(format!("invalid property JSON: {e}")))?;
        let object = match value {
            Json::Null => Vec::new(),
            Json::Object(object) => object,
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
        match Json::field(&self.object, name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.as_ref().into())),
            Some(other) => Err(mismatch(
                other,
                &format!("{}.{name}", self.names.field),
                "string",
            )),
        }
    }

    /// The `targets` list; `None` when absent or `null`.
    pub fn targets(&self) -> Result<Option<Vec<RawTarget>>, Refusal> {
        match Json::field(&self.object, "targets") {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| self.target(item))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(mismatch(other, &self.at_targets(), "[]param.Target")),
        }
    }

    /// Where a target's fields are, as Go names it in messages; only built
    /// for a refusal.
    fn at_targets(&self) -> String {
        format!("{}.targets", self.names.field)
    }

    fn target(&self, value: &Json) -> Result<RawTarget, Refusal> {
        let object = match value {
            Json::Null => return Ok(RawTarget::default()),
            Json::Object(object) => object,
            other => return Err(mismatch(other, &self.at_targets(), "param.Target")),
        };
        let at = |field: &str| format!("Target.{}.{field}", self.at_targets());
        let ip = match Json::field(object, "ip") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(ip)) => ip.as_ref().into(),
            Some(other) => return Err(mismatch(other, &at("ip"), "string")),
        };
        let port = match Json::field(object, "port") {
            None | Some(Json::Null) => 0,
            Some(Json::Number(n)) => n
                .as_i64()
                .ok_or_else(|| mismatch(&Json::Number(n.clone()), &at("port"), "int"))?,
            Some(other) => return Err(mismatch(other, &at("port"), "int")),
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

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: Names = Names {
        field: "ssh_credential_property",
        go_struct: "SshCredentialProperty",
    };

    #[test]
    fn a_number_is_quoted_back_only_for_a_number_field() {
        let text = r#"{"passphrase":987654321,"targets":[{"ip":"127.0.0.1","port":22.5}]}"#;
        let property = Property::parse(text, NAMES, Purpose::Create).unwrap();
        let refusal = property.string("passphrase").unwrap_err();
        assert_eq!(
            refusal.message,
            "Bind JSON failed: json: cannot unmarshal number into Go struct field \
             ssh_credential_property.passphrase of type string"
        );
        let refusal = property.targets().unwrap_err();
        assert!(
            refusal
                .message
                .contains("cannot unmarshal number 22.5 into"),
            "{}",
            refusal.message
        );
    }
}
