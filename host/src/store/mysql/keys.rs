//! The keyring's rows: each key wrapped by the key-encryption key that stays
//! on the servers. A key is retired by deleting its row, which the database
//! refuses while any credential references it (the foreign key), so a writer
//! on another server that sealed under it can never be stranded.

use mysql::prelude::Queryable;

use super::{Abort, MysqlStore, backend, code, now_us};
use crate::keys::{KeyError, KeyStore, StoredKey, StoredKeys};
use crate::store::StoreError;

const CURRENT: &str = "current_key";
const ROW_IS_REFERENCED: u16 = 1451;

fn fail(e: StoreError) -> KeyError {
    KeyError::Store(e.to_string())
}

impl KeyStore for MysqlStore {
    fn load_keys(&self) -> Result<StoredKeys, KeyError> {
        // One snapshot: a key added between two reads would otherwise be
        // current before it is seen.
        let mut conn = self.conn().map_err(fail)?;
        let mut conn = conn
            .start_transaction(
                mysql::TxOpts::default()
                    .set_with_consistent_snapshot(true)
                    .set_access_mode(Some(mysql::AccessMode::ReadOnly)),
            )
            .map_err(|e| fail(backend(e)))?;
        let live: Vec<(u32, i64, Vec<u8>)> = conn
            .query("SELECT id, created_us, wrapped FROM credhost_keys")
            .map_err(|e| fail(backend(e)))?;
        let retired: Vec<(u32, i64)> = conn
            .query("SELECT id, created_us FROM credhost_retired_keys")
            .map_err(|e| fail(backend(e)))?;
        let current: Option<Vec<u8>> = conn
            .exec_first(
                "SELECT value FROM credhost_settings WHERE name = ?",
                (CURRENT,),
            )
            .map_err(|e| fail(backend(e)))?;
        let mut keys: Vec<StoredKey> = live
            .into_iter()
            .map(|(id, created_us, wrapped)| StoredKey {
                id,
                created_us,
                wrapped: Some(wrapped),
            })
            .chain(retired.into_iter().map(|(id, created_us)| StoredKey {
                id,
                created_us,
                wrapped: None,
            }))
            .collect();
        keys.sort_by_key(|k| k.id);
        Ok(StoredKeys {
            current: current.and_then(|v| String::from_utf8_lossy(&v).parse().ok()),
            keys,
        })
    }

    fn add_key(&self, wrap: &dyn Fn(u32) -> Vec<u8>, first: bool) -> Result<u32, KeyError> {
        self.write(|tx| {
            if first {
                let any: Option<u32> =
                    tx.query_first("SELECT id FROM credhost_keys LIMIT 1 FOR UPDATE")?;
                let retired: Option<u32> =
                    tx.query_first("SELECT id FROM credhost_retired_keys LIMIT 1")?;
                if let Some(id) = any.or(retired) {
                    // Another server made the first key meanwhile.
                    return Ok(id);
                }
            }
            tx.query_drop(
                "UPDATE credhost_sequences SET next = LAST_INSERT_ID(next + 1) WHERE name = 'key'",
            )?;
            let id = tx
                .last_insert_id()
                .and_then(|n| u32::try_from(n.checked_sub(1)?).ok())
                .ok_or_else(|| Abort::Store(StoreError::Backend("no key sequence".into())))?;
            tx.exec_drop(
                "INSERT INTO credhost_keys (id, created_us, wrapped) VALUES (?, ?, ?)",
                (id, now_us(), wrap(id)),
            )?;
            tx.exec_drop(
                "INSERT INTO credhost_settings (name, value) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE value = VALUES(value)",
                (CURRENT, id.to_string()),
            )?;
            Ok(id)
        })
        .map_err(fail)
    }

    fn import_keys(&self, keys: &StoredKeys) -> Result<(), KeyError> {
        self.write(|tx| {
            for key in &keys.keys {
                match &key.wrapped {
                    Some(wrapped) => tx.exec_drop(
                        "INSERT INTO credhost_keys (id, created_us, wrapped) VALUES (?, ?, ?)",
                        (key.id, key.created_us, wrapped),
                    )?,
                    None => tx.exec_drop(
                        "INSERT INTO credhost_retired_keys (id, created_us, retired_us) \
                         VALUES (?, ?, ?)",
                        (key.id, key.created_us, now_us()),
                    )?,
                }
            }
            let top = keys.keys.iter().map(|k| k.id + 1).max().unwrap_or(1);
            tx.exec_drop(
                "UPDATE credhost_sequences SET next = GREATEST(next, ?) WHERE name = 'key'",
                (top,),
            )?;
            if let Some(current) = keys.current {
                tx.exec_drop(
                    "INSERT INTO credhost_settings (name, value) VALUES (?, ?) \
                     ON DUPLICATE KEY UPDATE value = VALUES(value)",
                    (CURRENT, current.to_string()),
                )?;
            }
            Ok(())
        })
        .map_err(fail)
    }

    fn retire_key(&self, id: u32) -> Result<bool, KeyError> {
        let outcome = self.write(|tx| {
            let current: Option<Vec<u8>> = tx.exec_first(
                "SELECT value FROM credhost_settings WHERE name = ? FOR UPDATE",
                (CURRENT,),
            )?;
            if current.as_deref() == Some(id.to_string().as_bytes()) {
                return Ok(false);
            }
            let created: Option<i64> =
                tx.exec_first("SELECT created_us FROM credhost_keys WHERE id = ?", (id,))?;
            let Some(created) = created else {
                return Ok(false);
            };
            // A locking read of the rows sealed by it: it waits for a
            // writer on any server that is committing one, and blocks new
            // ones until this commits; the foreign key below is the second
            // guard.
            let user: Option<u64> = tx.exec_first(
                "SELECT id FROM credhost_credentials WHERE key_id = ? LIMIT 1 FOR UPDATE",
                (id,),
            )?;
            if user.is_some() {
                return Ok(false);
            }
            match tx.exec_drop("DELETE FROM credhost_keys WHERE id = ?", (id,)) {
                Ok(()) => {}
                // Still sealing some row (perhaps one another server just
                // wrote): it stays.
                Err(e) if code(&e) == Some(ROW_IS_REFERENCED) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            tx.exec_drop(
                "INSERT INTO credhost_retired_keys (id, created_us, retired_us) VALUES (?, ?, ?)",
                (id, created, now_us()),
            )?;
            Ok(true)
        });
        outcome.map_err(fail)
    }
}
