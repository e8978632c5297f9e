//! Plugin management: what is loaded, and reloading the plugin directory
//! while the server serves. Calls in flight keep the plugin set they started
//! with; new calls get the new one.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::{Error, Service};
use crate::plugins::{LimitsOverride, LoadFailure, PluginSummary, Registry, Runtime, Source};

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
        let active = self.active_policy();
        if registry.policy(&active).is_none() {
            return Err(Error::IllegalArgument(format!(
                "the reload would unload the active encryption policy '{active}'; nothing was changed"
            )));
        }
        let loaded: Vec<String> = registry
            .target_types()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let changed = changes(&self.plugins(), &registry);
        for change in &changed {
            // New code for a target type or a policy sees its secrets.
            tracing::warn!(%change, "plugin changed by the reload");
        }
        self.plugins.store(Arc::new(registry));
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
