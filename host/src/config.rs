//! One configuration struct, from a TOML file, then `CREDHOST_*` environment
//! variables, then flags (each overriding the one before).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::capabilities::SshSettings;
use crate::plugins::{EngineSettings, LimitsOverride};

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The database, the key file and the precompile cache live here.
    pub data_dir: PathBuf,
    /// Where credentials are kept: unset for the embedded file in
    /// `data_dir`, or a database servers share:
    /// `mysql://user@host:port/database`.
    pub store: Option<String>,
    /// The shared database's password (or `CREDHOST_STORE_PASSWORD`).
    pub store_password: Option<String>,
    pub store_tls: crate::store::mysql::StoreTls,
    /// Reach a shared store beyond loopback without TLS anyway.
    pub store_allow_plaintext: bool,
    /// Connections this server keeps to the shared database at most.
    pub store_max_connections: usize,
    /// The key-encryption key of a shared store (default
    /// `data_dir/kek.key`; `CREDHOST_KEK` wins).
    pub kek_file: Option<PathBuf>,
    pub cluster: ClusterSettings,
    /// `*.wasm` plugins that add to, or override, the embedded ones.
    pub plugin_dir: Option<PathBuf>,
    /// CIDRs every target must fall in; empty allows all.
    pub allow_targets: Vec<IpNet>,
    /// The encryption policy new secrets are sealed with.
    pub policy: String,
    /// Credentials verified at once by a batch validation.
    pub verify_concurrency: usize,
    /// Secrets of one caller one host may judge wrong, at once.
    pub rejected_secret_burst: u32,
    /// And regains per hour (0: no limit).
    pub rejected_secrets_per_hour: u32,
    /// The `tracing` filter, e.g. `info` or `credhost=debug`.
    pub log: String,
    /// The API password (obshell's root@sys password role). From this file
    /// or `CREDHOST_PASSWORD`, never a flag. None: obshell's rule, an empty
    /// `auth` is accepted and plain requests too.
    pub password: Option<String>,
    /// Without a password the server listens on loopback only, unless this is set.
    pub allow_remote_without_password: bool,
    /// With a password, plain HTTP beyond loopback is refused unless this is
    /// set: whoever sees one request there can forge others.
    pub allow_password_over_plain_http: bool,
    /// Size of the RSA key generated at first start.
    pub rsa_bits: usize,
    /// How far ahead a header's expiry (`ts`) may lie, in seconds.
    pub auth_horizon_secs: u64,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// API tokens over plain HTTP beyond loopback are refused unless this is set.
    pub allow_tokens_over_plain_http: bool,
    /// Serve `/metrics` here too, without authentication (for a scraper on
    /// a private network).
    pub metrics_listen: Option<SocketAddr>,
    pub ssh: SshSettings,
    pub engine: EngineSettings,
    pub audit: crate::audit::AuditSettings,
    pub http: HttpConfig,
    /// Per-plugin sandbox limits, by plugin name.
    pub plugins: HashMap<String, LimitsOverride>,
}

/// How servers sharing a database keep in touch.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// How often a server records that it is alive and picks up what the
    /// others changed (keys, policy, tokens).
    pub heartbeat_ms: u64,
    /// How long the rewrap lease outlives a server that stopped renewing it.
    pub lease_ms: u64,
    /// The address other servers and operators reach this one at, as the
    /// cluster view shows it (default: the listen address).
    pub advertise: Option<String>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 1000,
            lease_ms: 10_000,
            advertise: None,
        }
    }
}

/// The front door: which names and origins are this server's, and the
/// bounds on connections and authentication attempts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Names the `Host` header may carry besides IP literals and `localhost`.
    pub server_names: Vec<String>,
    /// Origins (`https://console.example:8443`) allowed to call from a browser.
    pub allowed_origins: Vec<String>,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub header_read_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_header_bytes: usize,
    /// Failed authentications an address may make at once…
    pub auth_failure_burst: u32,
    /// …and regains per minute.
    pub auth_failures_per_minute: u32,
    /// Headers of one address decrypted at once.
    pub auth_in_flight_per_client: u32,
    /// Requests each API token, and each client using the password, may
    /// make per second on average (0: no limit)…
    pub requests_per_second: u32,
    /// …and at once after a quiet spell.
    pub request_burst: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let auth = crate::api::auth::ClientLimits::default();
        Self {
            server_names: Vec::new(),
            allowed_origins: Vec::new(),
            max_connections: 1024,
            max_connections_per_client: 256,
            header_read_timeout_secs: 30,
            request_timeout_secs: 300,
            max_header_bytes: 64 * 1024,
            auth_failure_burst: auth.failure_burst,
            auth_failures_per_minute: auth.failures_per_minute,
            auth_in_flight_per_client: auth.in_flight,
            requests_per_second: 100,
            request_burst: 500,
        }
    }
}

impl HttpConfig {
    pub fn client_limits(&self) -> crate::api::auth::ClientLimits {
        crate::api::auth::ClientLimits {
            failure_burst: self.auth_failure_burst,
            failures_per_minute: self.auth_failures_per_minute,
            in_flight: self.auth_in_flight_per_client,
        }
    }

    pub fn pace_limits(&self) -> crate::api::auth::PaceLimits {
        crate::api::auth::PaceLimits {
            per_second: self.requests_per_second,
            burst: self.request_burst,
        }
    }

    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            max: self.max_connections,
            per_client: self.max_connections_per_client,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            max_header_bytes: self.max_header_bytes,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2886)),
            data_dir: PathBuf::from("credhost-data"),
            store: None,
            store_password: None,
            store_tls: Default::default(),
            store_allow_plaintext: false,
            store_max_connections: 32,
            kek_file: None,
            cluster: ClusterSettings::default(),
            plugin_dir: None,
            allow_targets: Vec::new(),
            policy: "aes-256-gcm".into(),
            verify_concurrency: 64,
            rejected_secret_burst: crate::service::GuessLimits::default().burst,
            rejected_secrets_per_hour: crate::service::GuessLimits::default().per_hour,
            log: "info".into(),
            password: None,
            allow_remote_without_password: false,
            allow_password_over_plain_http: false,
            rsa_bits: 2048,
            auth_horizon_secs: 3600,
            tls_cert: None,
            tls_key: None,
            allow_tokens_over_plain_http: false,
            metrics_listen: None,
            ssh: SshSettings::default(),
            audit: Default::default(),
            engine: EngineSettings::default(),
            http: HttpConfig::default(),
            plugins: HashMap::new(),
        }
    }
}

/// What flags and the environment may set (clap reads both).
#[derive(Clone, Default, clap::Args)]
pub struct Overrides {
    /// A TOML configuration file.
    #[arg(long, env = "CREDHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:2886.
    #[arg(long, env = "CREDHOST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database, keys and compiled plugins.
    #[arg(long, env = "CREDHOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A shared database instead of the embedded file:
    /// mysql://user@host:port/database (the password from
    /// CREDHOST_STORE_PASSWORD or the config file).
    #[arg(long, env = "CREDHOST_STORE")]
    pub store: Option<String>,
    /// Directory of extra or overriding plugins (*.wasm).
    #[arg(long, env = "CREDHOST_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// CIDR that targets must fall in (repeatable, or comma-separated in the env).
    #[arg(
        long = "allow-target",
        env = "CREDHOST_ALLOW_TARGETS",
        value_delimiter = ','
    )]
    pub allow_targets: Vec<IpNet>,
    /// The encryption policy for new secrets.
    #[arg(long, env = "CREDHOST_POLICY")]
    pub policy: Option<String>,
    /// Log filter.
    #[arg(long, env = "CREDHOST_LOG")]
    pub log: Option<String>,
    /// Listen beyond loopback even though no password is set.
    #[arg(long, env = "CREDHOST_ALLOW_REMOTE_WITHOUT_PASSWORD")]
    pub allow_remote_without_password: bool,
    /// With a password, serve plain HTTP beyond loopback anyway. Anyone who
    /// sees one request can then forge others: use TLS instead.
    #[arg(long, env = "CREDHOST_ALLOW_PASSWORD_OVER_PLAIN_HTTP")]
    pub allow_password_over_plain_http: bool,
    /// A name clients reach this server by (repeatable; `Host` must be an
    /// IP literal, `localhost` or one of these).
    #[arg(
        long = "server-name",
        env = "CREDHOST_SERVER_NAMES",
        value_delimiter = ','
    )]
    pub server_names: Vec<String>,
    /// An origin allowed to call from a browser (repeatable).
    #[arg(
        long = "allowed-origin",
        env = "CREDHOST_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Accept API tokens over plain HTTP beyond loopback. Whoever sees the
    /// traffic can then take them: use TLS instead.
    #[arg(long, env = "CREDHOST_ALLOW_TOKENS_OVER_PLAIN_HTTP")]
    pub allow_tokens_over_plain_http: bool,
    /// Also serve `/metrics`, without authentication, on this address.
    #[arg(long, env = "CREDHOST_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "CREDHOST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "CREDHOST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration {path}: {reason}")]
pub struct ConfigError {
    path: String,
    reason: String,
}

impl Config {
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match &overrides.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        if let Some(v) = overrides.listen {
            config.listen = v;
        }
        if let Some(v) = &overrides.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &overrides.store {
            config.store = Some(v.clone());
        }
        if let Some(v) = &overrides.plugin_dir {
            config.plugin_dir = Some(v.clone());
        }
        if !overrides.allow_targets.is_empty() {
            config.allow_targets = overrides.allow_targets.clone();
        }
        if let Some(v) = &overrides.policy {
            config.policy = v.clone();
        }
        if let Some(v) = &overrides.log {
            config.log = v.clone();
        }
        if overrides.allow_remote_without_password {
            config.allow_remote_without_password = true;
        }
        if overrides.allow_password_over_plain_http {
            config.allow_password_over_plain_http = true;
        }
        if overrides.allow_tokens_over_plain_http {
            config.allow_tokens_over_plain_http = true;
        }
        if let Some(v) = overrides.metrics_listen {
            config.metrics_listen = Some(v);
        }
        if !overrides.server_names.is_empty() {
            config.http.server_names = overrides.server_names.clone();
        }
        if !overrides.allowed_origins.is_empty() {
            config.http.allowed_origins = overrides.allowed_origins.clone();
        }
        for name in &mut config.http.server_names {
            *name = name.trim_end_matches('.').to_ascii_lowercase();
        }
        for origin in &mut config.http.allowed_origins {
            *origin = origin.trim_end_matches('/').to_ascii_lowercase();
        }
        if let (Some(cert), Some(key)) = (&overrides.tls_cert, &overrides.tls_key) {
            config.tls_cert = Some(cert.clone());
            config.tls_key = Some(key.clone());
        }
        // Secrets come from the file or the environment, never from a flag
        // that `ps` would show.
        if let Ok(password) = std::env::var("CREDHOST_PASSWORD") {
            config.password = Some(password);
        }
        if config.password.as_deref() == Some("") {
            config.password = None;
        }
        if let Ok(password) = std::env::var("CREDHOST_STORE_PASSWORD") {
            config.store_password = Some(password);
        }
        if config.store.as_deref() == Some("redb") {
            config.store = None;
        }
        // One without the other would serve plain HTTP where TLS was meant.
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(ConfigError {
                path: overrides
                    .config
                    .as_ref()
                    .map_or_else(|| "flags".into(), |p| p.display().to_string()),
                reason: "tls_cert and tls_key go together: give both, or neither".into(),
            });
        }
        Ok(config)
    }

    /// The settings file, held to who may have written it (it sets the
    /// password, where the server stores and what it trusts) and, when it
    /// holds a password, who may read it. Checked on the file read.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let fail = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let mut file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        // Nor may others write a directory above it: they could put another
        // file in its place (one with no password at all).
        crate::data_dir::check_directories_above(path).map_err(|e| fail(e.to_string()))?;
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        let mode = meta.mode() & 0o7777;
        let me = crate::data_dir::euid();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(fail(format!(
                "owned by uid {}, neither this server's user ({me}) nor root: its owner would \
                 set the server's password",
                meta.uid()
            )));
        }
        if mode & 0o022 != 0 {
            return Err(fail(format!(
                "mode {mode:o}: others may write it, and so turn the password off or point the \
                 server elsewhere (chmod go-w)"
            )));
        }
        let mut text = zeroize::Zeroizing::new(String::new());
        file.read_to_string(&mut text)
            .map_err(|e| fail(e.to_string()))?;
        let config: Self = toml::from_str(&text).map_err(|e| fail(unquoted(&text, &e)))?;
        let holds_password = config.password.is_some() || config.store_password.is_some();
        if holds_password && mode & 0o044 != 0 {
            if meta.uid() != 0 {
                return Err(fail(format!(
                    "mode {mode:o}: it holds a password, and others may read it (chmod 600)"
                )));
            }
            // As a key file may be: how orchestrators mount secrets.
            eprintln!(
                "warning: {} holds a password and is readable by others: fine for a secret an \
                 orchestrator mounts into a container, not on a machine others use",
                path.display()
            );
        }
        Ok(config)
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("credhost.redb")
    }

    pub fn kek_path(&self) -> PathBuf {
        self.kek_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("kek.key"))
    }

    /// The shared store's connection options, if one is configured.
    pub fn shared_store(&self) -> Option<crate::store::mysql::StoreOptions<'_>> {
        self.store
            .as_deref()
            .map(|url| crate::store::mysql::StoreOptions {
                url,
                password: self.store_password.as_deref(),
                tls: &self.store_tls,
                max_connections: self.store_max_connections,
            })
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("keys.json")
    }

    pub fn rsa_key_path(&self) -> PathBuf {
        self.data_dir.join("rsa_key.der")
    }

    pub fn audit_path(&self) -> PathBuf {
        self.audit
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.log"))
    }

    pub fn socket_path(&self) -> PathBuf {
        crate::local_socket::path_in(&self.data_dir)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("plugin-cache")
    }
}

/// Where a settings file is wrong, and how, without quoting it: toml's own
/// message shows the offending line, and its reasons quote values
/// (``invalid type: integer `12345678` ``), where a password may be.
fn unquoted(text: &str, error: &toml::de::Error) -> String {
    let reason = error.message();
    // These name a key, never a value.
    let reason = if ["unknown field", "missing field", "duplicate key"]
        .iter()
        .any(|start| reason.starts_with(start))
    {
        reason
    } else {
        "a value of the wrong type, or not TOML"
    };
    let Some(at) = error.span().map(|span| span.start.min(text.len())) else {
        return format!("{reason} (the value is not shown: it may be a secret)");
    };
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    // The key the line sets, if it is a plain one.
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(key, _)| key.trim())
        .filter(|key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        })
        .map_or(String::new(), |key| format!(" (`{key}`)"));
    format!(
        "line {line}, column {column}{key}: {reason} (the line is not shown: it may hold a secret)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credhost.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nallow_targets = [\"127.0.0.0/8\"]\n[ssh]\nconnect_timeout_ms = 100\n[plugins.ssh-verifier]\ndeadline_ms = 5\n",
        )
        .unwrap();
        let config = Config::load(&Overrides {
            config: Some(path.clone()),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.ssh.connect_timeout_ms, 100);
        assert_eq!(
            config.ssh.auth_timeout_ms,
            SshSettings::default().auth_timeout_ms
        );
        assert_eq!(config.plugins["ssh-verifier"].deadline_ms, Some(5));
        assert_eq!(config.allow_targets.len(), 1);

        std::fs::write(&path, "listen_typo = 1\n").unwrap();
        let error = Config::load(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .err()
        .expect("an unknown key is refused");
        assert!(error.to_string().contains("listen_typo"));
    }
}
