//! Which plugin serves which target type, and which policies are loaded.
//! A plugin in the operator's directory overrides an embedded one of the
//! same target type or policy name.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::contract::{self, Kind};
use super::embedded;
use super::error::PluginError;
use super::limits::{Limits, LimitsOverride};
use super::plugin_file;
use super::policy::PolicyPlugin;
use super::runtime::Runtime;
use super::types::{PluginMeta, Source};
use super::verifier::VerifierPlugin;

/// A file in the plugin directory that could not be used.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoadFailure {
    #[schema(value_type = String)]
    pub file: PathBuf,
    pub error: String,
}

#[derive(Default)]
pub struct Registry {
    verifiers: BTreeMap<String, Arc<VerifierPlugin>>,
    policies: BTreeMap<String, Arc<PolicyPlugin>>,
    failures: Vec<LoadFailure>,
}

/// What operators see of one loaded plugin (`GET /api/v1/plugins`,
/// `credhost plugin check`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginSummary {
    pub kind: &'static str,
    #[serde(flatten)]
    pub meta: PluginMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_field: Option<String>,
    /// JSON Schemas a console builds its forms from.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub property_schema: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub public_schema: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_failed_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_length: Option<u32>,
}

impl Registry {
    /// Loads the embedded plugins, then every `*.wasm` of `dir` in name order.
    pub async fn load(
        runtime: &Arc<Runtime>,
        dir: Option<&Path>,
        overrides: &HashMap<String, LimitsOverride>,
    ) -> Result<Self, PluginError> {
        let mut registry = Self::default();
        for plugin in embedded::DEFAULTS {
            registry
                .add(
                    runtime,
                    plugin.bytes,
                    Source::Embedded,
                    plugin.file,
                    overrides,
                )
                .await?;
        }
        let Some(dir) = dir else {
            return Ok(registry);
        };
        if let Err(reason) = plugin_file::check_dir(dir)
            && dir.exists()
        {
            return Err(PluginError::Load {
                source_name: dir.display().to_string(),
                reason,
            });
        }
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(PluginError::Load {
                    source_name: dir.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        files.sort();
        for file in files {
            let result = match plugin_file::read(&file) {
                Ok(bytes) => {
                    let name = file
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    registry
                        .add(
                            runtime,
                            &bytes,
                            Source::Directory(file.clone()),
                            &name,
                            overrides,
                        )
                        .await
                }
                Err(reason) => Err(PluginError::Load {
                    source_name: file.display().to_string(),
                    reason,
                }),
            };
            if let Err(e) = result {
                tracing::error!(file = %file.display(), "plugin not loaded: {e}");
                registry.failures.push(LoadFailure {
                    file,
                    error: e.to_string(),
                });
            }
        }
        Ok(registry)
    }

    async fn add(
        &mut self,
        runtime: &Arc<Runtime>,
        bytes: &[u8],
        source: Source,
        file: &str,
        overrides: &HashMap<String, LimitsOverride>,
    ) -> Result<(), PluginError> {
        let load_error = |reason: String| PluginError::Load {
            source_name: file.to_string(),
            reason,
        };
        // Compiling takes seconds of CPU: off the async threads, so a
        // reload while serving leaves every request answered.
        let component = {
            let (cache, engine) = (runtime.cache.clone(), runtime.engine().clone());
            let owned = bytes.to_vec();
            tokio::task::spawn_blocking(move || cache.component(&engine, &owned))
                .await
                .map_err(|e| load_error(format!("the compile task failed: {e}")))?
                .map_err(|e| load_error(format!("{e:#}")))?
        };
        let (kind, version) = contract::detect(runtime.engine(), &component).map_err(load_error)?;
        let meta = |limits: Limits| PluginMeta {
            name: file.to_string(),
            version: String::new(),
            sha256: hex::encode(Sha256::digest(bytes)),
            wit: version.package(),
            source: source.clone(),
            limits,
        };
        match kind {
            Kind::Verifier => {
                let plugin = VerifierPlugin::load(
                    runtime.clone(),
                    &component,
                    version,
                    meta(Limits::VERIFIER),
                )
                .await?;
                let info = &plugin.info;
                declared(&[
                    ("name", &plugin.meta.name),
                    ("version", &plugin.meta.version),
                    ("target-type", &info.target_type),
                    ("property-field", &info.property_field),
                    ("public-field", &info.public_field),
                ])
                .map_err(load_error)?;
                let limits = overrides
                    .get(&plugin.meta.name)
                    .map_or(Limits::VERIFIER, |o| o.apply(Limits::VERIFIER));
                let plugin = plugin.with_limits(limits);
                tracing::info!(
                    plugin = %plugin.meta.name,
                    version = %plugin.meta.version,
                    target_type = %plugin.info.target_type,
                    source = ?plugin.meta.source,
                    "verifier loaded"
                );
                self.verifiers
                    .insert(plugin.info.target_type.clone(), Arc::new(plugin));
            }
            Kind::Policy => {
                let plugin =
                    PolicyPlugin::load(runtime.clone(), &component, version, meta(Limits::POLICY))
                        .await?;
                declared(&[
                    ("name", &plugin.meta.name),
                    ("version", &plugin.meta.version),
                    ("policy name", &plugin.info.name),
                ])
                .map_err(load_error)?;
                let limits = overrides
                    .get(&plugin.meta.name)
                    .map_or(Limits::POLICY, |o| o.apply(Limits::POLICY));
                let plugin = plugin.with_limits(limits);
                tracing::info!(
                    policy = %plugin.meta.name,
                    version = %plugin.meta.version,
                    source = ?plugin.meta.source,
                    "encryption policy loaded"
                );
                self.policies
                    .insert(plugin.info.name.clone(), Arc::new(plugin));
            }
        }
        Ok(())
    }

    pub fn verifier(&self, target_type: &str) -> Option<&Arc<VerifierPlugin>> {
        self.verifiers.get(target_type)
    }

    pub fn verifiers(&self) -> impl Iterator<Item = &Arc<VerifierPlugin>> {
        self.verifiers.values()
    }

    /// The installed target types, sorted.
    pub fn target_types(&self) -> Vec<&str> {
        self.verifiers.keys().map(String::as_str).collect()
    }

    pub fn policy(&self, name: &str) -> Option<&Arc<PolicyPlugin>> {
        self.policies.get(name)
    }

    pub fn policies(&self) -> impl Iterator<Item = &Arc<PolicyPlugin>> {
        self.policies.values()
    }

    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    pub fn summaries(&self) -> Vec<PluginSummary> {
        let verifiers = self.verifiers.values().map(|v| PluginSummary {
            kind: "verifier",
            meta: v.meta.clone(),
            target_type: Some(v.info.target_type.clone()),
            property_field: Some(v.info.property_field.clone()),
            public_field: Some(v.info.public_field.clone()),
            property_schema: Some(v.info.property_schema.clone()),
            public_schema: Some(v.info.public_schema.clone()),
            validation_failed_code: Some(v.info.validation_failed_code.clone()),
            algorithm: None,
            key_length: None,
        });
        let policies = self.policies.values().map(|p| PluginSummary {
            kind: "encryption-policy",
            meta: p.meta.clone(),
            target_type: None,
            property_field: None,
            public_field: None,
            property_schema: None,
            public_schema: None,
            validation_failed_code: None,
            algorithm: Some(p.info.algorithm.clone()),
            key_length: Some(p.info.key_length),
        });
        verifiers.chain(policies).collect()
    }

    /// Loads one component on its own and says what it is: the contract
    /// check behind `credhost plugin check`.
    pub async fn inspect(
        runtime: &Arc<Runtime>,
        path: &Path,
    ) -> Result<PluginSummary, PluginError> {
        let bytes = std::fs::read(path).map_err(|e| PluginError::Load {
            source_name: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut registry = Self::default();
        registry
            .add(
                runtime,
                &bytes,
                Source::Directory(path.to_path_buf()),
                &name,
                &HashMap::new(),
            )
            .await?;
        Ok(registry.summaries().remove(0))
    }
}

/// What `describe()` declares names the plugin in logs, settings, URLs and
/// the API: 1 to 64 letters, digits and `._+-`, so no declared text can
/// write lines of its own into the server's log or pass for another's.
fn declared(values: &[(&str, &str)]) -> Result<(), String> {
    let plain = |text: &str| {
        (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
    };
    match values.iter().find(|(_, text)| !plain(text)) {
        Some((what, text)) => Err(format!(
            "describe()'s {what} {text:?} is not 1 to 64 letters, digits and ._+-"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_names_are_plain() {
        assert!(declared(&[("name", "ssh-verifier"), ("version", "1.0.0+build.7")]).is_ok());
        for bad in [
            "",
            "a b",
            "x\n2026-12-06 INFO credhost: forged",
            "\u{1b}[2J",
            &"x".repeat(65),
        ] {
            let said = declared(&[("name", "fine"), ("target-type", bad)]).unwrap_err();
            assert!(said.contains("target-type"), "{said}");
        }
    }
}
