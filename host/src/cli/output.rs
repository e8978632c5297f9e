//! Tables for people, JSON for scripts.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use std::fmt::Write as _;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

pub fn json(value: &Value) {
    let text = serde_json::to_string_pretty(value).expect("JSON always prints");
    // serde_json escapes C0 controls in strings (the ones left are the
    // layout's own whitespace) but leaves DEL, C1 controls and direction
    // marks; JSON has none of those outside strings, so each becomes a
    // `\uXXXX` escape, which means the same to any JSON reader.
    let shown = escaped(
        &text,
        |c| c >= '\u{7f}' && hidden(c),
        |out, c| {
            let _ = write!(out, "\\u{:04x}", c as u32);
        },
    );
    println!("{shown}");
}

/// A JSON value as a cell: strings without quotes, nothing for null.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => printable(s),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        // JSON's own escaping leaves C1 controls and direction overrides.
        other => printable(&other.to_string()),
    }
}

/// A control character, or a direction mark or override.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from the server as a terminal may show it: a name or a message is
/// anyone's with write access, and control characters (escape sequences
/// that move the cursor, rewrite lines or set the clipboard) or
/// direction overrides would let it hide or fake what is printed around
/// it. Each is shown as its escape, `\u{1b}`.
pub fn printable(text: &str) -> String {
    escaped(text, hidden, |out, c| out.extend(c.escape_unicode()))
}

/// `text` with each character `which` picks written by `escape`.
fn escaped(text: &str, which: impl Fn(char) -> bool, escape: impl Fn(&mut String, char)) -> String {
    if !text.contains(&which) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if which(c) {
            escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// `ip:port` of an endpoint object (`[ip]:port` for IPv6).
pub fn endpoint(target: &Value) -> String {
    let ip = printable(target["ip"].as_str().unwrap_or(""));
    let port = cell(&target["port"]);
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Prints `data` as `format` asks, with `to_table` for people.
pub fn show(format: Format, data: &Value, to_table: impl FnOnce(&Value) -> Table) {
    match format {
        Format::Json => json(data),
        Format::Table => println!("{}", to_table(data)),
    }
}

/// A record of named fields, one per row.
pub fn fields(data: &Value, names: &[&str]) -> Table {
    let mut t = table(&["field", "value"]);
    for name in names {
        if let Some(value) = data.get(*name) {
            t.add_row(vec![name.to_string(), cell(value)]);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_direction_overrides_are_shown_escaped() {
        assert_eq!(printable("web-01 ü"), "web-01 ü");
        assert_eq!(
            printable("a\u{1b}[2Kb\nc\u{9b}d\u{202e}e"),
            "a\\u{1b}[2Kb\\u{a}c\\u{9b}d\\u{202e}e"
        );
        assert_eq!(cell(&Value::from("\u{7}")), "\\u{7}");
        // Not a string: what JSON's escaping leaves is escaped too.
        let odd = serde_json::json!({ "a": "\u{202e}x\u{9b}" });
        assert_eq!(cell(&odd), r#"{"a":"\u{202e}x\u{9b}"}"#);
        let target = serde_json::json!({ "ip": "127.0.0.1", "port": "\u{9b}2J" });
        assert_eq!(endpoint(&target), r#"127.0.0.1:\u{9b}2J"#);
    }
}
