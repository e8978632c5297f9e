//! The `credhost` binary.

use clap::{Parser, Subcommand};
use credhost::config::{Config, Overrides};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "credhost",
    version,
    about = "A credential service that speaks obshell's credential API"
)]
struct Cli {
    #[command(flatten)]
    target: credhost::cli::Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<Overrides>),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Copy a credential set between stores; migrate a shared database.
    #[command(subcommand)]
    Store(credhost::cli::StoreCommand),
    #[command(flatten)]
    Client(credhost::cli::ClientCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a component, check it against the plugin contract, and print
    /// what its describe() says.
    Check {
        /// The component (.wasm).
        file: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    // Must happen before any thread starts.
    credhost::clock::init_local_offset();
    // Before any secret is read: every command may hold one.
    if let Err(e) = credhost::no_core_dumps::forbid() {
        eprintln!("error: cannot keep this process out of core dumps: {e}");
        std::process::exit(1);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(overrides) => {
            let config = Config::load(&overrides)?;
            init_logging(&config.log);
            open_files_limit(config.http.max_connections);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(credhost::server::serve(&config, shutdown_signal()))
        }
        Command::Client(command) => {
            init_logging("warn");
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(credhost::cli::run(cli.target, command));
            if let Err(e) = outcome {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Store(command) => {
            init_logging("warn");
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(credhost::cli::run_store(command));
            if let Err(e) = outcome {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "credhost",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Plugin(PluginCommand::Check { file }) => {
            init_logging("warn");
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(check_plugin(&file))
        }
    }
}

async fn check_plugin(file: &std::path::Path) -> anyhow::Result<()> {
    use credhost::plugins::{EngineSettings, PrecompileCache, Registry, Runtime};
    let runtime = Runtime::new(
        EngineSettings::default(),
        PrecompileCache::default(),
        Default::default(),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
    match Registry::inspect(&runtime, file).await {
        Ok(summary) => {
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Err(e) => anyhow::bail!("{}: not a usable credhost plugin: {e}", file.display()),
    }
}

/// Raises the open files limit, and says so, or why the one there is short.
fn open_files_limit(max_connections: usize) {
    // The connections, and as many again for what serving them opens
    // (store files, plugin sockets, SSH logins).
    let wanted = 2 * max_connections as u64;
    match credhost::open_files::raise() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!("raised the open files limit from {before} to {after}");
            }
            if after < wanted {
                tracing::warn!(
                    "the open files limit is {after}, below the {wanted} that {max_connections} \
                     connections may need: raise the hard limit (LimitNOFILE under systemd)"
                );
            }
        }
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
