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
    #[error("cannot load plugin {source_name}: {reason}")]
    Load { source_name: String, reason: String },
}
