//! `credhost token …` and `credhost audit …`.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::api::{self, Api};
use super::output::{self, Format, cell, table};
use crate::service::{NewToken, Scope};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; it is printed once, as the last line.
    Create {
        #[arg(long)]
        name: String,
        /// read, validate, write or admin (each includes the ones before).
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// Lifetime, e.g. 3600, 90m, 12h, 30d; none by default.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
        /// Make it on this server's machine, without the network: over the
        /// server's socket in DIR if it runs, in DIR's database if not.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The server's configuration file, for where its audit log is
        /// (a token made without the server is recorded there).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The tokens the server knows (never their secrets).
    List,
    /// Revoke a token; it is refused from the next request on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check audit files (the current one and rotated ones, in any order):
    /// the first altered, removed or moved line is named.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The data directory whose audit.key sealed them.
        #[arg(long, default_value = "credhost-data")]
        data_dir: PathBuf,
    },
    /// The `hmac-sha256:` form a value takes in the audit log, to search for it.
    Hash {
        value: String,
        #[arg(long, default_value = "credhost-data")]
        data_dir: PathBuf,
    },
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| format!("{text:?}: read, validate, write or admin"))
}

fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: a number with s, m, h or d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    n.checked_mul(scale)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?}: out of range"))
}

fn show_tokens(format: Format, data: &Value) {
    output::show(format, data, |d| {
        let mut t = table(&[
            "id",
            "name",
            "scope",
            "state",
            "created",
            "by",
            "expires",
            "last used",
        ]);
        for token in d["contents"].as_array().into_iter().flatten() {
            t.add_row(vec![
                cell(&token["id"]),
                cell(&token["name"]),
                cell(&token["scope"]),
                cell(&token["state"]),
                cell(&token["created_at"]),
                cell(&token["created_by"]),
                cell(&token["expires_at"]),
                cell(&token["last_used_at"]),
            ]);
        }
        t
    });
}

/// Prints a new token: the record first, the token itself last, alone on
/// its line, so `| tail -1` takes it.
fn show_issued(format: Format, issued: &Value) {
    match format {
        Format::Json => output::json(issued),
        Format::Table => {
            eprintln!(
                "token {} ({}, scope {}) made; it is shown this once:",
                cell(&issued["id"]),
                cell(&issued["name"]),
                cell(&issued["scope"])
            );
            println!("{}", cell(&issued["token"]));
        }
    }
}

pub async fn run(
    url: Option<&str>,
    ca_file: Option<&std::path::Path>,
    format: Format,
    command: TokenCommand,
) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            ttl,
            data_dir: Some(dir),
            config,
        } => {
            let issued = create_locally(&dir, config.as_deref(), name, scope, ttl).await?;
            show_issued(format, &issued);
        }
        TokenCommand::Create {
            name, scope, ttl, ..
        } => {
            let api = api::connect(url, ca_file)?;
            let issued = api
                .post(
                    "/api/v1/tokens",
                    json!({ "name": name, "scope": scope, "ttl_secs": ttl }),
                )
                .await?;
            show_issued(format, &issued);
        }
        TokenCommand::List => {
            let data = api::connect(url, ca_file)?.get("/api/v1/tokens").await?;
            show_tokens(format, &data);
        }
        TokenCommand::Revoke { id } => {
            let data = api::connect(url, ca_file)?
                .call("DELETE", &format!("/api/v1/tokens/{id}"), None)
                .await?;
            output::show(format, &data, |d| {
                output::fields(d, &["id", "name", "scope", "state", "revoked_at"])
            });
        }
    }
    Ok(())
}

/// Over the running server's socket, or straight into the stopped
/// server's database.
async fn create_locally(
    dir: &Path,
    config: Option<&Path>,
    name: String,
    scope: Scope,
    ttl: Option<u64>,
) -> anyhow::Result<Value> {
    // The server's directory is its user's (or root's) and no one else
    // writes it; in any other, whoever answers on the socket path could be
    // anyone, and would hand back a token of theirs.
    {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let me = crate::data_dir::euid();
        // Root may ask the server of whichever user owns the directory.
        let owner_ok = me == 0 || meta.uid() == me || meta.uid() == 0;
        if !owner_ok || meta.mode() & 0o022 != 0 {
            bail!(
                "{} is not a credhost data directory: it is not this user's or root's, or others \
                 may write it",
                dir.display()
            );
        }
    }
    let socket = crate::local_socket::path_in(dir);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        let api = Api::local(&socket);
        return api
            .post(
                "/api/v1/tokens",
                json!({ "name": name, "scope": scope, "ttl_secs": ttl }),
            )
            .await;
    }
    if std::env::var_os("CREDHOST_STORE").is_some_and(|s| s != "redb") {
        bail!(
            "with a shared store the first token is made over a running server's socket: \
             start a server with --data-dir {} and run this again",
            dir.display()
        );
    }
    let database = dir.join("credhost.redb");
    if !database.exists() {
        bail!(
            "{} holds no credhost database (start the server on it once, or check --data-dir)",
            dir.display()
        );
    }
    crate::data_dir::prepare(dir)?;
    let store = crate::store::RedbStore::open(&database).map_err(|e| {
        anyhow!(
            "cannot open {}: {e} (if the server runs, its socket {} should answer)",
            database.display(),
            socket.display()
        )
    })?;
    // The server's own audit settings: the record of this token goes into
    // the chain the server keeps, wherever that is.
    let mut config = match config {
        Some(path) => crate::config::Config::from_file(path)?,
        None => crate::config::Config::default(),
    };
    let named = &config.data_dir;
    if *named != crate::config::Config::default().data_dir
        && std::fs::canonicalize(named).ok() != std::fs::canonicalize(dir).ok()
    {
        bail!(
            "the settings file is for the data directory {}, not {}",
            named.display(),
            dir.display()
        );
    }
    config.data_dir = dir.to_path_buf();
    let audit = if config.audit.enabled {
        crate::audit::Audit::open(
            &config.audit,
            config.audit_path(),
            &crate::data_dir::secret_file(&dir.join("audit.key"))?,
        )?
    } else {
        crate::audit::Audit::disabled()
    };
    let issued = crate::service::tokens::create_offline(
        &store,
        &audit,
        NewToken {
            name,
            scope,
            ttl_secs: ttl,
        },
    )
    .await?;
    Ok(serde_json::to_value(issued)?)
}

pub fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { files, data_dir } => {
            let keys = audit_keys(&data_dir)?;
            match crate::audit::verify(&files, &keys) {
                Ok(report) => {
                    println!(
                        "ok: {} records in {} file(s), seq {} to {}, chain intact",
                        report.records, report.files, report.first_seq, report.last_seq
                    );
                    if !report.from_the_start {
                        println!(
                            "note: the log began before seq {}: the files before these are not \
                             among those given (rotated away or removed), so what they held \
                             cannot be checked",
                            report.first_seq
                        );
                    }
                    Ok(())
                }
                Err(failure) => bail!("tampered: {failure}"),
            }
        }
        AuditCommand::Hash { value, data_dir } => {
            println!("{}", audit_keys(&data_dir)?.hash(&value));
            Ok(())
        }
    }
}

fn audit_keys(data_dir: &Path) -> anyhow::Result<crate::audit::Keys> {
    let path = data_dir.join("audit.key");
    let bytes = std::fs::read(&path)
        .with_context(|| format!("cannot read {} (pass --data-dir)", path.display()))?;
    if bytes.len() != 32 {
        bail!("{} does not hold a key", path.display());
    }
    Ok(crate::audit::Keys::from_master(
        &crate::secret::Secret::new(bytes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_with_units() {
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("90m"), Ok(5400));
        assert_eq!(parse_ttl("30d"), Ok(2_592_000));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("3w").is_err());
        assert!(parse_ttl("d").is_err());
    }
}
