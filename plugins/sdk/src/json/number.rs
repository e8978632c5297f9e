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
    /// A number whose text was read as a JSON number already: by the plain
    /// reader, or by serde_json, which hands over what is not a 64-bit
    /// integer as text (an exponent spelt `e+5` for `E5`).
    pub(super) fn read(text: Cow<'a, str>) -> Self {
        Self(text)
    }

    /// The number as serde_json spells an integer it read.
    pub(super) fn integer(n: impl itoa::Integer) -> Self {
        Self(Cow::Owned(itoa::Buffer::new().format(n).into()))
    }

    /// The text, as sent (see [`Number::read`] for the one exception).
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
