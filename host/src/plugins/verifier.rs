//! A loaded verifier plugin: one target type, called in a fresh sandbox each time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use wasmtime::component::Component;

use super::bindings::verifier::exports::credhost::plugin::verification as wit;
use super::bindings::verifier::{Verifier, VerifierPre};
use super::error::PluginError;
use super::limits::Limits;
use super::runtime::{Runtime, bounded, check_output, conclude};
use super::types::{
    Detail, Endpoint, Normalized, PluginMeta, Purpose, Reason, Refusal, SecretChange, Target,
    VerifierInfo,
};
use crate::capabilities::Grant;
use crate::secret::Secret;

pub struct VerifierPlugin {
    pub meta: PluginMeta,
    pub info: VerifierInfo,
    label: Arc<str>,
    pre: VerifierPre<super::state::CallState>,
    runtime: Arc<Runtime>,
}

impl VerifierPlugin {
    /// Links `component` and asks it who it is.
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
            .verifier_linker
            .instantiate_pre(component)
            .map_err(|e| load_error(format!("{e:#}")))?;
        let pre = VerifierPre::new(pre).map_err(|e| load_error(format!("{e:#}")))?;
        let mut plugin = Self {
            label: meta.name.clone().into(),
            meta: meta.clone(),
            info: VerifierInfo {
                target_type: String::new(),
                property_field: String::new(),
                public_field: String::new(),
            },
            pre,
            runtime,
        };
        let d = plugin.describe().await?;
        if d.target_type.is_empty() || d.property_field.is_empty() || d.public_field.is_empty() {
            return Err(load_error(
                "describe() left target-type or a field name empty".into(),
            ));
        }
        meta.name = d.name;
        meta.version = d.version;
        plugin.label = meta.name.clone().into();
        plugin.meta = meta;
        plugin.info = VerifierInfo {
            target_type: d.target_type,
            property_field: d.property_field,
            public_field: d.public_field,
        };
        Ok(plugin)
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.meta.limits = limits;
        self
    }

    async fn describe(&self) -> Result<wit::Descriptor, PluginError> {
        let limits = self.meta.limits;
        let (mut store, _slot) = self
            .runtime
            .store(&self.label, &limits, Grant::none(), false)
            .await;
        let outcome = bounded(&limits, async {
            let plugin: Verifier = self.pre.instantiate_async(&mut store).await?;
            plugin
                .credhost_plugin_verification()
                .call_describe(&mut store)
                .await
        })
        .await;
        let d = conclude(&store, &limits, outcome)?;
        let size = d.target_type.len()
            + d.property_field.len()
            + d.public_field.len()
            + d.name.len()
            + d.version.len();
        check_output(&self.label, &limits, size)?;
        Ok(d)
    }

    /// Validates and canonicalises a request's property. The outer error is
    /// the plugin failing; the inner one is the plugin refusing the input.
    pub async fn normalize(
        &self,
        property: &str,
        purpose: Purpose,
    ) -> Result<Result<Normalized, Refusal>, PluginError> {
        let limits = self.meta.limits;
        let purpose = match purpose {
            Purpose::Create => wit::Purpose::Create,
            Purpose::Update => wit::Purpose::Update,
            Purpose::Validate => wit::Purpose::Validate,
        };
        let (mut store, _slot) = self
            .runtime
            .store(&self.label, &limits, Grant::none(), false)
            .await;
        let outcome = bounded(&limits, async {
            let plugin: Verifier = self.pre.instantiate_async(&mut store).await?;
            plugin
                .credhost_plugin_verification()
                .call_normalize(&mut store, property, purpose)
                .await
        })
        .await;
        match conclude(&store, &limits, outcome)? {
            Err(refusal) => {
                check_output(
                    &self.label,
                    &limits,
                    refusal.code.len() + refusal.message.len(),
                )?;
                Ok(Err(Refusal {
                    code: refusal.code,
                    message: refusal.message,
                }))
            }
            Ok(n) => {
                let size = n.public.len()
                    + n.search_terms.iter().map(String::len).sum::<usize>()
                    + n.targets.iter().map(|t| t.ip.len() + 2).sum::<usize>()
                    + match &n.secret {
                        wit::Secret::Keep => 0,
                        wit::Secret::Replace(bytes) => bytes.len(),
                    };
                check_output(&self.label, &limits, size)?;
                self.adopt(n).map(Ok)
            }
        }
    }

    /// Checks what the plugin returned against the contract.
    fn adopt(&self, n: wit::Normalized) -> Result<Normalized, PluginError> {
        let broke = |reason: String| PluginError::Contract {
            plugin: self.meta.name.clone(),
            reason,
        };
        let public: serde_json::Value = serde_json::from_str(&n.public).map_err(|e| {
            broke(format!(
                "normalize returned a public part that is not JSON: {e}"
            ))
        })?;
        let targets = n
            .targets
            .iter()
            .map(|t| {
                let ip: IpAddr = t.ip.parse().map_err(|_| {
                    broke(format!(
                        "normalize returned a target that is not an IP: {:?}",
                        t.ip
                    ))
                })?;
                Ok(Target {
                    ip: ip.to_canonical(),
                    port: t.port,
                })
            })
            .collect::<Result<Vec<_>, PluginError>>()?;
        Ok(Normalized {
            public,
            secret: match n.secret {
                wit::Secret::Keep => SecretChange::Keep,
                wit::Secret::Replace(bytes) => SecretChange::Replace(Secret::new(bytes)),
            },
            targets,
            search_terms: n.search_terms,
        })
    }

    /// Proves a credential against its targets; the plugin may reach exactly
    /// `targets` and nothing else.
    pub async fn verify(
        &self,
        public: &serde_json::Value,
        secret: &Secret,
        targets: &[Target],
    ) -> Result<Vec<Detail>, PluginError> {
        let limits = self.meta.limits;
        let grant = Grant::new(targets.iter().map(|t| SocketAddr::new(t.ip, t.port)));
        let public = public.to_string();
        let (mut store, _slot) = self.runtime.store(&self.label, &limits, grant, true).await;
        let outcome = bounded(&limits, async {
            let plugin: Verifier = self.pre.instantiate_async(&mut store).await?;
            plugin
                .credhost_plugin_verification()
                .call_verify(&mut store, &public, secret.expose())
                .await
        })
        .await;
        let details = conclude(&store, &limits, outcome)?;
        let size: usize = details
            .iter()
            .map(|d| d.target.ip.len() + d.connection_result.len() + d.message.len() + 8)
            .sum();
        check_output(&self.label, &limits, size)?;
        Ok(details.into_iter().map(detail).collect())
    }
}

fn detail(d: wit::Detail) -> Detail {
    Detail {
        target: Endpoint {
            ip: d.target.ip,
            port: d.target.port,
        },
        connection_result: d.connection_result,
        reason: match d.reason {
            wit::Reason::Ok => Reason::Ok,
            wit::Reason::AuthFailed => Reason::AuthFailed,
            wit::Reason::Refused => Reason::Refused,
            wit::Reason::Unreachable => Reason::Unreachable,
            wit::Reason::Timeout => Reason::Timeout,
            wit::Reason::HostKeyMismatch => Reason::HostKeyMismatch,
            wit::Reason::ProtocolError => Reason::ProtocolError,
            wit::Reason::NotGranted => Reason::NotGranted,
            wit::Reason::Other => Reason::Other,
        },
        message: d.message,
    }
}
