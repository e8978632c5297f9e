//! The plugin runtime: wasmtime, the sandbox of each call, the registry.

pub(crate) mod bindings;
mod cache;
mod contract;
pub mod embedded;
mod engine;
mod error;
mod export;
mod interfaces;
mod json_object;
mod limits;
mod plugin_file;
mod policy;
mod registry;
mod runtime;
pub(crate) mod state;
mod types;
mod verifier;

pub use cache::PrecompileCache;
pub use contract::Version as ContractVersion;
pub use engine::EngineSettings;
pub use error::PluginError;
pub use limits::{Limits, LimitsOverride};
pub use policy::{PolicyPlugin, SealError};
pub use registry::{LoadFailure, PluginSummary, Registry};
pub use runtime::{EmptyCall, Runtime};
pub use state::MAX_RESOURCES;
pub use types::*;
pub use verifier::VerifierPlugin;
