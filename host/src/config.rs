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
