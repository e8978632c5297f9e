//! A JSON request object read the way obshell (Go's encoding/json) reads it:
//! keys match case-insensitively, the last matching key wins, unknown keys
//! are ignored, `null` is absent.

use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

/// A request body holds passphrases: its strings are wiped when dropped.
#[derive(Debug, Clone, Default)]
pub struct Fields(Map<String, Value>);

impl Drop for Fields {
    fn drop(&mut self) {
        fn wipe(value: &mut Value) {
            match value {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(map) => map.values_mut().for_each(wipe),
                _ => {}
            }
        }
        self.0.values_mut().for_each(wipe);
    }
}

/// Why a body could not be bound; becomes `Common.BindJsonFailed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindError(pub String);

impl Fields {
    /// An empty body is `{}`, as obshell pads it.
    pub fn parse(body: &[u8]) -> Result<Self, BindError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(other) => Err(BindError(format!(
                "json: cannot unmarshal {} into a request object",
                kind(&other)
            ))),
            Err(e) => Err(BindError(format!("invalid JSON: {e}"))),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
            .next_back()
            .filter(|v| !v.is_null())
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, BindError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(mismatch(other, name, "string")),
        }
    }

    /// A list of credential ids.
    pub fn ids(&self, name: &str) -> Result<Option<Vec<i64>>, BindError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_i64().ok_or_else(|| mismatch(item, name, "int64")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(mismatch(other, name, "[]int64")),
        }
    }

    /// The raw JSON text of a field, `null` when absent.
    pub fn raw(&self, name: &str) -> Zeroizing<String> {
        Zeroizing::new(
            self.get(name)
                .map_or_else(|| "null".to_string(), Value::to_string),
        )
    }
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

fn mismatch(value: &Value, field: &str, go_type: &str) -> BindError {
    BindError(format!(
        "json: cannot unmarshal {} into Go struct field {field} of type {go_type}",
        kind(value)
    ))
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

    #[test]
    fn keys_match_case_insensitively_and_the_last_wins() {
        let f = Fields::parse(br#"{"NAME":"a","Name":"b","other":1}"#).unwrap();
        assert_eq!(f.string("name").unwrap(), Some("b".into()));
        assert_eq!(f.string("missing").unwrap(), None);
    }

    #[test]
    fn empty_body_is_an_empty_object_and_garbage_is_a_bind_error() {
        assert!(Fields::parse(b"").unwrap().get("x").is_none());
        assert!(Fields::parse(b"{").is_err());
        assert!(Fields::parse(b"[1]").is_err());
        let f = Fields::parse(br#"{"name":5,"ids":[1,"x"]}"#).unwrap();
        assert!(f.string("name").is_err());
        assert!(f.ids("ids").is_err());
    }
}
