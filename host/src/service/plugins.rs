//! Plugin management: what is loaded, and reloading the plugin directory
//! while the server serves. Calls in flight keep the plugin set they started
//! with; new calls get the new one.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::{Error, Service};
use crate::plugins::{LimitsOverride, LoadFailure, PluginSummary, Registry, Runtime, Source};
use crate::store::SealingCount;

/// Where plugins come from, to load them again.
pub struct PluginSource {
    pub runtime: Arc<Runtime>,
    pub dir: Option<PathBuf>,
    pub overrides: HashMap<String, LimitsOverride>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginsView {
    #[schema(value_type = Option<String>)]
    pub plugin_dir: Option<PathBuf>,
    pub plugins: Vec<PluginSummary>,
    /// Files of the plugin directory that did not load, at the last (re)load.
    pub failures: Vec<LoadFailure>,
}

impl Service {
    pub fn with_plugin_source(mut self, source: PluginSource) -> Self {
        self.source = Some(source);
        self
    }

    pub fn plugins_view(&self) -> PluginsView {
        let registry = self.plugins();
        PluginsView {
            plugin_dir: self.source.as_ref().and_then(|s| s.dir.clone()),
            plugins: registry.summaries(),
            failures: registry.failures().to_vec(),
        }
    }

    /// Loads the embedded plugins and the plugin directory anew and swaps the
    /// whole set at once. A file that fails is reported and left out; the
    /// swap is refused only if the active encryption policy would be gone.
    pub async fn reload_plugins(&self) -> Result<PluginsView, Error> {
        let Some(source) = &self.source else {
            return Err(Error::Unavailable("plugins cannot be reloaded here".into()));
        };
        let _one_at_a_time = self.reloading.lock().await;
        let registry =
            Registry::load(&source.runtime, source.dir.as_deref(), &source.overrides).await?;
        // Rows a rewrap has not moved yet (it runs, or it stopped on a row
        // it could not open) can only be opened by the policy that sealed
        // them: without it they would be unreadable until it came back. No
        // writer is between sealing and committing while this is held, so
        // every row counts, and none is sealed by a policy about to go.
        let _sealing = self.sealing.write().await;
        let counts = self.store(|s| s.sealing_counts()).await?;
        let before = self.plugins();
        let kept = |name: &str| registry.policy(name).is_some() || before.policy(name).is_none();
        if let Some((policy, rows)) = still_sealing(&counts, kept) {
            return Err(Error::IllegalArgument(format!(
                "the reload would unload the encryption policy '{policy}', which {rows} stored \
                 credential(s) are still sealed by; nothing was changed. Move them first: \
                 the rewrap to '{}' does (GET /api/v1/security/encryption shows it, \
                 POST /api/v1/security/encryption/rewrap resumes it)",
                self.active_policy()
            )));
        }
        let loaded: Vec<String> = registry
            .target_types()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let changed = changes(&self.plugins(), &registry);
        {
            // Checked and swapped under the policy's lock: on a shared store
            // the heartbeat may make another policy active at any time (it
            // holds the lock while it checks that one is loaded).
            let active = self.policy.read().expect("policy lock");
            if registry.policy(&active).is_none() {
                return Err(Error::IllegalArgument(format!(
                    "the reload would unload the active encryption policy '{}'; nothing was \
                     changed",
                    *active
                )));
            }
            self.plugins.store(Arc::new(registry));
        }
        for change in &changed {
            // New code for a target type or a policy sees its secrets.
            tracing::warn!(%change, "plugin changed by the reload");
        }
        tracing::info!(target_types = ?loaded, "plugins reloaded");
        self.audit_event(
            "plugins.reloaded",
            serde_json::json!({ "target_types": loaded, "changed": changed }),
        );
        Ok(self.plugins_view())
    }
}

/// What a reload changed, one entry per verifier (by target type) or
/// policy (by name) that came, went or got other code: its kind and name,
/// and each side's version, SHA-256 and source. A reload that swaps the
/// code of the active policy or of HOST says so in the audit log.
fn changes(before: &Registry, after: &Registry) -> Vec<serde_json::Value> {
    type Side = (String, String, String);
    let sides = |registry: &Registry| -> BTreeMap<String, Side> {
        registry
            .summaries()
            .into_iter()
            .map(|s| {
                let name = s.target_type.clone().unwrap_or_else(|| s.meta.name.clone());
                let source = match &s.meta.source {
                    Source::Embedded => "embedded".to_string(),
                    Source::Directory(path) => path.display().to_string(),
                };
                (
                    format!("{} {name}", s.kind),
                    (s.meta.version, s.meta.sha256, source),
                )
            })
            .collect()
    };
    let (before, after) = (sides(before), sides(after));
    let shown = |side: Option<&Side>| {
        side.map(|(version, sha256, source)| {
            serde_json::json!({ "version": version, "sha256": sha256, "source": source })
        })
    };
    before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|key| before.get(*key).map(|s| &s.1) != after.get(*key).map(|s| &s.1))
        .map(|key| {
            serde_json::json!({
                "plugin": key,
                "from": shown(before.get(key)),
                "to": shown(after.get(key)),
            })
        })
        .collect()
}

/// The first policy rows are sealed by that `loaded` lacks, with its rows.
fn still_sealing(counts: &[SealingCount], loaded: impl Fn(&str) -> bool) -> Option<(&str, u64)> {
    let mut missing = counts.iter().filter(|c| c.rows > 0 && !loaded(&c.policy));
    let first = missing.next()?;
    let rows = first.rows
        + missing
            .filter(|c| c.policy == first.policy)
            .map(|c| c.rows)
            .sum::<u64>();
    Some((&first.policy, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(policy: &str, key_id: u32, rows: u64) -> SealingCount {
        SealingCount {
            policy: policy.into(),
            key_id,
            rows,
        }
    }

    #[test]
    fn names_the_first_missing_policy_with_all_its_rows() {
        let counts = [
            count("aes-256-gcm", 1, 5),
            count("gone", 1, 2),
            count("gone", 2, 3),
            count("later", 1, 7),
        ];
        let loaded = |name: &str| name == "aes-256-gcm";
        assert_eq!(still_sealing(&counts, loaded), Some(("gone", 5)));
        let loaded = |name: &str| name != "later";
        assert_eq!(still_sealing(&counts, loaded), Some(("later", 7)));
        assert_eq!(still_sealing(&counts, |_| true), None);
        assert_eq!(still_sealing(&[count("gone", 1, 0)], |_| false), None);
    }
}
