//! Whether a plugin's answer is a JSON object, without building it: a
//! verifier's public part is kept as the text it wrote, and checked on
//! every call that returns one.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Checks that `text` is one JSON object and nothing after it. Every
/// string is read as a string, keys and values alike: serde_json skips a
/// string it ignores without checking that its escapes name characters
/// (`"\ud800"`), and what passes here must parse wherever the public part
/// is read later. `what` names the text in the error.
pub(super) fn check_object(text: &str, what: &str) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Checked)
        .and_then(|Valid| de.end())
        .map_err(|e| {
            if e.is_data() {
                format!("{what} is not a JSON object")
            } else {
                format!("{what} is not JSON: {e}")
            }
        })
}

/// Any JSON value, read through and dropped.
struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Checked)
    }
}

struct Checked;

impl<'de> Visitor<'de> for Checked {
    type Value = Valid;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Valid, A::Error> {
        while items.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Valid, A::Error> {
        while entries.next_entry::<Valid, Valid>()?.is_some() {}
        Ok(Valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_json_object_that_parses_everywhere_passes() {
        for good in [
            "{}",
            " \t\n\r{ } \n",
            r#"{"targets":[{"ip":"::1","port":22}],"username":"r\"o\\ot\u00e9","n":-1.5e3,"x":[true,false,null,{}]}"#,
            r#"{"pair":"\ud83d\ude00"}"#,
        ] {
            assert_eq!(check_object(good, "it"), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("[1, 2]", "it is not a JSON object"),
            ("\"text\"", "it is not a JSON object"),
            ("null", "it is not a JSON object"),
            ("{} x", "it is not JSON"),
            ("{\"a\":1,}", "it is not JSON"),
            (r#"{"\ud800":1}"#, "it is not JSON"),
            (r#"{"a":"\udc00"}"#, "it is not JSON"),
            (r#"{"a":[{"b":"x\ud800y"}]}"#, "it is not JSON"),
            ("{\"a\":\"\u{1}\"}", "it is not JSON"),
            ("\u{feff}{}", "it is not JSON"),
        ] {
            let said = check_object(bad, "it").unwrap_err();
            assert!(said.starts_with(why), "{bad}: {said}");
        }
        // As deep as serde_json reads anywhere else, and no deeper.
        let deep = |n| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check_object(&deep(100), "it"), Ok(()));
        assert!(check_object(&deep(200), "it").is_err());
    }
}
