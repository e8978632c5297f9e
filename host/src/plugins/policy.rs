//! A loaded encryption policy. It gets no network; it sees a key only for the
//! duration of one call.

use std::sync::Arc;

use wasmtime::component::Component;

use super::bindings::policy::exports::credhost::plugin::sealing::Descriptor;
use super::bindings::policy::{EncryptionPolicy, EncryptionPolicyPre};
use super::error::PluginError;
use super::limits::Limits;
use super::runtime::{Runtime, bounded, check_output, conclude};
use super::state::CallState;
use super::types::{PluginMeta, PolicyInfo};
use crate::capabilities::Grant;
use crate::secret::Secret;

/// Why `seal` or `open` did not produce bytes.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The policy refused: wrong key, wrong associated data, altered ciphertext.
    #[error("{0}")]
    Refused(String),
}

pub struct PolicyPlugin {
    pub meta: PluginMeta,
    pub info: PolicyInfo,
    label: Arc<str>,
    pre: EncryptionPolicyPre<CallState>,
    runtime: Arc<Runtime>,
}

impl PolicyPlugin {
    pub async fn load(
        runtime: Arc<Runtime>,
        component: &Component,
        mut meta: PluginMeta,
    ) -> Result<Self, PluginError> {
        let load_error = |reason: String| PluginError::Load {
            source_name: meta.name.clone(),
            reason,
        };
        let pre = runtime
            .policy_linker
            .instantiate_pre(component)
            .map_err(|e| load_error(format!("{e:#}")))?;
        let pre = EncryptionPolicyPre::new(pre).map_err(|e| load_error(format!("{e:#}")))?;
        let mut plugin = Self {
            label: meta.name.clone().into(),
            meta: meta.clone(),
            info: PolicyInfo {
                name: String::new(),
                algorithm: String::new(),
                key_length: 0,
            },
            pre,
            runtime,
        };
        let d = plugin.describe().await?;
        if d.name.is_empty() || d.key_length == 0 || d.key_length > 1024 {
            return Err(load_error(
                "describe() gave no name or an unusable key length".into(),
            ));
        }
        meta.name = d.name.clone();
        meta.version = d.version;
        plugin.label = meta.name.clone().into();
        plugin.meta = meta;
        plugin.info = PolicyInfo {
            name: d.name,
            algorithm: d.algorithm,
            key_length: d.key_length,
        };
        Ok(plugin)
    }

    async fn describe(&self) -> Result<Descriptor, PluginError> {
        let limits = self.meta.limits;
        let (mut store, _slot) = self
            .runtime
            .store(&self.label, &limits, Grant::none(), false)
            .await;
        let outcome = bounded(&limits, async {
            let policy: EncryptionPolicy = self.pre.instantiate_async(&mut store).await?;
            policy
                .credhost_plugin_sealing()
                .call_describe(&mut store)
                .await
        })
        .await;
        let d = conclude(&store, &limits, outcome)?;
        check_output(
            &self.label,
            &limits,
            d.name.len() + d.version.len() + d.algorithm.len(),
        )?;
        Ok(d)
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.meta.limits = limits;
        self
    }

    /// Seals many secrets under one key in one instance: a rewrap batch
    /// pays for instantiation once, not per row.
    pub async fn seal_many(
        &self,
        key: &Secret,
        items: &[(Secret, Vec<u8>)],
    ) -> Result<Vec<Result<Vec<u8>, String>>, PluginError> {
        let limits = self.meta.limits;
        let (mut store, _slot) = self
            .runtime
            .store(&self.label, &limits, Grant::none(), false)
            .await;
        let outcome = bounded(&limits, async {
            let policy: EncryptionPolicy = self.pre.instantiate_async(&mut store).await?;
            let mut out = Vec::with_capacity(items.len());
            for (plaintext, aad) in items {
                let sealed = policy
                    .credhost_plugin_sealing()
                    .call_seal(&mut store, key.expose(), plaintext.expose(), aad)
                    .await?;
                out.push(sealed);
            }
            Ok(out)
        })
        .await;
        let sealed = conclude(&store, &limits, outcome)?;
        check_output(&self.label, &limits, result_bytes(&sealed))?;
        Ok(sealed)
    }

    /// Opens many ciphertexts under one key in one instance.
    pub async fn open_many(
        &self,
        key: &Secret,
        items: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<Result<Secret, String>>, PluginError> {
        let limits = self.meta.limits;
        let (mut store, _slot) = self
            .runtime
            .store(&self.label, &limits, Grant::none(), false)
            .await;
        let outcome = bounded(&limits, async {
            let policy: EncryptionPolicy = self.pre.instantiate_async(&mut store).await?;
            let mut out = Vec::with_capacity(items.len());
            for (ciphertext, aad) in items {
                let opened = policy
                    .credhost_plugin_sealing()
                    .call_open(&mut store, key.expose(), ciphertext, aad)
                    .await?;
                out.push(opened);
            }
            Ok(out)
        })
        .await;
        let opened = conclude(&store, &limits, outcome)?;
        check_output(&self.label, &limits, result_bytes(&opened))?;
        Ok(opened.into_iter().map(|r| r.map(Secret::new)).collect())
    }

    pub async fn seal(
        &self,
        key: &Secret,
        plaintext: &Secret,
        aad: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let item = [(plaintext.clone(), aad.to_vec())];
        let mut sealed = self.seal_many(key, &item).await?;
        sealed
            .pop()
            .expect("one result per item")
            .map_err(SealError::Refused)
    }

    pub async fn open(
        &self,
        key: &Secret,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Secret, SealError> {
        let item = [(ciphertext.to_vec(), aad.to_vec())];
        let mut opened = self.open_many(key, &item).await?;
        opened
            .pop()
            .expect("one result per item")
            .map_err(SealError::Refused)
    }
}

fn result_bytes(results: &[Result<Vec<u8>, String>]) -> usize {
    results
        .iter()
        .map(|r| r.as_ref().map_or_else(String::len, Vec::len))
        .sum()
}
