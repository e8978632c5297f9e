//! Reading a property as obshell (Go's `encoding/json` and gin's binding)
//! reads it: keys matched case-insensitively, the last match wins, a later
//! `null` leaves a string or a number as it was and clears a pointer or a
//! list, a value of the wrong JSON type is a bind error worded as Go words
//! it, and `required` violations are reported together.

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

/// The Go struct a body of `purpose` binds to: where the property itself
/// is declared.
fn param(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Create => "CreateCredentialParam",
        Purpose::Update => "UpdateCredentialParam",
        Purpose::Validate => "ValidateCredentialParam",
    }
}

/// The Go struct obshell declares a target in.
const TARGET: &str = "Target";

fn mismatch(value: &Json, go_struct: &str, field: &str, go_type: &str) -> Refusal {
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
    Refusal::bind(type_error(kind, go_struct, field, go_type))
}

impl<'a> Property<'a> {
    /// Parses the property's JSON (`null` is an empty property).
    pub fn parse(text: &'a str, names: Names, purpose: Purpose) -> Result<Self, Refusal> {
        let value =
            Json::parse(text).map_err(|e| Refusal::bind(format!("invalid property JSON: {e}")))?;
        let object = match value {
            Json::Null => Vec::new(),
            Json::Object(object) => object,
            other => {
                return Err(mismatch(
                    &other,
                    param(purpose),
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

    /// A field of Go type `string`: the last value sent other than `null`
    /// (a later `null` leaves it as it was); `None` when there is none.
    pub fn string(&self, name: &str) -> Result<Option<String>, Refusal> {
        self.read_string(Json::set_field(&self.object, name), name)
    }

    /// A field of Go type `*string` (obshell's `passphrase`): the last
    /// value sent; `None` when absent or when that value is `null`.
    pub fn nullable_string(&self, name: &str) -> Result<Option<String>, Refusal> {
        self.read_string(Json::field(&self.object, name), name)
    }

    fn read_string(&self, value: Option<&Json>, name: &str) -> Result<Option<String>, Refusal> {
        match value {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.as_ref().into())),
            Some(other) => Err(mismatch(
                other,
                self.names.go_struct,
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
            Some(other) => Err(mismatch(
                other,
                self.names.go_struct,
                &self.at_targets(),
                "[]param.Target",
            )),
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
            other => {
                return Err(mismatch(
                    other,
                    self.names.go_struct,
                    &self.at_targets(),
                    "param.Target",
                ));
            }
        };
        let at = |field: &str| format!("{}.{field}", self.at_targets());
        // `ip` is a Go string and `port` an int: a later `null` leaves each
        // as it was.
        let ip = match Json::set_field(object, "ip") {
            None => String::new(),
            Some(Json::String(ip)) => ip.as_ref().into(),
            Some(other) => return Err(mismatch(other, TARGET, &at("ip"), "string")),
        };
        let port = match Json::set_field(object, "port") {
            None => 0,
            Some(value @ Json::Number(n)) => n
                .as_i64()
                .ok_or_else(|| mismatch(value, TARGET, &at("port"), "int"))?,
            Some(other) => return Err(mismatch(other, TARGET, &at("port"), "int")),
        };
        Ok(RawTarget { ip, port })
    }

    /// gin's `required` checks, all violations at once in the order given:
    /// `(GoField, is_missing)`, e.g. `("Username", username.is_empty())`.
    pub fn require(&self, checks: &[(&str, bool)]) -> Result<(), Refusal> {
        let param = param(self.purpose);
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
        let refusal = property.nullable_string("passphrase").unwrap_err();
        assert_eq!(
            refusal.message,
            "Bind JSON failed: json: cannot unmarshal number into Go struct field \
             SshCredentialProperty.ssh_credential_property.passphrase of type string"
        );
        let refusal = property.targets().unwrap_err();
        assert_eq!(
            refusal.message,
            "Bind JSON failed: json: cannot unmarshal number 22.5 into Go struct field \
             Target.ssh_credential_property.targets.port of type int"
        );
    }

    #[test]
    fn a_number_is_judged_as_go_judges_it_only_where_it_is_converted() {
        let port = |port: &str| {
            let text = format!(r#"{{"unknown":1e400,"targets":[{{"ip":"::1","port":{port}}}]}}"#);
            let property = Property::parse(&text, NAMES, Purpose::Create).unwrap();
            property
                .targets()
                .map(|targets| targets.unwrap()[0].port)
                .map_err(|refusal| refusal.message)
        };
        // strconv.ParseInt's reading: `-0` is 0 (the default port follows),
        // and what is not an integer of 64 bits is quoted as sent.
        assert_eq!(port("-0"), Ok(0));
        assert_eq!(port("-22"), Ok(-22));
        assert_eq!(port("9223372036854775807"), Ok(i64::MAX));
        // Only an exponent is respelled (by serde_json): `E400` as `e+400`.
        for (sent, quoted) in [
            ("2.20e-1", "2.20e-1"),
            ("22.0", "22.0"),
            ("-0.0", "-0.0"),
            ("9223372036854775808", "9223372036854775808"),
            ("1E400", "1e+400"),
        ] {
            assert_eq!(
                port(sent),
                Err(format!(
                    "Bind JSON failed: json: cannot unmarshal number {quoted} into Go struct \
                     field Target.ssh_credential_property.targets.port of type int"
                ))
            );
        }
    }

    #[test]
    fn type_errors_name_the_struct_that_declares_the_field() {
        // As Go names them: the innermost struct, then the path from the top.
        let refusal = |text: &str, purpose| {
            let property = match Property::parse(text, NAMES, purpose) {
                Ok(property) => property,
                Err(refusal) => return refusal.message,
            };
            let targets = property.targets().err();
            let username = property.string("username").err();
            targets.or(username).expect("a refusal").message
        };
        assert_eq!(
            refusal(r#""x""#, Purpose::Update),
            "Bind JSON failed: json: cannot unmarshal string into Go struct field \
             UpdateCredentialParam.ssh_credential_property of type param.SshCredentialProperty"
        );
        assert_eq!(
            refusal(r#"{"targets":{}}"#, Purpose::Create),
            "Bind JSON failed: json: cannot unmarshal object into Go struct field \
             SshCredentialProperty.ssh_credential_property.targets of type []param.Target"
        );
        assert_eq!(
            refusal(r#"{"targets":[true]}"#, Purpose::Create),
            "Bind JSON failed: json: cannot unmarshal bool into Go struct field \
             SshCredentialProperty.ssh_credential_property.targets of type param.Target"
        );
        assert_eq!(
            refusal(r#"{"targets":[{"ip":1}]}"#, Purpose::Create),
            "Bind JSON failed: json: cannot unmarshal number into Go struct field \
             Target.ssh_credential_property.targets.ip of type string"
        );
        assert_eq!(
            refusal(r#"{"targets":[],"username":[]}"#, Purpose::Validate),
            "Bind JSON failed: json: cannot unmarshal array into Go struct field \
             SshCredentialProperty.ssh_credential_property.username of type string"
        );
    }

    #[test]
    fn a_later_null_leaves_a_string_or_a_number_and_clears_a_pointer_or_a_list() {
        let text = r#"{"username":"root","USERNAME":null,"passphrase":"p","Passphrase":null,
            "targets":[{"ip":"127.0.0.1","port":2222,"IP":null,"Port":null}]}"#;
        let property = Property::parse(text, NAMES, Purpose::Create).unwrap();
        assert_eq!(
            property.string("username").unwrap().as_deref(),
            Some("root")
        );
        assert_eq!(property.nullable_string("passphrase").unwrap(), None);
        assert_eq!(property.string("passphrase").unwrap().as_deref(), Some("p"));
        assert_eq!(
            property.targets().unwrap(),
            Some(alloc::vec![RawTarget {
                ip: "127.0.0.1".into(),
                port: 2222
            }])
        );
        let text = r#"{"targets":[{"ip":"127.0.0.1"}],"Targets":null}"#;
        let property = Property::parse(text, NAMES, Purpose::Create).unwrap();
        assert_eq!(property.targets().unwrap(), None);
    }
}
