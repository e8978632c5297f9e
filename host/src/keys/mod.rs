//! The keyring: data keys with ids that are never reused, one of them
//! current. Kept in a file outside the database (mode 0600), or, for servers
//! sharing one database, in the database, each key wrapped by a
//! key-encryption key that stays outside it.

pub mod binding;
mod kek;
mod private_file;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

pub use kek::{KEK_ENV, Kek};
pub use private_file::{unfinished_copy_of, write_private};
pub use transport::{TransportKey, TransportKeyError};

use crate::secret::Secret;

pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("key {0} is not in the keyring")]
    Unknown(u32),
    /// Not made anew: a database holds rows sealed under its keys.
    #[error(
        "key file {0} is missing, and the database holds credentials sealed under its keys: \
         restore it (or set CREDHOST_KEYRING as before); a new key file would leave them unreadable"
    )]
    Missing(PathBuf),
    #[error(
        "the key-encryption key does not open {0}: every server of a cluster needs the same one"
    )]
    Wrapped(String),
    #[error("keyring store: {0}")]
    Store(String),
    /// The keyring came from the environment: nothing can be added to it
    /// here, however often it is asked.
    #[error(
        "the keyring was supplied through CREDHOST_KEYRING and is read-only: add keys where it is kept"
    )]
    ReadOnly,
}

/// A key as a shared store keeps it: wrapped, or retired (no material).
pub struct StoredKey {
    pub id: u32,
    pub created_us: i64,
    pub wrapped: Option<Vec<u8>>,
}

pub struct StoredKeys {
    pub current: Option<u32>,
    pub keys: Vec<StoredKey>,
}

/// Where a shared keyring's rows live (the shared database).
pub trait KeyStore: Send + Sync {
    fn load_keys(&self) -> Result<StoredKeys, KeyError>;
    /// Adds a key under a fresh id, `wrap`ped for that id, and makes it
    /// current, in one transaction. With `first`, only if there is no key
    /// yet; then the id of the one there is returned.
    fn add_key(&self, wrap: &dyn Fn(u32) -> Vec<u8>, first: bool) -> Result<u32, KeyError>;
    /// Copies keys in with their ids (a store copy).
    fn import_keys(&self, keys: &StoredKeys) -> Result<(), KeyError>;
    /// Retires `id` unless it is current or a row still references it.
    fn retire_key(&self, id: u32) -> Result<bool, KeyError>;
}

fn wrap_context(id: u32) -> String {
    format!("credhost data key {id}")
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    current: u32,
    keys: Vec<KeyEntry>,
}

impl KeyFile {
    /// A keyring a server can seal with: its current key there and live,
    /// each live key 32 bytes of Base64, each id once. Checked on load, so
    /// a damaged file stops the start with a reason instead of failing
    /// every write later. Nothing of a key is quoted.
    fn check(&self) -> Result<(), String> {
        if !self.keys.iter().any(|k| k.id == self.current && !k.retired) {
            return Err(format!(
                "current key {} is missing or retired",
                self.current
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for key in &self.keys {
            if !ids.insert(key.id) {
                return Err(format!("key {} is listed twice", key.id));
            }
            let length = STANDARD.decode(key.material.as_bytes()).map(|m| m.len());
            if !key.retired && length.as_ref().ok() != Some(&KEY_LEN) {
                return Err(format!("key {} is not Base64 of {KEY_LEN} bytes", key.id));
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    id: u32,
    created_us: i64,
    /// Empty once retired: the id stays, so it is never handed out again.
    /// Wiped from memory when dropped or retired.
    material: Zeroizing<String>,
    #[serde(default)]
    retired: bool,
}

/// What operators see of a key (never its material).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: u32,
    pub current: bool,
    pub retired: bool,
}

pub struct Keyring {
    /// None: supplied through the environment, read-only.
    path: Option<PathBuf>,
    /// Set for a keyring kept in a shared database; `file` is then this
    /// server's copy, unwrapped, refreshed from the rows.
    shared: Option<(Arc<dyn KeyStore>, Kek)>,
    file: RwLock<KeyFile>,
    /// Set while the shared database names a newer current key than this
    /// server holds and the last refresh could not take it in: the key held
    /// was rotated away (perhaps because it leaked), so nothing is sealed
    /// under it until a refresh succeeds.
    behind: std::sync::atomic::AtomicU32,
}

/// The environment variable that may carry the whole key file instead.
pub const KEYRING_ENV: &str = "CREDHOST_KEYRING";

impl Keyring {
    /// The keyring from `CREDHOST_KEYRING` (the key file's JSON) when set,
    /// else from the key file at `path`, made with a first key if missing
    /// and `create` (a database with no sealed rows) says it may be.
    pub fn from_env_or_file(path: &Path, create: bool) -> Result<Self, KeyError> {
        match std::env::var(KEYRING_ENV).map(Zeroizing::new) {
            Ok(text) => {
                let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeyError::File {
                    path: PathBuf::from(format!("${KEYRING_ENV}")),
                    reason: unreadable(&e),
                })?;
                file.check().map_err(|reason| KeyError::File {
                    path: PathBuf::from(format!("${KEYRING_ENV}")),
                    reason,
                })?;
                Ok(Self {
                    path: None,
                    shared: None,
                    file: RwLock::new(file),
                    behind: Default::default(),
                })
            }
            Err(_) => Self::open_or_create(path, create),
        }
    }

    /// The keyring of a shared database, creating its first key if it has none.
    pub fn shared(store: Arc<dyn KeyStore>, kek: Kek) -> Result<Self, KeyError> {
        let ring = Self {
            path: None,
            file: RwLock::new(KeyFile {
                current: 0,
                keys: Vec::new(),
            }),
            shared: Some((store, kek)),
            behind: Default::default(),
        };
        let (store, kek) = ring.shared.as_ref().expect("just set");
        if store.load_keys()?.current.is_none() {
            let material: [u8; KEY_LEN] = rand::random();
            let id = store.add_key(&|id| kek.wrap(&wrap_context(id), &material), true)?;
            tracing::info!(key_id = id, "the shared keyring has its first key");
        }
        ring.refresh()?;
        Ok(ring)
    }

    /// Reads a shared keyring's rows again (another server rotated); a
    /// no-op for a keyring of this server's own.
    pub fn refresh(&self) -> Result<(), KeyError> {
        let Some((store, _)) = &self.shared else {
            return Ok(());
        };
        let stored = store.load_keys()?;
        let named = stored.current;
        let outcome = self.take_in(stored);
        let held = self.file.read().expect("keyring lock").current;
        let behind = match (&outcome, named) {
            (Err(_), Some(named)) if named > held => named,
            _ => 0,
        };
        self.behind
            .store(behind, std::sync::atomic::Ordering::SeqCst);
        outcome
    }

    /// The current key, to seal with: refused while the shared database
    /// names a newer one this server could not take in (see `behind`).
    pub fn sealing_key(&self) -> Result<(u32, Secret), KeyError> {
        let (id, key) = self.current();
        match self.behind.load(std::sync::atomic::Ordering::SeqCst) {
            newer if newer > id => Err(KeyError::Store(format!(
                "the shared keyring names key {newer} current, and this server cannot take it \
                 in: nothing is sealed under key {id}, rotated away, until it can (see the log)"
            ))),
            _ => Ok((id, key)),
        }
    }

    fn take_in(&self, stored: StoredKeys) -> Result<(), KeyError> {
        let (_, kek) = self.shared.as_ref().expect("a shared keyring");
        let Some(current) = stored.current else {
            return Err(KeyError::Store(
                "the shared keyring has no current key".into(),
            ));
        };
        // Keys only ever come in as current (ids from a sequence), and a
        // retired key never comes back: the database saying otherwise was
        // changed by someone, to put secrets back under a key they had.
        if let Some(newer) = stored.keys.iter().map(|k| k.id).find(|id| *id > current) {
            return Err(KeyError::Store(format!(
                "the shared keyring names key {current} current, but key {newer} is newer: \
                 refused (the database was changed)"
            )));
        }
        // Retired in the database now, or known retired here before (its
        // row there may have been removed to bring the key back).
        let known_retired: Vec<u32> = (self.file.read().expect("keyring lock").keys.iter())
            .filter(|k| k.retired)
            .map(|k| k.id)
            .collect();
        let retired: std::collections::HashSet<u32> = (stored.keys.iter())
            .filter(|k| k.wrapped.is_none())
            .map(|k| k.id)
            .chain(known_retired)
            .collect();
        let mut keys = Vec::with_capacity(stored.keys.len());
        for key in stored.keys {
            if key.wrapped.is_some() && retired.contains(&key.id) {
                tracing::error!(
                    key_id = key.id,
                    "the database holds material for a retired key: ignored"
                );
                continue;
            }
            let material = match &key.wrapped {
                Some(wrapped) => match kek.unwrap(&wrap_context(key.id), wrapped) {
                    Ok(material) => Zeroizing::new(STANDARD.encode(material.expose())),
                    // An older key's row that will not open costs only the
                    // rows sealed under it, not every write of the cluster.
                    Err(e) if key.id != current => {
                        tracing::error!(key_id = key.id, "a key's row will not open: {e}");
                        continue;
                    }
                    Err(e) => return Err(e),
                },
                None => Zeroizing::default(),
            };
            keys.push(KeyEntry {
                id: key.id,
                created_us: key.created_us,
                retired: key.wrapped.is_none(),
                material,
            });
        }
        if !keys.iter().any(|k| k.id == current && !k.retired) {
            return Err(KeyError::Store(format!("current key {current} is missing")));
        }
        let mut file = self.file.write().expect("keyring lock");
        if current < file.current {
            // An older snapshot than what another refresh or a rotation of
            // this server put in place meanwhile; or the database moved
            // back, which is refused by keeping what is here.
            tracing::debug!(
                read = current,
                held = file.current,
                "the shared keyring read is older than the one held: kept"
            );
            return Ok(());
        }
        *file = KeyFile { current, keys };
        Ok(())
    }

    /// Writes this keyring as a key file of its own (a copy out of a shared
    /// store), refusing to replace one.
    pub fn save_new_file(&self, path: &Path) -> Result<(), KeyError> {
        if path.exists() {
            return Err(KeyError::File {
                path: path.to_path_buf(),
                reason: "exists already".into(),
            });
        }
        let file = self.file.read().expect("keyring lock");
        write_private(path, &encode(&file)).map_err(|e| KeyError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Every key with its material wrapped by `kek`, for a copy into a
    /// shared store.
    pub fn export_wrapped(&self, kek: &Kek) -> StoredKeys {
        let file = self.file.read().expect("keyring lock");
        StoredKeys {
            current: Some(file.current),
            keys: file
                .keys
                .iter()
                .map(|k| StoredKey {
                    id: k.id,
                    created_us: k.created_us,
                    wrapped: (!k.retired)
                        .then(|| {
                            STANDARD
                                .decode(k.material.as_bytes())
                                .ok()
                                .map(Zeroizing::new)
                        })
                        .flatten()
                        .map(|m| kek.wrap(&wrap_context(k.id), &m)),
                })
                .collect(),
        }
    }

    /// Opens the key file, creating it with one fresh key on first start.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        Self::open_or_create(path, true)
    }

    fn open_or_create(path: &Path, create: bool) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError::File {
            path: path.to_path_buf(),
            reason,
        };
        let file = match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let file: KeyFile =
                    serde_json::from_slice(&bytes).map_err(|e| fail(unreadable(&e)))?;
                file.check().map_err(fail)?;
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => {
                return Err(KeyError::Missing(path.to_path_buf()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = KeyFile {
                    current: 1,
                    keys: vec![KeyEntry {
                        id: 1,
                        created_us: crate::clock::now_us(),
                        material: Zeroizing::new(STANDARD.encode(rand::random::<[u8; KEY_LEN]>())),
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
            shared: None,
            file: RwLock::new(file),
            behind: Default::default(),
        })
    }

    /// The current key and its id.
    pub fn current(&self) -> (u32, Secret) {
        let file = self.file.read().expect("keyring lock");
        let id = file.current;
        let key = self.material(&file, id).expect("the current key exists");
        (id, key)
    }

    /// Key `id` if this server has it in memory: no I/O.
    pub fn cached(&self, id: u32) -> Option<Secret> {
        self.material(&self.file.read().expect("keyring lock"), id)
    }

    /// Key `id`; on a shared keyring, one this server has not seen yet is
    /// read from the database (blocking I/O).
    pub fn get(&self, id: u32) -> Result<Secret, KeyError> {
        if let Some(key) = self.cached(id) {
            return Ok(key);
        }
        // Perhaps made by another server since this one last looked. Key ids
        // are handed out in commit order (one sequence row, locked until
        // commit), so only an id above the highest one loaded can be new:
        // one below it was retired or never made, and a row naming it must
        // not cost a read of the keyring on every open.
        if self.shared.is_some() && id > self.highest() {
            self.refresh()?;
            if let Some(key) = self.material(&self.file.read().expect("keyring lock"), id) {
                return Ok(key);
            }
        }
        Err(KeyError::Unknown(id))
    }

    fn highest(&self) -> u32 {
        let file = self.file.read().expect("keyring lock");
        file.keys.iter().map(|k| k.id).max().unwrap_or(0)
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
            .and_then(|k| STANDARD.decode(k.material.as_bytes()).ok())
            .map(Secret::new)
    }

    /// Adds `material` as a new key (a fresh id) and makes it current. The
    /// file is replaced atomically before the key is used.
    pub fn add_current(&self, material: Secret) -> Result<u32, KeyError> {
        if let Some((store, kek)) = &self.shared {
            let id = store.add_key(&|id| kek.wrap(&wrap_context(id), material.expose()), false)?;
            self.refresh()?;
            return Ok(id);
        }
        let path = self.writable()?;
        let mut file = self.file.write().expect("keyring lock");
        let id = file.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        file.keys.push(KeyEntry {
            id,
            created_us: crate::clock::now_us(),
            material: Zeroizing::new(STANDARD.encode(material.expose())),
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
        if let Some((store, _)) = &self.shared {
            let current = self.current().0;
            let mut retired = Vec::new();
            for &id in unused.iter().filter(|&&id| id != current) {
                if self
                    .material(&self.file.read().expect("keyring lock"), id)
                    .is_some()
                    && store.retire_key(id)?
                {
                    retired.push(id);
                }
            }
            self.refresh()?;
            return Ok(retired);
        }
        let Some(path) = &self.path else {
            return Ok(Vec::new());
        };
        let mut file = self.file.write().expect("keyring lock");
        let current = file.current;
        let mut retired = Vec::new();
        for key in file.keys.iter_mut() {
            if !key.retired && key.id != current && unused.contains(&key.id) {
                key.retired = true;
                key.material.zeroize();
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
        self.path.as_deref().ok_or(KeyError::ReadOnly)
    }
}

/// Where a keyring's JSON is wrong, without serde_json's message, which
/// quotes a value of the wrong type: there, key material.
fn unreadable(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Data => "a field of the wrong type or missing",
        serde_json::error::Category::Eof => "cut short",
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => "not JSON",
    };
    format!(
        "unreadable at line {}, column {}: {what} (not quoted: it holds keys)",
        e.line(),
        e.column()
    )
}

fn encode(file: &KeyFile) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec_pretty(file).expect("a key file always serialises"))
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

    /// A damaged key file stops the start with its reason (and no key in
    /// it), rather than every later write failing.
    #[test]
    fn a_damaged_key_file_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let good = STANDARD.encode([9u8; KEY_LEN]);
        let short = STANDARD.encode([9u8; 16]);
        for (text, reason) in [
            (
                r#"{"current":1,"keys":[{"id":1,"created_us":0,"material":"","retired":true}]}"#
                    .to_string(),
                "current key 1 is missing or retired",
            ),
            (
                format!(
                    r#"{{"current":1,"keys":[{{"id":1,"created_us":0,"material":"{short}"}}]}}"#
                ),
                "key 1 is not Base64 of 32 bytes",
            ),
            (
                format!(
                    r#"{{"current":2,"keys":[{{"id":1,"created_us":0,"material":"@@"}},{{"id":2,"created_us":0,"material":"{good}"}}]}}"#
                ),
                "key 1 is not Base64 of 32 bytes",
            ),
            (
                format!(
                    r#"{{"current":1,"keys":[{{"id":1,"created_us":0,"material":"{good}"}},{{"id":1,"created_us":0,"material":"{good}"}}]}}"#
                ),
                "key 1 is listed twice",
            ),
        ] {
            std::fs::write(&path, &text).unwrap();
            let Err(error) = Keyring::open(&path) else {
                panic!("{text} was taken");
            };
            let said = error.to_string();
            assert!(said.contains(reason), "{said}");
            assert!(!said.contains(&good) && !said.contains(&short), "{said}");
        }
        let fine = format!(
            r#"{{"current":2,"keys":[{{"id":1,"created_us":0,"material":"","retired":true}},{{"id":2,"created_us":0,"material":"{good}"}}]}}"#
        );
        std::fs::write(&path, fine).unwrap();
        assert_eq!(Keyring::open(&path).unwrap().current().0, 2);
    }

    /// A shared store in memory that counts how often it is read.
    #[derive(Default)]
    struct CountingStore {
        keys: std::sync::Mutex<Vec<(u32, Option<Vec<u8>>)>>,
        loads: std::sync::atomic::AtomicUsize,
    }

    impl KeyStore for CountingStore {
        fn load_keys(&self) -> Result<StoredKeys, KeyError> {
            self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let keys = self.keys.lock().unwrap();
            Ok(StoredKeys {
                current: keys.iter().rev().find(|k| k.1.is_some()).map(|k| k.0),
                keys: keys
                    .iter()
                    .map(|(id, wrapped)| StoredKey {
                        id: *id,
                        created_us: 0,
                        wrapped: wrapped.clone(),
                    })
                    .collect(),
            })
        }

        fn add_key(&self, wrap: &dyn Fn(u32) -> Vec<u8>, first: bool) -> Result<u32, KeyError> {
            let mut keys = self.keys.lock().unwrap();
            if first && !keys.is_empty() {
                return Ok(keys[0].0);
            }
            let id = keys.len() as u32 + 1;
            keys.push((id, Some(wrap(id))));
            Ok(id)
        }

        fn import_keys(&self, _: &StoredKeys) -> Result<(), KeyError> {
            unimplemented!("not used here")
        }

        fn retire_key(&self, id: u32) -> Result<bool, KeyError> {
            let mut keys = self.keys.lock().unwrap();
            keys[id as usize - 1].1 = None;
            Ok(true)
        }
    }

    #[test]
    fn a_shared_keyring_behind_the_database_seals_nothing() {
        let store = Arc::new(CountingStore::default());
        let kek = || Kek::from_bytes(Secret::new(vec![9; 32])).unwrap();
        let ring = Keyring::shared(store.clone(), kek()).unwrap();
        let other = Keyring::shared(store.clone(), kek()).unwrap();
        // An older key's row that will not open is left out; the rest is
        // taken in.
        other.add_current(Secret::new(vec![2; KEY_LEN])).unwrap();
        store.keys.lock().unwrap()[0].1 = Some(vec![0; 60]);
        ring.refresh().unwrap();
        assert_eq!(ring.sealing_key().unwrap().0, 2);
        assert!(ring.cached(1).is_none());
        // The current key's row will not open: nothing is sealed under the
        // one held, rotated away, until it does.
        other.add_current(Secret::new(vec![3; KEY_LEN])).unwrap();
        let good = store.keys.lock().unwrap()[2].1.replace(vec![0; 60]);
        assert!(ring.refresh().is_err());
        assert_eq!(ring.current().0, 2);
        let refused = ring.sealing_key().unwrap_err().to_string();
        assert!(refused.contains("key 3"), "{refused}");
        store.keys.lock().unwrap()[2].1 = good;
        ring.refresh().unwrap();
        assert_eq!(ring.sealing_key().unwrap().0, 3);
    }

    #[test]
    fn a_shared_keyring_reads_the_store_again_only_for_an_id_it_cannot_have_seen() {
        let store = Arc::new(CountingStore::default());
        let kek = || Kek::from_bytes(Secret::new(vec![9; 32])).unwrap();
        let ring = Keyring::shared(store.clone(), kek()).unwrap();
        let other = Keyring::shared(store.clone(), kek()).unwrap();
        let loads = || store.loads.load(std::sync::atomic::Ordering::SeqCst);
        // Another server rotates twice and retires key 2: this one sees
        // key 3 at once, with one read.
        other.add_current(Secret::new(vec![2; KEY_LEN])).unwrap();
        other.add_current(Secret::new(vec![3; KEY_LEN])).unwrap();
        store.retire_key(2).unwrap();
        let before = loads();
        assert_eq!(ring.get(3).unwrap(), Secret::new(vec![3; KEY_LEN]));
        assert_eq!(loads(), before + 1);
        // A retired key, or an id below the highest, is not worth a read;
        // one above it is, each time (it may be made any moment).
        for _ in 0..3 {
            assert!(matches!(ring.get(2), Err(KeyError::Unknown(2))));
        }
        assert_eq!(loads(), before + 1);
        assert!(matches!(ring.get(4), Err(KeyError::Unknown(4))));
        assert_eq!(loads(), before + 2);
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
