//! Which keyring goes with which database. A key file deleted, or a
//! deployment that stopped setting `CREDHOST_KEYRING`, used to be answered
//! with a new keyring: the rows sealed under the old keys no longer opened,
//! new rows were sealed and acknowledged under a new key 1 (an id one of
//! the old keys had), and bringing the old keyring back lost those. The
//! database keeps a check value of each key (it gives nothing of the key
//! away), and the server refuses to start on a keyring that does not match
//! the keys its rows were sealed under.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Keyring;
use crate::store::{SealingCount, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    #[error(
        "{rows} credential(s) of the database are sealed under key {id}, which the keyring \
         does not hold: it is not this database's keyring (restore the one that goes with it)"
    )]
    Absent { id: u32, rows: u64 },
    #[error(
        "key {id} of the keyring is not the key {id} that sealed {rows} credential(s) of the \
         database: it is not this database's keyring (restore the one that goes with it)"
    )]
    Different { id: u32, rows: u64 },
    #[error(
        "the database has seen key {id} made current, which the keyring does not hold: it is a \
         keyring from before a rotation (restore the newest one, which goes with the database)"
    )]
    Behind { id: u32 },
    #[error("cannot read or record the keyring's check values: {0}")]
    Store(#[from] StoreError),
}

fn setting(id: u32) -> String {
    format!("key_check.{id}")
}

fn check_value(id: u32, key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("credhost: the check value of key {id}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Refuses `keys` unless it holds, as they were, the keys that sealed the
/// rows of `store` (`sealed` counts them); records the check value of each
/// of its keys that sealed nothing (a new key, or one whose rows were all
/// deleted: a new keyring is no loss). A key that sealed rows and has no
/// check value yet (a database from before they were kept) is recorded
/// only once one of its rows opens under it ([`confirm`]): the keyring a
/// start is given is not taken on trust.
pub fn check(store: &dyn Store, keys: &Keyring, sealed: &[SealingCount]) -> Result<(), Mismatch> {
    let rows_under = |id: u32| -> u64 {
        sealed
            .iter()
            .filter(|s| s.key_id == id)
            .map(|s| s.rows)
            .sum()
    };
    if let Some(absent) = sealed.iter().find(|s| keys.cached(s.key_id).is_none()) {
        return Err(Mismatch::Absent {
            id: absent.key_id,
            rows: rows_under(absent.key_id),
        });
    }
    // A key made current is recorded here before it seals anything, and
    // ids are given in turn: the next id recorded means the keyring is
    // older than the database. Taken, it would make current again a key
    // rotated away (perhaps because it leaked), even with no row under
    // the newer one yet, and give that newer key's id to another. With no
    // rows at all there is nothing to protect, and a new keyring is no loss.
    let next = keys.ids().into_iter().max().map_or(1, |max| max + 1);
    if sealed.is_empty() {
        // The keyring taken in their place: the ids above it are free
        // again, and must not stop this keyring once it has sealed rows.
        let mut id = next;
        while recorded(store, id)? {
            store.set_setting(&setting(id), "")?;
            id += 1;
        }
    } else if recorded(store, next)? {
        return Err(Mismatch::Behind { id: next });
    }
    for id in keys.ids() {
        let Some(key) = keys.cached(id) else {
            continue;
        };
        let value = check_value(id, key.expose());
        match store.setting(&setting(id))?.filter(|v| !v.is_empty()) {
            Some(recorded) if recorded == value => {}
            Some(_) if rows_under(id) > 0 => {
                return Err(Mismatch::Different {
                    id,
                    rows: rows_under(id),
                });
            }
            None if rows_under(id) > 0 => {}
            _ => store.set_setting(&setting(id), &value)?,
        }
    }
    Ok(())
}

/// Whether a check value of key `id` is recorded (an emptied one is not:
/// its id was given up with the keyring that had it).
fn recorded(store: &dyn Store, id: u32) -> Result<bool, StoreError> {
    Ok(store.setting(&setting(id))?.is_some_and(|v| !v.is_empty()))
}

/// Records the check value of key `id`, new and current, before it seals
/// anything (a later start then knows it, whichever keyring it is given).
pub fn record(store: &dyn Store, keys: &Keyring, id: u32) -> Result<(), StoreError> {
    match keys.cached(id) {
        Some(key) => store.set_setting(&setting(id), &check_value(id, key.expose())),
        None => Ok(()),
    }
}

/// Records the check value of key `id` once a row sealed under it has
/// opened with it, unless one is recorded.
pub fn confirm(store: &dyn Store, keys: &Keyring, id: u32) -> Result<(), StoreError> {
    if recorded(store, id)? {
        return Ok(());
    }
    record(store, keys, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbStore;

    fn sealed(id: u32, rows: u64) -> Vec<SealingCount> {
        vec![SealingCount {
            policy: "aes-256-gcm".into(),
            key_id: id,
            rows,
        }]
    }

    #[test]
    fn a_key_that_sealed_rows_is_bound_only_once_a_row_opened_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        let right = Keyring::open(&dir.path().join("right.json")).unwrap();
        let wrong = Keyring::open(&dir.path().join("wrong.json")).unwrap();
        // Rows under key 1, no check value: either keyring starts, and
        // neither is recorded for it.
        check(&store, &wrong, &sealed(1, 3)).unwrap();
        check(&store, &right, &sealed(1, 3)).unwrap();
        assert_eq!(store.setting(&setting(1)).unwrap(), None);
        // A row opened under the right one binds it.
        confirm(&store, &right, 1).unwrap();
        check(&store, &right, &sealed(1, 3)).unwrap();
        assert!(matches!(
            check(&store, &wrong, &sealed(1, 3)),
            Err(Mismatch::Different { id: 1, rows: 3 })
        ));
        // With no rows, a key is recorded at once, and a new keyring is
        // no loss.
        check(&store, &wrong, &[]).unwrap();
        assert!(store.setting(&setting(1)).unwrap().is_some());
    }

    /// A keyring from before a rotation, given back while no row is sealed
    /// under the newer key yet (its rewrap stopped at a row that would not
    /// open): refused, rather than making the old key current again.
    #[test]
    fn a_keyring_from_before_a_rotation_is_refused_even_with_nothing_under_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        let path = dir.path().join("keys.json");
        let keys = Keyring::open(&path).unwrap();
        check(&store, &keys, &sealed(1, 3)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let id = keys
            .add_current(crate::secret::Secret::new(vec![7; crate::keys::KEY_LEN]))
            .unwrap();
        assert_eq!(id, 2);
        record(&store, &keys, id).unwrap();
        check(&store, &keys, &sealed(1, 3)).unwrap();

        std::fs::write(&path, before).unwrap();
        let restored = Keyring::open(&path).unwrap();
        assert!(matches!(
            check(&store, &restored, &sealed(1, 3)),
            Err(Mismatch::Behind { id: 2 })
        ));
        // With no rows at all it would protect nothing; taken then, it
        // frees the ids above it, so it starts again once it sealed rows.
        check(&store, &restored, &[]).unwrap();
        check(&store, &restored, &sealed(1, 1)).unwrap();
    }
}
