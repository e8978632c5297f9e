//! The sandbox bounds of one plugin call, configurable per plugin.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock bound of one call, instantiation included, in milliseconds.
    pub deadline_ms: u64,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: u64,
    /// What one call may return, in bytes (strings and lists added up).
    pub output_bytes: u64,
}

impl Limits {
    pub const VERIFIER: Limits = Limits {
        deadline_ms: 60_000,
        memory_bytes: 64 << 20,
        output_bytes: 4 << 20,
    };
    pub const POLICY: Limits = Limits {
        deadline_ms: 2_000,
        memory_bytes: 16 << 20,
        output_bytes: 1 << 20,
    };

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::VERIFIER
    }
}

/// An operator's override of some of a plugin's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    pub deadline_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub output_bytes: Option<u64>,
}

impl LimitsOverride {
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            deadline_ms: self.deadline_ms.unwrap_or(base.deadline_ms),
            memory_bytes: self.memory_bytes.unwrap_or(base.memory_bytes),
            output_bytes: self.output_bytes.unwrap_or(base.output_bytes),
        }
    }
}
