//! Tables for people, JSON for scripts.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
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
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON always prints")
    );
}

/// A JSON value as a cell: strings without quotes, nothing for null.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// `ip:port` of an endpoint object (`[ip]:port` for IPv6).
pub fn endpoint(target: &Value) -> String {
    let ip = target["ip"].as_str().unwrap_or("");
    let port = &target["port"];
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
