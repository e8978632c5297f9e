//! `credhost credential …`: the credential endpoints, for people and scripts.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::api::Api;
use super::output::{self, Format, cell, endpoint, table};

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Create a credential; every target is logged in to first.
    Create(Property),
    /// Show one credential.
    Get { id: u64 },
    /// List credentials (every page).
    List {
        /// Only this target type.
        #[arg(long = "type")]
        target_type: Option<String>,
        /// A literal, case-insensitive part of the name, a target or the username.
        #[arg(long)]
        search: Option<String>,
        /// name, target_type, create_time, update_time or id.
        #[arg(long, default_value = "id")]
        sort: String,
        #[arg(long)]
        desc: bool,
    },
    /// Replace a credential's fields; the stored passphrase is kept unless
    /// a new one is given.
    Update {
        id: u64,
        #[command(flatten)]
        change: Change,
    },
    /// Delete credentials.
    Delete {
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Log in to the targets of stored credentials.
    Validate {
        ids: Vec<u64>,
        /// Every stored credential, with a progress bar.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct Property {
    /// The target type (HOST, or any a loaded verifier serves).
    #[arg(long = "type", default_value = "HOST")]
    target_type: String,
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "")]
    description: String,
    /// A target, IP[:PORT] (repeatable).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    #[arg(long)]
    username: String,
    /// Another field of the property, KEY=VALUE (VALUE as JSON if it
    /// parses); never a secret (`passphrase`, `private_key`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    extra: Vec<String>,
    /// Read the passphrase from the first line of stdin instead of a prompt
    /// (with --private-key-file: the key's passphrase).
    #[arg(long)]
    passphrase_stdin: bool,
    #[command(flatten)]
    key: KeyFile,
}

/// A key credential's private key, from a file: never from the command
/// line, where other local users can read it.
#[derive(Debug, Args)]
pub struct KeyFile {
    /// A private key file (OpenSSH or PEM) to log in with: for HOST, a
    /// `PUBLIC_KEY` credential. Its passphrase, if it has one, comes from
    /// --passphrase-stdin or --key-passphrase.
    #[arg(long, value_name = "PATH")]
    private_key_file: Option<std::path::PathBuf>,
    /// Prompt for the private key's passphrase.
    #[arg(
        long,
        requires = "private_key_file",
        conflicts_with = "passphrase_stdin"
    )]
    key_passphrase: bool,
}

impl KeyFile {
    /// Puts the key (and its passphrase, if asked for) in `property`;
    /// false when there is no key file.
    fn apply(
        &self,
        property: &mut Map<String, Value>,
        target_type: &str,
        passphrase_stdin: bool,
    ) -> anyhow::Result<bool> {
        let Some(path) = &self.private_key_file else {
            return Ok(false);
        };
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the private key {}", path.display()))?,
        );
        property.insert("private_key".into(), text.as_str().into());
        if target_type.eq_ignore_ascii_case("HOST") {
            property.insert("type".into(), "PUBLIC_KEY".into());
        }
        if passphrase_stdin || self.key_passphrase {
            let secret = passphrase(passphrase_stdin)?;
            property.insert("passphrase".into(), secret.as_str().into());
        } else {
            property.remove("passphrase");
        }
        Ok(true)
    }
}

#[derive(Debug, Args)]
pub struct Change {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Replace the targets, IP[:PORT] (repeatable).
    #[arg(long = "target")]
    targets: Vec<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    extra: Vec<String>,
    /// Prompt for a new passphrase.
    #[arg(long, conflicts_with_all = ["passphrase_stdin", "private_key_file"])]
    passphrase: bool,
    /// Read a new passphrase from the first line of stdin (with
    /// --private-key-file: the new key's passphrase).
    #[arg(long)]
    passphrase_stdin: bool,
    #[command(flatten)]
    key: KeyFile,
    /// Learn the targets' host keys afresh (a host's key really changed):
    /// the new secret goes to whatever key each target presents now. Only
    /// with a new passphrase or key.
    #[arg(long)]
    forget_host_keys: bool,
}

/// A passphrase from stdin or from a prompt that does not echo; never argv.
fn passphrase(from_stdin: bool) -> anyhow::Result<Zeroizing<String>> {
    let text =
        if from_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the passphrase from stdin")?;
            Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
        } else {
            Zeroizing::new(rpassword::prompt_password("Passphrase: ").context(
                "cannot prompt for the passphrase (no terminal?); use --passphrase-stdin",
            )?)
        };
    if text.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(text)
}

/// `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`; a bare IPv6 address has
/// no port.
fn target(text: &str) -> anyhow::Result<Value> {
    let (ip, port) = if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| anyhow!("{text}: no closing ]"))?;
        (ip, after.strip_prefix(':'))
    } else if text.matches(':').count() == 1 {
        let (ip, port) = text.split_once(':').expect("one colon");
        (ip, Some(port))
    } else {
        (text, None)
    };
    Ok(match port {
        Some(port) => {
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow!("{text}: the port is not a number"))?;
            json!({ "ip": ip, "port": port })
        }
        None => json!({ "ip": ip }),
    })
}

fn set_extra(property: &mut Map<String, Value>, extra: &[String]) -> anyhow::Result<()> {
    for pair in extra {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {pair}: expected KEY=VALUE"))?;
        // Matched as the server matches keys: `PassPhrase` is the passphrase.
        if ["passphrase", "private_key"]
            .iter()
            .any(|secret| credhost_binding::names(key, secret))
        {
            bail!(
                "--set {key}: a secret never goes on the command line, where other users \
                 can read it; use a prompt, --passphrase-stdin or --private-key-file"
            );
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
        property.insert(key.to_string(), value);
    }
    Ok(())
}

/// The request field a target type's property goes in, from the server's
/// loaded verifiers.
async fn property_field(api: &Api, target_type: &str) -> anyhow::Result<(String, String)> {
    let plugins = api.get("/api/v1/plugins").await?;
    plugins["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["target_type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(target_type))
        })
        .map(|p| {
            (
                p["property_field"].as_str().unwrap_or_default().to_string(),
                p["public_field"].as_str().unwrap_or_default().to_string(),
            )
        })
        .ok_or_else(|| anyhow!("the server has no verifier for target type {target_type}"))
}

pub async fn run(api: &Api, format: Format, command: CredentialCommand) -> anyhow::Result<()> {
    match command {
        CredentialCommand::Create(p) => {
            let (field, _) = property_field(api, &p.target_type).await?;
            let mut property = Map::new();
            let targets = p
                .targets
                .iter()
                .map(|t| target(t))
                .collect::<Result<Vec<_>, _>>()?;
            property.insert("targets".into(), targets.into());
            property.insert("username".into(), p.username.into());
            if p.target_type.eq_ignore_ascii_case("HOST") {
                property.insert("type".into(), "PASSWORD".into());
            }
            set_extra(&mut property, &p.extra)?;
            if !p
                .key
                .apply(&mut property, &p.target_type, p.passphrase_stdin)?
            {
                let secret = passphrase(p.passphrase_stdin)?;
                property.insert("passphrase".into(), secret.as_str().into());
            }
            let body = json!({ "target_type": p.target_type, "name": p.name,
                               "description": p.description, field: property });
            let data = api.post("/api/v1/security/credential", body).await?;
            show_credential(format, &data);
        }
        CredentialCommand::Get { id } => {
            let data = api
                .get(&format!("/api/v1/security/credential/{id}"))
                .await?;
            show_credential(format, &data);
        }
        CredentialCommand::List {
            target_type,
            search,
            sort,
            desc,
        } => {
            let all = list_all(api, target_type.as_deref(), search.as_deref(), &sort, desc).await?;
            output::show(format, &Value::from(all.clone()), |_| {
                let mut t = table(&["id", "name", "type", "targets", "username", "updated"]);
                for c in &all {
                    let public = public_of(c);
                    t.add_row(vec![
                        cell(&c["credential_id"]),
                        cell(&c["name"]),
                        cell(&c["target_type"]),
                        targets_of(&public),
                        cell(&public["username"]),
                        cell(&c["update_time"]),
                    ]);
                }
                t
            });
        }
        CredentialCommand::Update { id, change } => update(api, format, id, change).await?,
        CredentialCommand::Delete { ids } => {
            let data = api
                .call(
                    "DELETE",
                    "/api/v1/security/credentials",
                    Some(json!({ "credential_id_list": ids })),
                )
                .await?;
            output::show(format, &data, |d| {
                output::fields(d, &["deleted", "not_found"])
            });
            if data["not_found"].as_array().is_some_and(|n| !n.is_empty()) {
                bail!(
                    "some credentials were not found: {}",
                    cell(&data["not_found"])
                );
            }
        }
        CredentialCommand::Validate { ids, all } => {
            let ids = if all {
                list_all(api, None, None, "id", false)
                    .await?
                    .iter()
                    .filter_map(|c| c["credential_id"].as_u64())
                    .collect()
            } else if ids.is_empty() {
                bail!("name the credentials to validate, or pass --all");
            } else {
                ids
            };
            validate(api, format, &ids).await?;
        }
    }
    Ok(())
}

/// The public part of a credential view (under its target type's field).
fn public_of(credential: &Value) -> Value {
    credential
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, v)| v.get("targets").is_some())
        .map(|(_, v)| v.clone())
        .unwrap_or(Value::Null)
}

fn targets_of(public: &Value) -> String {
    public["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(endpoint)
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_credential(format: Format, data: &Value) {
    output::show(format, data, |c| {
        let public = public_of(c);
        let mut t = output::fields(c, &["credential_id", "name", "target_type", "description"]);
        t.add_row(vec!["targets".to_string(), targets_of(&public)]);
        t.add_row(vec!["username".to_string(), cell(&public["username"])]);
        for pin in public["host_keys"].as_array().into_iter().flatten() {
            t.add_row(vec![
                format!("host key {}", endpoint(pin)),
                format!("{} {}", cell(&pin["key_type"]), cell(&pin["fingerprint"])),
            ]);
        }
        t.add_row(vec!["created".to_string(), cell(&c["create_time"])]);
        t.add_row(vec!["updated".to_string(), cell(&c["update_time"])]);
        t
    });
}

/// Every credential the server has, page by page.
pub async fn list_all(
    api: &Api,
    target_type: Option<&str>,
    search: Option<&str>,
    sort: &str,
    desc: bool,
) -> anyhow::Result<Vec<Value>> {
    const PAGE: u64 = 100;
    let mut all = Vec::new();
    let mut page = 1;
    loop {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("page", &page.to_string())
            .append_pair("page_size", &PAGE.to_string())
            .append_pair("sort", sort)
            .append_pair("sort_order", if desc { "desc" } else { "asc" });
        if let Some(t) = target_type {
            query.append_pair("target_type", t);
        }
        if let Some(k) = search {
            query.append_pair("key_word", k);
        }
        let data = api
            .get(&format!("/api/v1/security/credentials?{}", query.finish()))
            .await?;
        let contents = data["contents"].as_array().cloned().unwrap_or_default();
        let total_pages = data["page"]["total_pages"].as_u64().unwrap_or(0);
        all.extend(contents);
        if page >= total_pages {
            return Ok(all);
        }
        page += 1;
    }
}

async fn update(api: &Api, format: Format, id: u64, change: Change) -> anyhow::Result<()> {
    let current = api
        .get(&format!("/api/v1/security/credential/{id}"))
        .await?;
    let target_type = current["target_type"]
        .as_str()
        .unwrap_or("HOST")
        .to_string();
    let (field, public_field) = property_field(api, &target_type).await?;
    let mut property = current[&public_field]
        .as_object()
        .cloned()
        .unwrap_or_default();
    // What the server shows beside the property is not part of it.
    property.remove("host_keys");
    if !change.targets.is_empty() {
        let targets = change
            .targets
            .iter()
            .map(|t| target(t))
            .collect::<Result<Vec<_>, _>>()?;
        property.insert("targets".into(), targets.into());
    }
    if let Some(username) = change.username {
        property.insert("username".into(), username.into());
    }
    set_extra(&mut property, &change.extra)?;
    if !change
        .key
        .apply(&mut property, &target_type, change.passphrase_stdin)?
    {
        let secret = if change.passphrase || change.passphrase_stdin {
            passphrase(change.passphrase_stdin)?
        } else {
            // obshell's "keep the stored passphrase".
            Zeroizing::new(String::new())
        };
        property.insert("passphrase".into(), secret.as_str().into());
    }
    // As stored, not as a terminal is shown them (escaped).
    let stored = |field: &str| current[field].as_str().unwrap_or_default().to_string();
    let body = json!({
        "name": change.name.unwrap_or_else(|| stored("name")),
        "description": change.description.unwrap_or_else(|| stored("description")),
        field: property,
    });
    let query = if change.forget_host_keys {
        "?forget_host_keys=true"
    } else {
        ""
    };
    let data = api
        .call(
            "PATCH",
            &format!("/api/v1/security/credential/{id}{query}"),
            Some(body),
        )
        .await?;
    show_credential(format, &data);
    Ok(())
}

/// Batch validation in chunks, with a progress bar and a summary of the
/// failures by reason; fails if any target failed.
async fn validate(api: &Api, format: Format, ids: &[u64]) -> anyhow::Result<()> {
    const CHUNK: usize = 50;
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} validating [{bar:30}] {pos}/{len} credentials, {msg} ({elapsed}, ETA {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message("0 failed");
    let mut results = Vec::with_capacity(ids.len());
    let mut failed = 0usize;
    for chunk in ids.chunks(CHUNK) {
        let data = api
            .post(
                "/api/v1/security/credentials/validate",
                json!({ "credential_id_list": chunk }),
            )
            .await;
        let data = match data {
            Ok(data) => data,
            Err(e) => {
                bar.abandon_with_message("stopped");
                return Err(e);
            }
        };
        for result in data["contents"].as_array().into_iter().flatten() {
            if result["failed_count"].as_u64().unwrap_or(0) > 0 {
                failed += 1;
            }
            results.push(result.clone());
        }
        bar.inc(chunk.len() as u64);
        bar.set_message(format!("{failed} failed"));
    }
    bar.finish_and_clear();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for result in &results {
        for detail in result["details"].as_array().into_iter().flatten() {
            if detail["connection_result"] != "SUCCESS" {
                *by_reason.entry(cell(&detail["reason"])).or_default() += 1;
                failures.push((result["credential_id"].clone(), detail.clone()));
            }
        }
    }
    match format {
        Format::Json => output::json(&Value::from(results)),
        Format::Table => {
            println!(
                "{} credentials validated: {} passed, {} failed",
                ids.len(),
                ids.len() - failed,
                failed
            );
            if !failures.is_empty() {
                let mut summary = table(&["reason", "targets"]);
                for (reason, count) in &by_reason {
                    summary.add_row(vec![reason.clone(), count.to_string()]);
                }
                println!("{summary}");
                let mut detail = table(&["credential", "target", "reason", "message"]);
                for (id, d) in &failures {
                    detail.add_row(vec![
                        cell(id),
                        endpoint(&d["target"]),
                        cell(&d["reason"]),
                        cell(&d["message"]),
                    ]);
                }
                println!("{detail}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} credentials failed validation", ids.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_and_without_ports() {
        assert_eq!(
            target("127.0.0.1:2222").unwrap(),
            json!({"ip": "127.0.0.1", "port": 2222})
        );
        assert_eq!(target("127.0.0.1").unwrap(), json!({"ip": "127.0.0.1"}));
        assert_eq!(
            target("[::1]:22").unwrap(),
            json!({"ip": "::1", "port": 22})
        );
        assert_eq!(target("::1").unwrap(), json!({"ip": "::1"}));
        assert!(target("127.0.0.1:x").is_err());
    }
}
