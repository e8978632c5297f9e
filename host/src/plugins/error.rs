//! How a plugin can fail, from loading to one call.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin} did not finish within its {0:?} deadline", .limit)]
    Deadline { plugin: String, limit: Duration },
    #[error("plugin {plugin} exceeded its memory limit of {limit} bytes")]
    Memory { plugin: String, limit: u64 },
    #[error("plugin {plugin} returned {size} bytes, more than its limit of {limit}")]
    Output {
        plugin: String,
        size: u64,
        limit: u64,
    },
    #[error("plugin {plugin} trapped: {reason}")]
    Trap { plugin: String, reason: String },
    #[error("plugin {plugin} broke the contract: {reason}")]
    Contract { plugin: String, reason: String },
    /// No instance became free in time: the server is busy, try later.
    #[error("the server is busy: {0}")]
    Busy(crate::budget::Busy),
    #[error("cannot load plugin {source_name}: {reason}")]
    Load { source_name: String, reason: String },
}

impl PluginError {
    /// A short name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Deadline { .. } => "deadline",
            PluginError::Memory { .. } => "memory",
            PluginError::Output { .. } => "output",
            PluginError::Trap { .. } => "trap",
            PluginError::Contract { .. } => "contract",
            PluginError::Busy(_) => "busy",
            PluginError::Load { .. } => "load",
        }
    }
}
