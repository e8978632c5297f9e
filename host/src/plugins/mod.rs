//! The plugin runtime: wasmtime, the sandbox of each call, the registry.

mod bindings;
mod cache;
pub mod embedded;
mod engine;
mod error;
mod limits;
mod policy;
mod registry;
mod runtime;
mod state;
mod types;
mod verifier;

pub use cache::PrecompileCache;
pub use engine::EngineSettings;
pub use error::PluginError;
pub use limits::{Limits, LimitsOverride};
pub use policy::{PolicyPlugin, SealError};
pub use registry::{LoadFailure, PluginSummary, Registry};
pub use runtime::Runtime;
pub use types::*;
pub use verifier::VerifierPlugin;
