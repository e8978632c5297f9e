//! `credhost keys …`, `credhost policy …`, `credhost encryption status`,
//! `credhost plugins …`.

use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::api::Api;
use super::output::{self, Format, cell, table};

/// Rows not yet under the current key and the active policy.
fn rows_left(status: &Value) -> u64 {
    let sum = |list: &str, current: &str| -> u64 {
        status[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x[current] != true)
            .filter_map(|x| x["rows"].as_u64())
            .sum()
    };
    sum("keys", "current").max(sum("policies", "active"))
}

/// Follows the rewrap with a progress bar until every row is under the
/// current key and policy; fails if the rewrap stopped on an error.
pub async fn follow_rewrap(api: &Api) -> anyhow::Result<Value> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} rewrap [{bar:30}] {pos}/{len} rows, {msg} (ETA {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let mut total = None;
    loop {
        let status = api.get("/api/v1/security/encryption").await?;
        let rewrap = &status["rewrap"];
        let left = rows_left(&status);
        let total = *total.get_or_insert(left);
        bar.set_length(total.max(left));
        bar.set_position(total.saturating_sub(left));
        bar.set_message(format!(
            "{:.0} rows/s",
            rewrap["rows_per_second"].as_f64().unwrap_or(0.0)
        ));
        match rewrap["state"].as_str() {
            Some("failed") => {
                bar.abandon_with_message("stopped");
                bail!("the rewrap stopped: {}", cell(&rewrap["error"]));
            }
            Some("running") => {}
            _ if left == 0 => {
                bar.finish_and_clear();
                return Ok(status);
            }
            // Idle with rows left: the run ended before the last change
            // (or has not begun); starting one is harmless either way.
            _ => {
                api.post("/api/v1/security/encryption/rewrap", json!({}))
                    .await?;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn show_status(format: Format, status: &Value) {
    output::show(format, status, |s| {
        let mut t = table(&["key", "state", "rows"]);
        for key in s["keys"].as_array().into_iter().flatten() {
            let state = if key["current"] == true {
                "current"
            } else if key["retired"] == true {
                "retired"
            } else {
                "active"
            };
            t.add_row(vec![
                cell(&key["id"]),
                state.to_string(),
                cell(&key["rows"]),
            ]);
        }
        let rewrap = &s["rewrap"];
        println!(
            "policy {} (key {}); rewrap {}: {} done, {} remaining{}",
            cell(&s["active_policy"]),
            cell(&s["current_key_id"]),
            cell(&rewrap["state"]),
            cell(&rewrap["done"]),
            cell(&rewrap["remaining"]),
            rewrap["error"]
                .as_str()
                .map(|e| format!(", error: {}", crate::cli::output::printable(e)))
                .unwrap_or_default()
        );
        t
    });
}

pub async fn rotate(api: &Api, format: Format, wait: bool) -> anyhow::Result<()> {
    let data = api.post("/api/v1/security/keys/rotate", json!({})).await?;
    if wait {
        let status = follow_rewrap(api).await?;
        show_status(format, &status);
    } else {
        output::show(format, &data, |d| output::fields(d, &["key_id"]));
    }
    Ok(())
}

pub async fn set_policy(api: &Api, format: Format, name: &str, wait: bool) -> anyhow::Result<()> {
    let mut status = api
        .call(
            "PUT",
            "/api/v1/security/encryption/policy",
            Some(json!({ "policy": name })),
        )
        .await?;
    if wait {
        status = follow_rewrap(api).await?;
    }
    show_status(format, &status);
    Ok(())
}

pub async fn plugins(api: &Api, format: Format, reload: bool) -> anyhow::Result<()> {
    let data = if reload {
        api.post("/api/v1/plugins/reload", json!({})).await?
    } else {
        api.get("/api/v1/plugins").await?
    };
    output::show(format, &data, |d| {
        let mut t = table(&["name", "version", "kind", "serves", "sha256", "source"]);
        for p in d["plugins"].as_array().into_iter().flatten() {
            let serves = p
                .get("target_type")
                .or_else(|| p.get("algorithm"))
                .map(cell)
                .unwrap_or_default();
            let sha = cell(&p["sha256"]);
            t.add_row(vec![
                cell(&p["name"]),
                cell(&p["version"]),
                cell(&p["kind"]),
                serves,
                sha.chars().take(16).collect(),
                crate::cli::output::printable(
                    p["source"]["path"]
                        .as_str()
                        .or(p["source"]["kind"].as_str())
                        .unwrap_or_default(),
                ),
            ]);
        }
        for f in d["failures"].as_array().into_iter().flatten() {
            t.add_row(vec![
                cell(&f["file"]),
                String::new(),
                "failed".into(),
                cell(&f["error"]),
                String::new(),
                String::new(),
            ]);
        }
        t
    });
    Ok(())
}
