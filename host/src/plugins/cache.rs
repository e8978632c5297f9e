//! Compiled plugins on disk, keyed by the component's SHA-256 and the engine's
//! compatibility hash, so a restart does not compile again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone, Default)]
pub struct PrecompileCache {
    dir: Option<PathBuf>,
}

impl PrecompileCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The component for `bytes`: from the cache when it is there, else
    /// compiled now and written to the cache.
    pub fn component(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some(dir) = &self.dir else {
            return Component::new(engine, bytes);
        };
        let path = dir.join(format!("{}.cwasm", Self::key(engine, bytes)));
        if path.exists() {
            // SAFETY: the file is in the server's own data directory and was
            // written by `precompile_component` of an engine with this very
            // compatibility hash (it is part of the name).
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "recompiling a broken cache entry: {e}")
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        std::fs::create_dir_all(dir)?;
        // Unique per writer: two loads of one plugin may race to fill the cache.
        let tmp = path.with_extension(format!(
            "tmp-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &path)?;
        // SAFETY: produced just above by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    fn key(engine: &Engine, bytes: &[u8]) -> String {
        let mut engine_hash = DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        format!(
            "{}-{:016x}",
            hex::encode(Sha256::digest(bytes)),
            engine_hash.finish()
        )
    }
}
