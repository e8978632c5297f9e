//! The keyring: data keys with ids that are never reused, one of them
//! current, kept in a file outside the database (mode 0600).

mod private_file;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

pub use private_file::write_private;
pub use transport::{TransportKey, TransportKeyError};

use crate::secret::Secret;

pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("key {0} is not in the keyring")]
    Unknown(u32),
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    current: u32,
    keys: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    id: u32,
    created_us: i64,
    /// Empty once retired: the id stays, so it is never handed out again.
    material: String,
    #[serde(default)]
    retired: bool,
}

/// What operators see of a key (never its material).
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: u32,
    pub current: bool,
    pub retired: bool,
}

pub struct Keyring {
    /// None: supplied through the environment, read-only.
    path: Option<PathBuf>,
    file: RwLock<KeyFile>,
}

/// The environment variable that may carry the whole key file instead.
pub const KEYRING_ENV: &str = "CREDHOST_KEYRING";

impl Keyring {
    /// The keyring from `CREDHOST_KEYRING` (the key file's JSON) when set,
    /// else from the key file at `path`.
    pub fn from_env_or_file(path: &Path) -> Result<Self, KeyError> {
        match std::env::var(KEYRING_ENV) {
            Ok(text) => {
                let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeyError::File {
                    path: PathBuf::from(format!("${KEYRING_ENV}")),
                    reason: format!("unreadable: {e}"),
                })?;
                if !file.keys.iter().any(|k| k.id == file.current && !k.retired) {
                    return Err(KeyError::File {
                        path: PathBuf::from(format!("${KEYRING_ENV}")),
                        reason: format!("current key {} is missing", file.current),
                    });
                }
                Ok(Self {
                    path: None,
                    file: RwLock::new(file),
                })
            }
            Err(_) => Self::open(path),
        }
    }

    /// Opens the key file, creating it with one fresh key on first start.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError::File {
            path: path.to_path_buf(),
            reason,
        };
        let file = match std::fs::read(path) {
            Ok(bytes) => {
                let file: KeyFile =
                    serde_json::from_slice(&bytes).map_err(|e| fail(format!("unreadable: {e}")))?;
                if !file.keys.iter().any(|k| k.id == file.current) {
                    return Err(fail(format!("current key {} is missing", file.current)));
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = KeyFile {
                    current: 1,
                    keys: vec![KeyEntry {
                        id: 1,
                        created_us: crate::clock::now_us(),
                        material: STANDARD.encode(rand::random::<[u8; KEY_LEN]>()),
                        retired: false,
                    }],
                };
                write_private(path, &encode(&file)).map_err(|e| fail(e.to_string()))?;
                tracing::info!(path = %path.display(), "created a key file with key 1");
                file
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            file: RwLock::new(file),
        })
    }

    /// The current key and its id.
    pub fn current(&self) -> (u32, Secret) {
        let file = self.file.read().expect("keyring lock");
        let id = file.current;
        let key = self.material(&file, id).expect("the current key exists");
        (id, key)
    }

    pub fn get(&self, id: u32) -> Result<Secret, KeyError> {
        let file = self.file.read().expect("keyring lock");
        self.material(&file, id).ok_or(KeyError::Unknown(id))
    }

    pub fn ids(&self) -> Vec<u32> {
        self.file
            .read()
            .expect("keyring lock")
            .keys
            .iter()
            .map(|k| k.id)
            .collect()
    }

    pub fn info(&self) -> Vec<KeyInfo> {
        let file = self.file.read().expect("keyring lock");
        file.keys
            .iter()
            .map(|k| KeyInfo {
                id: k.id,
                current: k.id == file.current,
                retired: k.retired,
            })
            .collect()
    }

    fn material(&self, file: &KeyFile, id: u32) -> Option<Secret> {
        file.keys
            .iter()
            .find(|k| k.id == id && !k.retired)
            .and_then(|k| STANDARD.decode(&k.material).ok())
            .map(Secret::new)
    }

    /// Adds `material` as a new key (a fresh id) and makes it current. The
    /// file is replaced atomically before the key is used.
    pub fn add_current(&self, material: Secret) -> Result<u32, KeyError> {
        let path = self.writable()?;
        let mut file = self.file.write().expect("keyring lock");
        let id = file.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        file.keys.push(KeyEntry {
            id,
            created_us: crate::clock::now_us(),
            material: STANDARD.encode(material.expose()),
            retired: false,
        });
        let previous = file.current;
        file.current = id;
        if let Err(e) = write_private(path, &encode(&file)) {
            file.current = previous;
            file.keys.pop();
            return Err(KeyError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
        Ok(id)
    }

    /// Erases the material of keys that no row uses any more. The current
    /// key is never retired.
    pub fn retire(&self, unused: &[u32]) -> Result<Vec<u32>, KeyError> {
        let Some(path) = &self.path else {
            return Ok(Vec::new());
        };
        let mut file = self.file.write().expect("keyring lock");
        let current = file.current;
        let mut retired = Vec::new();
        for key in file.keys.iter_mut() {
            if !key.retired && key.id != current && unused.contains(&key.id) {
                key.retired = true;
                key.material.clear();
                retired.push(key.id);
            }
        }
        if !retired.is_empty() {
            write_private(path, &encode(&file)).map_err(|e| KeyError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(retired)
    }

    fn writable(&self) -> Result<&Path, KeyError> {
        self.path.as_deref().ok_or_else(|| KeyError::File {
            path: PathBuf::from(format!("${KEYRING_ENV}")),
            reason: "a keyring supplied through the environment is read-only".into(),
        })
    }
}

fn encode(file: &KeyFile) -> Vec<u8> {
    serde_json::to_vec_pretty(file).expect("a key file always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_key_file_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let ring = Keyring::open(&path).unwrap();
        let (id, key) = ring.current();
        assert_eq!((id, key.len()), (1, KEY_LEN));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = Keyring::open(&path).unwrap();
        assert_eq!(again.current().1, key);
    }

    #[test]
    fn new_keys_get_fresh_ids_and_become_current() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(&dir.path().join("keys.json")).unwrap();
        let id = ring.add_current(Secret::new(vec![7; KEY_LEN])).unwrap();
        assert_eq!(id, 2);
        assert_eq!(ring.current(), (2, Secret::new(vec![7; KEY_LEN])));
        assert_eq!(ring.ids(), vec![1, 2]);
        assert!(ring.get(1).is_ok());
        assert!(matches!(ring.get(3), Err(KeyError::Unknown(3))));
    }

    #[test]
    fn retired_keys_lose_their_material_but_keep_their_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let ring = Keyring::open(&path).unwrap();
        ring.add_current(Secret::new(vec![7; KEY_LEN])).unwrap();
        assert_eq!(
            ring.retire(&[1, 2]).unwrap(),
            vec![1],
            "the current key stays"
        );
        assert!(ring.get(1).is_err());
        let again = Keyring::open(&path).unwrap();
        assert!(again.get(1).is_err());
        assert_eq!(again.add_current(Secret::new(vec![8; KEY_LEN])).unwrap(), 3);
    }
}
