//! A JSON number as its text. Go judges a number only when it converts one
//! for a number field, and quotes it as sent when that fails, so the text is
//! what a property's reader needs; converting is left to the field that
//! asks for it.
//!
//! serde_json's own `Number` keeps the text too (with `arbitrary_precision`),
//! but it is made by parsing the text again, and that parser can also make a
//! number from a float, which brings float printing (17 KiB of tables) into
//! every plugin's memory image: pages each call of the plugin maps.

use alloc::borrow::Cow;
use core::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number<'a>(Cow<'a, str>);

impl<'a> Number<'a> {
    /// A number whose text was read as a JSON number already, by the plain
    /// reader.
    pub(super) fn read(text: Cow<'a, str>) -> Self {
        Self(text)
    }

    /// `text` if it is a JSON number: what serde_json hands over as text
    /// (what is not a 64-bit integer, an exponent always with its sign,
    /// `1e+2` for `1e2`), checked, as it may come from elsewhere than text.
    pub(super) fn checked(text: Cow<'a, str>) -> Option<Self> {
        is_number(text.as_bytes()).then_some(Self(text))
    }

    /// The number as serde_json spells an integer it read.
    pub(super) fn integer(n: impl itoa::Integer) -> Self {
        Self(Cow::Owned(itoa::Buffer::new().format(n).into()))
    }

    /// The text, as sent, except an exponent, which is spelt with its sign
    /// (`1e+2` for `1e2`: serde_json reads such numbers).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number if it is an integer that fits, as Go converts one for an
    /// `int64` field: `22` and `-0` do, `22.0`, `1e2` and `2^63` do not.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// As [`Number::as_i64`], for a `uint64` field.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Number<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// JSON's number grammar: `-`? (`0` | a digit 1–9 then digits), then
/// optionally `.` and digits, then optionally `e` or `E`, a sign, digits.
fn is_number(text: &[u8]) -> bool {
    fn digits(text: &[u8]) -> usize {
        text.iter().take_while(|b| b.is_ascii_digit()).count()
    }
    let mut at = usize::from(text.first() == Some(&b'-'));
    match text.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at += digits(&text[at..]),
        _ => return false,
    }
    if text.get(at) == Some(&b'.') {
        let n = digits(&text[at + 1..]);
        if n == 0 {
            return false;
        }
        at += 1 + n;
    }
    if let Some(b'e' | b'E') = text.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = text.get(at) {
            at += 1;
        }
        let n = digits(&text[at..]);
        if n == 0 {
            return false;
        }
        at += n;
    }
    at == text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_numbers_pass_the_check() {
        for good in [
            "0",
            "-0",
            "22",
            "-22.50",
            "1e+400",
            "1E5",
            "0.5e-3",
            "99999999999999999999",
        ] {
            assert!(is_number(good.as_bytes()), "{good}");
        }
        for bad in [
            "", "-", "+1", "01", "1.", ".5", "1e", "1e+", "abc", "1 ", " 1", "0x10", "1.5.2", "--1",
        ] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }
}
