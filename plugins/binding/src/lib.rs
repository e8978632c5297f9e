//! obshell binds request bodies with Go's `encoding/json`. Two of its rules
//! are needed wherever a body or a property is read, in the server and in
//! every plugin: which keys name a field, and how a value of the wrong type
//! is reported.

#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;

/// Whether `key` names the field `name` (ASCII) as Go matches them: by
/// Unicode simple case folding, which folds only two letters outside ASCII
/// onto ASCII ones, the long s (`ſ`) onto `s` and the Kelvin sign onto `k`.
#[inline]
pub fn names(key: &str, name: &str) -> bool {
    // Each of those two letters is longer in UTF-8 than the ASCII letter it
    // folds onto, and nothing else matches an ASCII byte: a key that
    // matches is never shorter than the name, and as long only when it is
    // ASCII. Most keys are told apart by their length alone.
    match key.len().cmp(&name.len()) {
        core::cmp::Ordering::Less => return false,
        core::cmp::Ordering::Equal => return key.eq_ignore_ascii_case(name),
        core::cmp::Ordering::Greater if key.is_ascii() => return false,
        core::cmp::Ordering::Greater => {}
    }
    let mut expected = name.bytes();
    let matched = key.chars().all(|c| {
        let c = match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            c => c,
        };
        expected
            .next()
            .is_some_and(|b| c.eq_ignore_ascii_case(&char::from(b)))
    });
    matched && expected.next().is_none()
}

/// The kind of a JSON value, as a type error names it. No `Debug`: a
/// number's text may be a secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    Null,
    Bool,
    /// With the number's text.
    Number(&'a str),
    String,
    Array,
    Object,
}

impl Kind<'_> {
    /// Go's name for the kind, a number's text left out.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "bool",
            Kind::Number(_) => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

/// Go's message for a value of kind `kind` sent for `field` of Go type
/// `go_type`, where `field` is the path of JSON names from the body's top
/// (`ssh_credential_property.targets.port`) and `go_struct` the Go struct
/// that declares its last step (`Target`). As in Go, a number is quoted
/// only when it was meant for a number type and did not fit: a number sent
/// for a string may be a passphrase typed as digits, and is never repeated.
pub fn type_error(kind: Kind<'_>, go_struct: &str, field: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {go_struct}.{field} of type {go_type}",
        quoted(kind, go_type)
    )
}

/// Go's message for a value of kind `kind` sent where a whole value of Go
/// type `go_type` was expected (a body that is not an object).
pub fn value_error(kind: Kind<'_>, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go value of type {go_type}",
        quoted(kind, go_type)
    )
}

fn quoted(kind: Kind<'_>, go_type: &str) -> String {
    match kind {
        Kind::Number(text) if is_number_type(go_type) => format!("number {text}"),
        kind => kind.name().into(),
    }
}

/// Whether Go quotes a number sent for `go_type` back in a type error:
/// only for Go's number types, where the number did not fit.
pub fn is_number_type(go_type: &str) -> bool {
    matches!(
        go_type,
        "int"
            | "int8"
            | "int16"
            | "int32"
            | "int64"
            | "uint"
            | "uint8"
            | "uint16"
            | "uint32"
            | "uint64"
            | "uintptr"
            | "float32"
            | "float64"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_as_go_folds_them() {
        assert!(names("USERNAME", "username"));
        assert!(names("uſername", "username"));
        assert!(names("\u{212A}ey", "key"));
        assert!(names("\u{212A}EY", "KEY"));
        for key in ["usernam", "usernamee", "usérname", "ıd", "uſername\u{0}"] {
            assert!(!names(key, "username"), "{key}");
        }
        assert!(!names("ıd", "id"));
        // As long as the name in bytes but not in letters: no match.
        assert!(!names("ſ", "ss"));
        assert!(names("ſ", "s"));
    }

    #[test]
    fn a_number_is_quoted_only_for_a_number_type() {
        assert_eq!(
            type_error(Kind::Number("22.50"), "Target", "p.targets.port", "int"),
            "json: cannot unmarshal number 22.50 into Go struct field Target.p.targets.port of type int"
        );
        assert_eq!(
            type_error(Kind::Number("12345678"), "P", "p.passphrase", "string"),
            "json: cannot unmarshal number into Go struct field P.p.passphrase of type string"
        );
        assert_eq!(
            type_error(Kind::Number("1e400"), "X", "x", "float64"),
            "json: cannot unmarshal number 1e400 into Go struct field X.x of type float64"
        );
        for go_type in ["interface {}", "internal.T", "[]int", "*int", "bool"] {
            assert!(!is_number_type(go_type), "{go_type}");
        }
        assert_eq!(
            type_error(Kind::Object, "Ids", "ids", "[]int"),
            "json: cannot unmarshal object into Go struct field Ids.ids of type []int"
        );
        assert_eq!(
            value_error(Kind::Number("5"), "param.P"),
            "json: cannot unmarshal number into Go value of type param.P"
        );
    }
}
