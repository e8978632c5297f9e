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

    /// Seals many secrets under one key, as many per instance as the
    /// output cap allows: a rewrap batch pays for instantiation once per
    /// run, not per row, and never asks for more than a call may return.
    pub async fn seal_many(
        &self,
        key: &Secret,
        items: &[(Secret, Vec<u8>)],
    ) -> Result<Vec<Result<Vec<u8>, String>>, PluginError> {
        let mut out = Vec::with_capacity(items.len());
        for run in runs(items, self.meta.limits.output_bytes, |(p, _)| {
            p.expose().len()
        }) {
            out.extend(self.seal_run(key, run).await?);
        }
        Ok(out)
    }

    async fn seal_run(
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

    /// Opens many ciphertexts under one key, in runs as `seal_many` does.
    pub async fn open_many(
        &self,
        key: &Secret,
        items: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<Result<Secret, String>>, PluginError> {
        let mut out = Vec::with_capacity(items.len());
        for run in runs(items, self.meta.limits.output_bytes, |(c, _)| c.len()) {
            out.extend(self.open_run(key, run).await?);
        }
        Ok(out)
    }

    async fn open_run(
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

/// Cuts `items` into runs whose answers fit in half of `output_cap`: an
/// answer is about as long as its input (an AEAD adds a nonce and a tag, an
/// error message a little more), and the other half is the margin. A single
/// item larger than that still gets a run of its own.
fn runs<T>(items: &[T], output_cap: u64, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    const PER_ITEM_OVERHEAD: u64 = 128;
    let budget = (output_cap / 2).max(1);
    let mut runs = Vec::new();
    let (mut start, mut used) = (0, 0u64);
    for (i, item) in items.iter().enumerate() {
        let cost = size(item) as u64 + PER_ITEM_OVERHEAD;
        if i > start && used + cost > budget {
            runs.push(&items[start..i]);
            (start, used) = (i, 0);
        }
        used += cost;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

#[cfg(test)]
mod run_tests {
    use super::runs;

    #[test]
    fn runs_stay_within_half_the_cap() {
        let items = vec![4096usize; 300];
        let cut = runs(&items, 1 << 20, |n| *n);
        assert_eq!(cut.iter().map(|r| r.len()).sum::<usize>(), 300);
        assert!(cut.len() >= 3, "{}", cut.len());
        for run in &cut {
            assert!(run.len() as u64 * (4096 + 128) <= 1 << 19);
        }
        assert_eq!(runs(&[10usize; 3], 1 << 20, |n| *n).len(), 1);
        assert_eq!(runs(&[1usize << 20], 1 << 20, |n| *n).len(), 1);
        assert!(runs(&Vec::<usize>::new(), 1 << 20, |n| *n).is_empty());
    }
}
