//! Compiled plugins on disk, keyed by the component's SHA-256 and the engine's
//! compatibility hash, so a restart does not compile again.
//!
//! Loading a compiled artefact runs native code it contains, so an entry is
//! trusted only if it carries a MAC made with a secret of this data
//! directory (`cache.key`, 0600): a file put there by anyone else, or
//! altered, is refused and compiled afresh, never loaded.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::secret::Secret;

const MAC_LEN: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct PrecompileCache {
    dir: Option<(PathBuf, Secret)>,
}

impl PrecompileCache {
    /// Entries in `dir`, authenticated under `key`.
    pub fn new(dir: PathBuf, key: Secret) -> Self {
        Self {
            dir: Some((dir, key)),
        }
    }

    /// The component for `bytes`: from the cache when an authentic entry is
    /// there, else compiled now and written to the cache.
    pub fn component(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some((dir, key)) = &self.dir else {
            return Component::new(engine, bytes);
        };
        let name = format!("{}.cwasm", Self::name(engine, bytes));
        let path = dir.join(&name);
        match std::fs::read(&path) {
            Ok(entry) => match authentic(key, &name, &entry) {
                Some(artefact) => {
                    // SAFETY: the artefact carries a MAC under this data
                    // directory's secret, so this server's cache wrote it,
                    // for an engine with this compatibility hash (part of
                    // the name, which the MAC covers).
                    match unsafe { Component::deserialize(engine, artefact) } {
                        Ok(component) => return Ok(component),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), "recompiling an unusable cache entry: {e}")
                        }
                    }
                }
                None => tracing::warn!(
                    path = %path.display(),
                    "a cache entry failed authentication: recompiling instead of loading it"
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), "cannot read a cache entry: {e}"),
        }
        let compiled = engine.precompile_component(bytes)?;
        let mut entry = compiled.clone();
        entry.extend_from_slice(&mac(key, &name, &compiled));
        write(dir, &path, &entry)?;
        // SAFETY: produced just above by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    fn name(engine: &Engine, bytes: &[u8]) -> String {
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

fn mac(key: &Secret, name: &str, artefact: &[u8]) -> [u8; MAC_LEN] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(artefact);
    mac.finalize().into_bytes().into()
}

/// The artefact of an entry whose MAC holds.
fn authentic<'a>(key: &Secret, name: &str, entry: &'a [u8]) -> Option<&'a [u8]> {
    let split = entry.len().checked_sub(MAC_LEN)?;
    let (artefact, tag) = entry.split_at(split);
    let mut check =
        <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    check.update(name.as_bytes());
    check.update(&[0]);
    check.update(artefact);
    check.verify_slice(tag).ok().map(|()| artefact)
}

fn write(dir: &Path, path: &Path, entry: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::keys::write_private(path, entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_made_with_the_key_are_authentic() {
        let key = Secret::new(vec![1; 32]);
        let mut entry = b"compiled code".to_vec();
        entry.extend_from_slice(&mac(&key, "a.cwasm", b"compiled code"));
        assert_eq!(
            authentic(&key, "a.cwasm", &entry),
            Some(&b"compiled code"[..])
        );
        assert_eq!(
            authentic(&key, "b.cwasm", &entry),
            None,
            "bound to its name"
        );
        assert_eq!(
            authentic(&Secret::new(vec![2; 32]), "a.cwasm", &entry),
            None
        );
        entry[0] ^= 1;
        assert_eq!(authentic(&key, "a.cwasm", &entry), None);
        assert_eq!(authentic(&key, "a.cwasm", b"short"), None);
    }
}
