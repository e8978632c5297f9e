//! A JSON value that keeps every key of an object in the order it was
//! sent, duplicates included: Go's `encoding/json` matches keys
//! case-insensitively and the last match wins, so the order is part of the
//! meaning. serde_json's own map keeps it only with `std` and a hash map
//! behind it; a list of pairs keeps it for nothing. Keys and strings
//! borrow from the text unless they had escapes to undo: a property is read
//! once per call, and a copy of each would be work thrown away.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

mod number;
mod plain;

pub use number::Number;

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number<'a>),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Reads JSON text: what `serde_json::from_str` reads, the same value
    /// or the same error, only faster for plain text (see `plain.rs`).
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        match plain::parse(text) {
            Some(value) => Ok(value),
            None => serde_json::from_str(text),
        }
    }

    /// The values sent under `name` in an object, the last first, keys
    /// matched as Go matches them.
    fn sent<'p>(
        pairs: &'p [(Cow<'a, str>, Json<'a>)],
        name: &str,
    ) -> impl Iterator<Item = &'p Json<'a>> {
        pairs
            .iter()
            .rev()
            .filter(move |(key, _)| credhost_binding::names(key, name))
            .map(|(_, value)| value)
    }

    /// The value of `name` in an object: the last one sent.
    pub fn field<'p>(pairs: &'p [(Cow<'a, str>, Json<'a>)], name: &str) -> Option<&'p Json<'a>> {
        Self::sent(pairs, name).next()
    }

    /// The last value under `name` other than `null`: what a Go string or
    /// number field ends up holding, since `null` leaves one as it was.
    pub fn set_field<'p>(
        pairs: &'p [(Cow<'a, str>, Json<'a>)],
        name: &str,
    ) -> Option<&'p Json<'a>> {
        Self::sent(pairs, name).find(|value| !matches!(value, Json::Null))
    }
}

/// Appends `text` to `out` as a JSON string, escaped byte for byte as
/// serde_json escapes it (`\"`, `\\`, the short escapes of `\b \f \n \r
/// \t`, and `\u00XX` for the other control characters), so a verifier can
/// write a public part of fixed shape without a serializer's walk over
/// every key: `normalize` runs on every request that carries a property.
pub fn push_string(out: &mut String, text: &str) {
    out.push('"');
    let mut plain = 0;
    for (at, byte) in text.bytes().enumerate() {
        let short = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..0x20 => None,
            _ => continue,
        };
        // Every byte escaped is ASCII, so `at` is a character boundary.
        out.push_str(&text[plain..at]);
        match short {
            Some(escape) => out.push_str(escape),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        plain = at + 1;
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// Appends `targets` as a JSON list of `{"ip":…,"port":…}` objects, as
/// serde_json writes a list of such structs: the shape a public part shows
/// its targets in.
pub fn push_endpoints<'t>(out: &mut String, targets: impl IntoIterator<Item = (&'t str, u16)>) {
    out.push('[');
    for (i, (ip, port)) in targets.into_iter().enumerate() {
        out.push_str(if i == 0 { "{\"ip\":" } else { ",{\"ip\":" });
        push_string(out, ip);
        out.push_str(",\"port\":");
        out.push_str(itoa::Buffer::new().format(port));
        out.push('}');
    }
    out.push(']');
}

/// Read it from JSON text (`serde_json::from_str` or `from_slice`): a
/// number's text comes through serde_json's own number map (see `NUMBER`),
/// which only a text parser tells apart from an object with that key.
impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// An object's key, borrowed when the text allows (serde's own `Cow`
/// always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s.into())))
    }

    fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s)))
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(Number::integer(n)))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(Number::integer(n)))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Json<'de>, E> {
        // serde_json hands over every number that is not a 64-bit integer
        // as text (see `NUMBER`), so this is never called. Printing the
        // float would cost every plugin its tables (see `number.rs`).
        Err(E::custom(
            "a number that is not an integer must come as text",
        ))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.into())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut pairs = Vec::new();
        if let Some(Key(key)) = map.next_key()? {
            let value = if key == NUMBER {
                match map.next_value()? {
                    // Read by serde_json's scanner when the input is text;
                    // anything else could send the map with any string.
                    First::Number(text) => {
                        return Number::checked(text.into())
                            .map(Json::Number)
                            .ok_or_else(|| A::Error::custom("not a JSON number"));
                    }
                    First::Value(value) => value,
                }
            } else {
                map.next_value()?
            };
            pairs.push((key, value));
        }
        while let Some((Key(key), value)) = map.next_entry()? {
            pairs.push((key, value));
        }
        Ok(Json::Object(pairs))
    }
}

/// The key under which serde_json (with `arbitrary_precision`) hands over a
/// number it does not hand over as a 64-bit integer (`-0`, `22.5`, `1e400`):
/// a map of one entry, the number's text its value, as an owned string. The
/// text is kept (only an exponent is respelled, always with its sign: `1e2`
/// as `1e+2`, `E5` as `e+5`), since Go judges a number only when it
/// converts one for a number field, and quotes it as sent when that fails.
const NUMBER: &str = "$serde_json::private::Number";

/// The first value of a map: the text of a number if it came as
/// serde_json's own number map (the only place serde_json calls
/// `visit_string`; a string in the text arrives borrowed or through
/// `visit_str`), else a value like any other, for an object that merely
/// has that key.
enum First<'a> {
    Number(String),
    Value(Json<'a>),
}

impl<'de> Deserialize<'de> for First<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FirstVisitor)
    }
}

struct FirstVisitor;

impl<'de> Visitor<'de> for FirstVisitor {
    type Value = First<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        JsonVisitor.expecting(f)
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<First<'de>, E> {
        Ok(First::Number(s))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<First<'de>, E> {
        JsonVisitor.visit_unit().map(First::Value)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<First<'de>, E> {
        JsonVisitor.visit_none().map(First::Value)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<First<'de>, E> {
        JsonVisitor.visit_bool(b).map(First::Value)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<First<'de>, E> {
        JsonVisitor.visit_i64(n).map(First::Value)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<First<'de>, E> {
        JsonVisitor.visit_u64(n).map(First::Value)
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<First<'de>, E> {
        JsonVisitor.visit_f64(n).map(First::Value)
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<First<'de>, E> {
        JsonVisitor.visit_borrowed_str(s).map(First::Value)
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<First<'de>, E> {
        JsonVisitor.visit_str(s).map(First::Value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<First<'de>, A::Error> {
        JsonVisitor.visit_seq(seq).map(First::Value)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<First<'de>, A::Error> {
        JsonVisitor.visit_map(map).map(First::Value)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut texts: alloc::vec::Vec<String> =
            (0u8..0x80).map(|b| String::from(char::from(b))).collect();
        texts.extend(
            [
                "",
                "root",
                "a\"b\\c",
                "tab\there\n",
                "é ſ K 日本",
                "\u{7f}\u{1f}x\u{0}",
                "ends with \\",
            ]
            .map(String::from),
        );
        for text in texts {
            let mut written = String::from("x");
            push_string(&mut written, &text);
            assert_eq!(
                written[1..],
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn endpoints_are_written_as_serde_json_writes_them() {
        #[derive(serde::Serialize)]
        struct Endpoint<'a> {
            ip: &'a str,
            port: u16,
        }
        for targets in [
            alloc::vec![],
            alloc::vec![("127.0.0.1", 22)],
            alloc::vec![("::1", 65535), ("a\"b", 0), ("127.0.0.2", 1)],
        ] {
            let mut written = String::new();
            push_endpoints(&mut written, targets.iter().copied());
            let structs: Vec<Endpoint> = targets
                .iter()
                .map(|&(ip, port)| Endpoint { ip, port })
                .collect();
            assert_eq!(written, serde_json::to_string(&structs).unwrap());
        }
    }

    #[test]
    fn keeps_order_and_duplicates() {
        let value: Json = serde_json::from_str(r#"{"A":1,"b":[true,null],"a":"x"}"#).unwrap();
        let Json::Object(pairs) = value else {
            panic!("an object")
        };
        assert_eq!(pairs.len(), 3);
        assert_eq!(Json::field(&pairs, "a"), Some(&Json::String("x".into())));
        assert_eq!(
            Json::field(&pairs, "B"),
            Some(&Json::Array(alloc::vec![Json::Bool(true), Json::Null]))
        );
        assert_eq!(Json::field(&pairs, "c"), None);
    }

    #[test]
    fn keys_fold_as_go_folds_them() {
        let text = "{\"uſername\":1,\"\u{212A}ey\":2,\"usérname\":3,\"ıd\":4}";
        let Json::Object(pairs) = serde_json::from_str::<Json>(text).unwrap() else {
            panic!("an object")
        };
        assert!(
            matches!(Json::field(&pairs, "USERNAME"), Some(Json::Number(n)) if n.as_u64() == Some(1))
        );
        assert!(
            matches!(Json::field(&pairs, "key"), Some(Json::Number(n)) if n.as_u64() == Some(2))
        );
        assert_eq!(Json::field(&pairs, "id"), None);
        assert_eq!(Json::field(&pairs, "usernam"), None);
    }

    #[test]
    fn numbers_keep_their_text_and_a_look_alike_key_stays_a_key() {
        let text = r#"[-0, 22, -22.50, 1e+400, 99999999999999999999,
            {"$serde_json::private::Number": "5"},
            {"$serde_json::private::Number": "\u0035", "x": 1}]"#;
        let Json::Array(items) = serde_json::from_str::<Json>(text).unwrap() else {
            panic!("an array")
        };
        let texts: Vec<String> = items[..5]
            .iter()
            .map(|item| match item {
                Json::Number(n) => alloc::format!("{n}"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            texts,
            ["-0", "22", "-22.50", "1e+400", "99999999999999999999"]
        );
        for item in &items[5..] {
            let Json::Object(pairs) = item else {
                panic!("{item:?}")
            };
            assert_eq!(
                pairs[0],
                (
                    Cow::Borrowed("$serde_json::private::Number"),
                    Json::String("5".into())
                )
            );
        }
    }

    /// serde_json's number map taken from elsewhere than text (a `Value`)
    /// carries any string: only a number's text is taken as a number.
    #[test]
    fn a_number_map_from_a_value_must_hold_a_number() {
        let map = |text: &str| {
            let mut map = serde_json::Map::new();
            map.insert(NUMBER.into(), serde_json::Value::String(text.into()));
            serde_json::Value::Object(map)
        };
        // An owned `Value` hands its strings over as `visit_string`, as
        // serde_json's number map does.
        let read = Json::deserialize(map("-22.5e+3")).unwrap();
        assert!(matches!(read, Json::Number(n) if n.as_str() == "-22.5e+3"));
        assert!(Json::deserialize(map("abc")).is_err());
    }

    #[test]
    fn borrows_plain_text_and_undoes_escapes() {
        let text = r#"{"username":"root","user\u006eame":"r\u006fot\n"}"#;
        let Json::Object(pairs) = serde_json::from_str::<Json>(text).unwrap() else {
            panic!("an object")
        };
        assert!(matches!(
            pairs[0],
            (
                Cow::Borrowed("username"),
                Json::String(Cow::Borrowed("root"))
            )
        ));
        assert!(matches!(pairs[1].0, Cow::Owned(_)));
        assert_eq!(
            Json::field(&pairs, "USERNAME"),
            Some(&Json::String(Cow::Owned("root\n".into())))
        );
    }
}
