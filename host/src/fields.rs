//! A JSON request object read the way obshell (Go's encoding/json) reads it:
//! keys match by Go's case folding, the last matching key wins, unknown
//! keys are ignored, a later `null` leaves a string as it was and empties a
//! list.

use std::fmt;

use credhost_binding::{Kind, type_error, value_error};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;
use serde_json::error::Category;
use serde_json::value::RawValue;
use zeroize::{Zeroize, Zeroizing};

/// A request body's top-level keys with each value's text as sent, in the
/// order sent: Go binds keys in that order (so a later spelling of a field
/// wins over an earlier one, even when that one is repeated), and a raw
/// field handed to a plugin keeps its own keys' order the same way.
#[derive(Clone, Default)]
pub struct Fields {
    /// The Go struct the body binds to (`CreateCredentialParam`), which
    /// Go's type errors name.
    param: &'static str,
    members: Vec<(String, Box<RawValue>)>,
    /// More than [`MAX_MEMBERS`] were sent; the rest were skipped unread.
    overflow: bool,
}

/// Top-level keys kept from one body. obshell's bodies have a handful; Go
/// skips unknown keys without keeping them, but each kept member here
/// costs two allocations, and a megabyte of `"":0,` would be 200,000 of
/// them for every request in flight.
const MAX_MEMBERS: usize = 1024;

/// A request body holds passphrases: its values are wiped when dropped.
impl Drop for Fields {
    fn drop(&mut self) {
        for (_, value) in self.members.drain(..) {
            wipe(value);
        }
    }
}

/// Zeroes a value's text before its memory is freed.
fn wipe(value: Box<RawValue>) {
    String::from(Box::<str>::from(value)).zeroize();
}

/// Keys only: the values may be secrets.
impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fields")
            .field(&self.members.iter().map(|(key, _)| key).collect::<Vec<_>>())
            .finish()
    }
}

/// Why a body could not be bound; becomes `Common.BindJsonFailed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindError(pub String);

impl Fields {
    /// A body bound to the Go struct `param`, whose name Go's type errors
    /// carry. An empty body is `{}`, as obshell pads it, and so is `null`,
    /// which Go binds to a struct by leaving it as it was.
    pub fn parse(body: &[u8], param: &'static str) -> Result<Self, BindError> {
        if matches!(body.trim_ascii(), b"" | b"null") {
            return Ok(Self {
                param,
                members: Vec::new(),
                overflow: false,
            });
        }
        let mut fields: Self = serde_json::from_slice(body).map_err(|e| match e.classify() {
            // The body is JSON, but not an object. Its first character
            // names its kind; nothing else of it is copied (it may hold a
            // secret).
            Category::Data => {
                let first = body.trim_ascii_start().get(..1).unwrap_or_default();
                let first = std::str::from_utf8(first).unwrap_or_default();
                BindError(value_error(kind(first), &format!("param.{param}")))
            }
            _ => invalid(&e),
        })?;
        if fields.overflow {
            return Err(BindError(format!(
                "the body has more than {MAX_MEMBERS} keys"
            )));
        }
        fields.param = param;
        Ok(fields)
    }

    /// The Go struct the body binds to.
    pub fn param(&self) -> &'static str {
        self.param
    }

    /// The values sent under `name` in any case, in the order sent.
    fn all(&self, name: &str) -> impl DoubleEndedIterator<Item = &RawValue> {
        self.members
            .iter()
            .filter(move |(key, _)| credhost_binding::names(key, name))
            .map(|(_, value)| &**value)
    }

    /// The last value other than `null` sent under `name`: Go leaves a
    /// string or an object as it was when a later key sends `null`.
    fn get(&self, name: &str) -> Option<&RawValue> {
        self.all(name).rev().find(|value| !is_null(value))
    }

    /// A field's value, for fields with no Go type to match; never one that
    /// may hold a secret (it is not wiped).
    pub fn value(&self, name: &str) -> Result<Option<Value>, BindError> {
        self.get(name)
            .map(|raw| serde_json::from_str(raw.get()).map_err(|e| invalid(&e)))
            .transpose()
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, BindError> {
        self.get(name)
            .map(|raw| self.read(raw, name, "string"))
            .transpose()
    }

    /// A list of credential ids.
    pub fn ids(&self, name: &str) -> Result<Option<Vec<i64>>, BindError> {
        // A later `null` empties a list in Go.
        let Some(raw) = self.all(name).next_back().filter(|raw| !is_null(raw)) else {
            return Ok(None);
        };
        // Go's `[]int`, 64 bits wide where obshell runs. An element Go
        // leaves as it was (`null`) is 0, and so is `-0`, which Go parses
        // as an integer where serde reads a float.
        // Read element by element into the list, so a megabyte of `0,`
        // costs what Go's `[]int` costs, not a copy of each element.
        let mut de = serde_json::Deserializer::from_str(raw.get());
        serde::Deserializer::deserialize_seq(&mut de, Ints { fields: self, name })
            .map_err(|_| BindError(type_error(kind(raw.get()), self.param, name, "[]int")))?
            .map(Some)
    }

    /// A value of the Go type `go_type`, or obshell's message for a mismatch.
    fn read<T: serde::de::DeserializeOwned>(
        &self,
        raw: &RawValue,
        field: &str,
        go_type: &str,
    ) -> Result<T, BindError> {
        serde_json::from_str(raw.get()).map_err(|e| match e.classify() {
            // A string whose escapes do not make text (a lone surrogate).
            Category::Syntax if raw.get().starts_with('"') => invalid(&e),
            _ => BindError(type_error(kind(raw.get()), self.param, field, go_type)),
        })
    }

    /// The JSON text of a field as sent, `null` when absent.
    pub fn raw(&self, name: &str) -> Zeroizing<String> {
        Zeroizing::new(self.get(name).map_or("null", RawValue::get).to_string())
    }
}

fn invalid(e: &serde_json::Error) -> BindError {
    BindError(format!("invalid JSON: {e}"))
}

fn is_null(value: &RawValue) -> bool {
    value.get() == "null"
}

/// The elements of a `[]int`, each read as Go reads it; the first one Go
/// refuses ends the list (the rest are skipped, unread).
struct Ints<'f> {
    fields: &'f Fields,
    name: &'f str,
}

impl<'de> Visitor<'de> for Ints<'_> {
    type Value = Result<Vec<i64>, BindError>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut ids = Vec::new();
        while let Some(item) = seq.next_element::<&RawValue>()? {
            let id = match item.get() {
                "null" | "-0" => Ok(0),
                _ => self.fields.read(item, self.name, "int"),
            };
            match id {
                Ok(id) => ids.push(id),
                Err(e) => {
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    return Ok(Err(e));
                }
            }
        }
        Ok(Ok(ids))
    }
}

/// An object's members in order, repeated keys kept.
impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                // Collected straight into `Fields`, so the values read
                // before a syntax error later in the body are wiped too.
                let mut fields = Fields {
                    param: "",
                    members: Vec::with_capacity(map.size_hint().unwrap_or(8)),
                    overflow: false,
                };
                while let Some(pair) = map.next_entry::<String, Box<RawValue>>()? {
                    if fields.members.len() == MAX_MEMBERS {
                        fields.overflow = true;
                        // Wiped as the kept ones are: it may be a secret.
                        wipe(pair.1);
                        while map
                            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                            .is_some()
                        {}
                        break;
                    }
                    fields.members.push(pair);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// The kind of the JSON value `text` starts with, read from its first
/// character so no copy of a value (it may be a secret) is made to name it.
fn kind(text: &str) -> Kind<'_> {
    match text.as_bytes().first() {
        Some(b'"') => Kind::String,
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') => Kind::Null,
        _ => Kind::Number(text),
    }
}

/// obshell's `required` message for one field.
pub fn required(param: &str, field: &str) -> String {
    format!(
        "Key: '{param}.{field}' Error:Field validation for '{field}' failed on the 'required' tag"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<Fields, BindError> {
        Fields::parse(body, "Param")
    }

    #[test]
    fn a_long_id_list_is_read_whole_and_its_first_bad_element_named() {
        let body = format!(r#"{{"ids":[{}7]}}"#, "0,".repeat(200_000));
        let ids = parse(body.as_bytes()).unwrap().ids("ids").unwrap().unwrap();
        assert_eq!((ids.len(), ids[199_999], ids[200_000]), (200_001, 0, 7));
        let body = format!(r#"{{"ids":[1,{}"x",2.5]}}"#, "0,".repeat(10));
        assert_eq!(
            parse(body.as_bytes()).unwrap().ids("ids"),
            Err(BindError(
                "json: cannot unmarshal string into Go struct field Param.ids of type int".into()
            ))
        );
        assert_eq!(
            parse(br#"{"ids":{"a":1}}"#).unwrap().ids("ids"),
            Err(BindError(
                "json: cannot unmarshal object into Go struct field Param.ids of type []int".into()
            ))
        );
    }

    #[test]
    fn a_body_keeps_at_most_max_members_keys() {
        let body = |n: usize| {
            let keys: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
            format!("{{{}}}", keys.join(","))
        };
        let full = parse(body(MAX_MEMBERS).as_bytes()).unwrap();
        assert_eq!(full.value("K1023").unwrap(), Some(Value::from(1023)));
        assert_eq!(
            parse(body(MAX_MEMBERS + 1).as_bytes()).unwrap_err(),
            BindError(format!("the body has more than {MAX_MEMBERS} keys"))
        );
    }

    #[test]
    fn keys_match_case_insensitively_and_the_last_wins() {
        let f = parse(br#"{"NAME":"a","Name":"b","other":1}"#).unwrap();
        assert_eq!(f.string("name").unwrap(), Some("b".into()));
        assert_eq!(f.string("missing").unwrap(), None);
    }

    #[test]
    fn keys_fold_as_go_folds_them() {
        // Go folds the long s and the Kelvin sign onto s and k, and nothing
        // else outside ASCII onto an ASCII letter.
        let f = parse("{\"uſername\":\"a\",\"\u{212A}ind\":\"b\"}".as_bytes()).unwrap();
        assert_eq!(f.string("username").unwrap(), Some("a".into()));
        assert_eq!(f.string("KIND").unwrap(), Some("b".into()));
        for key in ["usernam", "usernamee", "usérname", "ıd"] {
            let f = parse(format!(r#"{{"{key}":"x"}}"#).as_bytes()).unwrap();
            assert_eq!(f.string("username").unwrap(), None, "{key}");
            assert_eq!(f.string("id").unwrap(), None, "{key}");
        }
    }

    #[test]
    fn a_key_repeated_exactly_still_loses_to_a_later_spelling_of_it() {
        // Go reads keys in the order sent: the last one that matches wins,
        // however often an earlier spelling appeared.
        let f = parse(br#"{"name":"a","Name":"b","name":"c"}"#).unwrap();
        assert_eq!(f.string("name").unwrap(), Some("c".into()));
        let f = parse(br#"{"Name":"a","name":"b","Name":"c"}"#).unwrap();
        assert_eq!(f.string("NAME").unwrap(), Some("c".into()));
    }

    #[test]
    fn a_raw_field_is_the_text_as_sent() {
        // The plugin binds the property with the same rules, so it must see
        // every key in its order, repeated ones included.
        let property = r#"{"username":"a","USERNAME":"b","username":"c", "n":1.50}"#;
        let f = parse(format!(r#"{{"property": {property}}}"#).as_bytes()).unwrap();
        assert_eq!(f.raw("property").as_str(), property);
        assert_eq!(f.raw("missing").as_str(), "null");
        let f = parse(br#"{"property":null}"#).unwrap();
        assert_eq!(f.raw("property").as_str(), "null");
    }

    #[test]
    fn a_later_null_leaves_a_string_and_empties_a_list() {
        let f = parse(br#"{"name":"a","Name":null,"ids":[1],"IDS":null}"#).unwrap();
        assert_eq!(f.string("name").unwrap(), Some("a".into()));
        assert_eq!(f.raw("name").as_str(), r#""a""#);
        assert_eq!(f.ids("ids").unwrap(), None);
    }

    #[test]
    fn a_number_for_a_string_is_not_quoted_back() {
        // As Go words it, and the digits may be a passphrase.
        let f = parse(br#"{"aes_key":12345678}"#).unwrap();
        assert_eq!(
            f.string("aes_key"),
            Err(BindError(
                "json: cannot unmarshal number into Go struct field Param.aes_key of type string"
                    .into()
            ))
        );
    }

    #[test]
    fn values_that_are_not_text_or_numbers_are_bind_errors() {
        let f = parse(br#"{"name":"\ud800","ttl_secs":1e400}"#).unwrap();
        assert!(f.string("name").unwrap_err().0.starts_with("invalid JSON"));
        assert!(
            f.value("ttl_secs")
                .unwrap_err()
                .0
                .starts_with("invalid JSON")
        );
        assert_eq!(f.value("missing").unwrap(), None);
    }

    #[test]
    fn debug_output_names_keys_only() {
        let f = parse(br#"{"passphrase":"hunter2"}"#).unwrap();
        let shown = format!("{f:?}");
        assert!(shown.contains("passphrase"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn empty_body_is_an_empty_object_and_garbage_is_a_bind_error() {
        assert!(parse(b"").unwrap().get("x").is_none());
        assert!(parse(b"{").is_err());
        assert!(parse(b"[1]").is_err());
        assert!(parse(br#"{"name":"a"} {"name":"b"}"#).is_err());
        let f = parse(br#"{"name":5,"ids":[1,"x"]}"#).unwrap();
        assert!(f.string("name").is_err());
        assert!(f.ids("ids").is_err());
        assert_eq!(
            parse(br#"{"ids":[1, 2.50]}"#).unwrap().ids("IDS"),
            Err(BindError(
                "json: cannot unmarshal number 2.50 into Go struct field Param.IDS of type int"
                    .into()
            ))
        );
        assert_eq!(
            parse(br#"{"ids":[1, 2]}"#).unwrap().ids("ids"),
            Ok(Some(vec![1, 2]))
        );
        // Go leaves an int as it was for `null`, and parses `-0` as 0.
        assert_eq!(
            parse(br#"{"ids":[1, null, -0]}"#).unwrap().ids("ids"),
            Ok(Some(vec![1, 0, 0]))
        );
        // A `null` body binds nothing, as `{}` does.
        assert!(parse(b" null ").unwrap().get("ids").is_none());
        assert_eq!(
            parse(b"5").unwrap_err(),
            BindError("json: cannot unmarshal number into Go value of type param.Param".into())
        );
    }
}
