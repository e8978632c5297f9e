//! The `credhost` client commands: a client of the API like any other (no
//! path of its own to the store), plus the offline operations on a data
//! directory (`token create --data-dir`, `audit verify`).

mod api;
mod credentials;
mod encryption;
mod output;
mod store;
mod tokens;

use anyhow::{Context, bail};
use clap::Subcommand;

pub use credentials::CredentialCommand;
pub use output::Format;
pub use store::{StoreCommand, run as run_store};
pub use tokens::{AuditCommand, TokenCommand};

use crate::secret::Secret;

/// Where a client command goes, and how it prints.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The server, e.g. https://credhost.example:2886 (default: what
    /// `credhost login` saved). The token comes from CREDHOST_TOKEN or the login.
    #[arg(long, env = "CREDHOST_URL", global = true)]
    pub url: Option<String>,
    /// A CA certificate (PEM) the server's certificate chains to, beyond
    /// the system's roots (`credhost login` saves it with the URL).
    #[arg(long, env = "CREDHOST_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
    /// table for people, json for scripts.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Save a server's URL and a token (asked for without echo) for later commands.
    Login {
        url: String,
        /// Read the token from stdin instead of a prompt.
        #[arg(long)]
        token_stdin: bool,
    },
    /// Credentials: create, get, list, update, delete, validate.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The encryption policy new secrets are sealed with.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Keys, policies and the rewrap's progress.
    #[command(subcommand)]
    Encryption(EncryptionCommand),
    /// Loaded plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new key current; old rows are re-encrypted in the background.
    Rotate {
        /// Follow the re-encryption with a progress bar until it is done.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Make a loaded policy current.
    Set {
        name: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    Status,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    List,
    /// Load the plugin directory again.
    Reload,
}

async fn login(
    url: &str,
    ca_file: Option<&std::path::Path>,
    from_stdin: bool,
) -> anyhow::Result<()> {
    let token = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the token from stdin")?;
        line.trim().to_string()
    } else {
        rpassword::prompt_password("Token: ")
            .context("cannot prompt for the token (no terminal?); use --token-stdin")?
            .trim()
            .to_string()
    };
    if token.is_empty() {
        bail!("no token given");
    }
    let api = api::Api::http(url, Some(Secret::new(token.clone().into_bytes())), ca_file)?;
    let me = api.get("/api/v1/tokens/self").await?;
    if me["kind"] != "token" {
        bail!("{url} did not take this as an API token");
    }
    let path = api::write_login(&api::Login {
        url: url.trim_end_matches('/').to_string(),
        token,
        // Later commands run from anywhere.
        ca_file: ca_file
            .map(|path| {
                std::fs::canonicalize(path)
                    .with_context(|| format!("cannot find {}", path.display()))
            })
            .transpose()?,
    })?;
    println!(
        "logged in to {url} as {} (scope {}); saved in {}",
        output::cell(&me["token"]["name"]),
        output::cell(&me["token"]["scope"]),
        path.display()
    );
    Ok(())
}

/// Runs a client command.
pub async fn run(target: Target, command: ClientCommand) -> anyhow::Result<()> {
    let Target {
        url,
        ca_file,
        output,
    } = target;
    let url = url.as_deref();
    let ca_file = ca_file.as_deref();
    match command {
        ClientCommand::Login { url, token_stdin } => login(&url, ca_file, token_stdin).await,
        ClientCommand::Credential(c) => {
            credentials::run(&api::connect(url, ca_file)?, output, c).await
        }
        ClientCommand::Keys(KeysCommand::Rotate { wait }) => {
            encryption::rotate(&api::connect(url, ca_file)?, output, wait).await
        }
        ClientCommand::Policy(PolicyCommand::Set { name, wait }) => {
            encryption::set_policy(&api::connect(url, ca_file)?, output, &name, wait).await
        }
        ClientCommand::Encryption(EncryptionCommand::Status) => {
            let status = api::connect(url, ca_file)?
                .get("/api/v1/security/encryption")
                .await?;
            encryption::show_status(output, &status);
            Ok(())
        }
        ClientCommand::Plugins(PluginsCommand::List) => {
            encryption::plugins(&api::connect(url, ca_file)?, output, false).await
        }
        ClientCommand::Plugins(PluginsCommand::Reload) => {
            encryption::plugins(&api::connect(url, ca_file)?, output, true).await
        }
        ClientCommand::Token(t) => tokens::run(url, ca_file, output, t).await,
        ClientCommand::Audit(a) => tokens::audit(a),
    }
}
