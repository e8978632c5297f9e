//! A one-pass reader for plain JSON, the shape nearly every property has:
//! strings without escapes, integers, `true`, `false`, `null`, objects and
//! arrays, nested a little. It builds the same [`Json`] serde_json (through
//! the `Deserialize` impl in the parent module) builds from the same text,
//! and declines (`None`) anything else: an escape, a control character, a
//! fraction or exponent, deep nesting, or anything serde_json would
//! refuse. A declined text is read again by serde_json, which has the last
//! word on it, errors included.
//!
//! Why: a plugin call is a fresh instance doing a few microseconds of work,
//! and serde_json's generic deserializer was the largest part of it for
//! the text of a typical property.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use super::{Json, NUMBER, Number};

/// Containers nested deeper decline; serde_json allows 127.
const MAX_DEPTH: usize = 32;

/// The value `text` holds, or `None` to leave it to serde_json.
pub(super) fn parse(text: &str) -> Option<Json<'_>> {
    let mut reader = Reader { text, at: 0 };
    let value = reader.value(0)?;
    reader.skip_whitespace();
    (reader.at == text.len()).then_some(value)
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// JSON's four whitespace bytes, as serde_json skips them.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed if it is `expected`.
    fn eat(&mut self, expected: u8) -> bool {
        self.skip_whitespace();
        let found = self.peek() == Some(expected);
        if found {
            self.at += 1;
        }
        found
    }

    fn value(&mut self, depth: usize) -> Option<Json<'a>> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|s| Json::String(Cow::Borrowed(s))),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            b'n' => self.word("null", Json::Null),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    fn word(&mut self, word: &str, value: Json<'a>) -> Option<Json<'a>> {
        self.text[self.at..].strip_prefix(word)?;
        self.at += word.len();
        Some(value)
    }

    /// A string without escapes or control characters, borrowed: the text
    /// between its quotes, which are ASCII, so both ends are character
    /// boundaries.
    fn string(&mut self) -> Option<&'a str> {
        let start = self.at + 1;
        let bytes = self.text.as_bytes();
        let mut end = start;
        loop {
            match *bytes.get(end)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => end += 1,
            }
        }
        self.at = end + 1;
        Some(&self.text[start..end])
    }

    /// An integer, borrowed: its text is what serde_json makes of it
    /// (the digits of a 64-bit one printed again, or the text of `-0` and
    /// of one beyond 64 bits). A fraction or exponent serde_json may spell
    /// anew, so those are left to it.
    fn integer(&mut self) -> Option<Json<'a>> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let negative = bytes[start] == b'-';
        let digits = start + usize::from(negative);
        let mut end = digits;
        while let Some(b'0'..=b'9') = bytes.get(end) {
            end += 1;
        }
        let leading_zero = bytes[digits..end].starts_with(b"0") && end - digits > 1;
        if end == digits || leading_zero || matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.at = end;
        let text = &self.text[start..end];
        Some(Json::Number(Number::read(Cow::Borrowed(text))))
    }

    fn array(&mut self, depth: usize) -> Option<Json<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        let mut items = Vec::new();
        if self.eat(b']') {
            return Some(Json::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            if self.eat(b']') {
                return Some(Json::Array(items));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<Json<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        let mut pairs = Vec::new();
        if self.eat(b'}') {
            return Some(Json::Object(pairs));
        }
        loop {
            self.skip_whitespace();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            // serde_json's own number map: only it tells that apart.
            if pairs.is_empty() && key == NUMBER {
                return None;
            }
            if !self.eat(b':') {
                return None;
            }
            let value = self.value(depth)?;
            pairs.push((Cow::Borrowed(key), value));
            if self.eat(b'}') {
                return Some(Json::Object(pairs));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec;

    /// What the reader found, held to serde_json's reading of the same text.
    fn agrees(text: &str) -> bool {
        let slow = serde_json::from_str::<Json>(text);
        match parse(text) {
            None => false,
            Some(fast) => match slow {
                Ok(slow) => {
                    assert_eq!(fast, slow, "{text:?}");
                    true
                }
                Err(e) => panic!("{text:?}: the reader took what serde_json refuses ({e})"),
            },
        }
    }

    #[test]
    fn a_typical_property_is_read_here() {
        for text in [
            r#"{"targets":[{"ip":"127.0.0.1","port":22},{"ip":"::1"}],"username":"root","type":"PASSWORD","passphrase":"P@ssw0rd"}"#,
            " { \"Targets\" : [ ] ,\n\t\"x\": [true, false, null, -22, 0, 18446744073709551615, -9223372036854775808, {}, [[]]],\r\"é\":\"ſ\" } ",
            "null",
            "\"\"",
            r#"{"a":1,"$serde_json::private::Number":"5"}"#,
            // Integers serde_json hands over as text, not as 64-bit ones.
            "-0",
            "[18446744073709551616, -9223372036854775809, 123456789012345678901234567890]",
        ] {
            assert!(agrees(text), "{text:?} was left to serde_json");
        }
    }

    #[test]
    fn what_it_does_not_read_plainly_is_left_to_serde_json() {
        for text in [
            r#"{"pass":"a\"b"}"#,
            "\"tab\there\"",
            "22.5",
            "1e5",
            "1E5",
            "-0.0",
            r#"{"$serde_json::private::Number":"5"}"#,
            "01",
            "-",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "tru",
            "nulll",
            "[1] x",
            "\u{feff}{}",
            "[\u{a0}]",
            "\"\u{1f}\"",
            "",
            " ",
            "[",
            "{\"a\":",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(&deep), None);
        let deep_enough = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(agrees(&deep_enough));
    }

    /// xorshift: the same cases on every run.
    struct Cases(u64);

    impl Cases {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'p>(&mut self, from: &[&'p str]) -> &'p str {
            from[self.below(from.len())]
        }
    }

    const STRINGS: &[&str] = &[
        r#""a""#,
        r#""IP""#,
        r#""port""#,
        r#""""#,
        r#""é ſ K""#,
        r#""\u0041""#,
        r#""a\"b""#,
        r#""\ud800""#,
        "\"raw\tcontrol\"",
        r#""$serde_json::private::Number""#,
    ];
    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "22",
        "-22",
        "01",
        "-",
        "1.5",
        "2.",
        ".5",
        "+1",
        "1e5",
        "1E+5",
        "-1.0e-3",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
    ];
    const WORDS: &[&str] = &["true", "false", "null", "tru", "nul", "True", "nulll"];
    const PUNCTUATION: &[&str] = &["{", "}", "[", "]", ":", ","];
    const SPACES: &[&str] = &[
        "", "", "", " ", "\t", "\n", "\r", "\u{c}", "\u{a0}", "\u{feff}",
    ];

    /// The tokens of a value, mostly well formed.
    fn value(cases: &mut Cases, depth: usize, out: &mut Vec<String>) {
        let kind = if depth > 4 {
            3 + cases.below(3)
        } else {
            cases.below(6)
        };
        match kind {
            0 => {
                out.push("{".into());
                for i in 0..cases.below(4) {
                    if i > 0 {
                        out.push(",".into());
                    }
                    out.push(cases.pick(STRINGS).into());
                    out.push(":".into());
                    value(cases, depth + 1, out);
                }
                out.push("}".into());
            }
            1 => {
                out.push("[".into());
                for i in 0..cases.below(4) {
                    if i > 0 {
                        out.push(",".into());
                    }
                    value(cases, depth + 1, out);
                }
                out.push("]".into());
            }
            2 | 3 => out.push(cases.pick(STRINGS).into()),
            4 => out.push(cases.pick(NUMBERS).into()),
            _ => out.push(cases.pick(WORDS).into()),
        }
    }

    /// A token dropped, doubled, swapped or replaced by any other.
    fn mutate(cases: &mut Cases, tokens: &mut Vec<String>) {
        let at = cases.below(tokens.len());
        match cases.below(4) {
            0 => {
                tokens.remove(at);
            }
            1 => tokens.insert(at, tokens[at].clone()),
            2 => {
                let other = cases.below(tokens.len());
                tokens.swap(at, other);
            }
            _ => {
                let pool = [STRINGS, NUMBERS, WORDS, PUNCTUATION][cases.below(4)];
                tokens[at] = cases.pick(pool).to_string();
            }
        }
    }

    #[test]
    fn it_agrees_with_serde_json_on_generated_text() {
        let mut cases = Cases(0x9e37_79b9_7f4a_7c15);
        let (mut read_here, mut valid) = (0, 0);
        for _ in 0..100_000 {
            let mut tokens = vec![];
            value(&mut cases, 0, &mut tokens);
            for _ in 0..cases.below(3) {
                if !tokens.is_empty() {
                    mutate(&mut cases, &mut tokens);
                }
            }
            let mut text = String::new();
            for token in &tokens {
                text.push_str(cases.pick(SPACES));
                text.push_str(token);
            }
            text.push_str(cases.pick(SPACES));
            valid += usize::from(serde_json::from_str::<Json>(&text).is_ok());
            read_here += usize::from(agrees(&text));
        }
        // The cases reach both sides: plenty read here, plenty declined.
        assert!(
            read_here > valid / 5,
            "{read_here} of {valid} valid texts read here"
        );
        assert!(read_here < valid, "{read_here} of {valid}");
    }
}
