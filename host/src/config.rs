//! One configuration struct, from a TOML file, then `CREDHOST_*` environment
//! variables, then flags (each overriding the one before).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::capabilities::SshSettings;
use crate::plugins::{EngineSettings, LimitsOverride};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The database, the key file and the precompile cache live here.
    pub data_dir: PathBuf,
    /// `*.wasm` plugins that add to, or override, the embedded ones.
    pub plugin_dir: Option<PathBuf>,
    /// CIDRs every target must fall in; empty allows all.
    pub allow_targets: Vec<IpNet>,
    /// The encryption policy new secrets are sealed with.
    pub policy: String,
    /// Credentials verified at once by a batch validation.
    pub verify_concurrency: usize,
    /// The `tracing` filter, e.g. `info` or `credhost=debug`.
    pub log: String,
    /// The API password (obshell's root@sys password role). From this file
    /// or `CREDHOST_PASSWORD`, never a flag. None: obshell's rule, an empty
    /// `auth` is accepted and plain requests too.
    pub password: Option<String>,
    /// Without a password the server listens on loopback only, unless this is set.
    pub allow_remote_without_password: bool,
    /// Size of the RSA key generated at first start.
    pub rsa_bits: usize,
    /// How far ahead a header's expiry (`ts`) may lie, in seconds.
    pub auth_horizon_secs: u64,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub ssh: SshSettings,
    pub engine: EngineConfig,
    /// Per-plugin sandbox limits, by plugin name.
    pub plugins: HashMap<String, LimitsOverride>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub max_instances: u32,
    pub max_memory_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let d = EngineSettings::default();
        Self {
            max_instances: d.max_instances,
            max_memory_bytes: d.max_memory_bytes,
        }
    }
}

impl From<EngineConfig> for EngineSettings {
    fn from(c: EngineConfig) -> Self {
        Self {
            max_instances: c.max_instances,
            max_memory_bytes: c.max_memory_bytes,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2886)),
            data_dir: PathBuf::from("credhost-data"),
            plugin_dir: None,
            allow_targets: Vec::new(),
            policy: "aes-256-gcm".into(),
            verify_concurrency: 64,
            log: "info".into(),
            password: None,
            allow_remote_without_password: false,
            rsa_bits: 2048,
            auth_horizon_secs: 3600,
            tls_cert: None,
            tls_key: None,
            ssh: SshSettings::default(),
            engine: EngineConfig::default(),
            plugins: HashMap::new(),
        }
    }
}

/// What flags and the environment may set (clap reads both).
#[derive(Debug, Clone, Default, clap::Args)]
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
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let fail = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        toml::from_str(&text).map_err(|e| fail(e.to_string()))
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("credhost.redb")
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("keys.json")
    }

    pub fn rsa_key_path(&self) -> PathBuf {
        self.data_dir.join("rsa_key.der")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("plugin-cache")
    }
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
        .unwrap_err();
        assert!(error.to_string().contains("listen_typo"));
    }
}
