//! The embedded store: one redb file. Unique and sort indexes are kept in the
//! same write transaction as the row, so there is no check-then-act race, and
//! a page of `list` is read from an index, not sorted from a full scan.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};

use super::{
    Conflict, ListQuery, Page, Record, SealingCount, SecretChange, SecretWrite, SortField, Store,
    StoreError, Validation, fold_name,
};

const CREDENTIALS: TableDefinition<u64, &[u8]> = TableDefinition::new("credentials");
/// Folded name → id.
const NAMES: TableDefinition<&str, u64> = TableDefinition::new("unique_names");
/// (target type, canonical ip) → id.
const HOSTS: TableDefinition<(&str, &str), u64> = TableDefinition::new("unique_hosts");
const BY_NAME: TableDefinition<(&str, u64), ()> = TableDefinition::new("sort_name");
/// (upper-cased target type, id): also the `target_type` filter.
const BY_TYPE: TableDefinition<(&str, u64), ()> = TableDefinition::new("sort_target_type");
const BY_CREATED: TableDefinition<(i64, u64), ()> = TableDefinition::new("sort_create_time");
const BY_UPDATED: TableDefinition<(i64, u64), ()> = TableDefinition::new("sort_update_time");
/// id → lower-cased text that `key_word` searches.
const SEARCH: TableDefinition<u64, &str> = TableDefinition::new("search");
/// (policy, key id, id): which rows each policy and key seal, for rewrap
/// and retirement, without reading the rows.
const SEALED: TableDefinition<(&str, u32, u64), ()> = TableDefinition::new("sealed_by");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Named settings that must survive a restart (active policy, rewrap job).
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
/// token id → JSON document (only a hash of the secret).
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
/// credential id → JSON of its last validation.
const VALIDATIONS: TableDefinition<u64, &str> = TableDefinition::new("last_validation");

const NEXT_ID: &str = "next_id";
const SCHEMA_VERSION: &str = "schema_version";
const SCHEMA: u64 = 1;

pub struct RedbStore {
    db: Database,
    next_id: AtomicU64,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        let next_id = {
            // Opening every table creates it, so readers never miss one.
            txn.open_table(CREDENTIALS).map_err(backend)?;
            txn.open_table(NAMES).map_err(backend)?;
            txn.open_table(HOSTS).map_err(backend)?;
            txn.open_table(BY_NAME).map_err(backend)?;
            txn.open_table(BY_TYPE).map_err(backend)?;
            txn.open_table(BY_CREATED).map_err(backend)?;
            txn.open_table(BY_UPDATED).map_err(backend)?;
            txn.open_table(SEARCH).map_err(backend)?;
            txn.open_table(SEALED).map_err(backend)?;
            txn.open_table(SETTINGS).map_err(backend)?;
            txn.open_table(TOKENS).map_err(backend)?;
            txn.open_table(VALIDATIONS).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let schema = meta
                .get(SCHEMA_VERSION)
                .map_err(backend)?
                .map(|v| v.value());
            match schema {
                None => {
                    meta.insert(SCHEMA_VERSION, SCHEMA).map_err(backend)?;
                }
                Some(SCHEMA) => {}
                Some(other) => {
                    return Err(StoreError::Backend(format!(
                        "database schema {other} is newer than this server's {SCHEMA}"
                    )));
                }
            }
            meta.get(NEXT_ID).map_err(backend)?.map_or(1, |v| v.value())
        };
        txn.commit().map_err(backend)?;
        Ok(Self {
            db,
            next_id: AtomicU64::new(next_id),
        })
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().map_err(backend)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let value = f(&txn)?;
        txn.commit().map_err(backend)?;
        Ok(value)
    }
}

/// The conflict `record` has with the rows in `txn`'s view, ignoring its own row.
fn find_conflict(
    names: &impl ReadableTable<&'static str, u64>,
    hosts: &impl ReadableTable<(&'static str, &'static str), u64>,
    record: &Record,
) -> Result<Option<Conflict>, StoreError> {
    let name_owner = names
        .get(fold_name(&record.name).as_str())
        .map_err(backend)?
        .map(|v| v.value());
    if name_owner.is_some_and(|owner| owner != record.id) {
        return Ok(Some(Conflict::Name(record.name.clone())));
    }
    let mut seen = HashSet::new();
    for target in &record.targets {
        let ip = target.ip.to_string();
        if !seen.insert(ip.clone()) {
            return Ok(Some(Conflict::DuplicateHost(ip)));
        }
        let host_owner = hosts
            .get((record.target_type.as_str(), ip.as_str()))
            .map_err(backend)?
            .map(|v| v.value());
        if host_owner.is_some_and(|owner| owner != record.id) {
            return Ok(Some(Conflict::Host(ip)));
        }
    }
    Ok(None)
}

fn add_indexes(txn: &WriteTransaction, record: &Record) -> Result<(), StoreError> {
    let folded = fold_name(&record.name);
    let kind = record.target_type.to_uppercase();
    txn.open_table(NAMES)
        .map_err(backend)?
        .insert(folded.as_str(), record.id)
        .map_err(backend)?;
    let mut hosts = txn.open_table(HOSTS).map_err(backend)?;
    for target in &record.targets {
        let ip = target.ip.to_string();
        hosts
            .insert((record.target_type.as_str(), ip.as_str()), record.id)
            .map_err(backend)?;
    }
    txn.open_table(BY_NAME)
        .map_err(backend)?
        .insert((folded.as_str(), record.id), ())
        .map_err(backend)?;
    txn.open_table(BY_TYPE)
        .map_err(backend)?
        .insert((kind.as_str(), record.id), ())
        .map_err(backend)?;
    txn.open_table(BY_CREATED)
        .map_err(backend)?
        .insert((record.created_us, record.id), ())
        .map_err(backend)?;
    txn.open_table(BY_UPDATED)
        .map_err(backend)?
        .insert((record.updated_us, record.id), ())
        .map_err(backend)?;
    txn.open_table(SEARCH)
        .map_err(backend)?
        .insert(record.id, record.haystack().as_str())
        .map_err(backend)?;
    txn.open_table(SEALED)
        .map_err(backend)?
        .insert(sealed_key(record), ())
        .map_err(backend)?;
    Ok(())
}

fn sealed_key(record: &Record) -> (&str, u32, u64) {
    (
        record.secret.policy.as_str(),
        record.secret.key_id,
        record.id,
    )
}

fn remove_indexes(txn: &WriteTransaction, record: &Record) -> Result<(), StoreError> {
    let folded = fold_name(&record.name);
    let kind = record.target_type.to_uppercase();
    txn.open_table(NAMES)
        .map_err(backend)?
        .remove(folded.as_str())
        .map_err(backend)?;
    let mut hosts = txn.open_table(HOSTS).map_err(backend)?;
    for target in &record.targets {
        let ip = target.ip.to_string();
        hosts
            .remove((record.target_type.as_str(), ip.as_str()))
            .map_err(backend)?;
    }
    txn.open_table(BY_NAME)
        .map_err(backend)?
        .remove((folded.as_str(), record.id))
        .map_err(backend)?;
    txn.open_table(BY_TYPE)
        .map_err(backend)?
        .remove((kind.as_str(), record.id))
        .map_err(backend)?;
    txn.open_table(BY_CREATED)
        .map_err(backend)?
        .remove((record.created_us, record.id))
        .map_err(backend)?;
    txn.open_table(BY_UPDATED)
        .map_err(backend)?
        .remove((record.updated_us, record.id))
        .map_err(backend)?;
    txn.open_table(SEARCH)
        .map_err(backend)?
        .remove(record.id)
        .map_err(backend)?;
    txn.open_table(SEALED)
        .map_err(backend)?
        .remove(sealed_key(record))
        .map_err(backend)?;
    Ok(())
}

/// Adds `record` with its indexes, refusing a conflict, and keeps `next_id`
/// past its id.
fn insert_in(txn: &WriteTransaction, record: &Record) -> Result<(), StoreError> {
    {
        let names = txn.open_table(NAMES).map_err(backend)?;
        let hosts = txn.open_table(HOSTS).map_err(backend)?;
        if let Some(conflict) = find_conflict(&names, &hosts, record)? {
            return Err(StoreError::Conflict(conflict));
        }
    }
    add_indexes(txn, record)?;
    txn.open_table(CREDENTIALS)
        .map_err(backend)?
        .insert(record.id, record.encode().as_slice())
        .map_err(backend)?;
    let mut meta = txn.open_table(META).map_err(backend)?;
    let next = meta.get(NEXT_ID).map_err(backend)?.map_or(1, |v| v.value());
    if record.id >= next {
        meta.insert(NEXT_ID, record.id + 1).map_err(backend)?;
    }
    Ok(())
}

fn load(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<Record>, StoreError> {
    match table.get(id).map_err(backend)? {
        None => Ok(None),
        Some(bytes) => Record::decode(bytes.value())
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                id,
                reason: e.to_string(),
            }),
    }
}

fn delete_in(txn: &WriteTransaction, id: u64) -> Result<bool, StoreError> {
    let existing = load(&txn.open_table(CREDENTIALS).map_err(backend)?, id)?;
    let Some(record) = existing else {
        return Ok(false);
    };
    remove_indexes(txn, &record)?;
    txn.open_table(CREDENTIALS)
        .map_err(backend)?
        .remove(id)
        .map_err(backend)?;
    txn.open_table(VALIDATIONS)
        .map_err(backend)?
        .remove(id)
        .map_err(backend)?;
    Ok(true)
}

impl Store for RedbStore {
    fn reserve_id(&self) -> Result<u64, StoreError> {
        Ok(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Every id is at hand: the counter lives in memory.
    fn reserve_id_at_hand(&self) -> Option<u64> {
        self.reserve_id().ok()
    }

    fn conflict(&self, record: &Record) -> Result<Option<Conflict>, StoreError> {
        let txn = self.read()?;
        let names = txn.open_table(NAMES).map_err(backend)?;
        let hosts = txn.open_table(HOSTS).map_err(backend)?;
        find_conflict(&names, &hosts, record)
    }

    fn insert(&self, record: &Record, validation: Option<&str>) -> Result<(), StoreError> {
        self.write(|txn| {
            insert_in(txn, record)?;
            if let Some(doc) = validation {
                put_validation(txn, record.id, doc)?;
            }
            Ok(())
        })
    }

    fn import(&self, records: &[Record]) -> Result<(), StoreError> {
        self.write(|txn| records.iter().try_for_each(|r| insert_in(txn, r)))?;
        let top = records.iter().map(|r| r.id + 1).max().unwrap_or(1);
        self.next_id.fetch_max(top, Ordering::Relaxed);
        Ok(())
    }

    fn keep_ids_above(&self, next: u64) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let stored = meta.get(NEXT_ID).map_err(backend)?.map_or(1, |v| v.value());
            meta.insert(NEXT_ID, stored.max(next)).map_err(backend)?;
            Ok(())
        })?;
        self.next_id.fetch_max(next, Ordering::Relaxed);
        Ok(())
    }

    fn scan(&self, after: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let txn = self.read()?;
        let credentials = txn.open_table(CREDENTIALS).map_err(backend)?;
        let mut records = Vec::new();
        let range = credentials
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .map_err(backend)?;
        for entry in range.take(limit) {
            let (id, bytes) = entry.map_err(backend)?;
            records.push(
                Record::decode(bytes.value()).map_err(|e| StoreError::Corrupt {
                    id: id.value(),
                    reason: e.to_string(),
                })?,
            );
        }
        Ok(records)
    }

    fn update(
        &self,
        mut record: Record,
        secret: SecretWrite,
        validation: Option<&str>,
    ) -> Result<Record, StoreError> {
        self.write(|txn| {
            let current = load(&txn.open_table(CREDENTIALS).map_err(backend)?, record.id)?
                .ok_or(StoreError::NotFound(record.id))?;
            if current.version != record.version {
                return Err(StoreError::Changed(record.id));
            }
            remove_indexes(txn, &current)?;
            {
                let names = txn.open_table(NAMES).map_err(backend)?;
                let hosts = txn.open_table(HOSTS).map_err(backend)?;
                if let Some(conflict) = find_conflict(&names, &hosts, &record)? {
                    // Dropping the transaction undoes the index removal.
                    return Err(StoreError::Conflict(conflict));
                }
            }
            record.created_us = current.created_us;
            record.target_type = current.target_type.clone();
            record.version = current.version + 1;
            if let SecretWrite::Replace(sealed) = secret {
                record.secret = sealed;
            } else {
                record.secret = current.secret;
            }
            add_indexes(txn, &record)?;
            txn.open_table(CREDENTIALS)
                .map_err(backend)?
                .insert(record.id, record.encode().as_slice())
                .map_err(backend)?;
            if let Some(doc) = validation {
                put_validation(txn, record.id, doc)?;
            }
            Ok(record)
        })
    }

    fn get(&self, id: u64) -> Result<Option<Record>, StoreError> {
        let txn = self.read()?;
        load(&txn.open_table(CREDENTIALS).map_err(backend)?, id)
    }

    fn delete(&self, id: u64) -> Result<bool, StoreError> {
        self.write(|txn| delete_in(txn, id))
    }

    fn delete_many(&self, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        self.write(|txn| super::delete_each(ids, |id| delete_in(txn, id)))
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let txn = self.read()?;
        let credentials = txn.open_table(CREDENTIALS).map_err(backend)?;

        // The rows the filters allow; `None` means every row.
        let mut allowed: Option<HashSet<u64>> = None;
        let mut narrow = |ids: HashSet<u64>| {
            allowed = Some(match allowed.take() {
                None => ids,
                Some(prev) => prev.intersection(&ids).copied().collect(),
            });
        };
        if let Some(id) = query.credential_id {
            narrow(if credentials.get(id).map_err(backend)?.is_some() {
                HashSet::from([id])
            } else {
                HashSet::new()
            });
        }
        if let Some(kind) = &query.target_type {
            let kind = kind.to_uppercase();
            let by_type = txn.open_table(BY_TYPE).map_err(backend)?;
            let mut ids = HashSet::new();
            for entry in by_type
                .range((kind.as_str(), 0)..=(kind.as_str(), u64::MAX))
                .map_err(backend)?
            {
                ids.insert(entry.map_err(backend)?.0.value().1);
            }
            narrow(ids);
        }
        if let Some(word) = &query.key_word {
            let word = word.to_lowercase();
            let search = txn.open_table(SEARCH).map_err(backend)?;
            let mut ids = HashSet::new();
            for entry in search.iter().map_err(backend)? {
                let (id, text) = entry.map_err(backend)?;
                if text.value().contains(word.as_str()) {
                    ids.insert(id.value());
                }
            }
            narrow(ids);
        }

        let total = match &allowed {
            None => credentials.len().map_err(backend)?,
            Some(ids) => ids.len() as u64,
        };
        if total == 0 || query.limit == 0 || query.offset >= total {
            return Ok(Page {
                total,
                records: Vec::new(),
            });
        }
        let ids = page_ids(&txn, query, allowed.as_ref())?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = load(&credentials, id)? {
                records.push(record);
            }
        }
        Ok(Page { total, records })
    }

    fn sealing_counts(&self) -> Result<Vec<SealingCount>, StoreError> {
        let txn = self.read()?;
        let sealed = txn.open_table(SEALED).map_err(backend)?;
        let mut counts: Vec<SealingCount> = Vec::new();
        for entry in sealed.iter().map_err(backend)? {
            let (key, _) = entry.map_err(backend)?;
            let (policy, key_id, _) = key.value();
            match counts.last_mut() {
                Some(last) if last.policy == policy && last.key_id == key_id => last.rows += 1,
                _ => counts.push(SealingCount {
                    policy: policy.to_string(),
                    key_id,
                    rows: 1,
                }),
            }
        }
        Ok(counts)
    }

    fn not_sealed_by(
        &self,
        policy: &str,
        key_id: u32,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let txn = self.read()?;
        let sealed = txn.open_table(SEALED).map_err(backend)?;
        let credentials = txn.open_table(CREDENTIALS).map_err(backend)?;
        let mut ids = Vec::new();
        let before = sealed.range(..(policy, key_id, 0)).map_err(backend)?;
        let after = sealed
            .range((
                std::ops::Bound::Excluded((policy, key_id, u64::MAX)),
                std::ops::Bound::Unbounded,
            ))
            .map_err(backend)?;
        for entry in before.chain(after).take(limit) {
            ids.push(entry.map_err(backend)?.0.value().2);
        }
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            records.extend(load(&credentials, id)?);
        }
        Ok(records)
    }

    fn replace_secrets(&self, changes: &[SecretChange]) -> Result<usize, StoreError> {
        self.write(|txn| {
            let mut replaced = 0;
            for change in changes {
                let current = load(&txn.open_table(CREDENTIALS).map_err(backend)?, change.id)?;
                // Deleted, or written since it was read: leave it be.
                let Some(mut record) = current.filter(|r| r.secret == change.expected) else {
                    continue;
                };
                let mut sealed = txn.open_table(SEALED).map_err(backend)?;
                sealed.remove(sealed_key(&record)).map_err(backend)?;
                record.secret = change.new.clone();
                sealed.insert(sealed_key(&record), ()).map_err(backend)?;
                drop(sealed);
                txn.open_table(CREDENTIALS)
                    .map_err(backend)?
                    .insert(record.id, record.encode().as_slice())
                    .map_err(backend)?;
                replaced += 1;
            }
            Ok(replaced)
        })
    }

    fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let txn = self.read()?;
        let settings = txn.open_table(SETTINGS).map_err(backend)?;
        Ok(settings
            .get(name)
            .map_err(backend)?
            .map(|v| v.value().to_string()))
    }

    fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(SETTINGS)
                .map_err(backend)?
                .insert(name, value)
                .map_err(backend)?;
            Ok(())
        })
    }

    fn tokens(&self) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.read()?;
        let tokens = txn.open_table(TOKENS).map_err(backend)?;
        tokens
            .iter()
            .map_err(backend)?
            .map(|entry| {
                let (id, doc) = entry.map_err(backend)?;
                Ok((id.value().to_string(), doc.value().to_string()))
            })
            .collect()
    }

    fn put_validations(&self, docs: &[Validation]) -> Result<(), StoreError> {
        self.write(|txn| {
            let credentials = txn.open_table(CREDENTIALS).map_err(backend)?;
            let mut validations = txn.open_table(VALIDATIONS).map_err(backend)?;
            for v in docs {
                // A credential deleted meanwhile keeps no result, and one
                // updated meanwhile keeps its update's.
                let Some(row) = load(&credentials, v.id)? else {
                    continue;
                };
                if v.made_on.is_none_or(|made_on| made_on == row.updated_us) {
                    validations.insert(v.id, v.doc.as_str()).map_err(backend)?;
                }
            }
            Ok(())
        })
    }

    fn validations(&self, ids: &[u64]) -> Result<Vec<(u64, String)>, StoreError> {
        let txn = self.read()?;
        let validations = txn.open_table(VALIDATIONS).map_err(backend)?;
        let mut found = Vec::new();
        for &id in ids {
            if let Some(doc) = validations.get(id).map_err(backend)? {
                found.push((id, doc.value().to_string()));
            }
        }
        Ok(found)
    }

    fn put_token(&self, id: &str, doc: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut tokens = txn.open_table(TOKENS).map_err(backend)?;
            // A revocation is final: a copy taken before it (noting a last
            // use, written a moment later) must not bring the token back.
            let revoked = |doc: &str| {
                serde_json::from_str::<serde_json::Value>(doc)
                    .is_ok_and(|d| !d["revoked_us"].is_null())
            };
            let keep = tokens
                .get(id)
                .map_err(backend)?
                .is_some_and(|old| revoked(old.value()) && !revoked(doc));
            if !keep {
                tokens.insert(id, doc).map_err(backend)?;
            }
            Ok(())
        })
    }
}

/// The ids of one page, walked in index order.
fn page_ids(
    txn: &ReadTransaction,
    query: &ListQuery,
    allowed: Option<&HashSet<u64>>,
) -> Result<Vec<u64>, StoreError> {
    fn walk<K: redb::Key + 'static, V: redb::Value + 'static>(
        table: redb::ReadOnlyTable<K, V>,
        id_of: impl Fn(K::SelfType<'_>) -> u64,
        query: &ListQuery,
        allowed: Option<&HashSet<u64>>,
    ) -> Result<Vec<u64>, StoreError> {
        let range = table.iter().map_err(backend)?;
        let ids = range.map(|entry| entry.map(|(k, _)| id_of(k.value())));
        let ids: Box<dyn Iterator<Item = Result<u64, redb::StorageError>>> = if query.descending {
            Box::new(ids.rev())
        } else {
            Box::new(ids)
        };
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        ids.filter(|id| match (id, allowed) {
            (Ok(id), Some(allowed)) => allowed.contains(id),
            _ => true,
        })
        .skip(offset)
        .take(limit)
        .collect::<Result<Vec<u64>, _>>()
        .map_err(backend)
    }
    let open = |e: redb::TableError| backend(e);
    match query.sort {
        SortField::Id => walk(
            txn.open_table(CREDENTIALS).map_err(open)?,
            |k| k,
            query,
            allowed,
        ),
        SortField::Name => walk(
            txn.open_table(BY_NAME).map_err(open)?,
            |k| k.1,
            query,
            allowed,
        ),
        SortField::TargetType => walk(
            txn.open_table(BY_TYPE).map_err(open)?,
            |k| k.1,
            query,
            allowed,
        ),
        SortField::CreateTime => walk(
            txn.open_table(BY_CREATED).map_err(open)?,
            |k| k.1,
            query,
            allowed,
        ),
        SortField::UpdateTime => walk(
            txn.open_table(BY_UPDATED).map_err(open)?,
            |k| k.1,
            query,
            allowed,
        ),
    }
}

/// Keeps `doc` as credential `id`'s last validation, in the write `txn`.
fn put_validation(txn: &WriteTransaction, id: u64, doc: &str) -> Result<(), StoreError> {
    txn.open_table(VALIDATIONS)
        .map_err(backend)?
        .insert(id, doc)
        .map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_token_is_not_written_back_unrevoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("t.redb")).unwrap();
        let doc = |revoked: Option<i64>, used: i64| {
            serde_json::json!({ "id": "t", "last_used_us": used, "revoked_us": revoked })
                .to_string()
        };
        let stored = || store.tokens().unwrap()[0].1.clone();
        store.put_token("t", &doc(None, 1)).unwrap();
        store.put_token("t", &doc(Some(5), 1)).unwrap();
        // The last use noted from a copy read before the revocation.
        store.put_token("t", &doc(None, 2)).unwrap();
        assert_eq!(stored(), doc(Some(5), 1));
        store.put_token("t", &doc(Some(5), 3)).unwrap();
        assert_eq!(stored(), doc(Some(5), 3));
    }
}
